"""What the daemon's page shows, read from a paper state directory without touching the daemon.

:func:`read_dashboard` gathers, from the files the daemon writes (``status.json``, the journal
opened read-only, ``latency.csv``, ``retrain/last.json`` and the bundles' manifests):

- the status (:func:`live.monitor.status.read_status`): state, last bar and the age of the
  status, connections, bundle, positions and each symbol's latest weights; its last bar,
  account and breaker are replaced by the journal's (:func:`at_journal_bar`), read in the
  same snapshot as the tables, so the page never names a bar older than its decisions;
- the account row of every decided bar (equity, high-water mark, drawdown, breaker trips)
  and the breaker's thresholds from the session's sizing;
- the last :data:`LAST_ROWS` decisions and orders (with their filled quantity and price);
- latency percentiles and the last retrain with its gate verdict.

Everything it reads may be missing (a session that has not decided yet, a daemon that never
retrained); the page then says so.  It reads, never writes, so it is as correct while the
daemon sits between bars, or after it stopped or finished, as while it decides.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ensemble_bt.errors import DataError
from ensemble_bt.jsonio import loads
from live.monitor.status import read_status, scrub
from live.session.journal import JOURNAL_FILE, Journal

#: How many of the latest decisions and orders the page lists.
LAST_ROWS = 50
#: Latency percentiles shown, in percent.
PERCENTILES = (50, 90, 99)
LATENCY_FILE = "latency.csv"
RETRAIN_STATE = Path("retrain") / "last.json"
DECISION_COLUMNS = ("date", "symbol", "prediction", "p_win", "target_weight", "held_weight",
                    "drawdown", "breaker", "bundle")
ORDER_COLUMNS = ("decided", "symbol", "side", "qty", "status", "filled_qty",
                 "filled_avg_price", "client_order_id")


@dataclass
class Dashboard:
    """One read of a state directory: ``status`` and ``tables`` are JSON-ready.

    ``equity`` is the account row of every decided bar (``date`` index; ``equity``,
    ``high_water``, ``drawdown``, ``trips``), empty before the first decision.
    """

    status: dict[str, Any]
    equity: pd.DataFrame
    thresholds: dict[str, float | None]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    latency: dict[str, Any] = field(default_factory=dict)
    retrain: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> tuple:
        """What the charts depend on: they are redrawn only when it changes."""
        if self.equity.empty:
            return (0,)
        last = self.equity.iloc[-1]
        return (len(self.equity), str(self.equity.index[-1]), float(last["equity"]),
                self.thresholds.get("trigger"))


def _records(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """The frame's rows as dicts of the given columns, non-finite floats as None."""
    keep = [c for c in columns if c in frame.columns]
    return scrub(frame[keep].astype(object).where(frame[keep].notna(), None)
                 .to_dict(orient="records"))


def _equity_frame(raw: pd.DataFrame) -> pd.DataFrame:
    if raw.empty:
        return pd.DataFrame(columns=["equity", "high_water", "drawdown", "trips"],
                            index=pd.DatetimeIndex([], name="date"))
    out = raw[["equity", "high_water", "drawdown"]].astype(float)
    out["trips"] = raw["trips"].fillna(0).astype(int).to_numpy()
    out.index = pd.DatetimeIndex(pd.to_datetime(raw["date"]), name="date")
    return out


@dataclass
class JournalTables:
    """One read snapshot of the journal: what the page shows of it, from the same commit."""

    equity: pd.DataFrame
    session: dict[str, Any]
    decisions: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    bundles: list[dict[str, Any]]
    last_decided: str | None
    positions: dict[str, float]
    account: dict[str, Any] | None

    @classmethod
    def none(cls) -> JournalTables:
        """What a state directory without a journal shows: nothing decided yet."""
        return cls(equity=_equity_frame(pd.DataFrame()), session={}, decisions=[], orders=[],
                   bundles=[], last_decided=None, positions={}, account=None)


def read_journal_tables(path: Path) -> JournalTables:
    """The page's tables, the last decided bar, the fills' positions and the last account
    row, in one snapshot."""
    try:
        journal = Journal(path, readonly=True)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot read the journal ({exc})") from None
    try:
        with journal.snapshot():
            tables = JournalTables(
                equity=_equity_frame(journal.equity_trips()),
                session=journal.get_meta("session") or {},
                decisions=_records(journal.last_decisions(LAST_ROWS), DECISION_COLUMNS)[::-1],
                orders=_records(pd.DataFrame(journal.last_orders(LAST_ROWS)),
                                ORDER_COLUMNS)[::-1],
                bundles=journal.bundles(), last_decided=journal.last_decided(),
                positions=journal.positions(), account=journal.last_equity())
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot read the journal ({exc})") from None
    finally:
        journal.close()
    return tables


