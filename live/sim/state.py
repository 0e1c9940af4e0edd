"""Replay state of the local Alpaca-protocol server: clock, orders, fills, cash and positions.

No web code lives here.  :mod:`live.sim.server` turns this state into Alpaca's JSON and
:mod:`live.sim.streams` broadcasts its event log.  The records it keeps (:class:`SimOrder`,
:class:`SimPosition`) and the market-order fill arithmetic are in :mod:`live.sim.orders`, the
other order types' daily-bar rules in :mod:`live.sim.fills`, and working those orders on each
bar (resting, triggering, trailing marks, expiry) and replacing an order in
:mod:`live.sim.working`.  The calendar and session times are in :mod:`live.sim.bars`, an
order's cross-field rules in :mod:`live.sim.order_rules`, and saving and resuming a replay in
:mod:`live.sim.snapshot`.

The simulated time sits *after the close* of the current bar: a strategy decides on the close
of bar ``t``, submits market orders, and :meth:`SimState.advance` moves to bar ``t + 1`` and
fills them at its open.  Nothing moves unless ``advance`` is called, so a replay is
deterministic however fast the client is.

Several symbols replay on one calendar: the dates every frame has.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd
from loguru import logger

from live.sim import working
from live.sim.bars import align_feeds, session_time
from live.sim.order_rules import check_order
from live.sim.orders import (
    QTY_DECIMALS,
    SimOrder,
    SimPosition,
    SimRejection,
    deterministic_uuid,
    fill_price,
    split_quantity,
)

# A quantity this close to zero is a flat position (rounding left over from partial fills).
_EPSILON = 10 ** -QTY_DECIMALS


def _non_negative(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")


class SimState:
    """Replay clock, order book and cash account over several symbols' daily bars.

    Parameters
    ----------
    feeds : Mapping of str to pandas.DataFrame
        Daily bars per symbol: sorted, unique, UTC-naive DatetimeIndex and columns ``open``,
        ``high``, ``low``, ``close``, ``volume``.  Symbols are upper-cased; the replay calendar
        is the dates every frame has.
    start : datetime.date or None
        The replay starts on the first calendar date at or after this date; ``None`` starts on
        the first.  Earlier bars are history that the bars endpoint serves.
    cash : float
        Starting cash.
    commission : float
        Commission as a fraction of each execution's notional, deducted from cash.
    slippage : float
        Fraction by which a fill is worse than the bar's open.
    partial_fills : bool
        Fill every order in two executions (see :func:`split_quantity`).
    reject_every : int or None
        Reject the N-th, 2N-th ... submitted order when it would fill.

    Attributes
    ----------
    events : list of dict
        Trade events in the order they happened.  Each has ``event`` (``new``,
        ``partial_fill``, ``fill``, ``canceled``, ``rejected``), ``order`` (a
        :class:`SimOrder` copy as of the event), ``timestamp`` (tz-aware), and for executions
        ``execution_id``, ``price``, ``qty`` (this execution's) and ``position_qty``.
    """

    def __init__(self, feeds: Mapping[str, pd.DataFrame], start: date | None = None,
                 cash: float = 100_000.0, commission: float = 0.0, slippage: float = 0.0,
                 partial_fills: bool = False, reject_every: int | None = None) -> None:
        _non_negative(cash=float(cash), commission=float(commission), slippage=float(slippage))
        if reject_every is not None and reject_every < 1:
            raise ValueError(f"reject_every must be >= 1 or None, got {reject_every}")
        self.feeds, self.calendar, dropped = align_feeds(feeds)
        self.symbols = list(self.feeds)
        self.commission = float(commission)
        self.slippage = float(slippage)
        self.partial_fills = bool(partial_fills)
        self.reject_every = reject_every
        self.cash = float(cash)
        self.last_equity = float(cash)
        self.index = self._start_index(start)
        if dropped:
            logger.warning("sim replay: {} of {} dates dropped: not every symbol has a bar on "
                           "them", dropped, dropped + len(self.calendar))
        self.positions: dict[str, SimPosition] = {s: SimPosition() for s in self.symbols}
        self.orders: list[SimOrder] = []
        self.duplicate_submissions = 0  # 422s for a client_order_id already used
        self.events: list[dict[str, Any]] = []
        #: The next session is under way (``POST /sim/open``) until the next advance.
        self.session_open = False

    def _start_index(self, start: date | None) -> int:
        if start is None:
            return 0
        position = int(self.calendar.searchsorted(pd.Timestamp(start)))
        if position >= len(self.calendar):
            raise ValueError(f"start {start} is after the last bar {self.calendar[-1].date()}")
        return position

    # ------------------------------------------------------------------ clock
    @property
    def current_day(self) -> pd.Timestamp:
        """Date of the current (last visible) bar."""
        return self.calendar[self.index]

    @property
    def now(self) -> pd.Timestamp:
        """Simulated time: the close of the current bar, New York time."""
        return session_time(self.current_day, "16:00")

    @property
    def finished(self) -> bool:
        """Whether the current bar is the last one."""
        return self.index >= len(self.calendar) - 1

    def next_day(self) -> pd.Timestamp:
        """Date of the next session: the next bar, or the next business day after the last."""
        if not self.finished:
            return self.calendar[self.index + 1]
        return self.current_day + pd.offsets.BDay(1)

    def bar(self, symbol: str) -> pd.Series:
        """The current bar of ``symbol``."""
        return self.feeds[symbol].iloc[self.index]

    def price(self, symbol: str) -> float:
        """Close of the current bar of ``symbol``."""
        return float(self.feeds[symbol]["close"].iloc[self.index])

    def previous_close(self, symbol: str) -> float:
        """Close of the bar before the current one (the current one on the first bar)."""
        return float(self.feeds[symbol]["close"].iloc[max(self.index - 1, 0)])

    # ---------------------------------------------------------------- account
    def position(self, symbol: str) -> SimPosition:
        """The holding in ``symbol`` (flat when never traded)."""
        return self.positions.get(symbol.upper(), SimPosition())

    def open_positions(self) -> dict[str, SimPosition]:
        """Non-zero holdings, in symbol order."""
        return {s: p for s, p in self.positions.items() if p.qty}

    @property
    def market_value(self) -> float:
        """Value of every holding at its current close."""
        return sum(p.qty * self.price(s) for s, p in self.positions.items() if p.qty)

    @property
    def equity(self) -> float:
        """Cash plus holdings at the current closes."""
        return self.cash + self.market_value

    def buying_power(self) -> float:
        """Cash less the estimated cost of open buy orders, priced at the current closes."""
        reserved = sum(self._estimated_cost(order) for order in self.orders
                       if order.is_open and order.side == "buy")
        return self.cash - reserved

    def _estimated_cost(self, order: SimOrder) -> float:
        if order.notional is not None:
            return order.notional
        price = order.limit_price or order.stop_price or self.price(order.symbol)
        return float(order.qty or 0.0) * price

    def _sellable_qty(self, symbol: str) -> float:
        pending = sum(float(order.qty or 0.0) for order in self.orders
                      if order.is_open and order.side == "sell" and order.symbol == symbol)
        return self.position(symbol).qty - pending

    # ----------------------------------------------------------------- orders
    def get_order(self, order_id: str) -> SimOrder:
        """The order with id ``order_id``; :class:`SimRejection` 404 when unknown."""
        for order in self.orders:
            if order.id == order_id:
                return order
        raise SimRejection(404, 40410000, "order not found")

    def get_order_by_client_id(self, client_order_id: str) -> SimOrder:
        """The order with ``client_order_id``; :class:`SimRejection` 404 when unknown."""
        for order in self.orders:
            if order.client_order_id == client_order_id:
                return order
        raise SimRejection(404, 40410000, "order not found")

    def submit(self, symbol: str, side: str, qty: float | None, notional: float | None,
               time_in_force: str = "day", client_order_id: str | None = None, *,
               order_type: str = "market", limit_price: float | None = None,
               stop_price: float | None = None, trail_price: float | None = None,
               trail_percent: float | None = None, extended_hours: bool = False) -> SimOrder:
        """Queue an order to work from the next bar (see :mod:`live.sim.fills`); records a
        ``new`` event.  A market order fills at the next bar's open.

        Raises
        ------
        SimRejection
            422 for a malformed order (:func:`live.sim.order_rules.check_order`), an unknown
            symbol or a duplicate ``client_order_id``, 403 for insufficient buying power or
            quantity.
        """
        symbol = symbol.upper()
        if symbol not in self.feeds:
            raise SimRejection(422, 40010001, f"asset not found: {symbol}")
        sequence = len(self.orders) + 1
        client_order_id = client_order_id or deterministic_uuid("client", str(sequence))
        order = SimOrder(id=deterministic_uuid("order", f"{sequence}:{client_order_id}"),
                         client_order_id=client_order_id, symbol=symbol, side=side,
                         qty=qty, notional=notional, time_in_force=time_in_force,
                         submitted_at=self._submission_time(sequence),
                         updated_at=self._submission_time(sequence), sequence=sequence,
                         order_type=order_type, limit_price=limit_price, stop_price=stop_price,
                         trail_price=trail_price, trail_percent=trail_percent,
                         extended_hours=extended_hours)
        check_order(order)
        self._check_unique(client_order_id)
        if order.order_type == "trailing_stop":
            order.hwm = self.price(symbol)
        self._check_funds(order)
        self.orders.append(order)
        self._record("new", order, self.now)
        logger.debug("sim order {} {} {} {} qty={} notional={}", order.client_order_id,
                     order_type, side, symbol, qty, notional)
        return order

    def _submission_time(self, sequence: int) -> pd.Timestamp:
        """The close plus ``sequence`` microseconds: each order's time is its own, so paging
        ``GET /v2/orders`` by ``until`` neither skips nor repeats one."""
        return self.now + pd.Timedelta(microseconds=sequence)

    def _check_unique(self, client_order_id: str) -> None:
        if any(order.client_order_id == client_order_id for order in self.orders):
            self.duplicate_submissions += 1
            raise SimRejection(422, 40010001, "client_order_id must be unique")

    def _check_funds(self, order: SimOrder) -> None:
        if order.side == "buy" and self._estimated_cost(order) > self.buying_power():
            raise SimRejection(403, 40310000, "insufficient buying power")
        available = self._sellable_qty(order.symbol)
        if order.side == "sell" and float(order.qty or 0.0) > available + 1e-12:
            raise SimRejection(403, 40310000,
                               f"insufficient qty available for order (requested: {order.qty},"
                               f" available: {available})")

    def cancel(self, order_id: str) -> SimOrder:
        """Cancel an open order and record a ``canceled`` event.

        Raises
        ------
        SimRejection
            404 for an unknown order, 422 when it already closed.
        """
        order = self.get_order(order_id)
        if not order.is_open:
            raise SimRejection(422, 42210000, f"order is not cancelable (status {order.status})")
        order.status = "canceled"
        order.canceled_at = order.updated_at = self.now
        self._record("canceled", order, self.now)
        return order

    def cancel_all(self) -> list[SimOrder]:
        """Cancel every open order and return them."""
        return [self.cancel(order.id) for order in self.orders if order.is_open]

    def replace(self, order_id: str, qty: float | None = None,
                time_in_force: str | None = None, limit_price: float | None = None,
                stop_price: float | None = None, trail: float | None = None,
                client_order_id: str | None = None) -> SimOrder:
        """Replace an open order as Alpaca does: the old one becomes ``replaced`` and a new
        one, with the given fields changed, ``replaces`` it.  Records ``replaced`` then ``new``.

        Raises
        ------
        SimRejection
            404 for an unknown order, 422 when it is closed or notional, a price its type does
            not use, or the new order is malformed; 403 when funds do not cover it.
        """
        return working.replace(self, order_id, qty, time_in_force, limit_price, stop_price,
                               trail, client_order_id)

    # ----------------------------------------------------------------- replay
    def advance(self) -> list[SimOrder]:
        """Move to the next bar, then work every open order in submission order.

        Market orders fill at the open; the other types follow :mod:`live.sim.fills`.

        Returns
        -------
        list of SimOrder
            The orders that got an execution, were rejected, expired or were canceled on the
            new bar.

        Raises
        ------
        SimRejection
            409 when the replay is already on its last bar.
        """
        if self.finished:
            raise SimRejection(409, 40910000, "replay finished: no bar after the current one")
        self.last_equity = self.equity
        self.index += 1
        self.session_open = False
        touched = []
        for order in [order for order in self.orders if order.is_open]:
            if self._rejects(order):
                self._reject(order)
            elif order.order_type == "market" and order.time_in_force != "cls":
                self._fill(order)
            elif not working.work(self, order):
                continue
            touched.append(order)
        logger.debug("sim advanced to {} ({} orders done)", self.current_day.date(),
                     len(touched))
        return touched

    def _rejects(self, order: SimOrder) -> bool:
        return self.reject_every is not None and order.sequence % self.reject_every == 0

    def _reject(self, order: SimOrder) -> None:
        when = session_time(self.current_day, "09:30")
        order.status = "rejected"
        order.failed_at = order.updated_at = when
        self._record("rejected", order, when)

    def _fill(self, order: SimOrder) -> None:
        price = fill_price(float(self.bar(order.symbol)["open"]), order.side, self.slippage)
        total = order.qty if order.qty is not None else round(order.notional / price,
                                                               QTY_DECIMALS)
        parts = split_quantity(total, self.partial_fills)
        for number, qty in enumerate(parts, start=1):
            self._execute(order, qty, price, final=number == len(parts), total=total)

    def _execute(self, order: SimOrder, qty: float, price: float, *, final: bool,
                 total: float, when: pd.Timestamp | None = None) -> None:
        """Apply one execution to cash, position and order, and record its event."""
        position = self.positions[order.symbol]
        value = qty * price
        fee = value * self.commission
        if order.side == "buy":
            self.cash -= value + fee
            position.cost_basis += value
            position.qty += qty
        else:
            self.cash += value - fee
            position.cost_basis -= position.avg_entry_price * qty
            position.qty -= qty
        if abs(position.qty) < _EPSILON:
            position.qty = position.cost_basis = 0.0
        when = when or session_time(self.current_day, "09:30")
        order.executions += 1
        order.filled_qty = total if final else round(order.filled_qty + qty, QTY_DECIMALS)
        order.filled_avg_price = price
        order.status = "filled" if final else "partially_filled"
        order.updated_at = when
        order.filled_at = when if final else None
        self._record("fill" if final else "partial_fill", order, when,
                     execution_id=deterministic_uuid("execution",
                                                     f"{order.id}:{order.executions}"),
                     price=price, qty=qty, position_qty=position.qty)

    def _record(self, event: str, order: SimOrder, when: pd.Timestamp, **execution: Any) -> None:
        self.events.append({"event": event, "order": dataclasses.replace(order),
                            "timestamp": when, **execution})

