"""A local Alpaca-protocol server that replays a dataset's daily bars.

It speaks the subset of Alpaca's trading REST API (``/v2/account``, ``/v2/orders`` ...) and of
its historical market-data API (``/v2/stocks/bars``) that alpaca-py's ``TradingClient`` and
``StockHistoricalDataClient`` call, so the real clients can be pointed at it with
``url_override="http://127.0.0.1:PORT"``.

The replay only moves when told: ``POST /sim/advance`` moves to the next bar and fills open
market orders at its open (see :class:`live.sim_state.SimState`).

Examples
--------
>>> app = build_app(frame, "SIM", key_id="k", secret="s", start=None)  # doctest: +SKIP
>>> with serve(app) as server:                                          # doctest: +SKIP
...     client = TradingClient("k", "s", paper=True, url_override=server.url)
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import pandas as pd
from aiohttp import web
from loguru import logger

from live.sim_json import (
    account_json,
    asset_json,
    bar_json,
    error_response,
    float_field,
    iso,
    order_json,
    parse_time,
    position_json,
)
from live.sim_state import (
    SimOrder,
    SimRejection,
    SimState,
    bar_timestamp,
    deterministic_uuid,
    session_time,
)

STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
MAX_PAGE_KEY: web.AppKey[int] = web.AppKey("max_page_size", int)
DEFAULT_MAX_PAGE_SIZE = 10_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_auth_middleware(key_id: str, secret: str) -> Any:
    """Refuse any request whose key headers differ from ``key_id`` / ``secret`` with 401."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (request.headers.get("APCA-API-KEY-ID") != key_id
                or request.headers.get("APCA-API-SECRET-KEY") != secret):
            logger.warning("sim server refused {} {}: bad credentials", request.method,
                           request.path)
            return error_response(401, 40110000, "request is not authorized")
        return await handler(request)

    return auth


@web.middleware
async def rejection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn a :class:`SimRejection` raised by a handler into Alpaca's JSON error."""
    try:
        return await handler(request)
    except SimRejection as exc:
        logger.debug("sim server {} {} -> {} {}", request.method, request.path, exc.status,
                     exc.message)
        return error_response(exc.status, exc.code, exc.message)


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
    """``GET /v2/calendar``: one regular session per bar of the dataset."""
    days = request.app[STATE_KEY].bars.index
    if "start" in request.query:
        days = days[days >= pd.Timestamp(request.query["start"])]
    if "end" in request.query:
        days = days[days <= pd.Timestamp(request.query["end"])]
    return web.json_response([{"date": day.date().isoformat(), "open": "09:30",
                               "close": "16:00", "session_open": "0400",
                               "session_close": "2000"} for day in days])


async def get_asset(request: web.Request) -> web.Response:
    """``GET /v2/assets/{symbol_or_id}``."""
    state = request.app[STATE_KEY]
    asset = asset_json(state)
    wanted = request.match_info["symbol"]
    if wanted.upper() != state.symbol and wanted != asset["id"]:
        raise SimRejection(404, 40410000, f"asset not found for {wanted}")
    return web.json_response(asset)


async def post_order(request: web.Request) -> web.Response:
    """``POST /v2/orders``: market orders only, by ``qty`` or ``notional``."""
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError as exc:
        raise SimRejection(400, 40010000, "request body is not valid JSON") from exc
    if body.get("type", "market") != "market" or body.get("order_class", "simple") != "simple":
        raise SimRejection(422, 40010001, "only simple market orders are supported")
    order = state.submit(symbol=str(body.get("symbol", "")), side=str(body.get("side", "")),
                         qty=float_field(body, "qty"), notional=float_field(body, "notional"),
                         time_in_force=str(body.get("time_in_force", "day")),
                         client_order_id=body.get("client_order_id"))
    return web.json_response(order_json(state, order))


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
    orders = orders[: int(query.get("limit", 50))]
    return web.json_response([order_json(state, order) for order in orders])


async def get_order(request: web.Request) -> web.Response:
    """``GET /v2/orders/{order_id}``."""
    state = request.app[STATE_KEY]
    return web.json_response(order_json(state, state.get_order(request.match_info["order_id"])))


async def get_order_by_client_id(request: web.Request) -> web.Response:
    """``GET /v2/orders:by_client_order_id?client_order_id=...``."""
    state = request.app[STATE_KEY]
    client_order_id = request.query.get("client_order_id", "")
    return web.json_response(order_json(state, state.get_order_by_client_id(client_order_id)))


async def cancel_order(request: web.Request) -> web.Response:
    """``DELETE /v2/orders/{order_id}``: 204 with no body, like Alpaca."""
    request.app[STATE_KEY].cancel(request.match_info["order_id"])
    return web.Response(status=204)


async def cancel_all_orders(request: web.Request) -> web.Response:
    """``DELETE /v2/orders``: a 207 multi-status list, one entry per canceled order."""
    state = request.app[STATE_KEY]
    results = [{"id": order.id, "status": 200, "body": order_json(state, order)}
               for order in state.cancel_all()]
    return web.json_response(results, status=207)


async def list_positions(request: web.Request) -> web.Response:
    """``GET /v2/positions``."""
    state = request.app[STATE_KEY]
    return web.json_response([position_json(state)] if state.position_qty else [])


