"""Results directories: atomic creation, and the one ``summary.json`` of the contract.

A single backtest (:mod:`backtests.runner`) and every cell of a robustness grid
(:mod:`backtests.robustness.tasks`) summarise a run with :func:`build_summary`, and both
refuse a run whose leakage audit failed with :func:`raise_on_leakage`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ensemble_bt import jsonio
from ensemble_bt.errors import ConfigurationError, LeakageError
from models import metrics

SUMMARY_KEYS: tuple[str, ...] = (
    "symbol", "start", "end", "bars", "horizon",
    "strategy_return", "buy_hold_return", "alpha", "cagr",
    "sharpe", "sortino", "max_drawdown",
    "n_trades", "exposure", "turnover", "costs_paid",
    "direction_accuracy", "ic",
    "breaker_trips", "max_gross_leverage", "financing_costs",
    "n_vintages", "leakage_audit", "config_hash", "version",
)
#: Columns of a run's per-bar records (``RunRecorder`` and the fast path).
BAR_COLUMNS: tuple[str, ...] = ("date", "equity", "position_weight", "prediction")
#: Columns of ``orders.csv``: one row per fill or margin rejection.
ORDER_COLUMNS: tuple[str, ...] = ("date", "decided", "symbol", "side", "size", "price",
                                  "commission", "slippage", "notional", "status")


def package_version() -> str:
    """The installed distribution's version (``0+unknown`` from an uninstalled tree)."""
    try:
        return version("ensemble-bt")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


@dataclass(frozen=True)
class PendingResults:
    """Where a run writes (``scratch``) and where its directory appears on success."""

    scratch: Path
    final: Path


@contextmanager
def results_dir(out: str | Path, kind: str, symbol: str | None = None,
                ) -> Iterator[PendingResults]:
    """Yield a scratch folder that becomes ``<out>/<kind>_<SYMBOL>_<UTC stamp>`` on success.

    Without ``symbol`` (a run over several, e.g. a robustness grid) the folder is
    ``<out>/<kind>_<UTC stamp>``.  On any exception the scratch folder is removed, so a
    failed run never leaves a directory that looks complete.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S_%fZ")
    name = kind if symbol is None else f"{kind}_{symbol.upper()}"
    final = Path(out) / f"{name}_{stamp}"
    pending = PendingResults(final.with_name(f".{final.name}.partial"), final)
    created = _missing_parents(final.parent)
    try:
        pending.scratch.mkdir(parents=True)
    except OSError as exc:
        raise ConfigurationError(f"--out {out}: cannot create a results directory there "
                                 f"({exc.strerror}); choose a writable folder") from None
    try:
        yield pending
    except BaseException:
        shutil.rmtree(pending.scratch, ignore_errors=True)
        for folder in created:  # innermost first: a failed run leaves --out as it found it
            with suppress(OSError):
                folder.rmdir()
        raise
    os.replace(pending.scratch, final)


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, innermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def json_safe(value: Any) -> Any:
    """NaN/inf become None; numpy scalars become numbers (:func:`ensemble_bt.jsonio.jsonable`)."""
    return jsonio.jsonable(value)


def write_json(path: Path, payload: Any) -> None:
    """Strict JSON (``null`` for NaN), written atomically."""
    jsonio.write_json(path, payload)


def performance(equity: pd.DataFrame, close: pd.Series, actual: pd.Series,
                orders: pd.DataFrame, *, buy_hold: float | None = None,
                quality: dict[str, float] | None = None) -> dict[str, float]:
    """Return, risk, trading and prediction-quality keys of ``summary.json``.

    ``equity`` covers the evaluation bars; ``close`` and ``actual`` (the realised forward log
    return over the horizon) are aligned to it.  A portfolio passes its benchmark's return as
    ``buy_hold`` and its pooled ``direction_accuracy`` and ``ic`` as ``quality``; they replace
    what ``close``, ``actual`` and the equity's prediction column would give.
    """
    eq = equity["equity"].to_numpy()
    strat = metrics.total_return(eq)
    bh = float(close.iloc[-1] / close.iloc[0] - 1.0) if buy_hold is None else buy_hold
    daily = np.diff(eq) / eq[:-1]
    filled = orders[orders["status"] == "filled"] if len(orders) else orders
    traded = float(filled["notional"].sum()) if len(filled) else 0.0
    costs = float((filled["commission"] + filled["slippage"]).sum()) if len(filled) else 0.0
    pred = equity["prediction"].to_numpy()
    quality = quality or {
        "direction_accuracy": metrics.direction_accuracy(pred, actual.to_numpy()),
        "ic": metrics.information_coefficient(pred, actual.to_numpy())}
    return {
        "strategy_return": strat,
        "buy_hold_return": bh,
        "alpha": strat - bh,
        "cagr": metrics.cagr(strat, equity.index[0], equity.index[-1]),
        "sharpe": metrics.annualised_sharpe(daily),
        "sortino": metrics.sortino_ratio(daily),
        "max_drawdown": metrics.max_drawdown(eq),
        "n_trades": int(len(filled)),
        "exposure": float(np.mean(equity["position_weight"].to_numpy() != 0.0)),
        "turnover": traded / float(np.mean(eq)),
        "costs_paid": costs,
        "direction_accuracy": quality["direction_accuracy"],
        "ic": quality["ic"],
    }


def equity_frame(bars: list[tuple], eval_dates: pd.DatetimeIndex) -> pd.DataFrame:
    """A run's per-bar records (:data:`BAR_COLUMNS`) on the evaluation dates.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``eval_dates``: ``equity, position_weight, drawdown, prediction``.
    """
    frame = pd.DataFrame(bars, columns=list(BAR_COLUMNS))
    frame["date"] = pd.to_datetime(frame["date"]).dt.normalize()
    frame = frame.set_index("date").reindex(eval_dates)
    frame["drawdown"] = metrics.drawdown_series(frame["equity"].to_numpy())
    return frame[["equity", "position_weight", "drawdown", "prediction"]]


def orders_frame(orders: list[dict]) -> pd.DataFrame:
    """A run's order records as the rows of ``orders.csv`` (:data:`ORDER_COLUMNS`)."""
    return pd.DataFrame(orders, columns=list(ORDER_COLUMNS))


