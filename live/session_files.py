"""Readable exports of a paper session's journal, and how parity reads the session back.

The journal (:mod:`live.journal`) is the record.  At the end of each run the daemon exports:

- ``session.json``: symbols, first decision day, costs, sizing, starting cash and positions,
  final state and equity;
- ``bars/<SYMBOL>.csv``: every bar the strategy saw, history included, exactly as received;
- ``decisions.csv``, ``orders.csv`` (every order by ``client_order_id`` with its status and
  filled quantity), ``equity.csv`` and ``latency.csv`` (appended by every run).

Each file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd

from backtests.results import json_safe
from live.journal import JOURNAL_FILE, Journal
from models.errors import ConfigurationError, DataError

SESSION_FILE = "session.json"


class LatencyRecorder(bt.Analyzer):
    """Milliseconds from a live bar's arrival to the end of the strategy's ``next``.

    Analyzers run after the strategy, so this covers features, the ensemble's inference,
    sizing and the order submissions of that bar.
    """

    params = (("live_from", None),)

    def start(self) -> None:
        self.rows: list[tuple[pd.Timestamp, float]] = []

    def next(self) -> None:
        now = time.perf_counter()
        day = pd.Timestamp(bt.num2date(self.strategy.datas[0].datetime[0]).date())
        if day < pd.Timestamp(self.p.live_from):
            return
        arrived = max(d.arrivals.get(day, now) for d in self.strategy.datas)
        self.rows.append((day, (now - arrived) * 1000.0))


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_csv(path: Path, frame: pd.DataFrame, **kwargs: Any) -> None:
    _atomic_text(path, frame.to_csv(**kwargs))


def journal_frames(journal: Journal) -> dict[str, Any]:
    """Bars per symbol, decisions, orders (filled, rejected, refused) and equity."""
    db = journal.db
    bars = pd.read_sql_query("SELECT * FROM bars ORDER BY symbol, date", db,
                             parse_dates=["date"])
    per_symbol = {str(sym): frame.drop(columns="symbol").set_index("date")
                  for sym, frame in bars.groupby("symbol")}
    decisions = pd.read_sql_query("SELECT * FROM decisions ORDER BY date, rowid", db)
    orders = pd.read_sql_query(
        "SELECT decided, symbol, side, filled_qty AS size, filled_avg_price AS price, status, "
        "client_order_id, order_id FROM orders ORDER BY rowid", db)
    equity = pd.read_sql_query("SELECT * FROM equity ORDER BY date", db)
    return {"bars": per_symbol, "decisions": decisions, "orders": orders, "equity": equity}


def export_session(folder: Path, journal: Journal, meta: dict[str, Any],
                   latency: list[tuple]) -> None:
    """Write the readable files from the journal (see the module docstring)."""
    frames = journal_frames(journal)
    (folder / "bars").mkdir(parents=True, exist_ok=True)
    for symbol, frame in frames["bars"].items():
        _atomic_csv(folder / "bars" / f"{symbol}.csv", frame)  # repr floats: exact
    _atomic_csv(folder / "decisions.csv", frames["decisions"], index=False)
    _atomic_csv(folder / "orders.csv", frames["orders"], index=False)
    _atomic_csv(folder / "equity.csv", frames["equity"], index=False)
    lat = folder / "latency.csv"
    old = pd.read_csv(lat) if lat.is_file() else None
    new = pd.DataFrame(latency, columns=["date", "latency_ms"])
    _atomic_csv(lat, new if old is None else pd.concat([old, new]), index=False)
    _atomic_text(folder / SESSION_FILE, json.dumps(json_safe(meta), indent=2) + "\n")


@dataclass
class Session:
    """A recorded session, as parity needs it."""

    meta: dict[str, Any]
    bars: dict[str, pd.DataFrame]
    orders: pd.DataFrame
    equity: pd.DataFrame


def load_session(folder: Path) -> Session:
    """Read a session from its journal; a missing or malformed one is a one-line error."""
    folder = Path(folder)
    if not (folder / JOURNAL_FILE).is_file():
        raise ConfigurationError(f"{folder}: not a paper-session directory (no {JOURNAL_FILE})")
    try:
        journal = Journal(folder / JOURNAL_FILE, readonly=True)
        try:
            meta = journal.get_meta("session")
            frames = journal_frames(journal)
        finally:
            journal.close()
        if meta is None:
            raise KeyError("session")
    except (sqlite3.DatabaseError, KeyError, ValueError) as exc:
        raise DataError(f"{folder}: the session journal is incomplete or malformed "
                        f"({exc.__class__.__name__}: {exc})") from None
    return Session(meta, frames["bars"], frames["orders"], frames["equity"])
