"""What a portfolio's results directory adds: pooled and cross-sectional scores, the audit
over every (date, symbol), the equal-weight benchmark, ``symbols.csv`` and ``weights.csv``.

Everything is computed from the run's decisions (one row per symbol with a bar at each
evaluated close, ``decisions.csv``): the predictions scored are exactly those traded on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from backtests.crossmetrics import BASELINES
from backtests.universe import PortfolioPeriod
from models import metrics
from models.crosssection import rank_ic, rank_ic_summary
from models.signal import Signal
from models.targets import forward_log_return
from models.vintages import leakage_audit
from sizing.decisions import DECISION_FIELDS

#: Columns of ``symbols.csv``, one row per symbol.
SYMBOL_COLUMNS = ("symbol", "first_prediction", "bars", "return_contribution", "n_trades",
                  "costs_paid", "ic", "direction_accuracy", "exposure", "mean_weight")
#: Columns of ``weights.csv``, one row per decision: account weights.
WEIGHT_COLUMNS = ("date", "symbol", "target_weight", "held_weight")
#: ``summary.json`` keys a portfolio adds, each after the contract key it extends.
PORTFOLIO_KEYS = {"symbol": ("symbols",), "buy_hold_return": ("benchmark_return",),
                  "ic": ("rank_ic", "rank_ic_ir", "baseline_rank_ic")}


def decision_frame(rows: Sequence[dict]) -> pd.DataFrame:
    """The run's decisions (:data:`DECISION_FIELDS`), dates as timestamps."""
    frame = pd.DataFrame(list(rows), columns=list(DECISION_FIELDS))
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def prediction_panels(decisions: pd.DataFrame, frames: Mapping[str, pd.DataFrame],
                      horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pred, actual)``: date x symbol panels of the decided predictions and of each
    symbol's realised forward log return over ``horizon`` of its own bars.

    Both are NaN where the symbol had no bar (it was not decided); ``pred`` also where it had
    no prediction (before it joins).
    """
    pred = decisions.pivot(index="date", columns="symbol", values="prediction")
    pred = pred.reindex(columns=list(frames)).astype(np.float64)
    actual = pd.DataFrame({s: forward_log_return(f["close"], horizon).reindex(pred.index)
                           for s, f in frames.items()}, index=pred.index)
    return pred, actual.where(pred.notna())


def baseline_panels(frames: Mapping[str, pd.DataFrame],
                    pred: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The model-free baselines (:data:`backtests.crossmetrics.BASELINES`) on the model's own
    (date, symbol) pairs: each symbol's own bars, masked where the model has no prediction."""
    return {name: pd.DataFrame({s: score(f["close"]).reindex(pred.index)
                                for s, f in frames.items()}, index=pred.index).where(pred.notna())
            for name, score in BASELINES.items()}


def pooled_quality(pred: pd.DataFrame, actual: pd.DataFrame) -> dict[str, float]:
    """``direction_accuracy`` and ``ic`` (Spearman) over every (date, symbol) pair."""
    p, a = pred.to_numpy().ravel(), actual.to_numpy().ravel()
    return {"direction_accuracy": metrics.direction_accuracy(p, a),
            "ic": metrics.information_coefficient(p, a)}


