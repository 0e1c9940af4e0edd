"""``AlpacaBroker``: backtrader orders submitted through alpaca-py's ``TradingClient``.

- Orders are market orders with a deterministic ``client_order_id``:
  ``{strategy}-{symbol}-{decision date}-{sequence}``.  A resubmission after a crash or a lost
  reply finds the existing order instead of placing a second one.
- Fills come from the trading stream's ``trade_updates``.  Each ``fill``/``partial_fill``
  event carries the quantity and price of *that* execution; the broker applies exactly that
  delta, so a partial fill followed by a fill is counted once (never the cumulative
  ``filled_qty`` twice).
- Cash and positions are kept from fills (commission from config): no REST call per bar.
- Before the first bar, and whenever the trading stream may have lost a message, it
  reconciles with the account's REST state (:mod:`live.alpaca.reconcile`).
- A fill is applied on the bar of its session date, as the backtester fills at the next
  bar's open: the strategy sees the same state in both.
- Order intents, order states and fills are written through an
  :class:`~live.alpaca.ledger.OrderLedger` the session passes in (its journal): the intent is
  committed before the order is sent, so an order goes out exactly once across a crash.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import Any

import backtrader as bt
import pandas as pd
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from loguru import logger

from live.alpaca.ledger import OrderLedger
from live.alpaca.orders import (
    DEAD_EVENTS,
    FILL_EVENTS,
    TrackedOrder,
    bar_day_of_fill,
    client_order_id,
    find_order,
    order_record,
)
from live.alpaca.reconcile import account_state, catch_up_ledger, reconcile_orders
from strategies.commission import FractionalCommission


class AlpacaBroker(bt.broker.BrokerBase):
    """A backtrader broker for one Alpaca account (see the module docstring).

    Parameters
    ----------
    store : AlpacaStore
        The account's store.
    commission_rate : float
        Commission per fill as a fraction of notional (0 on Alpaca; the replay's value).
    strategy_id : str
        Prefix of every ``client_order_id``.
    ledger : live.alpaca.ledger.OrderLedger | None
        The session's order record (its journal): order intents are committed before they
        are sent, fills as they are applied.  None keeps nothing.
    """

    params = (("store", None), ("commission_rate", 0.0), ("strategy_id", "ens"),
              ("ledger", None))

    def __init__(self) -> None:
        super().__init__()
        self.notifs: collections.deque = collections.deque()
        self.updates: queue.Queue = queue.Queue()
        self.positions: dict[str, bt.Position] = collections.defaultdict(bt.Position)
        self.cash = self.startingcash = 0.0
        self._tracked: dict[str, TrackedOrder] = {}
        self._sequence: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._reconcile_flag = threading.Event()

    # --------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        super().start()
        rate = self.p.commission_rate
        self.addcommissioninfo(FractionalCommission(commission=rate, leverage=1.0))
        self.p.store.start(broker=self)
        self._reconcile()

    def stop(self) -> None:
        self.p.store.stop()

    def _reconcile(self) -> None:
        """Cash, positions and our open orders, once, before the first bar."""
        trading = self.p.store.trading
        state = account_state(trading, self.p.strategy_id)
        self.cash = self.startingcash = state.cash
        for symbol, (size, price) in state.positions.items():
            self.positions[symbol] = bt.Position(size=size, price=price)
        self._tracked.update(state.open_orders)
        if self.p.ledger is not None:
            catch_up_ledger(trading, self.p.ledger)
        logger.info("reconciled: cash {:.2f}, {} positions, {} open orders of ours",
                    self.cash, sum(1 for p in self.positions.values() if p.size),
                    len(self._tracked))

    # ------------------------------------------------------------------ accounting
    def getcash(self) -> float:
        return self.cash

    def getvalue(self, datas: Any = None) -> float:
        value = self.cash
        feeds = self.p.store.feeds
        for symbol, pos in self.positions.items():
            feed = feeds.get(symbol)
            price = feed.close[0] if feed is not None and len(feed) else pos.price
            value += pos.size * price
        return value

    def getposition(self, data: bt.AbstractDataBase) -> bt.Position:
        return self.positions[data._name]

    def get_notification(self) -> bt.Order | None:
        return self.notifs.popleft() if self.notifs else None

    def notify(self, order: bt.Order) -> None:
        self.notifs.append(order.clone())

    # ---------------------------------------------------------------------- orders
    def buy(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None,
            tradeid=0, oco=None, trailamount=None, trailpercent=None, parent=None,
            transmit=True, histnotify=False, _checksubmit=True, **kwargs) -> bt.Order:
        order = bt.BuyOrder(owner=owner, data=data, size=size, price=price, pricelimit=plimit,
                            exectype=exectype, valid=valid, tradeid=tradeid, oco=oco,
                            trailamount=trailamount, trailpercent=trailpercent,
                            parent=parent, transmit=transmit, histnotify=histnotify)
        return self._submit(order)

    def sell(self, owner, data, size, price=None, plimit=None, exectype=None, valid=None,
             tradeid=0, oco=None, trailamount=None, trailpercent=None, parent=None,
             transmit=True, histnotify=False, _checksubmit=True, **kwargs) -> bt.Order:
        order = bt.SellOrder(owner=owner, data=data, size=size, price=price, pricelimit=plimit,
                             exectype=exectype, valid=valid, tradeid=tradeid, oco=oco,
                             trailamount=trailamount, trailpercent=trailpercent,
                             parent=parent, transmit=transmit, histnotify=histnotify)
        return self._submit(order)

    def _submit(self, order: bt.Order) -> bt.Order:
        order.addcomminfo(self.getcommissioninfo(order.data))
        order.submit(self)
        self.notify(order)
        if order.exectype not in (None, bt.Order.Market):
            logger.error("only market orders are supported; rejecting {}", order.getordername())
            return self._reject(order)
        symbol, side = order.data._name, "buy" if order.isbuy() else "sell"
        day = pd.Timestamp(bt.num2date(order.created.dt).date())
        self._sequence[(symbol, day)] += 1
        cid = client_order_id(self.p.strategy_id, symbol, day, self._sequence[(symbol, day)])
        request = MarketOrderRequest(symbol=symbol, qty=abs(order.size), side=OrderSide(side),
                                     time_in_force=TimeInForce.DAY, client_order_id=cid)
        try:
            reply = self._send(request, day)
        except APIError as exc:
            logger.warning("order {} refused: HTTP {} {}", cid, exc.status_code, exc.message)
            if self.p.ledger is not None:
                self.p.ledger.record_order(cid, None, "refused")
            return self._reject(order)
        with self._lock:
            tracked = self._tracked.setdefault(str(reply.id),
                                               TrackedOrder(order, symbol, side))
            tracked.order = order
        order.accept(self)
        self.notify(order)
        return order

    def _send(self, request: MarketOrderRequest, day: pd.Timestamp) -> Any:
        """Record the intent, then send; an id an earlier run recorded is looked up first.

        A ``client_order_id`` the broker already knows is never sent again: after a crash
        between sending and recording, the existing order is adopted.
        """
        ledger: OrderLedger | None = self.p.ledger
        cid = request.client_order_id
        if ledger is not None:
            if ledger.order(cid) is not None:
                known = find_order(self.p.store.trading, cid)
                if known is not None:
                    logger.info("{} was sent before a restart: adopting it", cid)
                    self._record_order(known)
                    return known
            else:
                ledger.record_intent(cid, request.symbol, request.side.value,
                                     float(request.qty), day.date().isoformat())
        reply = self._place(request)
        self._record_order(reply)
        return reply

    def _record_order(self, reply: Any) -> None:
        if self.p.ledger is not None:
            self.p.ledger.record_order(*order_record(reply))

    def _place(self, request: MarketOrderRequest) -> Any:
        """Submit; a duplicate ``client_order_id`` means an earlier try got through."""
        trading = self.p.store.trading
        try:
            return trading.submit_order(request)
        except APIError as exc:
            if exc.status_code != 422 or "client_order_id" not in str(exc):
                raise
            logger.info("{} already exists: adopting it", request.client_order_id)
            return trading.get_order_by_client_id(request.client_order_id)

    def _reject(self, order: bt.Order) -> bt.Order:
        order.reject(self)
        self.notify(order)
        return order

    def cancel(self, order: bt.Order) -> None:
        for order_id, tracked in self._tracked.items():
            if tracked.order is order and not tracked.dead:
                self.p.store.trading.cancel_order_by_id(order_id)

    # ------------------------------------------------------------- trade updates
    def push_update(self, update: Any) -> None:
        """A ``trade_updates`` message (stream thread): counted now, applied in ``next``."""
        with self._lock:
            tracked = self._tracked.get(str(update.order.id))
            if tracked is not None:
                if update.event in FILL_EVENTS:
                    tracked.received_qty += float(update.qty)
                    tracked.received_value += float(update.qty) * float(update.price)
                elif update.event in DEAD_EVENTS:
                    tracked.dead = True
        self.updates.put(update)

    def request_reconcile(self) -> None:
        """The trading stream reconnected: compare open orders with REST at the next bar."""
        self._reconcile_flag.set()

    def await_orders(self, orders: list[dict], timeout: float) -> None:
        """Wait until the stream has brought every execution the replay reports.

        After ``timeout`` the missing part of each order is taken from REST instead.
        """
        deadline = time.monotonic() + timeout
        while not self._caught_up(orders):
            if time.monotonic() > deadline:
                logger.warning("trade updates lag the replay; reconciling {} orders over REST",
                               len(orders))
                self._reconcile_orders([o["id"] for o in orders])
                return
            time.sleep(0.0005)

    def _caught_up(self, orders: list[dict]) -> bool:
        with self._lock:
            for order in orders:
                tracked = self._tracked.get(order["id"])
                if tracked is None:
                    continue  # not ours
                if abs(tracked.received_qty - float(order["filled_qty"] or 0.0)) > 1e-9:
                    return False
                if order["status"] in DEAD_EVENTS and not tracked.dead:
                    return False
        return True

    def _reconcile_orders(self, order_ids: list[str]) -> None:
        """Queue the executions and terminal events the stream lost (from REST)."""
        reconcile_orders(self.p.store.trading, order_ids, self._tracked_order, self.push_update)

    def _tracked_order(self, order_id: str) -> TrackedOrder | None:
        with self._lock:
            return self._tracked.get(order_id)

    def next(self) -> None:
        """Apply queued updates whose session has reached the bar being processed."""
        if self._reconcile_flag.is_set():
            self._reconcile_flag.clear()
            open_ids = [i for i, t in self._tracked.items() if not t.dead and t.order is not None]
            self._reconcile_orders(open_ids)
        held: list[Any] = []
        while True:
            try:
                update = self.updates.get_nowait()
            except queue.Empty:
                break
            if held or not self._apply(update):
                held.append(update)  # keep the stream's order
        for update in held:
            self.updates.put(update)

    def _apply(self, update: Any) -> bool:
        """Apply one update; False when its fill belongs to a bar not yet delivered."""
        tracked = self._tracked.get(str(update.order.id))
        if update.event in FILL_EVENTS:
            feed = self.p.store.feeds.get(update.order.symbol)
            if feed is not None and (not len(feed) or bt.num2date(feed.datetime[0]).date()
                                     < bar_day_of_fill(update.timestamp)):
                return False
            self._fill(tracked, update, feed)
        elif update.event in DEAD_EVENTS and tracked is not None:
            self._record_order(update.order)
            order = tracked.order
            if order is None:
                return True
            if order.alive():
                if update.event == "rejected":
                    logger.warning("order {} rejected by the broker",
                                   update.order.client_order_id)
                    order.reject(self)
                else:
                    order.cancel()
                self.notify(order)
        return True

    def _fill(self, tracked: TrackedOrder | None, update: Any, feed: Any) -> None:
        qty, price = float(update.qty), float(update.price)
        symbol = update.order.symbol
        size = qty if update.order.side.value == "buy" else -qty
        position = self.positions[symbol]
        old_price = position.price
        psize, pprice, opened, closed = position.update(size, price)
        comminfo = self.getcommissioninfo(feed)
        self.cash -= size * price + comminfo.getcommission(size, price)
        self._record_fill(update, qty, price)
        order = tracked.order if tracked is not None else None
        if order is None or feed is None:
            return
        order.execute(feed.datetime[0], size, price,
                      closed, comminfo.getoperationcost(closed, old_price),
                      comminfo.getcommission(closed, price),
                      opened, comminfo.getoperationcost(opened, price),
                      comminfo.getcommission(opened, price),
                      0.0, comminfo.profitandloss(-closed, old_price, price), psize, pprice)
        if order.executed.remsize:
            order.partial()
        else:
            order.completed()
        self.notify(order)

    def _record_fill(self, update: Any, qty: float, price: float) -> None:
        ledger: OrderLedger | None = self.p.ledger
        if ledger is None:
            return
        cid = update.order.client_order_id
        # A fill rebuilt from REST has no execution id: its cumulative quantity is its key.
        key = (str(update.execution_id) if getattr(update, "execution_id", None)
               else f"{cid}:rest:{ledger.fill_totals(cid)[0] + qty!r}")
        ledger.record_fill(key, cid, update.order.symbol, update.order.side.value, qty, price,
                           bar_day_of_fill(update.timestamp).isoformat())
        status = update.order.status.value if update.event == "partial_fill" else "filled"
        total, value = ledger.fill_totals(cid)
        ledger.record_order(cid, str(update.order.id), status, total, value / total,
                            str(update.timestamp))
