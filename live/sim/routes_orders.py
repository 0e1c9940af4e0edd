"""The order routes of the local Alpaca-protocol server (``/v2/orders`` ...).

Submit (``POST``), list with Alpaca's filters, get by id or client order id, replace
(``PATCH``) and cancel.  A body is read by :mod:`live.sim.order_request`, the order lives in
:class:`live.sim.state.SimState` and the answer is :func:`live.sim.wire.order_json`; a refusal
is a :class:`~live.sim.orders.SimRejection` that :mod:`live.sim.middleware` turns into
Alpaca's error body.

``GET /v2/orders`` takes, as Alpaca documents: ``status`` (``open``, ``closed``, ``all``;
default ``open``), ``limit`` (default 50, at most 500), ``after`` and ``until`` (submission
time, both exclusive), ``direction`` (``asc``/``desc`` by submission time, default ``desc``),
``side``, ``symbols`` (comma-separated) and ``nested`` (accepted; the server has no multi-leg
orders to roll up).  Every order has its own submission time, so paging by ``until`` ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from live.sim.appkeys import STATE_KEY
from live.sim.order_request import parse_order_body, parse_replace_body
from live.sim.orders import SimOrder, SimRejection
from live.sim.params import int_param, parse_time, quote
from live.sim.wire import order_json

MAX_LIST_LIMIT = 500
_CHOICES = {"status": ("open", "closed", "all"), "direction": ("asc", "desc"),
            "side": ("buy", "sell"), "nested": ("true", "false")}


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise SimRejection(400, 40010000, "request body is not valid JSON") from exc


async def post_order(request: web.Request) -> web.Response:
    """``POST /v2/orders``: any simple order, by ``qty`` or ``notional``."""
    fields = parse_order_body(await _json_body(request))
    return web.json_response(order_json(request.app[STATE_KEY].submit(**fields)))


async def patch_order(request: web.Request) -> web.Response:
    """``PATCH /v2/orders/{order_id}``: replace an open order; answers the new order."""
    fields = parse_replace_body(await _json_body(request))
    state = request.app[STATE_KEY]
    return web.json_response(order_json(state.replace(request.match_info["order_id"],
                                                      **fields)))


def _choice(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name) or None
    if value is not None and value.lower() not in _CHOICES[name]:
        raise SimRejection(422, 40010001, f"invalid {name}: {quote(value)}; use one of "
                           f"{', '.join(_CHOICES[name])}")
    return None if value is None else value.lower()


def order_filter(query: Mapping[str, str]) -> tuple[Any, str, int]:
    """The test an order must pass to be listed, the direction and the limit of a query.

    Raises
    ------
    SimRejection
        422 for a value outside Alpaca's choices, an unparsable time or a bad limit.
    """
    status = _choice(query, "status") or "open"
    side = _choice(query, "side")
    _choice(query, "nested")
    after = parse_time(query["after"], "after") if query.get("after") else None
    until = parse_time(query["until"], "until") if query.get("until") else None
    symbols = ({s.strip().upper() for s in query["symbols"].split(",") if s.strip()}
               if query.get("symbols") else None)
    limit = int_param(query, "limit", 50)
    if limit < 1:
        raise SimRejection(422, 42210000, "limit must be positive")

    def wanted(order: SimOrder) -> bool:
        return ((status == "all" or order.is_open == (status == "open"))
                and (side is None or order.side == side)
                and (symbols is None or order.symbol in symbols)
                and (after is None or order.submitted_at > after)
                and (until is None or order.submitted_at < until))

    return wanted, _choice(query, "direction") or "desc", min(limit, MAX_LIST_LIMIT)


async def list_orders(request: web.Request) -> web.Response:
    """``GET /v2/orders`` with Alpaca's filters (see the module docstring)."""
    wanted, direction, limit = order_filter(request.query)
    orders = [order for order in request.app[STATE_KEY].orders if wanted(order)]
    orders.sort(key=lambda order: order.submitted_at)
    if direction == "desc":
        orders.reverse()
    return web.json_response([order_json(order) for order in orders[:limit]])


async def get_order(request: web.Request) -> web.Response:
    """``GET /v2/orders/{order_id}``."""
    state = request.app[STATE_KEY]
    return web.json_response(order_json(state.get_order(request.match_info["order_id"])))


async def get_order_by_client_id(request: web.Request) -> web.Response:
    """``GET /v2/orders:by_client_order_id?client_order_id=...``."""
    state = request.app[STATE_KEY]
    client_order_id = request.query.get("client_order_id", "")
    return web.json_response(order_json(state.get_order_by_client_id(client_order_id)))


async def cancel_order(request: web.Request) -> web.Response:
    """``DELETE /v2/orders/{order_id}``: 204 with no body, like Alpaca."""
    request.app[STATE_KEY].cancel(request.match_info["order_id"])
    return web.Response(status=204)


async def cancel_all_orders(request: web.Request) -> web.Response:
    """``DELETE /v2/orders``: a 207 multi-status list, one entry per canceled order."""
    state = request.app[STATE_KEY]
    results = [{"id": order.id, "status": 200, "body": order_json(order)}
               for order in state.cancel_all()]
    return web.json_response(results, status=207)


def add_order_routes(app: web.Application) -> None:
    """Register the ``/v2/orders`` routes on ``app``."""
    app.router.add_post("/v2/orders", post_order)
    app.router.add_get("/v2/orders", list_orders)
    app.router.add_delete("/v2/orders", cancel_all_orders)
    app.router.add_get("/v2/orders:by_client_order_id", get_order_by_client_id)
    app.router.add_get("/v2/orders/{order_id}", get_order)
    app.router.add_patch("/v2/orders/{order_id}", patch_order)
    app.router.add_delete("/v2/orders/{order_id}", cancel_order)