def at_journal_bar(status: dict[str, Any], tables: JournalTables) -> dict[str, Any]:
    """``status`` with its bar-bound fields taken from the journal snapshot the page shows.

    The daemon commits a bar's decisions and account row, then rewrites ``status.json``; a
    page read in between would name the previous bar above the new bar's decisions.  The last
    bar, the account and the breaker therefore come from the same snapshot as the tables: the
    last account row, whose date is the bar the daemon writes as ``last_bar``.
    """
    row = tables.account
    if row is None:
        return status
    block = {**(status.get("journal") or {}), "last_decided": tables.last_decided,
             "positions": tables.positions}
    return scrub({**status, "journal": block, "last_bar": row["date"],
                  "equity": row["equity"], "cash": row["cash"], "high_water": row["high_water"],
                  "drawdown": row["drawdown"], "breaker": row["breaker"]})


def breaker_thresholds(session: dict[str, Any]) -> dict[str, float | None]:
    """The breaker's trip and halt drawdowns from the session's sizing (None when unknown)."""
    sizing = session.get("sizing") if isinstance(session.get("sizing"), dict) else {}

    def number(key: str) -> float | None:
        value = sizing.get(key)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else None

    return {"trigger": number("drawdown_circuit_breaker"), "halt": number("drawdown_halt"),
            "reset": number("drawdown_reset")}


def latency_summary(path: Path, lag_seconds: Any) -> dict[str, Any]:
    """Percentiles of ``latency.csv`` (written as each run ends) and the latest bar's lag."""
    out: dict[str, Any] = {"n": 0, "lag_ms": None}
    if isinstance(lag_seconds, int | float) and math.isfinite(lag_seconds):
        out["lag_ms"] = round(float(lag_seconds) * 1000.0, 3)
    try:
        values = pd.read_csv(path, usecols=["latency_ms"])["latency_ms"].to_numpy(float)
    except (OSError, ValueError, KeyError):
        return out
    values = values[np.isfinite(values)]
    if values.size:
        out["n"] = int(values.size)
        for p in PERCENTILES:
            out[f"p{p}"] = round(float(np.percentile(values, p)), 3)
        out["max"] = round(float(values.max()), 3)
    return out


def _json_file(path: Path) -> dict[str, Any]:
    try:
        raw = loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def gate_verdict(manifest: dict[str, Any]) -> str:
    """``passed``, ``skipped`` or ``unknown`` from a bundle manifest's ``gate`` block."""
    gate = manifest.get("gate")
    if not isinstance(gate, dict):
        return "unknown"
    if gate.get("skipped"):
        return "skipped"
    verdict = gate.get("passed", gate.get("verdict"))
    if isinstance(verdict, bool):
        return "passed" if verdict else "refused"
    return str(verdict) if verdict is not None else "passed"


def retrain_summary(state_dir: Path, bundles: list[dict[str, Any]]) -> dict[str, Any]:
    """The last retrain (``retrain/last.json``) and the gate verdict of the bundle trading."""
    last = _json_file(state_dir / RETRAIN_STATE)
    out: dict[str, Any] = {"scheduled": bool(last), "last_start": last.get("last_start"),
                           "outcome": last.get("outcome"), "stamp": last.get("stamp"),
                           "bundles": len(bundles), "bundle": None, "gate": None}
    if bundles:
        newest = bundles[-1]
        manifest = _json_file(Path(newest["path"]) / "manifest.json")
        out["bundle"] = {k: newest.get(k) for k in ("id", "path", "predict_start",
                                                     "installed_at")}
        out["gate"] = gate_verdict(manifest) if manifest else "unknown"
    if out["outcome"] == "refused":
        out["gate"] = "refused (the current bundle keeps trading)"
    return scrub(out)


def read_dashboard(state_dir: Path, now: datetime | None = None) -> Dashboard:
    """Everything the page shows, from ``state_dir`` (see the module docstring).

    Raises
    ------
    ConfigurationError
        ``state_dir`` holds neither ``status.json`` nor a journal.
    DataError
        One of them cannot be read.
    """
    state_dir = Path(state_dir)
    status = read_status(state_dir, now)
    tables = (read_journal_tables(state_dir / JOURNAL_FILE)
              if (state_dir / JOURNAL_FILE).is_file() else JournalTables.none())
    status = at_journal_bar(status, tables)
    return Dashboard(status=status, equity=tables.equity,
                     thresholds=breaker_thresholds(tables.session),
                     decisions=tables.decisions, orders=tables.orders,
                     latency=latency_summary(state_dir / LATENCY_FILE,
                                             status.get("lag_seconds")),
                     retrain=retrain_summary(state_dir, tables.bundles))
