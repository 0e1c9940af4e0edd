"""The work of a universe cell: pure functions of explicit, picklable inputs.

- :func:`train_universe`: fit a universe's signals for one window
  (:func:`backtests.portfolio_signals.signals_for`, per-symbol or pooled, exactly as
  ``backtest --data A,B`` does) and return every symbol's predictions and priors;
- :func:`simulate_universe_cells`: simulate (cost, sizing) cells of that (universe, window) on
  backtrader or its exact fast path (:mod:`backtests.fastportfolio`) from the cached arrays,
  and summarise each like the portfolio backtest's ``summary.json``
  (:mod:`backtests.portfolio_results`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtests.config import BacktestConfig
from backtests.crossmetrics import BASELINES
from backtests.engine import run_strategy
from backtests.fastportfolio import run_fast_portfolio
from backtests.portfolio_results import (
    audit_symbols,
    baseline_panels,
    benchmark_curve,
    cross_section,
    decision_frame,
    pooled_quality,
    portfolio_summary,
    prediction_panels,
)
from backtests.portfolio_signals import signals_for
from backtests.results import build_summary, equity_frame, orders_frame, raise_on_leakage
from backtests.robustness.cache import Predictions, UniversePredictions
from backtests.robustness.tasks import RUN_COLUMNS, Cell, CellResult, cached_signal
from backtests.universe import PortfolioPeriod
from models.metrics import annualised_sharpe
from sizing.config import PortfolioConfig

#: The columns a universe cell adds to ``runs.csv``: the portfolio's own figures.
UNIVERSE_COLUMNS = ("benchmark_return", "rank_ic", "rank_ic_ir",
                    *(f"baseline_rank_ic_{name}" for name in BASELINES))
UNIVERSE_RUN_COLUMNS = (*RUN_COLUMNS, *UNIVERSE_COLUMNS)


@dataclass(frozen=True)
class UniverseGroup:
    """One (universe, window): each symbol's bars up to its last evaluation bar, the period,
    and the predictions of its signals."""

    symbol: str  # the universe's label, in the column where a one-symbol cell has its symbol
    window: str
    frames: dict[str, pd.DataFrame]
    period: PortfolioPeriod
    predictions: UniversePredictions
    horizon: int
    cash: float
    portfolio: PortfolioConfig
    slices: dict[str, float]

    def describe(self, cells: Sequence[Cell]) -> str:
        return f"{len(cells)} cells of {self.symbol} {self.window}"


def train_universe(frames: Mapping[str, pd.DataFrame], period: PortfolioPeriod,
                   cfg: BacktestConfig) -> UniversePredictions:
    """Every symbol's walk-forward predictions and priors over its bars, audited.

    ``frames`` are cut at each symbol's last evaluation bar, as the portfolio backtest cuts
    them, so the signals see exactly the bars that run would train and predict on.
    """
    trained = signals_for(frames, period, cfg, progress=False)
    each = tuple(Predictions(f.index, trained.signals[s].predict_batch(f),
                             trained.signals[s].prior_batch(f.index), 0, "pass")
                 for s, f in frames.items())
    if trained.pooled is not None:
        audit, n_vintages = trained.pooled.audit, len(trained.pooled.vintages)
    else:
        audit = audit_symbols(trained.signals, _evaluated(frames, period, each), frames,
                              cfg.embargo)
        n_vintages = sum(len(getattr(s, "vintages", ())) for s in trained.signals.values())
    raise_on_leakage(audit)
    return UniversePredictions(tuple(frames), each, n_vintages, audit["verdict"])


def _evaluated(frames: Mapping[str, pd.DataFrame], period: PortfolioPeriod,
               each: Sequence[Predictions]) -> pd.DataFrame:
    """Date x symbol panel of the predictions the portfolio would decide on (NaN: none)."""
    return pd.DataFrame({s: pd.Series(p.prediction, index=p.dates).reindex(period.dates)
                         for s, p in zip(frames, each, strict=True)}, index=period.dates)


def simulate_universe_cells(group: UniverseGroup, cells: Sequence[Cell],
                            sim: str = "fast") -> list[CellResult]:
    """Simulate each cell on ``sim`` (``fast`` or ``backtrader``) and summarise it as the
    portfolio backtest does."""
    engine = run_fast_portfolio if sim == "fast" else run_strategy
    signals = {s: cached_signal(p)
               for s, p in zip(group.frames, group.predictions.each, strict=True)}
    results = []
    for cell in cells:
        analysis = engine(group.frames, signals, horizon=group.horizon,
                                trade_start=group.period.dates[0].date(), sizing=cell.sizing,
                                cash=group.cash, commission=cell.cost, slippage=0.0,
                                allocations=group.slices, portfolio=group.portfolio)
        results.append(summarise_universe(group, cell, analysis))
    return results


def summarise_universe(group: UniverseGroup, cell: Cell, analysis: dict) -> CellResult:
    """The ``runs.csv`` row of one universe cell: the portfolio's ``summary.json`` keys, as
    :func:`backtests.portfolio.write_portfolio` computes them, flattened."""
    decisions = decision_frame(analysis["decisions"])
    pred, actual = prediction_panels(decisions, group.frames, group.horizon)
    equity = equity_frame(analysis["bars"], group.period.dates)
    benchmark = benchmark_curve(group.frames, group.period, group.cash)
    cross = cross_section(pred, actual, baseline_panels(group.frames, pred))
    base = build_summary(
        equity, benchmark, actual.mean(axis=1), orders_frame(analysis["orders"]), analysis,
        symbol=group.symbol, horizon=group.horizon, n_vintages=group.predictions.n_vintages,
        leakage_audit=group.predictions.leakage_audit, config_hash=cell.config_hash,
        buy_hold=float(benchmark.iloc[-1] / group.cash - 1.0),
        quality=pooled_quality(pred, actual))
    summary: dict[str, Any] = portfolio_summary(
        base, {"symbols": list(group.frames), "benchmark_return": base["buy_hold_return"],
               **cross})
    bench = benchmark.to_numpy(dtype=np.float64)
    row = {**summary, "window": group.window, "cost": cell.cost, "sizing": cell.sizing_label,
           "buy_hold_sharpe": annualised_sharpe(np.diff(bench) / bench[:-1]),
           **{f"baseline_rank_ic_{k}": v for k, v in summary["baseline_rank_ic"].items()}}
    return CellResult({k: row[k] for k in UNIVERSE_RUN_COLUMNS},
                      equity["equity"].to_numpy(dtype=np.float64))
