"""The trading REST routes of the local Alpaca-protocol server (``/v2/account`` ...).

What alpaca-py's ``TradingClient`` reads: account, clock, calendar, assets and positions.
Orders are served by :mod:`live.sim.routes_orders`, and closing a position by
:mod:`live.sim.routes_positions`.  Each handler reads the replay
(:class:`live.sim.state.SimState`) and answers with :mod:`live.sim.wire`'s JSON; a refusal is
a :class:`~live.sim.orders.SimRejection` that :mod:`live.sim.middleware` turns into Alpaca's
error body.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from aiohttp import web

from live.sim.appkeys import STATE_KEY
from live.sim.bars import session_time
from live.sim.orders import SimRejection
from live.sim.params import parse_day
from live.sim.wire import account_json, asset_json, iso, position_json, symbol_of


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


async def get_asset(request: web.Request) -> web.Response:
    """``GET /v2/assets/{symbol_or_id}``."""
    wanted = request.match_info["symbol"]
    symbol = symbol_of(request.app[STATE_KEY], wanted)
    if symbol is None:
        raise SimRejection(404, 40410000, f"asset not found for {wanted}")
    return web.json_response(asset_json(symbol))


#: The values ``GET /v2/assets`` filters accept (Alpaca's); every replayed asset is an
#: active NASDAQ ``us_equity``, so another accepted value lists nothing.
_ASSET_FILTERS = {
    "status": ("active", "inactive"),
    "asset_class": ("us_equity", "us_option", "crypto"),
    "exchange": ("AMEX", "ARCA", "BATS", "NYSE", "NASDAQ", "NYSEARCA", "OTC", "CRYPTO"),
}


def _asset_wanted(asset: dict, query: Mapping[str, str]) -> bool:
    """Whether ``asset`` passes the query's filters (``attributes``: any of them)."""
    for name, allowed in _ASSET_FILTERS.items():
        value = query.get(name)
        if value is not None and value not in allowed:
            raise SimRejection(422, 40010001, f"invalid {name}: {value[:40]!r}; one of "
                               f"{', '.join(allowed)}")
        key = "class" if name == "asset_class" else name
        if value is not None and asset[key] != value:
            return False
    attributes = [a for a in query.get("attributes", "").split(",") if a]
    return not attributes or bool(set(attributes) & set(asset["attributes"]))


async def list_assets(request: web.Request) -> web.Response:
    """``GET /v2/assets``: the replayed symbols, filtered by ``status``, ``asset_class``,
    ``exchange`` and ``attributes``."""
    assets = [asset_json(symbol) for symbol in request.app[STATE_KEY].symbols]
    return web.json_response([a for a in assets if _asset_wanted(a, request.query)])


async def list_positions(request: web.Request) -> web.Response:
    """``GET /v2/positions``: every non-zero position, in symbol order."""
    state = request.app[STATE_KEY]
    return web.json_response([position_json(state, symbol) for symbol in state.open_positions()])


async def get_position(request: web.Request) -> web.Response:
    """``GET /v2/positions/{symbol_or_asset_id}``: 404 when flat or unknown."""
    state = request.app[STATE_KEY]
    symbol = symbol_of(state, request.match_info["symbol"])
    if symbol is None or not state.position(symbol).qty:
        raise SimRejection(404, 40410000, "position does not exist")
    return web.json_response(position_json(state, symbol))


def add_trading_routes(app: web.Application) -> None:
    """Register the trading REST routes on ``app``."""
    app.router.add_get("/v2/account", get_account)
    app.router.add_get("/v2/clock", get_clock)
    app.router.add_get("/v2/calendar", get_calendar)
    app.router.add_get("/v2/assets", list_assets)
    app.router.add_get("/v2/assets/{symbol}", get_asset)
    app.router.add_get("/v2/positions", list_positions)
    app.router.add_get("/v2/positions/{symbol}", get_position)
