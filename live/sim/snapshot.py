"""Saving and resuming a replay: what ``ensemble-bt sim-server --state DIR`` writes and reads.

:func:`state_snapshot` is the replay's identity (symbols, ``--from``, a hash of the bars) and
its progress (index, cash, positions, orders); :func:`write_snapshot` writes it to
``DIR/sim_state.json`` atomically as strict JSON.  :func:`load_snapshot` reads it back and
:func:`restore_state` resumes a :class:`live.sim.state.SimState` from it, after validating
the whole of it (:class:`SavedState`) and checking that it was saved with the same data: a
malformed or foreign snapshot is refused and the state is left as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ensemble_bt.errors import ConfigurationError
from ensemble_bt.jsonio import dumps, loads, write_text_atomic
from live.sim.orders import SimOrder, SimPosition
from live.sim.params import QUOTE_LIMIT, quote
from live.sim.state import SimState

STATE_FILE = "sim_state.json"
SNAPSHOT_VERSION = 1
_TIME_FIELDS = ("submitted_at", "updated_at", "filled_at", "canceled_at", "failed_at",
                "expired_at", "replaced_at")


# ------------------------------------------------------------------------ saved shape
def _aware_time(text: str) -> str:
    """``text`` when it is an ISO 8601 time with an offset (as the server's times are)."""
    if datetime.fromisoformat(text).tzinfo is None:
        raise ValueError("time has no UTC offset")
    return text


_Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_Amount = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
_Text = Annotated[str, Field(strict=True, min_length=1, max_length=256)]
_Time = Annotated[str, Field(strict=True), AfterValidator(_aware_time)]
_Count = Annotated[int, Field(strict=True, ge=0)]


class SavedPosition(BaseModel):
    """A saved :class:`~live.sim.orders.SimPosition`: a long holding."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    qty: _Amount
    cost_basis: _Finite


class SavedOrder(BaseModel):
    """A saved :class:`~live.sim.orders.SimOrder`, field for field.

    Times are ISO 8601 text with an offset.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: _Text
    client_order_id: _Text
    symbol: _Text
    side: Literal["buy", "sell"]
    qty: _Amount | None
    notional: _Amount | None
    time_in_force: Literal["day", "gtc", "opg", "cls", "ioc", "fok"]  # TIME_IN_FORCE
    submitted_at: _Time
    status: Literal["accepted", "new", "pending_new", "partially_filled", "filled", "canceled",
                    "rejected", "expired", "replaced"]  # OPEN_STATUSES and the closed ones
    updated_at: _Time | None = None
    filled_qty: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)] = 0.0
    filled_avg_price: _Amount | None = None
    filled_at: _Time | None = None
    canceled_at: _Time | None = None
    failed_at: _Time | None = None
    sequence: _Count = 0
    executions: _Count = 0
    # Added with the other order types; a snapshot saved before them reads as market orders.
    order_type: Literal["market", "limit", "stop", "stop_limit", "trailing_stop"] = "market"
    limit_price: _Amount | None = None
    stop_price: _Amount | None = None
    trail_price: _Amount | None = None
    trail_percent: _Amount | None = None
    hwm: _Amount | None = None
    extended_hours: Annotated[bool, Field(strict=True)] = False
    triggered: Annotated[bool, Field(strict=True)] = False
    expired_at: _Time | None = None
    replaced_at: _Time | None = None
    replaced_by: _Text | None = None
    replaces: _Text | None = None

    def to_order(self) -> SimOrder:
        """The :class:`~live.sim.orders.SimOrder` this saved order describes."""
        fields = self.model_dump()
        for name in _TIME_FIELDS:
            fields[name] = None if fields[name] is None else pd.Timestamp(fields[name])
        return SimOrder(**fields)


