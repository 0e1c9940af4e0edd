"""Replay state of the local Alpaca-protocol server: clock, orders, fills, cash and position.

No web code lives here.  :mod:`live.sim_server` turns this state into Alpaca's JSON.

The simulated time sits *after the close* of the current bar: a strategy decides on the close
of bar ``t``, submits market orders, and :meth:`SimState.advance` moves to bar ``t + 1`` and
fills them at its open.  Nothing moves unless ``advance`` is called, so a replay is
deterministic however fast the client is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import pandas as pd
from loguru import logger

NEW_YORK = "America/New_York"
OPEN_STATUSES = frozenset({"accepted", "new", "pending_new", "partially_filled"})
TIME_IN_FORCE = frozenset({"day", "gtc", "opg"})
QTY_DECIMALS = 9
_NAMESPACE = uuid.UUID("6f1d2c1e-9d4b-5a53-8f0a-2f7c1c8e5a11")


class SimRejection(Exception):
    """A request the simulated broker refuses, carrying Alpaca's HTTP status and error code.

    Parameters
    ----------
    status : int
        HTTP status to answer with (403, 404, 409 or 422).
    code : int
        Alpaca's eight-digit error code.
    message : str
        Human-readable reason.
    """

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class SimOrder:
    """One market order as the simulated broker keeps it."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float | None
    notional: float | None
    time_in_force: str
    submitted_at: pd.Timestamp
    status: str = "accepted"
    updated_at: pd.Timestamp | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    filled_at: pd.Timestamp | None = None
    canceled_at: pd.Timestamp | None = None

    @property
    def is_open(self) -> bool:
        """Whether the order can still fill or be canceled."""
        return self.status in OPEN_STATUSES


def deterministic_uuid(kind: str, key: str) -> str:
    """A uuid5 that is the same on every run for the same ``kind`` and ``key``."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


def session_time(day: pd.Timestamp, hhmm: str) -> pd.Timestamp:
    """New York wall time ``hhmm`` on the calendar date of ``day``, tz-aware."""
    return pd.Timestamp(f"{day.date().isoformat()} {hhmm}").tz_localize(NEW_YORK)


def bar_timestamp(day: pd.Timestamp) -> pd.Timestamp:
    """Alpaca's stamp for a daily bar: midnight New York of its date, in UTC."""
    return session_time(day, "00:00").tz_convert("UTC")


def fill_price(open_price: float, side: str, slippage: float) -> float:
    """Price a market order pays at ``open_price``: worse by the fraction ``slippage``."""
    return open_price * (1.0 + slippage) if side == "buy" else open_price * (1.0 - slippage)


