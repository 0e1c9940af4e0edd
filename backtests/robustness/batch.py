"""The robustness batch: datasets × windows × costs (× sizing overrides), in parallel.

A window ``START:END`` is an evaluation period (first to last trading day of those years);
each vintage trains on the history before its cutoff, as in a single backtest.  Work comes in
two phases on one executor (:mod:`backtests.robustness.executors`):

1. trainings: one task per (dataset, window) whose predictions are not in the on-disk cache
   (:mod:`backtests.robustness.cache`);
2. cells: the (cost, sizing) simulations of each (dataset, window), several per task, all
   from the cached arrays (:mod:`backtests.robustness.tasks`).

A cost is a fraction of notional per side, commission and slippage together, passed to the
simulator as ``commission=cost, slippage=0.0``: commission is charged on the fill's notional
exactly, while slippage would move the fill price and so the position and its later P&L too.

Outputs land in ``<out>/robustness_<UTC stamp>/`` atomically: ``runs.csv`` (one row per cell:
grid keys, the single backtest's summary keys, ``buy_hold_sharpe``), ``summary.json``
(:mod:`backtests.robustness.stats`), ``config.yaml`` and ``report.html`` with its PNGs.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from loguru import logger

from backtests.config import BacktestConfig
from backtests.datasets import data_hash, load_datasets
from backtests.results import package_version, results_dir, write_json
from backtests.robustness.cache import PredictionCache, Predictions, cache_key
from backtests.robustness.config import RobustnessConfig, Window, load_robustness_config
from backtests.robustness.executors import LocalExecutor, RayExecutor, make_executor
from backtests.robustness.report import write_report
from backtests.robustness.stats import aggregate, overfitting, share_beating_buy_hold
from backtests.robustness.tasks import (
    RUN_COLUMNS,
    Cell,
    CellResult,
    Group,
    resolve_simulator,
    simulate_cells,
    train_predictions,
)
from backtests.robustness.universe_batch import (
    PlannedUniverse,
    plan_universes,
    simulate_universes,
    universe_predictions,
)
from backtests.robustness.universe_tasks import UNIVERSE_RUN_COLUMNS
from backtests.robustness.windows import window_period
from backtests.store import expand_specs

__all__ = ["RobustnessConfig", "load_robustness_config", "run_robustness", "window_period"]


@dataclass(frozen=True)
class Planned:
    """One (dataset, window) before training: the bars up to the window's end."""

    data: str
    symbol: str
    window: Window
    ohlcv: pd.DataFrame
    start: int
    key: str
    cache_path: Path

    @property
    def eval_dates(self) -> pd.DatetimeIndex:
        return self.ohlcv.index[self.start:]


def _load(specs: tuple[str, ...]) -> list[tuple[str, str, pd.DataFrame]]:
    specs = expand_specs(specs)  # store:A,B is one spec per stored symbol
    frames = load_datasets(specs)
    return [(spec, symbol, frame) for spec, (symbol, frame) in zip(specs, frames.items(),
                                                                   strict=True)]


def plan(cfg: RobustnessConfig) -> list[Planned]:
    """Load every dataset and resolve every window: all input checks, nothing written."""
    cache = PredictionCache(cfg.cache_dir)
    model_hash = cfg.prediction_hash()
    planned = []
    for spec, symbol, frame in _load(cfg.data):
        for window in cfg.windows:
            start, end = window_period(frame, window, cfg.base.min_train, spec)
            # Nothing after the evaluation period exists for this run, not even for features.
            ohlcv = frame.iloc[: end + 1]
            key = cache_key(data_hash(ohlcv), ohlcv.index[start], model_hash)
            planned.append(Planned(spec, symbol, window, ohlcv, start, key,
                                   cache.path(symbol, window.label, key)))
    return planned


def _predictions(cfg: RobustnessConfig, planned: list[Planned],
                 pool: LocalExecutor | RayExecutor) -> tuple[list[Predictions], int]:
    """Cached predictions where valid; train the rest (one task each) and cache them."""
    cache = PredictionCache(cfg.cache_dir)
    found = [cache.load(p.cache_path, p.key, p.ohlcv.index) for p in planned]
    missing = [i for i, hit in enumerate(found) if hit is None]
    logger.info("predictions: {} of {} (symbol, window) pairs from the cache, training {}",
                len(planned) - len(missing), len(planned), len(missing))
    trained = pool.map(train_predictions,
                       [(planned[i].ohlcv, planned[i].start, cfg.base) for i in missing],
                       desc="training", unit="window")
    for i, fresh in zip(missing, trained, strict=True):
        cache.save(planned[i].cache_path, planned[i].key, fresh)
        found[i] = fresh
    return found, len(missing)  # type: ignore[return-value]


def _cells(cfg: RobustnessConfig, p: Planned) -> list[Cell]:
    first, last = p.ohlcv.index[p.start].date(), p.ohlcv.index[-1].date()
    cells = []
    for cost in cfg.costs:
        for label, overrides in cfg.sizing_cells():
            sizing = cfg.sizing_for(overrides)
            single: BacktestConfig = cfg.base.model_copy(update={
                "data": p.data, "start": first, "end": last, "commission": cost,
                "slippage": 0.0, "sizing": sizing, "sim": cfg.sim})
            cells.append(Cell(cost, label, sizing, single.config_hash()))
    return cells


