"""A portfolio's signals: the one place where ``model_scope`` chooses the model.

:func:`signals_for` returns one :class:`models.signal.Signal` per symbol, whatever trained
it, and the portfolio backtest (:mod:`backtests.portfolio`) trades them with the same
``EnsembleStrategy`` as one symbol.

- ``per_symbol``: each symbol's own walk-forward vintages (:class:`VintageSignal`), each
  exposing ``vintages`` (positions in that symbol's own bars); the leakage audit checks every
  (date, symbol) prediction against them, and a signal without them fails it.
- ``pooled``: one ensemble on every symbol's rows (:func:`models.panel.fit_panel`); each
  symbol's signal is a view of the :class:`~models.panel_signal.PanelSignal`, and the fit's
  own audit covers every (date, symbol) prediction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

import pandas as pd
from loguru import logger

from backtests.config import BacktestConfig
from backtests.crossmetrics import demeaned_targets
from backtests.plan import VintagePlan, fit_plan, plan_vintages, stack_factory
from backtests.universe import PortfolioPeriod
from ensemble_bt.errors import ConfigurationError, DataError
from models.panel import PanelFit, fit_panel
from models.signal import Signal, VintageSignal


@dataclass(frozen=True)
class PortfolioSignals:
    """The signals of a portfolio, and the pooled fit behind them (None per symbol)."""

    signals: dict[str, Signal]
    pooled: PanelFit | None = None


def signals_for(frames: Mapping[str, pd.DataFrame], period: PortfolioPeriod,
                cfg: BacktestConfig, progress: bool = True) -> PortfolioSignals:
    """Train the signals of a portfolio, one per symbol, keyed like ``frames``.

    Bad input (data too short for a vintage, a scope not available) is raised before any
    model is fitted or any line is logged.

    Parameters
    ----------
    frames : Mapping[str, pandas.DataFrame]
        Each symbol's bars, cut at its last evaluation bar.
    period : PortfolioPeriod
        The evaluation sessions and each symbol's evaluation bars.
    cfg : BacktestConfig
        ``model_scope`` (``per_symbol``: each symbol's own walk-forward vintages, trained on
        its own bars; ``pooled``: one ensemble on all of them, fitted by ``workers``
        processes), ``target`` and the training keys.
    progress : bool
        Show the progress bars of the fits.

    Raises
    ------
    ConfigurationError, DataError
        As above; a message names the symbol it is about.
    """
    if cfg.model_scope == "pooled":
        fit = pooled_fit(frames, period, cfg, progress)
        return PortfolioSignals({s: fit.signal.view(s) for s in frames}, fit)
    plans = per_symbol_plans(frames, period, cfg)
    logger.info("training {} symbols, one model each: {}", len(plans), ", ".join(plans))
    return PortfolioSignals({s: VintageSignal(fit_plan(p, cfg, progress=progress))
                             for s, p in plans.items()})


def pooled_fit(frames: Mapping[str, pd.DataFrame], period: PortfolioPeriod,
               cfg: BacktestConfig, progress: bool = True) -> PanelFit:
    """One ensemble over every symbol's rows, predicting the evaluation sessions."""
    if any(m in ("lstm", "xlstm") for m in cfg.models):
        raise ConfigurationError("model_scope pooled takes the gradient-boosted learners only: "
                                 "a sequence learner's earlier rows would be other symbols'; "
                                 "drop lstm/xlstm from models")
    workers = cfg.workers or os.cpu_count() or 1
    logger.info("training one pooled model on {} symbols, {} worker(s)", len(frames), workers)
    return fit_panel(frames, period.dates[0], period.dates[-1], horizon=cfg.horizon,
                     retrain_every=cfg.retrain_every, min_train=cfg.min_train,
                     embargo=cfg.embargo, target=cfg.target, make_model=stack_factory(cfg),
                     workers=workers, progress=progress)


def per_symbol_plans(frames: Mapping[str, pd.DataFrame], period: PortfolioPeriod,
                     cfg: BacktestConfig) -> dict[str, VintagePlan]:
    """Each symbol's vintage plan, its labels demeaned across the universe if asked."""
    plans = {}
    for symbol, frame in frames.items():
        try:
            plans[symbol] = plan_vintages(frame, period.periods[symbol], cfg)
        except (ConfigurationError, DataError) as exc:
            raise type(exc)(f"{symbol}: {exc}") from None
    if cfg.target == "demeaned":
        targets = demeaned_targets({s: f["close"] for s, f in frames.items()}, cfg.horizon)
        plans = {s: replace(p, target=targets[s]) for s, p in plans.items()}
    return plans