def raise_on_leakage(audit: dict) -> None:
    """Raise :class:`LeakageError` unless a :func:`models.vintages.leakage_audit` passed.

    A failed audit means the pipeline itself broke causality: a bug, never bad input.
    """
    if audit["verdict"] != "pass":
        raise LeakageError(f"leakage audit failed: {audit['n_violations']} bars, first "
                           f"{audit['violations'][:1]}; this is a bug, please report it")


def build_summary(equity: pd.DataFrame, close: pd.Series, actual: pd.Series,
                  orders: pd.DataFrame, analysis: dict, *, symbol: str, horizon: int,
                  n_vintages: int | None, leakage_audit: str | None,
                  config_hash: str, buy_hold: float | None = None,
                  quality: dict[str, float] | None = None) -> dict[str, Any]:
    """The ``summary.json`` of one run, keys in the order of :data:`SUMMARY_KEYS`.

    Parameters
    ----------
    equity : pandas.DataFrame
        :func:`equity_frame` on the evaluation bars; its index gives start, end and bars.
    close, actual : pandas.Series
        Closes and the realised forward log return over the horizon, aligned to ``equity``.
    orders : pandas.DataFrame
        :func:`orders_frame` of the run.
    analysis : dict
        What the engine returned (:func:`backtests.engine.run_strategy`,
        :func:`backtests.fastpath.run_fast`): its breaker, leverage and financing figures.
    symbol, horizon, n_vintages, leakage_audit, config_hash
        The run's identity: symbol, label horizon, vintages, audit verdict, config hash.
        ``n_vintages`` and ``leakage_audit`` are None (``null``) for a user's own signal that
        is not made of vintages: nothing was audited, and the summary does not claim a pass.
    buy_hold, quality
        A portfolio's benchmark return and pooled prediction quality (:func:`performance`).
    """
    summary = {
        "symbol": symbol, "start": equity.index[0].date().isoformat(),
        "end": equity.index[-1].date().isoformat(), "bars": int(len(equity)),
        "horizon": horizon,
        **performance(equity, close, actual, orders, buy_hold=buy_hold, quality=quality),
        "breaker_trips": analysis["breaker_trips"],
        "max_gross_leverage": analysis["max_gross_leverage"],
        "financing_costs": analysis["financing_costs"],
        "n_vintages": n_vintages, "leakage_audit": leakage_audit,
        "config_hash": config_hash, "version": package_version(),
    }
    assert tuple(summary) == SUMMARY_KEYS, "summary keys drifted from the contract"
    return summary
