"""The trading REST routes of the local Alpaca-protocol server (``/v2/account`` ...).

What alpaca-py's ``TradingClient`` calls: account, clock, calendar, assets, market orders
(by ``qty`` or ``notional``) and positions.  Each handler reads or changes the replay
(:class:`live.sim.state.SimState`) and answers with :mod:`live.sim.wire`'s JSON; a refusal is
a :class:`~live.sim.orders.SimRejection` that :mod:`live.sim.middleware` turns into Alpaca's
error body.
"""

from __future__ import annotations

import pandas as pd
from aiohttp import web

from live.sim.appkeys import STATE_KEY
from live.sim.bars import session_time
from live.sim.orders import SimOrder, SimRejection
from live.sim.state import SimState
from live.sim.wire import (
    MAX_CLIENT_ORDER_ID,
    account_json,
    asset_id,
    asset_json,
    float_field,
    int_param,
    iso,
    order_json,
    parse_day,
    position_json,
    str_field,
)


async def get_account(request: web.Request) -> web.Response:
    """``GET /v2/account``."""
    return web.json_response(account_json(request.app[STATE_KEY]))


async def get_clock(request: web.Request) -> web.Response:
    """``GET /v2/clock``: simulated time is the current bar's close, market closed.

    While the next session is under way (``POST /sim/open``) it is that session's midday,
    market open, and the next open is the session after it.
    """
    state = request.app[STATE_KEY]
    following = state.next_day()
    if state.session_open:
        after = (state.calendar[state.index + 2] if state.index + 2 < len(state.calendar)
                 else following + pd.offsets.BDay(1))
        return web.json_response({"timestamp": iso(session_time(following, "12:00")),
                                  "is_open": True,
                                  "next_open": iso(session_time(after, "09:30")),
                                  "next_close": iso(session_time(following, "16:00"))})
    return web.json_response({"timestamp": iso(state.now), "is_open": False,
                              "next_open": iso(session_time(following, "09:30")),
                              "next_close": iso(session_time(following, "16:00"))})


async def get_calendar(request: web.Request) -> web.Response:
    """``GET /v2/calendar``: one regular session per date of the replay calendar."""
    days = request.app[STATE_KEY].calendar
    if "start" in request.query:
        days = days[days >= parse_day(request.query["start"], "start")]
    if "end" in request.query:
        days = days[days <= parse_day(request.query["end"], "end")]
    return web.json_response([{"date": day.date().isoformat(), "open": "09:30",
                               "close": "16:00", "session_open": "0400",
                               "session_close": "2000"} for day in days])


def _symbol_of(state: SimState, wanted: str) -> str | None:
    """The replayed symbol named by ``wanted`` (a symbol or an asset id), else ``None``."""
    for symbol in state.symbols:
        if wanted.upper() == symbol or wanted == asset_id(symbol):
            return symbol
    return None


async def get_asset(request: web.Request) -> web.Response:
    """``GET /v2/assets/{symbol_or_id}``."""
    wanted = request.match_info["symbol"]
    symbol = _symbol_of(request.app[STATE_KEY], wanted)
    if symbol is None:
        raise SimRejection(404, 40410000, f"asset not found for {wanted}")
    return web.json_response(asset_json(symbol))


async def post_order(request: web.Request) -> web.Response:
    """``POST /v2/orders``: market orders only, by ``qty`` or ``notional``."""
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError as exc:
        raise SimRejection(400, 40010000, "request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise SimRejection(400, 40010000, "request body must be a JSON object")
    if body.get("type", "market") != "market" or body.get("order_class", "simple") != "simple":
        raise SimRejection(422, 40010001, "only simple market orders are supported")
    order = state.submit(symbol=str_field(body, "symbol", ""), side=str_field(body, "side", ""),
                         qty=float_field(body, "qty"), notional=float_field(body, "notional"),
                         time_in_force=str_field(body, "time_in_force", "day"),
                         client_order_id=str_field(body, "client_order_id",
                                                   max_length=MAX_CLIENT_ORDER_ID))
    return web.json_response(order_json(order))


def _order_matches(order: SimOrder, status: str, symbols: set[str] | None) -> bool:
    if symbols is not None and order.symbol not in symbols:
        return False
    return status == "all" or order.is_open == (status == "open")


async def list_orders(request: web.Request) -> web.Response:
    """``GET /v2/orders`` with ``status`` (open, closed, all), ``limit``, ``direction``."""
    state, query = request.app[STATE_KEY], request.query
    status = query.get("status", "open")
    if status not in ("open", "closed", "all"):
        raise SimRejection(422, 40010001, f"invalid status: {status}")
    symbols = {s.upper() for s in query["symbols"].split(",")} if "symbols" in query else None
    orders = [o for o in state.orders if _order_matches(o, status, symbols)]
    if query.get("direction", "desc") == "desc":
        orders.reverse()
    limit = int_param(query, "limit", 50)
    if limit < 1:
        raise SimRejection(422, 42210000, "limit must be positive")
    orders = orders[:limit]
    return web.json_response([order_json(order) for order in orders])


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


async def list_positions(request: web.Request) -> web.Response:
    """``GET /v2/positions``: every non-zero position, in symbol order."""
    state = request.app[STATE_KEY]
    return web.json_response([position_json(state, symbol) for symbol in state.open_positions()])


async def get_position(request: web.Request) -> web.Response:
    """``GET /v2/positions/{symbol_or_asset_id}``: 404 when flat or unknown."""
    state = request.app[STATE_KEY]
    symbol = _symbol_of(state, request.match_info["symbol"])
    if symbol is None or not state.position(symbol).qty:
        raise SimRejection(404, 40410000, "position does not exist")
    return web.json_response(position_json(state, symbol))


def add_trading_routes(app: web.Application) -> None:
    """Register the trading REST routes on ``app``."""
    app.router.add_get("/v2/account", get_account)
    app.router.add_get("/v2/clock", get_clock)
    app.router.add_get("/v2/calendar", get_calendar)
    app.router.add_get("/v2/assets/{symbol}", get_asset)
    app.router.add_post("/v2/orders", post_order)
    app.router.add_get("/v2/orders", list_orders)
    app.router.add_delete("/v2/orders", cancel_all_orders)
    app.router.add_get("/v2/orders:by_client_order_id", get_order_by_client_id)
    app.router.add_get("/v2/orders/{order_id}", get_order)
    app.router.add_delete("/v2/orders/{order_id}", cancel_order)
    app.router.add_get("/v2/positions", list_positions)
    app.router.add_get("/v2/positions/{symbol}", get_position)
