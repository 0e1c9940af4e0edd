"""What a paper session records under its state directory, and how parity reads it back.

- ``session.json``: symbols, trade start, bundle (path and manifest hash), costs, sizing,
  starting cash and positions, final equity;
- ``bars/<SYMBOL>.csv``: every bar each feed delivered, history included, exactly as received;
- ``decisions.csv``, ``orders.csv`` (fills, as the backtester writes them), ``submitted.csv``
  (every ``client_order_id`` sent), ``equity.csv`` and ``latency.csv``.

Each file is written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd

from backtests.results import json_safe
from models.errors import ConfigurationError, DataError
from strategies.strategy import DECISION_FIELDS

SESSION_FILE = "session.json"
ORDER_COLUMNS = ("date", "decided", "symbol", "side", "size", "price", "commission", "slippage",
                 "notional", "status")


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


def write_session(folder: Path, meta: dict[str, Any], feeds: list[Any], analysis: dict,
                  decisions: list[dict], submitted: list[dict],
                  latency: list[tuple]) -> None:
    """Write the whole session record (see the module docstring)."""
    (folder / "bars").mkdir(parents=True, exist_ok=True)
    for feed in feeds:
        frame = pd.DataFrame(feed.rows, columns=["date", "open", "high", "low", "close",
                                                 "volume"]).set_index("date")
        _atomic_csv(folder / "bars" / f"{feed.p.symbol}.csv", frame)  # repr floats: exact
    _atomic_csv(folder / "decisions.csv", pd.DataFrame(decisions, columns=DECISION_FIELDS),
                index=False)
    _atomic_csv(folder / "orders.csv", pd.DataFrame(analysis["orders"], columns=ORDER_COLUMNS),
                index=False)
    _atomic_csv(folder / "submitted.csv", pd.DataFrame(submitted), index=False)
    equity = pd.DataFrame(analysis["bars"], columns=["date", "equity", "position_weight",
                                                     "prediction"])
    _atomic_csv(folder / "equity.csv", equity, index=False)
    _atomic_csv(folder / "latency.csv", pd.DataFrame(latency, columns=["date", "latency_ms"]),
                index=False)
    _atomic_text(folder / SESSION_FILE, json.dumps(json_safe(meta), indent=2) + "\n")


@dataclass
class Session:
    """A recorded session, as parity needs it."""

    meta: dict[str, Any]
    bars: dict[str, pd.DataFrame]
    orders: pd.DataFrame
    equity: pd.DataFrame


def load_session(folder: Path) -> Session:
    """Read a session record; a missing or malformed one is a one-line DataError."""
    path = Path(folder) / SESSION_FILE
    if not path.is_file():
        raise ConfigurationError(f"{folder}: not a paper-session directory (no {SESSION_FILE})")
    try:
        meta = json.loads(path.read_text())
        bars = {s: pd.read_csv(Path(folder) / "bars" / f"{s}.csv", index_col="date",
                               parse_dates=["date"]) for s in meta["symbols"]}
        orders = pd.read_csv(Path(folder) / "orders.csv", dtype={"decided": str})
        equity = pd.read_csv(Path(folder) / "equity.csv", parse_dates=["date"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{folder}: the session record is incomplete or malformed "
                        f"({exc.__class__.__name__}: {exc})") from None
    return Session(meta, bars, orders, equity)
