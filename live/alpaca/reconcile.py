"""Reconciliation: the broker's view of an account brought in line with its REST state.

Kept apart from the broker that places orders (as NautilusTrader keeps
``live/reconciliation.py`` apart from each venue's execution client).  Three moments:

- **start-up** (:func:`account_state`): cash, positions and our open orders, once, before
  the first bar;
- **after a restart** (:func:`catch_up_ledger`): fills of recorded orders that executed
  while the daemon was down are recorded from each order's REST state;
- **after a lost stream message** (:func:`reconcile_orders`): a reconnected trading stream,
  or a replay step whose fills the stream has not brought in time, gets the executions and
  terminal events it lost rebuilt from REST (:class:`~live.alpaca.orders.SyntheticUpdate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from loguru import logger

from live.alpaca.ledger import OrderLedger
from live.alpaca.orders import (
    DEAD_EVENTS,
    SyntheticUpdate,
    TrackedOrder,
    bar_day_of_fill,
    find_order,
    order_record,
)

#: Quantities closer than this are equal (Alpaca quantities are decimals sent as floats).
QTY_EPS = 1e-9


@dataclass(frozen=True)
class AccountState:
    """An account as REST reports it at start-up.

    Attributes
    ----------
    cash : float
    positions : dict[str, tuple[float, float]]
        Quantity and average entry price per symbol.
    open_orders : dict[str, TrackedOrder]
        Our open orders (``client_order_id`` with our prefix) by Alpaca order id, with what
        they had executed so far.
    """

    cash: float
    positions: dict[str, tuple[float, float]]
    open_orders: dict[str, TrackedOrder]


def account_state(trading: Any, strategy_id: str) -> AccountState:
    """Cash, positions and the open orders of ``strategy_id``, over REST.

    Parameters
    ----------
    trading : alpaca.trading.client.TradingClient
    strategy_id : str
        The prefix of our ``client_order_id`` values; other orders are not ours to track.
    """
    cash = float(trading.get_account().cash)
    positions = {pos.symbol: (float(pos.qty), float(pos.avg_entry_price))
                 for pos in trading.get_all_positions()}
    prefix = f"{strategy_id}-"
    ours = {}
    for order in trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)):
        if order.client_order_id.startswith(prefix):
            filled = float(order.filled_qty or 0.0)
            ours[str(order.id)] = TrackedOrder(None, order.symbol, order.side.value, filled,
                                               filled * float(order.filled_avg_price or 0.0))
    return AccountState(cash, positions, ours)


def catch_up_ledger(trading: Any, ledger: OrderLedger) -> None:
    """Record the fills of orders that executed while the daemon was down.

    Every order the ledger holds as open is looked up by ``client_order_id``; the quantity
    REST reports filled beyond the recorded fills becomes one fill at the price that makes
    the recorded notional match REST's average.  An intent the broker never received is left
    alone: its bar is decided again.
    """
    for row in ledger.open_orders():
        reply = find_order(trading, row["client_order_id"])
        if reply is None:
            continue  # an intent that never reached the broker: the bar is re-decided
        filled = float(reply.filled_qty or 0.0)
        done_qty, done_value = ledger.fill_totals(row["client_order_id"])
        missing = filled - done_qty
        if missing > QTY_EPS:
            price = (filled * float(reply.filled_avg_price) - done_value) / missing
            ledger.record_fill(f"{reply.client_order_id}:rest:{filled!r}",
                               reply.client_order_id, reply.symbol, reply.side.value,
                               missing, price,
                               bar_day_of_fill(reply.filled_at or reply.updated_at).isoformat())
            logger.info("journaled {} shares of {} filled while down", missing,
                        reply.client_order_id)
        ledger.record_order(*order_record(reply))


def lost_fill(tracked: TrackedOrder, reply: Any) -> SyntheticUpdate | None:
    """The execution the stream lost: what REST reports filled beyond what was counted."""
    filled = float(reply.filled_qty or 0.0)
    missing = filled - tracked.received_qty
    if missing <= QTY_EPS:
        return None
    total = filled * float(reply.filled_avg_price)
    price = (total - tracked.received_value) / missing
    event = "fill" if reply.status.value == "filled" else "partial_fill"
    return SyntheticUpdate(event, reply, missing, price, reply.filled_at or reply.updated_at)


def lost_end(tracked: TrackedOrder, reply: Any) -> SyntheticUpdate | None:
    """The terminal event (rejected, canceled...) the stream lost, if REST reports one."""
    status = reply.status.value
    if status in DEAD_EVENTS and not tracked.dead:
        return SyntheticUpdate(status, reply, None, None, reply.updated_at)
    return None


def reconcile_orders(trading: Any, order_ids: Iterable[str],
                     tracked: Callable[[str], TrackedOrder | None],
                     push: Callable[[Any], None]) -> None:
    """Rebuild from REST the executions and terminal events the stream lost.

    Parameters
    ----------
    trading : alpaca.trading.client.TradingClient
    order_ids : Iterable[str]
        Alpaca ids of the orders to check; ids not tracked are skipped.
    tracked : Callable[[str], TrackedOrder | None]
        What the broker has counted of an order (read under the broker's lock).
    push : Callable[[Any], None]
        Queues an update exactly as one from the stream (the broker's ``push_update``); a
        fill is pushed before the terminal event is looked at, so it counts first.
    """
    for order_id in order_ids:
        known = tracked(order_id)
        if known is None:
            continue
        reply = trading.get_order_by_id(order_id)
        fill = lost_fill(known, reply)
        if fill is not None:
            push(fill)
        end = lost_end(known, reply)
        if end is not None:
            push(end)
