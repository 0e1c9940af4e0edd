"""A local Alpaca-protocol server that replays datasets' daily bars.

It speaks the subset of Alpaca's trading REST API (``/v2/account``, ``/v2/orders`` ...), of its
historical market-data API (``/v2/stocks/bars``) and of its two websockets (``/stream`` for
trade updates, ``/v2/iex`` for market data; see :mod:`live.sim.streams`) that alpaca-py's
``TradingClient``, ``StockHistoricalDataClient``, ``TradingStream`` and ``StockDataStream``
use, so the real clients can be pointed at it with ``url_override``.

The replay only moves when told: ``POST /sim/advance`` moves to the next bar, fills open
market orders at its open (see :class:`live.sim.state.SimState`), pushes the trade updates and
the new bars to the websockets, then answers.  ``GET /sim/status`` says where it stands.
Failures can be injected with :class:`live.sim.faults.SimFaults`.

Examples
--------
>>> app = build_app({"SIM": frame}, key_id="k", secret="s")   # doctest: +SKIP
>>> with serve(app) as server:                                 # doctest: +SKIP
...     client = TradingClient("k", "s", paper=True, url_override=server.url)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from aiohttp import web
from loguru import logger

from live.aiothread import RunningServer
from live.sim.faults import FaultInjector, SimFaults, make_fault_middleware
from live.sim.state import SimOrder, SimRejection, SimState, bar_timestamp, session_time
from live.sim.streams import HUB_KEY, StreamHub, add_stream_routes, is_stream_path
from live.sim.wire import (
    MAX_CLIENT_ORDER_ID,
    account_json,
    advance_json,
    asset_id,
    asset_json,
    bar_json,
    error_response,
    float_field,
    iso,
    order_json,
    parse_day,
    parse_time,
    position_json,
    status_json,
    str_field,
)

STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
MAX_PAGE_KEY: web.AppKey[int] = web.AppKey("max_page_size", int)
INJECTOR_KEY: web.AppKey[FaultInjector] = web.AppKey("sim_faults", FaultInjector)
AdvanceHook = Callable[[SimState], None]
#: Callables run with the state after every advance, before the response (e.g. persistence).
ADVANCE_HOOKS_KEY: web.AppKey[list[AdvanceHook]] = web.AppKey("sim_advance_hooks", list)
DEFAULT_MAX_PAGE_SIZE = 10_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -------------------------------------------------------------------------- middleware
#: Alpaca-style codes of the errors aiohttp raises itself (no route, wrong method, big body).
_HTTP_ERROR_CODES = {404: 40410000, 405: 40510000, 413: 41310000}


@web.middleware
async def json_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer aiohttp's own errors (404, 405 ...) and unexpected failures as Alpaca JSON.

    alpaca-py reads every error body as JSON; a text body from aiohttp would surface as a
    confusing decode error instead of the status.  A failure inside an open websocket is
    left to aiohttp: the response has been sent already.
    """
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        message = f"{exc.reason}: {request.method} {request.path}"[:200]
        code = _HTTP_ERROR_CODES.get(exc.status, exc.status * 100_000)
        return error_response(exc.status, code, message, headers=headers)
    except Exception:
        if is_stream_path(request.path):
            raise
        logger.exception("sim server {} {} failed", request.method, request.path)
        return error_response(500, 50010000, "internal server error")


def make_auth_middleware(key_id: str, secret: str) -> Any:
    """Refuse any request whose key headers differ from ``key_id`` / ``secret`` with 401.

    The websockets are exempt: their clients authenticate in-band.
    """

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_stream_path(request.path):
            return await handler(request)
        if (request.headers.get("APCA-API-KEY-ID") != key_id
                or request.headers.get("APCA-API-SECRET-KEY") != secret):
            logger.warning("sim server refused {} {}: bad credentials", request.method,
                           request.path)
            return error_response(401, 40110000, "request is not authorized")
        return await handler(request)

    return auth