def _simulate(cfg: RobustnessConfig, planned: list[Planned], predictions: list[Predictions],
              pool: LocalExecutor | RayExecutor, workers: int) -> list[CellResult]:
    per_group = [_cells(cfg, p) for p in planned]
    total = sum(map(len, per_group))
    # About four tasks per worker: enough to balance, few enough to keep overhead low.
    size = max(1, math.ceil(total / (4 * workers)))
    tasks = []
    for p, preds, cells in zip(planned, predictions, per_group, strict=True):
        group = pool.share(Group(p.symbol, p.window.label, p.ohlcv, p.start, preds,
                                 cfg.base.horizon, cfg.base.initial_cash))
        tasks += [(group, cells[i:i + size], cfg.sim) for i in range(0, len(cells), size)]
    batches = pool.map(simulate_cells, tasks, desc="cells", unit="batch")
    return [result for batch in batches for result in batch]


def _tabulate(cfg: RobustnessConfig, planned: list[Planned] | list[PlannedUniverse],
              results: list[CellResult],
              ) -> tuple[pd.DataFrame, list[np.ndarray], list[pd.Series]]:
    """Rows in grid order (dataset or universe, window, cost, sizing): identical for every
    engine."""
    columns = UNIVERSE_RUN_COLUMNS if cfg.universes is not None else RUN_COLUMNS
    runs = pd.DataFrame([r.row for r in results], columns=list(columns))
    symbols = {s: i for i, s in enumerate(dict.fromkeys(p.symbol for p in planned))}
    windows = {w.label: i for i, w in enumerate(cfg.windows)}
    sizings = {label: i for i, (label, _) in enumerate(cfg.sizing_cells())}
    order = sorted(range(len(runs)), key=lambda i: (
        symbols[runs.at[i, "symbol"]], windows[runs.at[i, "window"]], runs.at[i, "cost"],
        sizings[runs.at[i, "sizing"]]))
    dates = {(p.symbol, p.window.label): p.eval_dates for p in planned}
    equities, returns = [], []
    for i in order:
        eq = results[i].equity
        index = dates[(runs.at[i, "symbol"], runs.at[i, "window"])]
        equities.append(eq)
        returns.append(pd.Series(np.diff(eq) / eq[:-1], index=index[1:]))
    return runs.iloc[order].reset_index(drop=True), equities, returns


def _summary(cfg: RobustnessConfig, runs: pd.DataFrame, returns: list[pd.Series],
             cache: dict, elapsed: float) -> tuple[dict, dict]:
    stats = overfitting(runs, returns, cfg.pbo_splits)
    summary = {
        "n_cells": len(runs),
        "grid": {**_dimension(cfg, runs),
                 "windows": [w.label for w in cfg.windows], "costs": list(cfg.costs),
                 "sizing": [label for label, _ in cfg.sizing_cells()], "sim": cfg.sim,
                 "engine": cfg.engine},
        "by_symbol": aggregate(runs, "symbol"), "by_cost": aggregate(runs, "cost"),
        "by_window": aggregate(runs, "window"), "by_sizing": aggregate(runs, "sizing"),
        "share_beating_buy_hold_sharpe": share_beating_buy_hold(runs),
        **stats.summary,
        "cache": cache,
        "elapsed_s": round(elapsed, 1),
        "config_hash": cfg.config_hash(), "version": package_version(),
    }
    return summary, stats.logits


def _dimension(cfg: RobustnessConfig, runs: pd.DataFrame) -> dict:
    """The grid's first dimension: the datasets' symbols, or each universe's data names by
    its label."""
    labels = list(dict.fromkeys(runs["symbol"]))
    if cfg.universes is None:
        return {"data": labels}
    return {"universes": dict(zip(labels, (list(u) for u in cfg.universes), strict=True))}


def run_robustness(cfg: RobustnessConfig, progress: bool = True) -> Path:
    """Run the grid; returns its results directory.

    Every input check (datasets, windows, simulator, engine) happens before anything is
    written, so bad input leaves neither a results directory nor cache files.
    """
    began = time.monotonic()
    planned = plan_universes(cfg) if cfg.universes is not None else plan(cfg)
    resolve_simulator(cfg.sim)
    n_cells = len(planned) * len(cfg.costs) * len(cfg.sizing_cells())
    workers = max(1, min(cfg.workers or os.cpu_count() or 1, n_cells))
    # the last input check: ray
    executor = make_executor(cfg.engine, workers, progress, cfg.task_timeout)
    dimension = (f"{len(cfg.universes)} universes (portfolios)"
                 if cfg.universes is not None else f"{len(cfg.data)} datasets")
    logger.info("robustness: {} x {} windows x {} costs x {} sizings = {} cells, "
                "{} workers ({})", dimension, len(cfg.windows), len(cfg.costs),
                len(cfg.sizing_cells()), n_cells, workers, cfg.engine)
    with executor as pool, results_dir(cfg.out, "robustness") as pending:
        if cfg.universes is not None:
            found, trained = universe_predictions(cfg, planned, pool)
            results = simulate_universes(cfg, planned, found, pool, workers)
        else:
            predictions, trained = _predictions(cfg, planned, pool)
            results = _simulate(cfg, planned, predictions, pool, workers)
        runs, equities, returns = _tabulate(cfg, planned, results)
        cache = {"hits": len(planned) - trained, "trained": trained, "dir": cfg.cache_dir}
        summary, logits = _summary(cfg, runs, returns, cache, time.monotonic() - began)
        folder = pending.scratch
        runs.to_csv(folder / "runs.csv", index=False)
        write_json(folder / "summary.json", summary)
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg.flat(), sort_keys=False))
        write_report(folder, runs, equities, summary, logits)
    logger.info("{} cells; mean Sharpe {:.2f}; {:.0%} beat buy-and-hold's Sharpe; DSR {}; "
                "PBO {}", len(runs), float(runs["sharpe"].mean()),
                summary["share_beating_buy_hold_sharpe"], summary["dsr"],
                summary["pbo"]["mean"])
    return pending.final
