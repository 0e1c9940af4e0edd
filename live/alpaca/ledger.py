"""``OrderLedger``: the durable record of orders and fills the broker writes through.

The broker never knows who keeps the record: the session passes one in (its SQLite journal,
:class:`live.session.journal.Journal`, implements this protocol).  Every method commits
before it returns, which is what makes an order exactly-once across a crash: the broker
records the intent *before* the request leaves, and on a restart never resends an id the
ledger already holds (see :mod:`live.alpaca.broker`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class OrderLedger(Protocol):
    """What the broker and the reconciliation need of an order record."""

    def order(self, client_order_id: str) -> Mapping[str, Any] | None:
        """The recorded order, or None when ``client_order_id`` was never recorded."""
        ...

    def record_intent(self, client_order_id: str, symbol: str, side: str, qty: float,
                      decided: str) -> None:
        """The order about to be sent (status ``intent``); committed before it is sent."""
        ...

    def record_order(self, client_order_id: str, order_id: str | None, status: str,
                     filled_qty: float = 0.0, filled_avg_price: float | None = None,
                     updated: str | None = None) -> None:
        """The broker's view of a recorded order: its id, status and cumulative fill."""
        ...

    def record_fill(self, fill_key: str, client_order_id: str, symbol: str, side: str,
                    qty: float, price: float, day: str) -> bool:
        """One execution, once per ``fill_key``; False when the key was already recorded."""
        ...

    def fill_totals(self, client_order_id: str) -> tuple[float, float]:
        """Recorded quantity and notional (sum of qty * price) of one order's fills."""
        ...

    def open_orders(self) -> list[dict[str, Any]]:
        """Recorded orders not known to be finished (intents included)."""
        ...