@web.middleware
async def events_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Push the trade events a request caused to the trading stream before answering it."""
    try:
        return await handler(request)
    finally:
        if not is_stream_path(request.path):
            await request.app[HUB_KEY].publish_events()


@web.middleware
async def rejection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn a :class:`SimRejection` raised by a handler into Alpaca's JSON error."""
    try:
        return await handler(request)
    except SimRejection as exc:
        logger.debug("sim server {} {} -> {} {}", request.method, request.path, exc.status,
                     exc.message)
        return error_response(exc.status, exc.code, exc.message)


def _fault_exempt(path: str) -> bool:
    return path.startswith("/sim/") or is_stream_path(path)


# ---------------------------------------------------------------------- trading routes
async def get_account(request: web.Request) -> web.Response:
    """``GET /v2/account``."""
    return web.json_response(account_json(request.app[STATE_KEY]))


async def get_clock(request: web.Request) -> web.Response:
    """``GET /v2/clock``: simulated time is the current bar's close, market closed."""
    state = request.app[STATE_KEY]
    following = state.next_day()
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


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name) or default)
    except ValueError as exc:
        raise SimRejection(422, 42210000, f"invalid {name}: {query.get(name)!r}") from exc


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
    limit = _int_param(query, "limit", 50)
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


# ------------------------------------------------------------------------- data routes
BarKey = tuple[str, pd.Timestamp]


def _encode_token(symbol: str, day: pd.Timestamp) -> str:
    """A page token naming the last bar served: its symbol and date."""
    return base64.urlsafe_b64encode(f"{symbol}|{day.date().isoformat()}".encode()).decode()


def _decode_token(token: str) -> BarKey:
    try:
        symbol, day = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        return symbol, pd.Timestamp(day)
    except (ValueError, binascii.Error) as exc:
        raise SimRejection(422, 42210000, "invalid page_token") from exc


def _visible_days(state: SimState, query: Mapping[str, str]) -> pd.DatetimeIndex:
    """Calendar dates up to the current bar whose stamps fall inside ``[start, end]``."""
    days = state.calendar[: state.index + 1]
    stamps = pd.DatetimeIndex([bar_timestamp(day) for day in days])
    keep = np.ones(len(days), dtype=bool)
    if query.get("start"):
        keep &= stamps >= parse_time(query["start"], "start")
    if query.get("end"):
        keep &= stamps <= parse_time(query["end"], "end")
    return days[keep]


def _bar_keys(state: SimState, symbols: list[str], query: Mapping[str, str]) -> list[BarKey]:
    """Bars to serve, ordered by symbol then time (as ``sort`` asks), after ``page_token``.

    Alpaca orders a multi-symbol bars response by symbol first; the page token names the last
    (symbol, date) served, so paging works across symbols.
    """
    descending = query.get("sort", "asc") == "desc"
    days = _visible_days(state, query)
    days = days[::-1] if descending else days
    keys = [(symbol, day) for symbol in sorted(set(symbols) & set(state.symbols))
            for day in days]

    def order(key: BarKey) -> tuple[str, int]:
        return key[0], -key[1].value if descending else key[1].value

    if query.get("page_token"):
        after = order(_decode_token(query["page_token"]))
        keys = [key for key in keys if order(key) > after]
    return keys


async def get_stock_bars(request: web.Request) -> web.Response:
    """``GET /v2/stocks/bars``: daily bars up to the current one, paged by ``limit``.

    The page size is ``min(limit, max_page_size)`` bars over all symbols; ``next_page_token``
    is ``null`` on the last page.  Symbols that are not replayed get no bars.
    """
    state, query = request.app[STATE_KEY], request.query
    if query.get("timeframe", "1Day") not in ("1Day", "1D"):
        raise SimRejection(422, 42210000, f"unsupported timeframe {query.get('timeframe')}")
    symbols = [s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()]
    limit = min(_int_param(query, "limit", 1000), request.app[MAX_PAGE_KEY])
    if limit < 1:
        raise SimRejection(422, 42210000, "limit must be positive")
    keys = _bar_keys(state, symbols, query)
    page = keys[:limit]
    token = _encode_token(*page[-1]) if len(keys) > limit else None
    bars: dict[str, list[dict[str, Any]]] = {}
    for symbol, day in page:
        row = state.feeds[symbol].iloc[state.calendar.get_loc(day)]
        bars.setdefault(symbol, []).append(bar_json(day, row))
    return web.json_response({"bars": bars, "next_page_token": token})


