"""What :class:`live.sim.state.SimState` does to an open order besides a plain market fill.

:func:`work` applies one bar to an order that is not a plain market one (a limit, stop,
stop_limit or trailing stop, or any order whose time in force is ``opg``, ``cls``, ``ioc`` or
``fok``): it fills, rests (a trailing stop's water mark moves with the close), expires or is
canceled, by the daily-bar rules of :mod:`live.sim.fills`.  :func:`replace` is Alpaca's
replace (``PATCH /v2/orders/{id}``).

Both are SimState's own code, kept apart so that the replay's clock, account and market-order
path read on their own; they take the state (:class:`Book`) and change it as its methods do.
The market-order path (:meth:`SimState.advance`'s fill at the open) stays in
:mod:`live.sim.state`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import pandas as pd

from live.sim.bars import session_time
from live.sim.fills import SESSION_TIMES, Bar, evaluate, next_hwm, trailing_stop_price
from live.sim.order_rules import check_order, replacement_fields
from live.sim.orders import SimOrder, SimRejection, deterministic_uuid, split_quantity


class Book(Protocol):
    """The parts of :class:`live.sim.state.SimState` that working and replacing an order use.

    A protocol rather than an import: :mod:`live.sim.state` imports this module.
    """

    orders: list[SimOrder]
    slippage: float
    partial_fills: bool

    @property
    def now(self) -> pd.Timestamp: ...

    @property
    def current_day(self) -> pd.Timestamp: ...

    def bar(self, symbol: str) -> pd.Series: ...

    def get_order(self, order_id: str) -> SimOrder: ...

    def _submission_time(self, sequence: int) -> pd.Timestamp: ...

    def _check_unique(self, client_order_id: str) -> None: ...

    def _check_funds(self, order: SimOrder) -> None: ...

    def _execute(self, order: SimOrder, qty: float, price: float, *, final: bool,
                 total: float, when: pd.Timestamp | None = None) -> None: ...

    def _record(self, event: str, order: SimOrder, when: pd.Timestamp,
                **execution: Any) -> None: ...


def work(book: Book, order: SimOrder) -> bool:
    """Apply :func:`live.sim.fills.evaluate` on the current bar to an order that is not a plain
    market one; whether it filled or closed (``False``: it rests)."""
    row = book.bar(order.symbol)
    bar = Bar(*(float(row[name]) for name in ("open", "high", "low", "close")))
    stop = order.stop_price
    if order.order_type == "trailing_stop":
        stop = trailing_stop_price(order.side, float(order.hwm or bar.open),
                                   order.trail_price, order.trail_percent)
    outcome = evaluate(bar, side=order.side, order_type=order.order_type,
                       time_in_force=order.time_in_force, slippage=book.slippage,
                       limit_price=order.limit_price, stop_price=stop,
                       triggered=order.triggered)
    order.triggered = outcome.triggered
    when = session_time(book.current_day, SESSION_TIMES[outcome.at])
    if outcome.action == "rest":
        if order.hwm is not None:
            order.hwm = next_hwm(order.side, order.hwm, bar.close)
        return False
    if outcome.action == "fill":
        total = float(order.qty or 0.0)
        parts = split_quantity(total, book.partial_fills and order.time_in_force != "fok")
        for number, qty in enumerate(parts, start=1):
            book._execute(order, qty, float(outcome.price or 0.0),
                          final=number == len(parts), total=total, when=when)
        return True
    order.status = "expired" if outcome.action == "expire" else "canceled"
    order.updated_at = when
    if outcome.action == "expire":
        order.expired_at = when
    else:
        order.canceled_at = when
    book._record(order.status, order, when)
    return True


def replace(book: Book, order_id: str, qty: float | None, time_in_force: str | None,
            limit_price: float | None, stop_price: float | None, trail: float | None,
            client_order_id: str | None) -> SimOrder:
    """:meth:`live.sim.state.SimState.replace`: the old order becomes ``replaced`` and a new
    one, with the given fields changed, ``replaces`` it; records ``replaced`` then ``new``.

    Raises
    ------
    SimRejection
        As :meth:`~live.sim.state.SimState.replace` documents.
    """
    old = book.get_order(order_id)
    if not old.is_open or old.notional is not None:
        raise SimRejection(422, 42210000, f"order is not replaceable (status {old.status}"
                           f"{', notional' if old.notional is not None else ''})")
    sequence = len(book.orders) + 1
    client_order_id = client_order_id or deterministic_uuid("client", str(sequence))
    new = dataclasses.replace(
        old, **replacement_fields(old, qty, time_in_force, limit_price, stop_price, trail),
        id=deterministic_uuid("order", f"{sequence}:{client_order_id}"),
        client_order_id=client_order_id, sequence=sequence, replaces=old.id,
        submitted_at=book._submission_time(sequence),
        updated_at=book._submission_time(sequence))
    check_order(new)
    book._check_unique(client_order_id)
    status, old.status = old.status, "pending_replace"  # its reservation is released
    try:
        book._check_funds(new)
    finally:
        old.status = status
    old.status, old.replaced_by = "replaced", new.id
    old.replaced_at = old.updated_at = book.now
    book._record("replaced", old, book.now)
    book.orders.append(new)
    book._record("new", new, book.now)
    return new