def cross_section(pred: pd.DataFrame, actual: pd.DataFrame,
                  baselines: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
    """``rank_ic``, ``rank_ic_ir`` and ``baseline_rank_ic`` (the mean rank IC of each
    baseline on the same pairs), and the per-date series behind the first
    (:func:`models.crosssection.rank_ic`: a date counts with at least ``MIN_SYMBOLS``)."""
    series = rank_ic(pred, actual)
    mean, ir = rank_ic_summary(series)
    base = {name: rank_ic_summary(rank_ic(panel, actual))[0]
            for name, panel in baselines.items()}
    return {"rank_ic": mean, "rank_ic_ir": ir, "baseline_rank_ic": base, "series": series}


def audit_symbols(signals: Mapping[str, Signal], pred: pd.DataFrame,
                  frames: Mapping[str, pd.DataFrame], embargo: int) -> dict[str, Any]:
    """The leakage audit of every (date, symbol) prediction, symbol by symbol.

    Each symbol's predicted dates are checked against its own vintages and bars
    (:func:`models.vintages.leakage_audit`); a signal without ``vintages`` fails.  The verdict
    passes only if every symbol's does.
    """
    per_symbol = {}
    for symbol, frame in frames.items():
        dates = pred.index[pred[symbol].notna().to_numpy()]
        vintages = getattr(signals[symbol], "vintages", None)
        if vintages is None:
            per_symbol[symbol] = {"verdict": "fail", "bars_checked": 0, "vintages_checked": 0,
                                  "embargo": embargo, "n_violations": 1,
                                  "violations": ["the signal has no vintages to audit"]}
        else:
            per_symbol[symbol] = leakage_audit(vintages, dates, frame.index, embargo)
    violations = [f"{s}: {v}" for s, a in per_symbol.items() for v in a["violations"]]
    verdict = "pass" if all(a["verdict"] == "pass" for a in per_symbol.values()) else "fail"
    return {"verdict": verdict,
            "bars_checked": sum(a["bars_checked"] for a in per_symbol.values()),
            "vintages_checked": sum(a["vintages_checked"] for a in per_symbol.values()),
            "embargo": embargo, "violations": violations[:10],
            "n_violations": sum(a["n_violations"] for a in per_symbol.values()),
            "symbols": per_symbol}


def benchmark_curve(frames: Mapping[str, pd.DataFrame], period: PortfolioPeriod,
                    cash: float) -> pd.Series:
    """Equal-weight buy-and-hold without costs, valued at each evaluated close.

    Each symbol's ``cash / n`` buys it at the open of its first evaluated bar (the period's
    first, or the bar it joins at) and is held to the end; until then it is cash.  A symbol
    with no bar on a session is valued at its last close.
    """
    n = len(frames)
    total = pd.Series(0.0, index=period.dates)
    for symbol, frame in frames.items():
        first = period.periods[symbol].start
        close = frame["close"].reindex(period.dates.union(frame.index)).ffill()
        held = close.reindex(period.dates) / frame["open"].iloc[first]
        total += np.where(period.dates >= frame.index[first], held, 1.0) * (cash / n)
    return total


def _symbol_pnl(orders: pd.DataFrame, frame: pd.DataFrame) -> float:
    """Realised plus unrealised P&L of one symbol's fills, net of costs, at its last close."""
    if not len(orders):
        return 0.0
    signed = np.where(orders["side"] == "buy", 1.0, -1.0) * orders["size"]
    cash_flow = float((-signed * orders["price"] - orders["commission"]).sum())
    return cash_flow + float(signed.sum()) * float(frame["close"].iloc[-1])


def symbol_table(decisions: pd.DataFrame, orders: pd.DataFrame,
                 frames: Mapping[str, pd.DataFrame], pred: pd.DataFrame,
                 actual: pd.DataFrame, slice_of: Mapping[str, float],
                 cash: float) -> pd.DataFrame:
    """``symbols.csv``: per symbol, what it contributed and how well it was predicted.

    ``return_contribution`` is the symbol's P&L net of commission and slippage over the
    starting cash (the contributions plus financing over the starting cash make the
    strategy's return); ``exposure`` is the share of its decided bars with a position, and
    ``mean_weight`` its mean held account weight on them.
    """
    filled = orders[orders["status"] == "filled"] if len(orders) else orders
    rows = []
    for symbol, frame in frames.items():
        own = decisions[decisions["symbol"] == symbol]
        fills = filled[filled["symbol"] == symbol] if len(filled) else filled
        known = pred[symbol].dropna()
        held = own["held_weight"].to_numpy(dtype=np.float64) * slice_of[symbol]
        rows.append({
            "symbol": symbol,
            "first_prediction": known.index[0].date().isoformat() if len(known) else "",
            "bars": int(len(own)),
            "return_contribution": _symbol_pnl(fills, frame) / cash,
            "n_trades": int(len(fills)),
            "costs_paid": float((fills["commission"] + fills["slippage"]).sum())
            if len(fills) else 0.0,
            "ic": metrics.information_coefficient(pred[symbol], actual[symbol]),
            "direction_accuracy": metrics.direction_accuracy(pred[symbol], actual[symbol]),
            "exposure": float(np.mean(held != 0.0)) if len(held) else math.nan,
            "mean_weight": float(np.mean(held)) if len(held) else math.nan,
        })
    return pd.DataFrame(rows, columns=list(SYMBOL_COLUMNS))


def weights_frame(decisions: pd.DataFrame, slice_of: Mapping[str, float]) -> pd.DataFrame:
    """``weights.csv``: each decision's target and held weight in the account (its slice
    weight times its slice)."""
    share = decisions["symbol"].map(slice_of).astype(np.float64)
    return pd.DataFrame({"date": decisions["date"].dt.date, "symbol": decisions["symbol"],
                         "target_weight": decisions["target_weight"] * share,
                         "held_weight": decisions["held_weight"] * share},
                        columns=list(WEIGHT_COLUMNS))


def held_panel(weights: pd.DataFrame, dates: pd.DatetimeIndex,
               symbols: Sequence[str]) -> pd.DataFrame:
    """Held account weights, date x symbol, each carried over the sessions it had no bar."""
    panel = weights.assign(date=pd.to_datetime(weights["date"])).pivot(
        index="date", columns="symbol", values="held_weight")
    return panel.reindex(index=dates, columns=list(symbols)).ffill().fillna(0.0)


def portfolio_summary(base: Mapping[str, Any], extras: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's ``summary.json`` keys with the portfolio's, each after its anchor
    (:data:`PORTFOLIO_KEYS`)."""
    out: dict[str, Any] = {}
    for key, value in base.items():
        out[key] = value
        for extra in PORTFOLIO_KEYS.get(key, ()):
            out[extra] = extras[extra]
    return out


def momentum_verdict(rank_ic: float, baseline: Mapping[str, float]) -> str:
    """One sentence: does the model's rank IC beat 63-day momentum's on the same pairs?"""
    mom = baseline.get("momentum_63", math.nan)
    if not (math.isfinite(rank_ic) and math.isfinite(mom)):
        return "the model and momentum cannot be compared (too few scored dates)"
    if rank_ic > mom:
        return f"the model beats momentum (rank IC {rank_ic:.4f} > {mom:.4f})"
    return f"the model does not beat momentum (rank IC {rank_ic:.4f} <= {mom:.4f})"