# -------------------------------------------------------------------------- sim routes
async def post_advance(request: web.Request) -> web.Response:
    """``POST /sim/advance``: next bar, fills, then trade updates and bars on the websockets.

    Answers ``{"index", "day", "bar_time", "finished", "orders", "bars"}`` once everything
    the advance caused has been sent; 409 past the last bar.
    """
    state, hub = request.app[STATE_KEY], request.app[HUB_KEY]
    async with hub.advance_lock:
        orders = state.advance()
        await hub.publish_events()
        await hub.publish_bars()
        body = advance_json(state, orders)
        for hook in request.app[ADVANCE_HOOKS_KEY]:
            hook(state)
    return web.json_response(body)


async def get_status(request: web.Request) -> web.Response:
    """``GET /sim/status``: ``{"index", "day", "bar_time", "finished", "symbols"}``."""
    return web.json_response(status_json(request.app[STATE_KEY]))


# ------------------------------------------------------------------------------ the app
def _add_routes(app: web.Application) -> None:
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
    app.router.add_get("/v2/stocks/bars", get_stock_bars)
    app.router.add_post("/sim/advance", post_advance)
    app.router.add_get("/sim/status", get_status)
    add_stream_routes(app)


def build_app(feeds: Mapping[str, pd.DataFrame], *, key_id: str, secret: str,
              start: date | None = None, cash: float = 100_000.0, commission: float = 0.0,
              slippage: float = 0.0, max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
              partial_fills: bool = False, faults: SimFaults | None = None) -> web.Application:
    """Build the aiohttp application that replays ``feeds``.

    Parameters
    ----------
    feeds : Mapping of str to pandas.DataFrame
        Daily bars per symbol: DatetimeIndex (UTC-naive dates), columns
        open/high/low/close/volume.  The replay calendar is the dates every frame has.
    key_id, secret : str
        The only credentials accepted, in ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``
        headers and in the websockets' auth messages.
    start : datetime.date or None
        First replayed bar (first calendar date on or after it); earlier bars are history.
    cash : float
        Starting cash.
    commission : float
        Commission as a fraction of each execution's notional.
    slippage : float
        Fraction by which fills are worse than the open.
    max_page_size : int
        Largest page ``/v2/stocks/bars`` returns, whatever ``limit`` asks (Alpaca: 10,000).
    partial_fills : bool
        Fill every order in two executions.
    faults : SimFaults or None
        Failures to inject; ``None`` injects none.

    Returns
    -------
    aiohttp.web.Application
        The app; the replay state is ``app[STATE_KEY]``, the websockets ``app[HUB_KEY]``.

    Raises
    ------
    ValueError
        Bad feeds, a start after the last bar, or negative costs.
    """
    faults = faults or SimFaults()
    state = SimState(feeds, start=start, cash=cash, commission=commission, slippage=slippage,
                     partial_fills=partial_fills, reject_every=faults.reject_every)
    injector = FaultInjector(faults)
    app = web.Application(middlewares=[json_errors_middleware,
                                       make_auth_middleware(key_id, secret),
                                       make_fault_middleware(injector, _fault_exempt),
                                       events_middleware, rejection_middleware])
    app[STATE_KEY] = state
    app[MAX_PAGE_KEY] = int(max_page_size)
    app[INJECTOR_KEY] = injector
    app[HUB_KEY] = StreamHub(state, key_id, secret, injector)
    app[ADVANCE_HOOKS_KEY] = []
    _add_routes(app)
    return app


def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` in a daemon thread and return once it is listening.

    Parameters
    ----------
    app : aiohttp.web.Application
        Usually from :func:`build_app`.
    host : str
        Interface to bind; the default keeps it local.
    port : int
        Port to bind; 0 picks a free one, read it back from ``.port``.

    Returns
    -------
    RunningServer
        The handle: ``.port``, ``.url``, ``.stop()``; also a context manager.
    """
    return RunningServer(app, host, port).start()
