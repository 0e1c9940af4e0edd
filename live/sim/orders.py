"""What the simulated broker keeps per order and per holding, and the pure fill arithmetic.

:class:`SimOrder` and :class:`SimPosition` are plain records that :class:`live.sim.state.SimState`
mutates; :class:`SimRejection` is how it refuses a request (the server turns it into Alpaca's
JSON error).  :func:`fill_price` and :func:`split_quantity` price and split a market order's
executions (the other order types' daily-bar rules are in :mod:`live.sim.fills`);
:func:`deterministic_uuid` makes every id the same on every run, so a replay is
reproducible to the byte.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import pandas as pd

OPEN_STATUSES = frozenset({"accepted", "new", "pending_new", "partially_filled"})
TIME_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
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
    """One order as the simulated broker keeps it.

    ``sequence`` is the order's 1-based submission number; ``filled_qty`` is cumulative over
    its executions.  ``hwm`` is a trailing stop's high-water mark (low-water mark for a buy)
    of the closes since submission; ``triggered`` says a stop_limit's stop was hit and it now
    works as a limit.  ``replaces``/``replaced_by`` link the orders of a replace.
    """

    id: str
    client_order_id: str
    symbol: str
    side: str
    qty: float | None
    notional: float | None
    time_in_force: str
    submitted_at: pd.Timestamp
    status: str = "new"
    updated_at: pd.Timestamp | None = None
    filled_qty: float = 0.0
    filled_avg_price: float | None = None
    filled_at: pd.Timestamp | None = None
    canceled_at: pd.Timestamp | None = None
    failed_at: pd.Timestamp | None = None
    sequence: int = 0
    executions: int = 0
    order_type: str = "market"
    limit_price: float | None = None
    stop_price: float | None = None
    trail_price: float | None = None
    trail_percent: float | None = None
    hwm: float | None = None
    extended_hours: bool = False
    triggered: bool = False
    expired_at: pd.Timestamp | None = None
    replaced_at: pd.Timestamp | None = None
    replaced_by: str | None = None
    replaces: str | None = None

    @property
    def is_open(self) -> bool:
        """Whether the order can still fill or be canceled."""
        return self.status in OPEN_STATUSES


@dataclass
class SimPosition:
    """A long holding in one symbol: quantity and total cost of the shares held."""

    qty: float = 0.0
    cost_basis: float = 0.0

    @property
    def avg_entry_price(self) -> float:
        """Average cost per share (0 when flat)."""
        return self.cost_basis / self.qty if self.qty else 0.0


def deterministic_uuid(kind: str, key: str) -> str:
    """A uuid5 that is the same on every run for the same ``kind`` and ``key``."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{key}"))


def fill_price(open_price: float, side: str, slippage: float) -> float:
    """Price a market order pays at ``open_price``: worse by the fraction ``slippage``."""
    return open_price * (1.0 + slippage) if side == "buy" else open_price * (1.0 - slippage)


def split_quantity(qty: float, partial: bool) -> list[float]:
    """The quantities of an order's executions: all at once, or half then the rest.

    With ``partial`` the first execution is ``floor(qty / 2)`` when ``qty`` is a whole number
    of at least 2 shares, else ``qty / 2`` rounded to 9 decimals; the second is the remainder.
    """
    if not partial:
        return [qty]
    whole = float(qty).is_integer() and qty >= 2
    first = float(math.floor(qty / 2)) if whole else round(qty / 2, QTY_DECIMALS)
    rest = round(qty - first, QTY_DECIMALS)
    return [first, rest] if first > 0 and rest > 0 else [qty]
