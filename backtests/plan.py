"""Planning a walk-forward run: the evaluation period, the vintages and their fits.

Everything here is pure data and models: no backtrader, so research code
(:mod:`backtests.research`), training (:mod:`backtests.train`) and the robustness tasks use
it without loading an engine.  :mod:`backtests.runner` adds the simulation and the results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from backtests.config import BacktestConfig
from ensemble_bt.errors import ConfigurationError
from models.devices import resolve_devices
from models.features import FEATURE_NAMES, build_features
from models.metrics import (
    direction_accuracy,
    information_coefficient,
    walk_forward_efficiency,
)
from models.stacking import StackedEnsemble
from models.targets import forward_log_return
from models.vintages import Vintage, VintageSpec, build_schedule, fit_vintages


@dataclass(frozen=True)
class Period:
    """Evaluation bars ``[start, end]`` as positions in the dataset."""

    start: int
    end: int


def resolve_period(dates: pd.DatetimeIndex, cfg: BacktestConfig) -> Period:
    """Turn ``start``/``end`` dates into bar positions and check the history they need."""
    n, label = len(dates), cfg.data
    if cfg.start and cfg.end and cfg.start > cfg.end:
        raise ConfigurationError(f"--start {cfg.start} is after --end {cfg.end}; swap them")
    if n <= cfg.min_train + 1:
        raise ConfigurationError(
            f"{label} has {n} bars; a backtest needs more than min_train={cfg.min_train}")
    earliest = dates[cfg.min_train].date()
    start = cfg.min_train if cfg.start is None else int(dates.searchsorted(pd.Timestamp(cfg.start)))
    end = n - 1 if cfg.end is None else int(dates.searchsorted(pd.Timestamp(cfg.end), "right")) - 1
    if start < cfg.min_train:
        raise ConfigurationError(
            f"--start {cfg.start} leaves {start} bars of history in {label}, fewer than "
            f"min_train={cfg.min_train}; the earliest valid start is {earliest}")
    if start >= n:
        raise ConfigurationError(
            f"--start {cfg.start} is after the last bar of {label} ({dates[-1].date()})")
    if end <= start:
        raise ConfigurationError(
            f"the evaluation period {dates[start].date()}..{cfg.end} of {label} holds fewer "
            f"than two bars; choose an --end after {dates[start].date()}")
    return Period(start, end)


@dataclass(frozen=True)
class VintagePlan:
    """Features, target and schedule of a walk-forward run: everything but the fits."""

    features: pd.DataFrame
    target: pd.Series
    schedule: list[VintageSpec]


def plan_vintages(ohlcv: pd.DataFrame, period: Period, cfg: BacktestConfig) -> VintagePlan:
    """Lay out the vintages; raises on data too short to train them, before any fit."""
    features = build_features(ohlcv)
    target = forward_log_return(ohlcv["close"], cfg.horizon)
    valid = features.notna().all(axis=1).to_numpy()
    schedule = build_schedule(valid, period.start, period.end, horizon=cfg.horizon,
                              retrain_every=cfg.retrain_every, min_train=cfg.min_train,
                              embargo=cfg.embargo)
    return VintagePlan(features, target, schedule)


def fit_plan(plan: VintagePlan, cfg: BacktestConfig, progress: bool = True) -> list[Vintage]:
    """Fit the vintages of ``plan``."""
    return fit_vintages(plan.features, plan.target, plan.schedule, stack_factory(cfg),
                        horizon=cfg.horizon, progress=progress)


def train_vintages(ohlcv: pd.DataFrame, period: Period, cfg: BacktestConfig,
                   progress: bool = True) -> list[Vintage]:
    """Fit the walk-forward vintages that predict the evaluation bars."""
    return fit_plan(plan_vintages(ohlcv, period, cfg), cfg, progress)


def stack_factory(cfg: BacktestConfig) -> Callable[[], StackedEnsemble]:
    """A maker of unfitted stacks as the config describes them."""
    devices = resolve_devices(cfg.device)
    s = cfg.stack

    def make() -> StackedEnsemble:
        return StackedEnsemble(
            models=cfg.models, meta=s.meta, feature_names=FEATURE_NAMES, n_folds=s.n_folds,
            scheme=s.scheme, purge=cfg.horizon, embargo=cfg.embargo, top_k=s.top_k,
            selection=s.selection, alpha=s.alpha, seed=cfg.seed, devices=devices,
            deep_params=cfg.deep.model_dump())
    return make


def test_scores(vintage: Vintage, prediction: pd.Series, actual: pd.Series) -> dict:
    """A vintage's out-of-sample accuracy and IC on its own bars, and its WFE."""
    window = slice(vintage.predict_start, vintage.predict_end)
    pred, act = prediction.loc[window].to_numpy(), actual.loc[window].to_numpy()
    test_acc = direction_accuracy(pred, act)
    return {"test_dir_acc": test_acc, "test_ic": information_coefficient(pred, act),
            "wfe": walk_forward_efficiency(test_acc, vintage.holdout_dir_acc)}