async def get_position(request: web.Request) -> web.Response:
    """``GET /v2/positions/{symbol}``: 404 when flat."""
    state = request.app[STATE_KEY]
    wanted = request.match_info["symbol"]
    ids = {state.symbol, deterministic_uuid("asset", state.symbol)}
    if (wanted.upper() not in ids and wanted not in ids) or not state.position_qty:
        raise SimRejection(404, 40410000, "position does not exist")
    return web.json_response(position_json(state))


# ------------------------------------------------------------------------- data routes
def _encode_token(day: pd.Timestamp) -> str:
    return base64.urlsafe_b64encode(day.date().isoformat().encode()).decode()


def _decode_token(token: str) -> pd.Timestamp:
    try:
        return pd.Timestamp(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError as exc:
        raise SimRejection(422, 42210000, "invalid page_token") from exc


def _bars_window(state: SimState, query: Any) -> pd.DataFrame:
    """Visible bars inside ``[start, end]``, sorted as asked, after ``page_token``."""
    frame = state.visible_bars()
    stamps = pd.DatetimeIndex([bar_timestamp(day) for day in frame.index])
    keep = pd.Series(True, index=frame.index)
    if query.get("start"):
        keep &= stamps >= parse_time(query["start"])
    if query.get("end"):
        keep &= stamps <= parse_time(query["end"])
    descending = query.get("sort", "asc") == "desc"
    if query.get("page_token"):
        last = _decode_token(query["page_token"])
        keep &= (frame.index < last) if descending else (frame.index > last)
    frame = frame[keep.to_numpy()]
    return frame.iloc[::-1] if descending else frame


async def get_stock_bars(request: web.Request) -> web.Response:
    """``GET /v2/stocks/bars``: daily bars up to the current one, paged by ``limit``.

    The page size is ``min(limit, max_page_size)``; ``next_page_token`` is ``null`` on the
    last page.  Symbols other than the replayed one get no bars.
    """
    state, query = request.app[STATE_KEY], request.query
    if query.get("timeframe", "1Day") not in ("1Day", "1D"):
        raise SimRejection(422, 42210000, f"unsupported timeframe {query.get('timeframe')}")
    symbols = [s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()]
    limit = min(int(query.get("limit") or 1000), request.app[MAX_PAGE_KEY])
    if limit < 1:
        raise SimRejection(422, 42210000, "limit must be positive")
    frame = _bars_window(state, query) if state.symbol in symbols else state.bars.iloc[:0]
    page = frame.iloc[:limit]
    token = _encode_token(page.index[-1]) if len(frame) > limit else None
    bars = {state.symbol: [bar_json(day, row) for day, row in page.iterrows()]} if len(page) else {}
    return web.json_response({"bars": bars, "next_page_token": token})


# -------------------------------------------------------------------------- sim routes
async def post_advance(request: web.Request) -> web.Response:
    """``POST /sim/advance``: move to the next bar, fill open orders at its open."""
    state = request.app[STATE_KEY]
    filled = state.advance()
    row = state.bars.iloc[state.index]
    return web.json_response({"symbol": state.symbol, "index": state.index,
                              "bar": bar_json(state.current_day, row),
                              "finished": state.finished,
                              "fills": [order_json(state, order) for order in filled]})


# ------------------------------------------------------------------------------ the app
def build_app(ohlcv: pd.DataFrame, symbol: str, *, key_id: str, secret: str,
              start: date | None = None, cash: float = 100_000.0, commission: float = 0.0,
              slippage: float = 0.0,
              max_page_size: int = DEFAULT_MAX_PAGE_SIZE) -> web.Application:
    """Build the aiohttp application that replays ``ohlcv`` as ``symbol``.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Daily bars, DatetimeIndex (UTC-naive dates), columns open/high/low/close/volume.
    symbol : str
        Symbol the bars are served and traded under.
    key_id, secret : str
        The only credentials accepted in ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``.
    start : datetime.date or None
        First replayed bar (first bar on or after it); earlier bars are history.
    cash : float
        Starting cash.
    commission : float
        Commission as a fraction of each fill's notional.
    slippage : float
        Fraction by which fills are worse than the open.
    max_page_size : int
        Largest page ``/v2/stocks/bars`` returns, whatever ``limit`` asks (Alpaca: 10,000).

    Returns
    -------
    aiohttp.web.Application
        The app; the replay state is ``app[STATE_KEY]``.
    """
    state = SimState(ohlcv, symbol, start=start, cash=cash, commission=commission,
                     slippage=slippage)
    app = web.Application(middlewares=[make_auth_middleware(key_id, secret),
                                       rejection_middleware])
    app[STATE_KEY] = state
    app[MAX_PAGE_KEY] = int(max_page_size)
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
    return app


# ---------------------------------------------------------------------------- runner
class RunningServer:
    """An app served on its own event loop in a daemon thread.

    Use :func:`serve` to start one; call :meth:`stop` (or use it as a context manager) to
    shut it down.

    Attributes
    ----------
    host : str
        Bound host.
    port : int
        Bound port (the ephemeral one when asked for port 0).
    url : str
        ``http://host:port``, the value for alpaca-py's ``url_override``.
    """

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sim-server", daemon=True)

    @property
    def url(self) -> str:
        """Base URL for alpaca-py's ``url_override``."""
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
            self.port = int(self._runner.addresses[0][1])
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

    def start(self, timeout: float = 10.0) -> RunningServer:
        """Start the thread and wait until the socket is bound."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("sim server did not start in time")
        if self._error is not None:
            raise RuntimeError("sim server failed to start") from self._error
        logger.info("sim server listening on {}", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, close the socket and join the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            logger.info("sim server on {} stopped", self.url)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


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