class SavedState(BaseModel):
    """What ``sim-server --state`` saves: the replay's identity and progress.

    Validation covers types and ranges only; whether the saved identity, index and symbols
    fit the data being replayed is :func:`restore_state`'s check.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Annotated[int, Field(strict=True)]
    symbols: list[_Text]
    start: Annotated[str, Field(strict=True)] | None
    data_sha256: Annotated[str, Field(strict=True, pattern=r"^[0-9a-f]{64}$")]
    index: _Count
    day: Annotated[str, Field(strict=True, pattern=r"^\d{4}-\d{2}-\d{2}$")]
    cash: _Finite
    last_equity: _Finite
    positions: dict[str, SavedPosition]
    orders: list[SavedOrder]

    @model_validator(mode="after")
    def _unique_orders(self) -> SavedState:
        for name in ("id", "client_order_id"):
            values = [getattr(order, name) for order in self.orders]
            if len(set(values)) != len(values):
                raise ValueError(f"two orders share an {name}")
        return self


# ------------------------------------------------------------------------------- save
def data_fingerprint(state: SimState) -> str:
    """sha256 over the replayed symbols and their aligned bars."""
    digest = hashlib.sha256()
    for symbol in state.symbols:
        digest.update(symbol.encode())
        digest.update(pd.util.hash_pandas_object(state.feeds[symbol], index=True).to_numpy())
    return digest.hexdigest()


def _order_dict(order: SimOrder) -> dict[str, Any]:
    out = dataclasses.asdict(order)
    for name in _TIME_FIELDS:
        out[name] = None if out[name] is None else out[name].isoformat()
    return out


def state_snapshot(state: SimState, start: date | None,
                   fingerprint: str | None = None) -> dict[str, Any]:
    """What ``--state`` saves: identity (symbols, start, data hash) and the replay's progress.

    ``fingerprint`` is :func:`data_fingerprint` of ``state`` when the caller has it already.
    """
    return {"version": SNAPSHOT_VERSION, "symbols": list(state.symbols),
            "start": None if start is None else start.isoformat(),
            "data_sha256": fingerprint or data_fingerprint(state), "index": state.index,
            "day": state.current_day.date().isoformat(), "cash": state.cash,
            "last_equity": state.last_equity,
            "positions": {s: {"qty": p.qty, "cost_basis": p.cost_basis}
                          for s, p in state.open_positions().items()},
            "orders": [_order_dict(order) for order in state.orders]}


def write_snapshot(folder: Path, snapshot: dict[str, Any]) -> Path:
    """Write ``folder/sim_state.json`` atomically, as strict JSON (NaN and infinity as null)."""
    path = folder / STATE_FILE
    write_text_atomic(path, dumps(snapshot, indent=1))
    return path


# ---------------------------------------------------------------------------- restore
def _mismatch(snapshot: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return [key for key in ("version", "symbols", "start", "data_sha256")
            if snapshot.get(key) != expected[key]]


def _malformed(path: Path, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{path}: malformed replay state: {problem}; fix: delete it to "
                              "start over")


def _validated(snapshot: dict[str, Any], path: Path) -> SavedState:
    """The snapshot's shape, checked in full: types, ranges, unique order ids."""
    try:
        return SavedState.model_validate(snapshot)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        raise _malformed(path, f"{where[:QUOTE_LIMIT]}: {message[:QUOTE_LIMIT]} (got "
                               f"{quote(first.get('input'))})") from None


def _check_fits(state: SimState, saved: SavedState, path: Path) -> None:
    """The saved index, day and symbols must name bars and symbols of this replay."""
    index = saved.index
    if index >= len(state.calendar) or state.calendar[index].date().isoformat() != saved.day:
        raise _malformed(path, f"index {index} and day {saved.day} do not match the data")
    unknown = ({order.symbol for order in saved.orders} | set(saved.positions)) - set(
        state.symbols)
    if unknown:
        raise _malformed(path, f"symbols {quote(sorted(unknown))} are not replayed")


def restore_state(state: SimState, snapshot: dict[str, Any], start: date | None,
                  path: Path) -> None:
    """Resume ``state`` from a snapshot saved with the same data and start.

    Everything is checked before ``state`` is touched, so a refusal leaves it as it was.

    Raises
    ------
    ConfigurationError
        The snapshot was saved with other data, symbols or ``--from``, or is malformed (a
        wrong type, a non-finite number, a negative index, an unknown symbol ...).
    """
    differs = _mismatch(snapshot, state_snapshot(state, start))
    if differs:
        raise ConfigurationError(f"{path}: saved with other {', '.join(differs)} than this run; "
                                 "fix: pass the same --data and --from, or another --state")
    saved = _validated(snapshot, path)
    _check_fits(state, saved, path)
    state.index, state.cash, state.last_equity = saved.index, saved.cash, saved.last_equity
    state.orders = [order.to_order() for order in saved.orders]
    state.positions.update({symbol: SimPosition(p.qty, p.cost_basis)
                            for symbol, p in saved.positions.items()})


def load_snapshot(path: Path) -> dict[str, Any] | None:
    """The saved replay at ``path`` as a dict, ``None`` when there is none; strict JSON only.

    Raises
    ------
    ConfigurationError
        ``path`` is not a file, cannot be read or parsed, or holds no JSON object.
    """
    if not path.exists():
        return None
    if not path.is_file():
        raise ConfigurationError(f"{path}: not a file; fix: remove it or pass another --state")
    try:
        snapshot = loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigurationError(f"{path}: unreadable replay state ({str(exc)[:QUOTE_LIMIT]}); "
                                 "fix: delete it to start over") from None
    if not isinstance(snapshot, dict):
        raise ConfigurationError(f"{path}: replay state is not a JSON object; fix: delete it")
    return snapshot
