"""Aggregates and overfitting statistics of a robustness grid (``summary.json``).

- Per-symbol, per-cost, per-window and per-sizing means and medians of the cells.
- ``share_beating_buy_hold_sharpe``: cells whose Sharpe beats buy-and-hold on the same bars.
- The deflated Sharpe ratio (DSR) of the best cell by Sharpe, deflated by every cell as a
  trial (:func:`models.overfitting.dsr.dsr_from_trials` on daily returns).
- The probability of backtest overfitting (PBO, CSCV) per evaluation window, over the daily
  returns of all cells of that window on their common dates, and its mean over windows.
  CSCV cuts the T dates into ``n_splits`` blocks and halves them every possible way, so
  ``n_splits`` must be even and at most T; 16 (the default, C(16, 8) = 12,870 halvings) keeps
  about 47 dates per block in a three-year window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.metrics import per_period_sharpe
from models.overfitting.dsr import dsr_from_trials
from models.overfitting.pbo import PBOResult, pbo_cscv

AGGREGATES = {"n_cells": ("sharpe", "size"), "mean_sharpe": ("sharpe", "mean"),
              "median_sharpe": ("sharpe", "median"),
              "mean_strategy_return": ("strategy_return", "mean"),
              "mean_alpha": ("alpha", "mean"), "median_alpha": ("alpha", "median")}


def aggregate(runs: pd.DataFrame, by: str) -> dict[str, dict[str, float]]:
    """Mean/median Sharpe, mean strategy return and alpha of the cells, grouped by ``by``."""
    grouped = runs.groupby(by, sort=False).agg(**AGGREGATES)
    return {_key(k): {c: _number(v) for c, v in row.items()}
            for k, row in grouped.to_dict(orient="index").items()}


def share_beating_buy_hold(runs: pd.DataFrame) -> float:
    """Share of cells whose strategy Sharpe exceeds buy-and-hold's over the same bars."""
    return float(np.mean(runs["sharpe"].to_numpy() > runs["buy_hold_sharpe"].to_numpy()))


@dataclass
class Overfitting:
    """DSR and PBO of a grid; ``logits`` (every window's) feed the report's histogram."""

    summary: dict[str, Any]
    logits: dict[str, np.ndarray] = field(default_factory=dict)


def overfitting(runs: pd.DataFrame, returns: list[pd.Series], n_splits: int) -> Overfitting:
    """DSR of the best cell and PBO per window.

    Parameters
    ----------
    runs : DataFrame
        ``runs.csv`` rows, in the same order as ``returns``.
    returns : list of Series
        Each cell's daily strategy returns, indexed by date.
    n_splits : int
        CSCV blocks (even); lowered to the largest even number <= the common dates.
    """
    best = int(np.argmax(runs["sharpe"].to_numpy()))
    best_cell = {k: _number(runs.iloc[best][k]) for k in ("symbol", "window", "cost", "sizing",
                                                          "sharpe")}
    out: dict[str, Any] = {"dsr": None, "n_trials": len(runs), "best_cell": best_cell,
                           "pbo": {"mean": None, "n_splits": n_splits, "by_window": {}}}
    trial_sharpes = np.array([per_period_sharpe(r.to_numpy()) for r in returns])
    out["dsr"] = _number(dsr_from_trials(returns[best].to_numpy(), trial_sharpes))
    logits: dict[str, np.ndarray] = {}
    for window in runs["window"].unique():
        members = np.flatnonzero(runs["window"].to_numpy() == window)
        result, row = _pbo([returns[i] for i in members], n_splits)
        out["pbo"]["by_window"][str(window)] = row
        if result is not None:
            logits[str(window)] = np.asarray(result.logits, dtype=np.float64)
    values = [r["pbo"] for r in out["pbo"]["by_window"].values() if r["pbo"] is not None]
    out["pbo"]["mean"] = float(np.mean(values)) if values else None
    return Overfitting(out, logits)


def _pbo(returns: list[pd.Series], n_splits: int) -> tuple[PBOResult | None, dict]:
    matrix = pd.concat(returns, axis=1, join="inner").dropna()
    t, n = matrix.shape
    splits = min(n_splits, t - t % 2)
    row: dict[str, Any] = {"pbo": None, "n_dates": t, "n_strategies": n, "n_splits": splits,
                           "n_combinations": None}
    if n < 2 or splits < 2:
        row["note"] = "PBO needs at least two cells and two common dates"
        return None, row
    result = pbo_cscv(matrix.to_numpy(dtype=np.float64), n_splits=splits)
    row.update(pbo=_number(result.pbo), n_combinations=int(result.n_combinations))
    return result, row


def _key(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float | np.floating) else str(value)


def _number(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
