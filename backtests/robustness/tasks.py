"""The work a robustness executor runs: pure functions of explicit, picklable inputs.

Two kinds of task, so that a local process pool and Ray run the same code:

- :func:`train_predictions`: fit the walk-forward vintages of one (dataset, window) and return
  their predictions over every bar up to the window's end;
- :func:`simulate_cells`: simulate several (cost, sizing) cells of one (dataset, window) from
  those cached arrays and return each cell's ``runs.csv`` row and equity curve.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from backtests.config import BacktestConfig
from backtests.fastpath import run_fast
from backtests.plan import Period, train_vintages
from backtests.results import (
    SUMMARY_KEYS,
    build_summary,
    equity_frame,
    orders_frame,
    raise_on_leakage,
)
from backtests.robustness.cache import Predictions
from ensemble_bt.errors import ConfigurationError
from models.metrics import annualised_sharpe
from models.signal import SeriesSignal, VintageSignal
from models.targets import forward_log_return
from models.vintages import leakage_audit
from sizing.config import SizingConfig

GRID_COLUMNS = ("symbol", "window", "cost", "sizing")
RUN_COLUMNS = (*GRID_COLUMNS, *(k for k in SUMMARY_KEYS if k != "symbol"), "buy_hold_sharpe")


def train_predictions(ohlcv: pd.DataFrame, start: int, cfg: BacktestConfig) -> Predictions:
    """Walk-forward predictions over ``ohlcv`` (already truncated at the window's end).

    Exactly what :func:`backtests.runner.run_backtest` feeds the strategy: the vintages of
    :func:`backtests.runner.train_vintages` and their signal's ``predict_batch`` and
    ``prior_batch`` over the same bars.
    """
    end = len(ohlcv) - 1
    vintages = train_vintages(ohlcv, Period(start, end), cfg, progress=False)
    signal = VintageSignal(vintages)
    prediction = signal.predict_batch(ohlcv)
    prior = signal.prior_batch(ohlcv.index)
    eval_dates = ohlcv.index[start:]
    audit = leakage_audit(vintages, eval_dates[np.isfinite(prediction[start:])], ohlcv.index)
    raise_on_leakage(audit)
    return Predictions(ohlcv.index, prediction, prior, len(vintages), audit["verdict"])


def cached_signal(predictions: Predictions) -> SeriesSignal:
    """Cached predictions and priors as a signal, for the backtrader simulator.

    The batch and streaming paths look the same arrays up by date, so a cell simulated from
    the cache sees exactly the numbers the vintages produced.
    """
    return SeriesSignal(pd.Series(predictions.prediction, index=predictions.dates),
                        prior=pd.Series(predictions.prior, index=predictions.dates))


@dataclass(frozen=True)
class Group:
    """One (dataset, window): the bars up to the window's end and their predictions."""

    symbol: str
    window: str
    ohlcv: pd.DataFrame
    start: int  # first evaluation bar
    predictions: Predictions
    horizon: int
    cash: float


@dataclass(frozen=True)
class Cell:
    """One (cost, sizing) simulation of a group."""

    cost: float
    sizing_label: str
    sizing: SizingConfig
    config_hash: str


@dataclass(frozen=True)
class CellResult:
    row: dict[str, Any]  # the runs.csv row, RUN_COLUMNS
    equity: np.ndarray  # equity on the group's evaluation bars


Simulator = Callable[[Group, Cell], dict]


def _simulate_backtrader(group: Group, cell: Cell) -> dict:
    from backtests.engine import run_strategy

    return run_strategy(
        {group.symbol: group.ohlcv}, {group.symbol: cached_signal(group.predictions)},
        horizon=group.horizon, trade_start=group.ohlcv.index[group.start].date(),
        sizing=cell.sizing, cash=group.cash, commission=cell.cost, slippage=0.0)


def _simulate_fast(group: Group, cell: Cell) -> dict:
    return run_fast(group.ohlcv, group.predictions.prediction, group.predictions.prior,
                    horizon=group.horizon, trade_start=group.ohlcv.index[group.start].date(),
                    sizing=cell.sizing, cash=group.cash, commission=cell.cost, slippage=0.0,
                    symbol=group.symbol)


def resolve_simulator(sim: str) -> Simulator:
    """The cell simulator for ``--sim``: the numba fast path or backtrader (the reference)."""
    if sim == "backtrader":
        return _simulate_backtrader
    if sim != "fast":
        raise ConfigurationError(f"--sim {sim}: unknown simulator; choose fast or backtrader")
    return _simulate_fast


def simulate_cells(group: Group, cells: Sequence[Cell], sim: str) -> list[CellResult]:
    """Simulate each cell and summarise it with the single backtest's ``performance()``."""
    simulate = resolve_simulator(sim)
    return [summarise(group, cell, simulate(group, cell)) for cell in cells]


def describe_task(fn: Callable[..., Any], args: tuple) -> str:
    """What one task of the batch works on, for messages: ``training AAPL for 2007-01-03..``.

    Parameters
    ----------
    fn
        The task function: :func:`train_predictions`, :func:`simulate_cells` or another.
    args
        Its arguments.  Under Ray a group may be an object reference; it is then not named.
    """
    if fn is train_predictions:
        ohlcv, start = args[0], args[1]
        return (f"training {str(ohlcv.attrs.get('symbol', '?')).upper()} for "
                f"{ohlcv.index[start].date()}..{ohlcv.index[-1].date()}")
    if fn is simulate_cells and isinstance(args[0], Group):
        group, cells = args[0], args[1]
        return f"{len(cells)} cells of {group.symbol} {group.window}"
    if len(args) > 1 and isinstance(args[0], Mapping) and hasattr(args[1], "dates"):
        dates = args[1].dates  # a universe's training: its frames and portfolio period
        return f"training {'+'.join(args[0])} for {dates[0].date()}..{dates[-1].date()}"
    describe = getattr(args[0], "describe", None) if args else None
    if callable(describe):  # a universe's work names itself
        return str(describe(*args[1:2]))
    return getattr(fn, "__qualname__", repr(fn))


def summarise(group: Group, cell: Cell, analysis: dict) -> CellResult:
    """The ``runs.csv`` row of one simulated cell: grid keys, then the summary keys."""
    equity = equity_frame(analysis["bars"], group.ohlcv.index[group.start:])
    close = group.ohlcv["close"].iloc[group.start:]
    actual = forward_log_return(group.ohlcv["close"], group.horizon).iloc[group.start:]
    summary = build_summary(
        equity, close, actual, orders_frame(analysis["orders"]), analysis,
        symbol=group.symbol, horizon=group.horizon, n_vintages=group.predictions.n_vintages,
        leakage_audit=group.predictions.leakage_audit, config_hash=cell.config_hash)
    closes = close.to_numpy(dtype=np.float64)
    row = {**summary, "window": group.window, "cost": cell.cost, "sizing": cell.sizing_label,
           "buy_hold_sharpe": annualised_sharpe(np.diff(closes) / closes[:-1])}
    return CellResult({k: row[k] for k in RUN_COLUMNS},
                      equity["equity"].to_numpy(dtype=np.float64))
