"""The paper daemon's SQLite journal: written before acting, read back on restart.

One file, ``<state>/journal.sqlite``, in WAL mode.  Every write commits before the daemon acts
on it, so a ``kill -9`` at any point leaves a journal that says what was decided, what was
sent and what was filled.  Credentials are never written here.  Every SQL statement on the
journal runs in this module: readers (status, the HTTP endpoint, exports, retraining, parity)
call :class:`Journal` methods, some of which return DataFrames.

A new journal is created with its whole schema in one transaction.  An existing file is
checked on a read-only connection before anything is written to it: a file that is not a
SQLite database, a SQLite file without this schema, or another schema version is refused
with a :class:`~ensemble_bt.errors.DataError` and left byte for byte as it was.

Tables (schema version :data:`SCHEMA_VERSION`):

- ``meta(key, value)``: strict JSON values: ``schema_version`` and ``session``, the session's
  fixed facts (symbols, ``trade_start``, ``history_start``, ``strategy_id``, ``horizon``,
  costs, sizing, starting account), written with the first bundle in one transaction.
- ``bundles(id, path, manifest_sha256, predict_start, installed_at)``: every bundle the
  session traded, in order; bundle ``k`` predicts from its ``predict_start`` on.
- ``bars(symbol, date, open, high, low, close, volume)``: every bar the strategy saw.
- ``decisions(date, symbol, <sizing.decisions.DECISION_FIELDS...>, bundle)``: one row per decided
  bar and symbol (primary key), so a bar is decided once.
- ``orders(client_order_id, order_id, symbol, side, qty, decided, status, filled_qty,
  filled_avg_price, updated)``: the intent is inserted before the order is sent.
- ``fills(fill_key, client_order_id, symbol, side, qty, price, date)``: one row per execution.
- ``equity(date, equity, cash, high_water, drawdown, breaker)``: per decided bar, with the
  breaker state as JSON.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ensemble_bt.errors import DataError
from ensemble_bt.jsonio import dumps, loads
from sizing.breaker import BreakerState
from sizing.decisions import DECISION_FIELDS

SCHEMA_VERSION = 1
JOURNAL_FILE = "journal.sqlite"
SESSION_KEY = "session"  # the meta key of the session's fixed facts
_DECISION_COLUMNS = ", ".join(f"{f} {'TEXT' if f in ('date', 'symbol') else 'REAL'}"
                              for f in DECISION_FIELDS)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (id INTEGER PRIMARY KEY, path TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL, predict_start TEXT NOT NULL, installed_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bars (symbol TEXT NOT NULL, date TEXT NOT NULL, open REAL,
    high REAL, low REAL, close REAL, volume REAL, PRIMARY KEY (symbol, date));
CREATE TABLE IF NOT EXISTS decisions ({_DECISION_COLUMNS}, bundle INTEGER,
    PRIMARY KEY (date, symbol));
CREATE TABLE IF NOT EXISTS orders (client_order_id TEXT PRIMARY KEY, order_id TEXT,
    symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, decided TEXT NOT NULL,
    status TEXT NOT NULL, filled_qty REAL NOT NULL DEFAULT 0, filled_avg_price REAL,
    updated TEXT);
CREATE TABLE IF NOT EXISTS fills (fill_key TEXT PRIMARY KEY, client_order_id TEXT,
    symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL,
    date TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS equity (date TEXT PRIMARY KEY, equity REAL NOT NULL,
    cash REAL NOT NULL, high_water REAL NOT NULL, drawdown REAL NOT NULL,
    breaker TEXT NOT NULL);
"""
OPEN_STATUSES = ("intent", "new", "accepted", "pending_new", "partially_filled")
TABLES = frozenset({"meta", "bundles", "bars", "decisions", "orders", "fills", "equity"})
SQLITE_HEADER = b"SQLite format 3\x00"
_AWAY = "move it away, or use a new --state directory"


