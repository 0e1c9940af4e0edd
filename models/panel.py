"""The pooled model (``model_scope: pooled``): one ensemble trained on every symbol's rows.

:func:`fit_panel` stacks the symbols' rows by (date, symbol) (:mod:`models.panel_data`),
adds cross-sectional ranks and z-scores of each feature (:mod:`models.panel_features`), lays
the walk-forward vintages on the panel's calendar with the usual purge and embargo
(:mod:`models.panel_vintages`), fits them, in parallel when asked (:mod:`models.panel_pool`),
predicts every (date, symbol) of the evaluation period, and audits every prediction.  The
result's :class:`~models.panel_signal.PanelSignal` gives each symbol a
:class:`~models.signal.Signal` for :class:`strategies.predictor.EnsemblePredictor`.

This module never imports backtrader.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from loguru import logger

from ensemble_bt.errors import ConfigurationError
from models.panel_data import Target, build_panel
from models.panel_features import PANEL_FEATURE_NAMES
from models.panel_pool import FitTask, fit_tasks
from models.panel_signal import PanelSignal, PanelView
from models.panel_vintages import (
    adapt_model,
    check_labels,
    evaluation_positions,
    panel_audit,
    panel_schedule,
    panel_vintages,
)
from models.targets import check_horizon
from models.vintages import Regressor

__all__ = ["PANEL_FEATURE_NAMES", "PanelFit", "PanelSignal", "PanelView", "fit_panel"]


@dataclass(frozen=True)
class PanelFit:
    """A fitted pooled model and its out-of-sample record.

    Attributes
    ----------
    signal : PanelSignal
        The vintages as a signal; ``signal.view(symbol)`` for one symbol's predictor.
    vintages : list of dict
        One record per vintage, as :meth:`models.vintages.Vintage.record` writes for
        ``vintages.json``, plus ``scope`` ("pooled"), ``n_symbols`` (symbols among its
        training rows) and ``target``.  ``n_train`` counts (date, symbol) rows.
    audit : dict
        The leakage audit of every (date, symbol) prediction
        (:func:`models.panel_vintages.panel_audit`).
    predictions : pd.DataFrame
        The evaluation period's calendar dates by symbols; NaN where a symbol has no bar,
        incomplete features, or no prediction.
    realised : pd.DataFrame
        Same shape: each symbol's realised forward log return over ``horizon`` of its bars
        (NaN where unknown): what :func:`models.crosssection.rank_ic` scores against.
    """

    signal: PanelSignal
    vintages: list[dict[str, Any]]
    audit: dict[str, Any]
    predictions: pd.DataFrame
    realised: pd.DataFrame


def _check_settings(retrain_every: int, min_train: int, embargo: int) -> None:
    for name, value, least in (("retrain_every", retrain_every, 1), ("min_train", min_train, 0),
                               ("embargo", embargo, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise ConfigurationError(f"{name} must be an integer >= {least}, got {value!r}")


def fit_panel(frames: Mapping[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp, *,
              horizon: int, retrain_every: int, min_train: int, embargo: int,
              target: Target, make_model: Callable[[], Regressor], workers: int = 1,
              progress: bool = True) -> PanelFit:
    """Fit pooled walk-forward vintages over ``[start, end]`` and predict every symbol.

    Parameters
    ----------
    frames : Mapping[str, pd.DataFrame]
        Validated OHLCV bars per symbol, each on its own dates (histories may start and end
        at different dates).  The calendar is the union of their sessions.
    start, end : pd.Timestamp
        The evaluation period on that calendar; the first cutoff is its first session.
    horizon : int
        Label horizon, in each symbol's own bars.
    retrain_every, min_train, embargo : int
        Sessions between cutoffs; sessions of history the first cutoff needs; sessions
        between a training label's end and its vintage's first prediction, at least.
    target : {"raw", "demeaned"}
        The forward log return, or that minus the date's cross-sectional mean.
    make_model : callable
        Builds an unfitted single-symbol model, e.g. ``backtests.plan.stack_factory(cfg)``;
        each is adapted to pooled rows (:func:`models.panel_vintages.adapt_model`: panel
        feature names, row purge and embargo scaled by the panel's width, no sequence
        learners).  The models are built here and sent to the workers, so the maker itself
        need not be picklable.
    workers : int
        Processes fitting vintages in parallel (1: in this process).  Results are identical
        for any count.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    PanelFit

    Raises
    ------
    ConfigurationError
        A setting is invalid, or the period has too little history before it.
    DataError
        A frame is malformed, or a vintage would have too few training rows.
    WorkerError
        A worker process died.
    """
    horizon = check_horizon(horizon)
    _check_settings(retrain_every, min_train, embargo)
    panel = build_panel(frames, horizon, target)
    lo, hi = evaluation_positions(panel.calendar, start, end, min_train)
    schedule = panel_schedule(panel, lo, hi, horizon=horizon, retrain_every=retrain_every,
                              min_train=min_train, embargo=embargo)
    width = panel.width
    tasks = []
    for spec in schedule:
        check_labels(panel, spec)
        tasks.append(FitTask(spec.train_rows, adapt_model(make_model(), width),
                             purge_rows=(horizon + embargo) * width))
    results = fit_tasks(panel.X, panel.y, tasks, workers=workers, progress=progress)
    vintages = panel_vintages(panel, schedule, results, horizon)
    logger.info("trained {} pooled vintages on {} symbols", len(vintages), len(panel.symbols))
    signal = PanelSignal(vintages, panel.symbols)
    predictions = signal.predict_panel(panel)
    signal.attach(predictions, frames)
    records = [{**v.record(), "scope": "pooled", "target": target,
                "n_symbols": int(len(set(panel.symbol_idx[v.spec.train_rows].tolist())))}
               for v in vintages]
    return PanelFit(signal=signal, vintages=records,
                    audit=panel_audit(vintages, predictions, panel, embargo),
                    predictions=predictions,
                    realised=panel.grid(panel.realised, lo, hi + 1).reindex(predictions.index))
