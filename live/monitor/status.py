"""What a paper state directory says about its session, read without touching the daemon.

Two sources, both written by the daemon (:mod:`live.session.daemon`):

- ``status.json``, replaced atomically after every decided bar and when the daemon stops;
- ``journal.sqlite`` (:mod:`live.session.journal`), opened read-only here.

:func:`read_status` merges them.  When the daemon died before its first ``status.json``, the
journal alone still says which bar was decided last, what the account was and which bundle
traded; the state is then ``"unknown"``.  :func:`latest_decision` reads one symbol's latest
decision, the bundle that made it and the breaker state from the journal.

Neither source ever holds credentials; keys that look like one are dropped anyway, so a future
field cannot leak one through this reader.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ensemble_bt.errors import ConfigurationError, DataError
from ensemble_bt.jsonio import loads, write_json
from live.session.journal import JOURNAL_FILE, Journal

#: The daemon's status file in a state directory.
STATUS_FILE = "status.json"
#: Substrings of a key that is never passed on (compared lower-case).
SECRET_MARKERS = ("secret", "token", "password", "api_key", "key_id", "apca")


def write_status(folder: Path, status: dict[str, Any]) -> None:
    """Replace ``status.json`` atomically, as strict JSON (a NaN becomes ``null``)."""
    write_json(folder / STATUS_FILE, status)


def scrub(value: Any) -> Any:
    """``value`` with secret-looking keys dropped and non-finite floats turned into None.

    Parameters
    ----------
    value : Any
        A JSON-like tree (dicts, lists, scalars).

    Returns
    -------
    Any
        A copy that strict JSON encoders accept and that names no credential.
    """
    if isinstance(value, dict):
        return {str(k): scrub(v) for k, v in value.items()
                if not any(m in str(k).lower() for m in SECRET_MARKERS)}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def age_seconds(updated: Any, now: datetime | None = None) -> float | None:
    """Seconds from the ISO timestamp ``updated`` to ``now``; None when it does not parse."""
    if not isinstance(updated, str):
        return None
    try:
        stamp = datetime.fromisoformat(updated)
    except ValueError:
        return None
    if stamp.tzinfo is None:  # the daemon writes UTC; a naive stamp is read as UTC too
        stamp = stamp.replace(tzinfo=UTC)
    return round(((now or datetime.now(UTC)) - stamp).total_seconds(), 3)


def load_status_file(path: Path) -> dict[str, Any]:
    """The parsed ``status.json``; a corrupt file is a :class:`DataError`."""
    try:
        raw = loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: corrupt status file ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: corrupt status file (a JSON object was expected, "
                        f"found {type(raw).__name__})")
    return raw


def journal_block(journal: Journal) -> dict[str, Any]:
    """Counts and fill positions as the journal has them."""
    return {"last_decided": journal.last_decided(),
            "decisions": sum(journal.decision_counts().values()),
            "orders": len(journal.orders()),
            "positions": journal.positions()}


def journal_status(journal: Journal) -> dict[str, Any]:
    """The status fields the journal alone can give, for a daemon that wrote no status yet."""
    session = journal.get_meta("session") or {}
    symbols = session.get("symbols", journal.get_meta("symbols"))
    equity = journal.last_equity() or {}
    bundles = journal.bundles()
    bundle = {"id": bundles[-1]["id"], "path": bundles[-1]["path"]} if bundles else None
    return {"updated": None, "pid": None, "state": "unknown", "symbols": symbols,
            "last_bar": journal.last_decided(), "positions": journal.positions(),
            "equity": equity.get("equity"), "cash": equity.get("cash"),
            "high_water": equity.get("high_water"), "drawdown": equity.get("drawdown"),
            "breaker": equity.get("breaker"), "connections": None, "bundle": bundle,
            "lag_seconds": None, "replay": session.get("replay")}


def read_journal(path: Path, with_status: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(journal block, journal-only status or None)`` from one read snapshot of the journal.

    An unreadable or corrupt journal is a :class:`DataError`.
    """
    try:
        journal = Journal(path, readonly=True)
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot read the journal ({exc})") from None
    try:
        with journal.snapshot():  # the counts and positions come from the same commit
            block = journal_block(journal)
            status = journal_status(journal) if with_status else None
    except sqlite3.Error as exc:
        raise DataError(f"{path}: cannot read the journal ({exc})") from None
    finally:
        journal.close()
    return block, status


def read_status(state_dir: Path, now: datetime | None = None) -> dict[str, Any]:
    """The session's status: ``status.json``, its age, and what the journal says.

    Parameters
    ----------
    state_dir : pathlib.Path
        A paper state directory (``--state``).
    now : datetime.datetime | None
        The reference time for ``age_seconds`` (tests); defaults to the current UTC time.

    Returns
    -------
    dict
        Every ``status.json`` key (``updated``, ``pid``, ``state``, ``symbols``, ``last_bar``,
        ``positions``, ``equity``, ``cash``, ``high_water``, ``drawdown``, ``breaker``,
        ``connections``, ``bundle``, ``lag_seconds``, ``replay``), plus ``age_seconds``
        (None without a status file) and ``journal``: ``{"last_decided", "decisions",
        "orders", "positions"}``, or None without a journal.  With only a journal, the
        status keys come from it and ``state`` is ``"unknown"``.

    Raises
    ------
    ConfigurationError
        ``state_dir`` holds neither file.
    DataError
        ``status.json`` or the journal cannot be read.
    """
    state_dir = Path(state_dir)
    status_path, journal_path = state_dir / STATUS_FILE, state_dir / JOURNAL_FILE
    has_status, has_journal = status_path.is_file(), journal_path.is_file()
    if not (has_status or has_journal):
        raise ConfigurationError(f"{state_dir}: not a paper state directory (no {STATUS_FILE} "
                                 f"or {JOURNAL_FILE})")
    block, fallback = None, None
    if has_journal:
        block, fallback = read_journal(journal_path, with_status=not has_status)
    status = load_status_file(status_path) if has_status else fallback
    out = {**status, "age_seconds": age_seconds(status.get("updated"), now) if has_status
           else None, "journal": block}
    return scrub(out)


def latest_decision(state_dir: Path, symbol: str) -> dict[str, Any] | None:
    """The ``/decision`` body for ``symbol``, or None when there is no decision for it.

    Returns
    -------
    dict | None
        ``{"symbol", "date", "decision": <the journal row: DECISION_FIELDS and "bundle">,
        "bundle": {"id", "path", "manifest_sha256", "predict_start"} | None,
        "breaker": {"as_of", "high_water", "drawdown", "tripped", "halted", "trips"} | None}``.
    """
    path = state_dir / JOURNAL_FILE
    if not path.is_file():
        return None
    journal = Journal(path, readonly=True)
    try:
        with journal.snapshot():  # one snapshot: the decision, its bundle, the breaker
            decision = journal.latest_decision(symbol)
            bundles = {row["id"]: row for row in journal.bundles()}
            equity = journal.last_equity()
    finally:
        journal.close()
    if decision is None:
        return None
    row = bundles.get(decision.get("bundle"))
    bundle = None if row is None else {k: row[k] for k in ("id", "path", "manifest_sha256",
                                                           "predict_start")}
    breaker = None if equity is None else {"as_of": equity["date"], **equity["breaker"]}
    return scrub({"symbol": symbol, "date": decision["date"], "decision": decision,
                  "bundle": bundle, "breaker": breaker})