def _brief(value: object, limit: int = 80) -> str:
    text = str(value) or type(value).__name__ if isinstance(value, BaseException) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection that writes nothing at all, not even WAL side files.

    A stopped session's journal has no ``-wal`` file; it is then opened ``immutable``, since a
    plain read-only connection to a WAL database creates ``-wal`` and ``-shm`` files and leaves
    them behind.  A running daemon keeps its ``-wal`` file, and readers then share it.
    """
    if not path.is_file():
        raise DataError(f"{path.parent}: no journal ({JOURNAL_FILE}); is this a paper state "
                        "directory?")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    if head and head != SQLITE_HEADER:
        raise DataError(f"{path}: not an ensemble-bt journal (not a SQLite database); {_AWAY}")
    wal = path.with_name(f"{path.name}-wal").exists()
    uri = f"{path.resolve().as_uri()}?mode=ro{'' if wal else '&immutable=1'}"
    try:
        return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=10)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot open the journal ({_brief(exc)})") from None


class Journal:
    """The journal of one state directory (see the module docstring).

    It is also the broker's order record: it implements
    :class:`live.alpaca.ledger.OrderLedger` (``order``, ``record_intent``, ``record_order``,
    ``record_fill``, ``fill_totals``, ``open_orders``), and the daemon passes it to
    :class:`~live.alpaca.broker.AlpacaBroker` as ``ledger``.

    Parameters
    ----------
    path : pathlib.Path
        The SQLite file; created with the schema when missing or empty.
    readonly : bool
        Open read-only (status readers, the HTTP endpoint, parity); nothing is written, not
        even WAL side files of a stopped session.

    Raises
    ------
    DataError
        The file is not this version's journal (see the module docstring).
    """

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            self.db = _connect_readonly(self.path)
            self.db.row_factory = sqlite3.Row
            self._check_ours()
            return
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if not fresh:
            # Checked on a read-only connection first: a file that is not ours is refused
            # before anything (WAL mode, tables) is written to it.
            Journal(self.path, readonly=True).close()
        self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                  isolation_level=None)
        self.db.row_factory = sqlite3.Row
        if fresh:
            # One transaction: a kill leaves either no table or the whole schema.
            self.db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}INSERT INTO meta VALUES "
                                  f"('schema_version', '{SCHEMA_VERSION}');COMMIT;")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")

    def _check_ours(self) -> None:
        """Refuse (read-only) a file that is not this version's journal."""
        try:
            tables = {r[0] for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = sorted(TABLES - tables)
            version = None if missing else self.get_meta("schema_version")
        except (sqlite3.DatabaseError, ValueError) as exc:
            self.db.close()
            raise DataError(f"{self.path}: not an ensemble-bt journal ({_brief(exc)}); {_AWAY}"
                            ) from None
        if missing:
            self.db.close()
            raise DataError(f"{self.path}: not an ensemble-bt journal (no table "
                            f"{missing[0]!r}); {_AWAY}")
        if version != SCHEMA_VERSION:
            self.db.close()
            raise DataError(f"{self.path}: journal schema {_brief(version)}, this version reads "
                            f"{SCHEMA_VERSION}; use a new --state directory, or the ensemble-bt "
                            "version that wrote it")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Journal]:
        """One read transaction: every read in the ``with`` block sees the same commit.

        A status read while the daemon writes would otherwise mix two bars (the counts of one,
        the positions of the next).
        """
        self.db.execute("BEGIN")
        yield self
        self.db.execute("COMMIT")

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        """Run statements in one transaction, committed (and synced) before returning."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for sql, args in statements:
                self.db.execute(sql, args)

    # ------------------------------------------------------------------- meta
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else loads(row["value"])

    def set_meta(self, key: str, value: Any) -> None:
        self._write([("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, dumps(value)))])

    def start_session(self, session: dict[str, Any], bundle: str, manifest_sha256: str,
                      installed_at: str) -> None:
        """Journal a new session's fixed facts and its first bundle in one transaction.

        A kill leaves both or neither, so a journal without a session is always blank
        (:meth:`is_blank`) and a restart can start the session afresh.
        """
        self._write([("INSERT INTO meta VALUES (?, ?)", (SESSION_KEY, dumps(session))),
                     ("INSERT INTO bundles (path, manifest_sha256, predict_start, installed_at)"
                      " VALUES (?, ?, ?, ?)", (bundle, manifest_sha256, session["trade_start"],
                                               installed_at))])

    def is_blank(self) -> bool:
        """Whether the journal holds nothing but its schema (no session, bundle, bar or order)."""
        if self.get_meta(SESSION_KEY) is not None:
            return False
        return not any(self.db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
                       for table in ("bundles", "bars", "decisions", "orders", "fills"))

    # ---------------------------------------------------------------- bundles
    def add_bundle(self, path: str, manifest_sha256: str, predict_start: str,
                   installed_at: str) -> int:
        self._write([("INSERT INTO bundles (path, manifest_sha256, predict_start, installed_at)"
                      " VALUES (?, ?, ?, ?)", (path, manifest_sha256, predict_start,
                                               installed_at))])
        return int(self.db.execute("SELECT max(id) FROM bundles").fetchone()[0])

    def bundles(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM bundles ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    # ----------------------------------------------------------------- orders
    def order(self, client_order_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM orders WHERE client_order_id = ?",
                              (client_order_id,)).fetchone()
        return None if row is None else dict(row)

    def record_intent(self, client_order_id: str, symbol: str, side: str, qty: float,
                      decided: str) -> None:
        """The order about to be sent; committed before the request leaves."""
        self._write([("INSERT OR IGNORE INTO orders (client_order_id, symbol, side, qty, "
                      "decided, status) VALUES (?, ?, ?, ?, ?, 'intent')",
                      (client_order_id, symbol, side, qty, decided))])

    def record_order(self, client_order_id: str, order_id: str | None, status: str,
                     filled_qty: float = 0.0, filled_avg_price: float | None = None,
                     updated: str | None = None) -> None:
        self._write([("UPDATE orders SET order_id = coalesce(?, order_id), status = ?, "
                      "filled_qty = ?, filled_avg_price = ?, updated = ? "
                      "WHERE client_order_id = ?", (order_id, status, filled_qty,
                                                    filled_avg_price, updated,
                                                    client_order_id))])

    def open_orders(self) -> list[dict[str, Any]]:
        marks = ", ".join("?" * len(OPEN_STATUSES))
        rows = self.db.execute(f"SELECT * FROM orders WHERE status IN ({marks})",
                               OPEN_STATUSES).fetchall()
        return [dict(r) for r in rows]

    def orders(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM orders ORDER BY rowid")]

    # ------------------------------------------------------------------ fills
    def record_fill(self, fill_key: str, client_order_id: str, symbol: str, side: str,
                    qty: float, price: float, day: str) -> bool:
        """Insert one execution; False when ``fill_key`` was already journaled."""
        before = self.db.total_changes
        self._write([("INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (fill_key, client_order_id, symbol, side, qty, price, day))])
        return self.db.total_changes > before

    def fill_totals(self, client_order_id: str) -> tuple[float, float]:
        """Journaled quantity and notional (sum of qty * price) of one order's fills."""
        row = self.db.execute("SELECT coalesce(sum(qty), 0), coalesce(sum(qty * price), 0) "
                              "FROM fills WHERE client_order_id = ?",
                              (client_order_id,)).fetchone()
        return float(row[0]), float(row[1])

    def positions(self) -> dict[str, float]:
        """Net quantity per symbol from the journaled fills."""
        rows = self.db.execute("SELECT symbol, sum(CASE side WHEN 'buy' THEN qty ELSE -qty "
                               "END) AS qty FROM fills GROUP BY symbol").fetchall()
        return {r["symbol"]: float(r["qty"]) for r in rows if abs(r["qty"]) > 1e-9}

    # ------------------------------------------------------- bars and decisions
    def record_bar_step(self, bars: list[tuple], decisions: list[tuple],
                        equity: tuple | None) -> None:
        """One decided bar: its bars, its decisions (one per symbol) and the account row."""
        marks = ", ".join("?" * (len(DECISION_FIELDS) + 1))
        statements = [("INSERT OR IGNORE INTO bars VALUES (?, ?, ?, ?, ?, ?, ?)", bar)
                      for bar in bars]
        statements += [(f"INSERT INTO decisions VALUES ({marks})", row) for row in decisions]
        if equity is not None:
            statements.append(("INSERT OR REPLACE INTO equity VALUES (?, ?, ?, ?, ?, ?)",
                               equity))
        self._write(statements)

    def decision(self, day: str, symbol: str) -> dict[str, Any] | None:
        """The decision of ``symbol`` on ``day`` (ISO date), or None."""
        row = self.db.execute("SELECT * FROM decisions WHERE date = ? AND symbol = ?",
                              (day, symbol)).fetchone()
        return None if row is None else dict(row)

    def last_decided(self) -> str | None:
        row = self.db.execute("SELECT max(date) FROM decisions").fetchone()
        return row[0]

    def decision_counts(self) -> dict[tuple[str, str], int]:
        rows = self.db.execute("SELECT date, symbol, count(*) FROM decisions GROUP BY 1, 2")
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def latest_decision(self, symbol: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM decisions WHERE symbol = ? ORDER BY date DESC "
                              "LIMIT 1", (symbol,)).fetchone()
        return None if row is None else dict(row)

    def last_equity(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM equity ORDER BY date DESC LIMIT 1").fetchone()
        if row is None:
            return None
        out = dict(row)
        out["breaker"] = json.loads(out["breaker"])
        return out

    def breaker_state(self) -> BreakerState | None:
        row = self.db.execute("SELECT breaker FROM equity ORDER BY date DESC LIMIT 1").fetchone()
        return None if row is None else BreakerState.from_json(row["breaker"])

    # ------------------------------------------------------------ bulk reads
    def symbol_bars(self, symbol: str, last: str) -> list[tuple]:
        """``(date, open, high, low, close, volume)`` of ``symbol`` up to ``last``, oldest first.

        Parameters
        ----------
        symbol : str
        last : str
            ISO date of the last bar included.
        """
        rows = self.db.execute("SELECT date, open, high, low, close, volume FROM bars "
                               "WHERE symbol = ? AND date <= ? ORDER BY date",
                               (symbol, last)).fetchall()
        return [tuple(r) for r in rows]

    def bars_frame(self) -> pd.DataFrame:
        """Every journaled bar, by symbol then date; ``date`` parsed as datetimes."""
        return pd.read_sql_query("SELECT * FROM bars ORDER BY symbol, date", self.db,
                                 parse_dates=["date"])

    def decisions_frame(self) -> pd.DataFrame:
        """Every decision, in the order they were decided."""
        return pd.read_sql_query("SELECT * FROM decisions ORDER BY date, rowid", self.db)

    def last_decisions(self, n: int) -> pd.DataFrame:
        """The last ``n`` decisions, in the order they were decided (the page's table)."""
        return pd.read_sql_query(
            "SELECT * FROM (SELECT rowid AS k, * FROM decisions ORDER BY date DESC, rowid DESC "
            "LIMIT ?) ORDER BY date, k", self.db, params=(int(n),)).drop(columns="k")

    def last_orders(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` orders journaled, oldest first."""
        rows = self.db.execute("SELECT * FROM (SELECT rowid AS k, * FROM orders ORDER BY rowid "
                               "DESC LIMIT ?) ORDER BY k", (int(n),))
        return [{key: r[key] for key in r.keys() if key != "k"} for r in rows]

    def orders_frame(self) -> pd.DataFrame:
        """Every order as parity and ``orders.csv`` read it: what was decided, and filled.

        Columns ``decided, symbol, side, size`` (the filled quantity), ``price`` (the average
        fill price), ``status, client_order_id, order_id``, in the order the intents were
        journaled.
        """
        return pd.read_sql_query(
            "SELECT decided, symbol, side, filled_qty AS size, filled_avg_price AS price, "
            "status, client_order_id, order_id FROM orders ORDER BY rowid", self.db)

    def equity_frame(self) -> pd.DataFrame:
        """The account row of every decided bar, oldest first (``breaker`` as JSON text)."""
        return pd.read_sql_query("SELECT * FROM equity ORDER BY date", self.db)

    def equity_trips(self) -> pd.DataFrame:
        """:meth:`equity_frame` with the breaker's trip count (``trips``) in place of its
        JSON, read by SQLite (the page reads every bar's row on each new bar)."""
        return pd.read_sql_query(
            "SELECT date, equity, high_water, drawdown, "
            "CAST(COALESCE(json_extract(breaker, '$.trips'), 0) AS INTEGER) AS trips "
            "FROM equity ORDER BY date", self.db)
