"""Reading and checking an order request as Alpaca does: ``POST`` and ``PATCH /v2/orders``.

:func:`parse_order_body` and :func:`parse_replace_body` turn a JSON body into the keyword
arguments of :meth:`live.sim.state.SimState.submit` and :meth:`~live.sim.state.SimState.replace`;
:mod:`live.sim.order_rules` holds the cross-field checks both run on the order they would
create.  A refusal here is a :class:`~live.sim.orders.SimRejection` 422 (400 for a body that
is not a JSON object) whose message names the field, as Alpaca's do:

- ``type`` and ``time_in_force`` are required; ``order_class`` must be ``simple``.
- Numbers are numbers or numeric text (``qty: true`` is refused); ``client_order_id`` is a
  string of at most 128 characters; ``extended_hours`` is a boolean.
- A replace patches whole shares only and must change something.
"""

from __future__ import annotations

from typing import Any

from live.sim.orders import SimRejection
from live.sim.params import MAX_CLIENT_ORDER_ID, float_field, quote, str_field

_INVALID = 40010001


def _reject(message: str) -> SimRejection:
    return SimRejection(422, _INVALID, message)


def _bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _reject(f"invalid {name}: {quote(value)} is not a boolean")
    return value


def parse_order_body(body: Any) -> dict[str, Any]:
    """The keyword arguments of ``SimState.submit`` that a ``POST /v2/orders`` body asks for.

    Raises
    ------
    SimRejection
        400 when ``body`` is not a JSON object, 422 for a field of the wrong type or a missing
        ``type`` or ``time_in_force``.
    """
    if not isinstance(body, dict):
        raise SimRejection(400, 40010000, "request body must be a JSON object")
    fields: dict[str, Any] = {
        "symbol": str_field(body, "symbol", ""), "side": str_field(body, "side", ""),
        "qty": float_field(body, "qty"), "notional": float_field(body, "notional"),
        "time_in_force": str_field(body, "time_in_force"),
        "client_order_id": str_field(body, "client_order_id", max_length=MAX_CLIENT_ORDER_ID),
        "order_type": str_field(body, "type") or str_field(body, "order_type"),
        "extended_hours": _bool_field(body, "extended_hours"),
        **{name: float_field(body, name)
           for name in ("limit_price", "stop_price", "trail_price", "trail_percent")}}
    if str_field(body, "order_class", "simple") not in ("simple", ""):
        raise _reject("only simple orders are supported (order_class)")
    for name, key in (("type", "order_type"), ("time_in_force", "time_in_force")):
        if fields[key] is None:
            raise _reject(f"{name} is required")
    return fields


def parse_replace_body(body: Any) -> dict[str, Any]:
    """The keyword arguments of ``SimState.replace`` that a ``PATCH /v2/orders/{id}`` asks for.

    Raises
    ------
    SimRejection
        400 when ``body`` is not a JSON object, 422 for a field of the wrong type, a
        fractional ``qty`` or a body that changes nothing.
    """
    if not isinstance(body, dict):
        raise SimRejection(400, 40010000, "request body must be a JSON object")
    fields: dict[str, Any] = {
        "qty": float_field(body, "qty"), "time_in_force": str_field(body, "time_in_force"),
        "client_order_id": str_field(body, "client_order_id", max_length=MAX_CLIENT_ORDER_ID),
        **{name: float_field(body, name) for name in ("limit_price", "stop_price", "trail")}}
    if fields["qty"] is not None and not float(fields["qty"]).is_integer():
        raise _reject(f"invalid qty: {quote(body.get('qty'))}; only whole shares can be patched")
    if all(value is None for value in fields.values()):
        raise _reject("nothing to replace: give qty, limit_price, stop_price, trail, "
                      "time_in_force or client_order_id")
    return fields