class SimState:
    """Replay clock, order book and one-symbol account over a daily OHLCV frame.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Daily bars with a sorted, unique, UTC-naive DatetimeIndex and columns
        ``open``, ``high``, ``low``, ``close``, ``volume``.
    symbol : str
        The one tradable symbol the frame holds.
    start : datetime.date or None
        The replay starts on the first bar at or after this date; ``None`` starts on the first
        bar.  Earlier bars are history that the bars endpoint serves.
    cash : float
        Starting cash.
    commission : float
        Commission as a fraction of each fill's notional, deducted from cash.
    slippage : float
        Fraction by which a fill is worse than the bar's open.
    """

    def __init__(self, ohlcv: pd.DataFrame, symbol: str, start: date | None = None,
                 cash: float = 100_000.0, commission: float = 0.0,
                 slippage: float = 0.0) -> None:
        missing = {"open", "high", "low", "close", "volume"} - set(ohlcv.columns)
        if missing:
            raise ValueError(f"ohlcv lacks columns {sorted(missing)}")
        if ohlcv.empty:
            raise ValueError("ohlcv has no bars to replay")
        self.bars = ohlcv.sort_index()
        self.symbol = symbol.upper()
        self.commission = float(commission)
        self.slippage = float(slippage)
        self.cash = float(cash)
        self.last_equity = float(cash)
        self.index = self._start_index(start)
        self.position_qty = 0.0
        self.cost_basis = 0.0
        self.orders: list[SimOrder] = []

    def _start_index(self, start: date | None) -> int:
        if start is None:
            return 0
        position = int(self.bars.index.searchsorted(pd.Timestamp(start)))
        if position >= len(self.bars):
            raise ValueError(f"start {start} is after the last bar {self.bars.index[-1].date()}")
        return position

    # ------------------------------------------------------------------ clock
    @property
    def current_day(self) -> pd.Timestamp:
        """Date of the current (last visible) bar."""
        return self.bars.index[self.index]

    @property
    def now(self) -> pd.Timestamp:
        """Simulated time: the close of the current bar, New York time."""
        return session_time(self.current_day, "16:00")

    @property
    def finished(self) -> bool:
        """Whether the current bar is the last one."""
        return self.index >= len(self.bars) - 1

    def next_day(self) -> pd.Timestamp:
        """Date of the next session: the next bar, or the next business day after the last."""
        if not self.finished:
            return self.bars.index[self.index + 1]
        return self.current_day + pd.offsets.BDay(1)

    def price(self) -> float:
        """Close of the current bar."""
        return float(self.bars["close"].iloc[self.index])

    # ---------------------------------------------------------------- account
    @property
    def market_value(self) -> float:
        """Position value at the current close."""
        return self.position_qty * self.price()

    @property
    def equity(self) -> float:
        """Cash plus position value at the current close."""
        return self.cash + self.market_value

    @property
    def avg_entry_price(self) -> float:
        """Average cost per share of the open position (0 when flat)."""
        return self.cost_basis / self.position_qty if self.position_qty else 0.0

    def buying_power(self) -> float:
        """Cash less the estimated cost of open buy orders, priced at the current close."""
        reserved = sum(self._estimated_cost(order) for order in self.orders
                       if order.is_open and order.side == "buy")
        return self.cash - reserved

    def _estimated_cost(self, order: SimOrder) -> float:
        if order.notional is not None:
            return order.notional
        return float(order.qty or 0.0) * self.price()

    def _sellable_qty(self) -> float:
        pending = sum(float(order.qty or 0.0) for order in self.orders
                      if order.is_open and order.side == "sell")
        return self.position_qty - pending

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
               time_in_force: str = "day", client_order_id: str | None = None) -> SimOrder:
        """Queue a market order to fill at the next bar's open.

        Raises
        ------
        SimRejection
            422 for a malformed order or a duplicate ``client_order_id``, 403 for insufficient
            buying power or quantity, 404 for an unknown symbol.
        """
        self._check_order_fields(symbol, side, qty, notional, time_in_force)
        sequence = len(self.orders) + 1
        client_order_id = client_order_id or deterministic_uuid("client", str(sequence))
        if any(order.client_order_id == client_order_id for order in self.orders):
            raise SimRejection(422, 40010001, "client_order_id must be unique")
        order = SimOrder(id=deterministic_uuid("order", f"{sequence}:{client_order_id}"),
                         client_order_id=client_order_id, symbol=self.symbol, side=side,
                         qty=qty, notional=notional, time_in_force=time_in_force,
                         submitted_at=self.now, updated_at=self.now)
        self._check_funds(order)
        self.orders.append(order)
        logger.debug("sim order {} {} {} qty={} notional={}", order.client_order_id, side,
                     self.symbol, qty, notional)
        return order

    def _check_order_fields(self, symbol: str, side: str, qty: float | None,
                            notional: float | None, time_in_force: str) -> None:
        if symbol.upper() != self.symbol:
            raise SimRejection(404, 40410000, f"asset not found: {symbol}")
        if side not in ("buy", "sell"):
            raise SimRejection(422, 40010001, f"invalid side: {side}")
        if time_in_force not in TIME_IN_FORCE:
            raise SimRejection(422, 40010001, f"unsupported time_in_force: {time_in_force}")
        if (qty is None) == (notional is None):
            raise SimRejection(422, 40010001, "exactly one of qty or notional is required")
        amount = qty if qty is not None else notional
        if amount is None or not amount > 0:
            raise SimRejection(422, 40010001, "qty or notional must be positive")
        if side == "sell" and notional is not None:
            raise SimRejection(422, 40010001, "notional sell orders are not supported")

    def _check_funds(self, order: SimOrder) -> None:
        if order.side == "buy" and self._estimated_cost(order) > self.buying_power():
            raise SimRejection(403, 40310000, "insufficient buying power")
        if order.side == "sell" and float(order.qty or 0.0) > self._sellable_qty() + 1e-12:
            raise SimRejection(403, 40310000,
                               f"insufficient qty available for order (requested: {order.qty},"
                               f" available: {self._sellable_qty()})")

    def cancel(self, order_id: str) -> SimOrder:
        """Cancel an open order; :class:`SimRejection` 422 when it already closed."""
        order = self.get_order(order_id)
        if not order.is_open:
            raise SimRejection(422, 42210000, f"order is not cancelable (status {order.status})")
        order.status = "canceled"
        order.canceled_at = order.updated_at = self.now
        return order

    def cancel_all(self) -> list[SimOrder]:
        """Cancel every open order and return them."""
        return [self.cancel(order.id) for order in self.orders if order.is_open]

    # ----------------------------------------------------------------- replay
    def advance(self) -> list[SimOrder]:
        """Move to the next bar and fill every open order at its open.

        Returns
        -------
        list of SimOrder
            The orders filled on the new bar.

        Raises
        ------
        SimRejection
            409 when the replay is already on its last bar.
        """
        if self.finished:
            raise SimRejection(409, 40910000, "replay finished: no bar after the current one")
        self.last_equity = self.equity
        self.index += 1
        filled = [order for order in self.orders if order.is_open]
        for order in filled:
            self._fill(order)
        logger.debug("sim advanced to {} ({} fills)", self.current_day.date(), len(filled))
        return filled

    def _fill(self, order: SimOrder) -> None:
        bar = self.bars.iloc[self.index]
        price = fill_price(float(bar["open"]), order.side, self.slippage)
        qty = order.qty if order.qty is not None else round(order.notional / price, QTY_DECIMALS)
        value = qty * price
        fee = value * self.commission
        if order.side == "buy":
            self.cash -= value + fee
            self.cost_basis += value
            self.position_qty += qty
        else:
            self.cash += value - fee
            self.cost_basis -= self.avg_entry_price * qty
            self.position_qty -= qty
        if abs(self.position_qty) < 10 ** -QTY_DECIMALS:
            self.position_qty = self.cost_basis = 0.0
        order.status = "filled"
        order.filled_qty = qty
        order.filled_avg_price = price
        order.filled_at = order.updated_at = session_time(self.current_day, "09:30")

    def visible_bars(self) -> pd.DataFrame:
        """Bars up to and including the current one: no look-ahead."""
        return self.bars.iloc[: self.index + 1]
