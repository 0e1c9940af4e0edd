"""Readable exports of a paper session's journal, and how parity reads the session back.

The journal (:mod:`live.session.journal`) is the record.  At the end of each run the daemon
exports:

- ``session.json``: symbols, first decision day, costs, sizing, portfolio and each symbol's
  slice, starting cash and positions, final state and equity;
- ``bars/<SYMBOL>.csv``: every bar the strategy saw, history included, exactly as received;
- ``decisions.csv`` (target and held weights of each symbol's slice), ``weights.csv`` (the
  same weights in the account, as a portfolio backtest writes them), ``orders.csv`` (every
  order by ``client_order_id`` with its status and filled quantity), ``equity.csv`` and
  ``latency.csv`` (appended by every run, from :class:`live.session.recorder.LatencyRecorder`).

Each file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ensemble_bt.errors import ConfigurationError, DataError
from ensemble_bt.jsonio import write_json, write_text_atomic
from ensemble_bt.yamlio import first_error
from live.session.journal import JOURNAL_FILE, SESSION_KEY, Journal
from live.session.portfolio import check_portfolio_facts, session_slices, weights_frame
from sizing.config import PortfolioConfig, SizingConfig

SESSION_FILE = "session.json"


def _atomic_csv(path: Path, frame: pd.DataFrame, **kwargs: Any) -> None:
    write_text_atomic(path, frame.to_csv(**kwargs))


def journal_frames(journal: Journal) -> dict[str, Any]:
    """Bars per symbol, decisions, orders (filled, rejected, refused) and equity."""
    bars = journal.bars_frame()
    per_symbol = {str(sym): frame.drop(columns="symbol").set_index("date")
                  for sym, frame in bars.groupby("symbol")}
    return {"bars": per_symbol, "decisions": journal.decisions_frame(),
            "orders": journal.orders_frame(), "equity": journal.equity_frame()}


def export_session(folder: Path, journal: Journal, meta: dict[str, Any],
                   latency: list[tuple]) -> None:
    """Write the readable files from the journal (see the module docstring)."""
    frames = journal_frames(journal)
    (folder / "bars").mkdir(parents=True, exist_ok=True)
    for symbol, frame in frames["bars"].items():
        _atomic_csv(folder / "bars" / f"{symbol}.csv", frame)  # repr floats: exact
    _atomic_csv(folder / "decisions.csv", frames["decisions"], index=False)
    slice_of = session_slices(meta)
    _atomic_csv(folder / "weights.csv", weights_frame(frames["decisions"], slice_of),
                index=False)
    _atomic_csv(folder / "orders.csv", frames["orders"], index=False)
    _atomic_csv(folder / "equity.csv", frames["equity"], index=False)
    lat = folder / "latency.csv"
    old = pd.read_csv(lat) if lat.is_file() else None
    new = pd.DataFrame(latency, columns=["date", "latency_ms"])
    _atomic_csv(lat, new if old is None else pd.concat([old, new]), index=False)
    write_json(folder / SESSION_FILE, {**meta, "slices": slice_of})


class SessionFacts(BaseModel):
    """The fixed facts of a session, as the journal's ``session`` meta holds them.

    Checked whenever a session is read back (resume, parity), so a journal that was edited or
    written by another version is a one-line :class:`~ensemble_bt.errors.DataError`, never a
    ``KeyError`` halfway through.  Other keys (``replay``, ``created``...) are kept as they are.
    ``portfolio`` and ``weight_basis`` are absent from sessions journaled before portfolios
    (:mod:`live.session.portfolio`).
    """

    model_config = ConfigDict(frozen=True, extra="allow", allow_inf_nan=False)

    symbols: list[str] = Field(min_length=1)
    strategy_id: str
    horizon: int = Field(ge=1)
    trade_start: date
    history_start: date
    commission: float = Field(ge=0)
    slippage: float = Field(ge=0)
    allocations: dict[str, float] | None
    sizing: SizingConfig
    initial_cash: float = Field(gt=0)
    initial_positions: dict[str, float]
    portfolio: PortfolioConfig | None = None
    weight_basis: Literal["slice"] | None = None


def check_session(meta: Any, journal: Path) -> dict[str, Any]:
    """``meta`` (the journal's ``session``) when it holds every fact a session needs.

    Parameters
    ----------
    meta : Any
        The decoded ``session`` meta value; None when the journal has none.
    journal : pathlib.Path
        The journal it came from, named in the message.

    Returns
    -------
    dict
        ``meta`` itself, unchanged.

    Raises
    ------
    DataError
        A missing session, or a missing or invalid fact; the message names the key.
    """
    if meta is None:
        raise DataError(f"{journal}: the journal holds no session; use a new --state directory")
    try:
        SessionFacts.model_validate(meta)
    except ValidationError as exc:
        e = first_error(exc, str(journal))
        problem = "is missing" if e.kind == "missing" else f"is invalid ({e.message})"
        raise DataError(f"{journal}: the session's '{e.key}' {problem}; the journal was edited "
                        "or written by another version: use a new --state directory") from None
    check_portfolio_facts(meta, journal)
    return meta


@dataclass
class Session:
    """A recorded session, as parity needs it."""

    meta: dict[str, Any]
    bars: dict[str, pd.DataFrame]
    orders: pd.DataFrame
    equity: pd.DataFrame


def load_session(folder: Path) -> Session:
    """Read a session from its journal, read-only.

    Raises
    ------
    ConfigurationError
        ``folder`` holds no journal.
    DataError
        The journal is not ours, another schema version, malformed, or its session lacks a
        fact (:func:`check_session`).
    """
    folder = Path(folder)
    path = folder / JOURNAL_FILE
    if not path.is_file():
        raise ConfigurationError(f"{folder}: not a paper-session directory (no {JOURNAL_FILE})")
    journal = Journal(path, readonly=True)
    try:
        meta = journal.get_meta(SESSION_KEY)
        frames = journal_frames(journal)
    except (sqlite3.DatabaseError, ValueError) as exc:
        raise DataError(f"{path}: the session journal is malformed "
                        f"({exc.__class__.__name__}: {str(exc)[:120]})") from None
    finally:
        journal.close()
    return Session(check_session(meta, path), frames["bars"], frames["orders"],
                   frames["equity"])
