"""What the broker and the reconciliation share about one Alpaca order.

- :func:`client_order_id`: the deterministic id that makes a resubmission find the order
  instead of placing a second one;
- :class:`TrackedOrder`: the executions the broker has counted for an order;
- :class:`SyntheticUpdate`: a ``trade_updates`` message rebuilt from REST when the stream
  lost it;
- :func:`find_order`: the REST lookup by ``client_order_id``, and :func:`order_record`, what
  a ledger records of the order it returns.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import backtrader as bt
import pandas as pd
from alpaca.common.exceptions import APIError

from live.alpaca.clock import bar_day

FILL_EVENTS = frozenset({"fill", "partial_fill"})
DEAD_EVENTS = frozenset({"rejected", "canceled", "expired", "done_for_day"})


def client_order_id(strategy_id: str, symbol: str, day: pd.Timestamp, sequence: int) -> str:
    """Deterministic id of the ``sequence``-th order for ``symbol`` decided on ``day``."""
    return f"{strategy_id}-{symbol}-{day:%Y%m%d}-{sequence}"


def bar_day_of_fill(stamp: Any) -> date:
    """Session date of a fill's timestamp (New York)."""
    return bar_day(stamp).date()


class TrackedOrder:
    """What the broker knows of one Alpaca order.

    Parameters
    ----------
    order : backtrader.Order | None
        The strategy's order; None for an open order found at start-up (an earlier run's).
    symbol, side : str
    filled, value : float
        Quantity and notional already executed when tracking starts.
    """

    __slots__ = ("order", "symbol", "side", "received_qty", "received_value", "dead")

    def __init__(self, order: bt.Order | None, symbol: str, side: str, filled: float = 0.0,
                 value: float = 0.0) -> None:
        self.order, self.symbol, self.side = order, symbol, side
        self.received_qty, self.received_value = filled, value
        self.dead = False


class SyntheticUpdate:
    """A trade update rebuilt from REST when the stream lost it (no ``execution_id``)."""

    def __init__(self, event: str, order: Any, qty: float | None, price: float | None,
                 timestamp: Any) -> None:
        self.event, self.order, self.qty, self.price = event, order, qty, price
        self.timestamp = timestamp


def find_order(trading: Any, client_order_id: str) -> Any:
    """The order with ``client_order_id`` over REST, or None when the broker has none.

    Raises
    ------
    alpaca.common.exceptions.APIError
        Any refusal but 404.
    """
    try:
        return trading.get_order_by_client_id(client_order_id)
    except APIError as exc:
        if exc.status_code == 404:
            return None
        raise


def order_record(reply: Any) -> tuple:
    """What a ledger records (``record_order``'s arguments) of an alpaca-py ``Order``."""
    return (reply.client_order_id, str(reply.id), reply.status.value,
            float(reply.filled_qty or 0.0),
            None if reply.filled_avg_price is None else float(reply.filled_avg_price),
            str(reply.updated_at))
