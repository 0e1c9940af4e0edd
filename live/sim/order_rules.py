"""The cross-field rules of an order, as Alpaca enforces them: :func:`check_order`.

:meth:`live.sim.state.SimState.submit` and :meth:`~live.sim.state.SimState.replace` run it on
the order they would create, so a refused request changes nothing.  Every refusal is a
:class:`~live.sim.orders.SimRejection` 422 whose message names the field:

- Exactly one of ``qty`` and ``notional``, positive; notional orders are market buys.
- Fractional and notional orders must be ``day`` orders.
- ``extended_hours`` only on a ``limit`` ``day`` order.
- ``limit``/``stop_limit`` need ``limit_price``, ``stop``/``stop_limit`` need ``stop_price``,
  ``trailing_stop`` exactly one of ``trail_price`` and ``trail_percent`` (a percent below
  100); a price the type does not use is refused, and every price is positive.
- ``opg``, ``cls``, ``ioc`` and ``fok`` take market and limit orders; stops and trailing stops
  are ``day`` or ``gtc``.
"""

from __future__ import annotations

from typing import Any

from live.sim.orders import ORDER_TYPES, TIME_IN_FORCE, SimOrder, SimRejection

_INVALID = 40010001
_PRICES = {"limit": ("limit_price",), "stop": ("stop_price",),
           "stop_limit": ("limit_price", "stop_price"), "market": (),
           "trailing_stop": ("trail_price", "trail_percent")}
_NOT_AT_AUCTION = frozenset({"stop", "stop_limit", "trailing_stop"})


def _reject(message: str) -> SimRejection:
    return SimRejection(422, _INVALID, message)


def _check_amount(order: SimOrder) -> None:
    if (order.qty is None) == (order.notional is None):
        raise _reject("exactly one of qty or notional is required")
    amount = order.qty if order.qty is not None else order.notional
    if amount is None or not amount > 0:
        raise _reject("qty or notional must be positive")
    if order.notional is not None and order.side == "sell":
        raise _reject("notional sell orders are not supported")
    if order.notional is not None and order.order_type != "market":
        raise _reject("notional orders must be market orders")
    fractional = order.notional is not None or not float(order.qty or 0.0).is_integer()
    if fractional and order.time_in_force != "day":
        raise _reject("fractional orders must be DAY orders")


def _check_prices(order: SimOrder) -> None:
    used = _PRICES[order.order_type]
    for name in ("limit_price", "stop_price", "trail_price", "trail_percent"):
        value = getattr(order, name)
        if value is not None and name not in used:
            raise _reject(f"{name} is not allowed for {order.order_type} orders")
        if value is not None and not value > 0:
            raise _reject(f"invalid {name}: {repr(value)}; must be positive")
    if order.order_type == "trailing_stop":
        if (order.trail_price is None) == (order.trail_percent is None):
            raise _reject("trailing_stop orders need exactly one of trail_price or "
                          "trail_percent")
        if order.trail_percent is not None and order.trail_percent >= 100:
            raise _reject(f"invalid trail_percent: {repr(order.trail_percent)}; must be "
                          "below 100")
    else:
        for name in used:
            if getattr(order, name) is None:
                raise _reject(f"{name} is required for {order.order_type} orders")


def check_order(order: SimOrder) -> None:
    """Refuse an order Alpaca would refuse; see the module docstring for the rules.

    Raises
    ------
    SimRejection
        422 naming the field at fault.
    """
    if order.side not in ("buy", "sell"):
        raise _reject(f"invalid side: {repr(order.side)}")
    if order.order_type not in ORDER_TYPES:
        raise _reject(f"invalid type: {repr(order.order_type)}")
    if order.time_in_force not in TIME_IN_FORCE:
        raise _reject(f"invalid time_in_force: {repr(order.time_in_force)}")
    _check_amount(order)
    _check_prices(order)
    if order.extended_hours and (order.order_type, order.time_in_force) != ("limit", "day"):
        raise _reject("extended_hours orders must be DAY limit orders")
    if order.order_type in _NOT_AT_AUCTION and order.time_in_force not in ("day", "gtc"):
        raise _reject(f"invalid time_in_force {order.time_in_force} for "
                      f"{order.order_type} orders; use day or gtc")


def replacement_fields(order: SimOrder, qty: float | None, time_in_force: str | None,
                       limit_price: float | None, stop_price: float | None,
                       trail: float | None) -> dict[str, Any]:
    """The fields a replace of ``order`` changes, plus a fresh order's fill state.

    ``trail`` replaces whichever of ``trail_price`` and ``trail_percent`` the order has.

    Raises
    ------
    SimRejection
        422 for a price the order's type does not use.
    """
    used = _PRICES[order.order_type]
    trail_name = "trail_price" if order.trail_price is not None else "trail_percent"
    changes: dict[str, Any] = {"qty": qty, "time_in_force": time_in_force,
                               "limit_price": limit_price, "stop_price": stop_price,
                               trail_name: trail}
    for name, value in changes.items():
        if value is not None and name not in used and name not in ("qty", "time_in_force"):
            shown = "trail" if name == trail_name else name
            raise _reject(f"{shown} cannot be changed on a {order.order_type} order")
    fields = {name: value for name, value in changes.items() if value is not None}
    fields.update(status="new", filled_qty=0.0, filled_avg_price=None, filled_at=None,
                  canceled_at=None, failed_at=None, expired_at=None, executions=0,
                  replaced_at=None, replaced_by=None)
    return fields
