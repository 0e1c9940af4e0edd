"""A local Alpaca-protocol server that replays datasets' daily bars.

It speaks the subset of Alpaca's trading REST API (``/v2/account``, ``/v2/orders``,
``/v2/positions``, ``/v2/assets`` ...), of its historical market-data API
(``/v2/stocks/bars``, ``/v2/stocks/{symbol}/bars``; see :mod:`live.sim.routes_data`) and of
its two websockets (``/stream`` for trade updates, ``/v2/iex`` for market data; see
:mod:`live.sim.streams`) that alpaca-py's ``TradingClient``, ``StockHistoricalDataClient``,
``TradingStream`` and ``StockDataStream`` use, so the real clients can be pointed at it with
``url_override``; the older alpaca-trade-api's routes (single-symbol bars, ``/stream/``) too.

The replay only moves when told: ``POST /sim/advance`` moves to the next bar, fills open
market orders at its open (see :class:`live.sim.state.SimState`), pushes the trade updates and
the new bars to the websockets, then answers.  ``GET /sim/status`` says where it stands and
counts the requests answered.  Failures can be injected with
:class:`live.sim.faults.SimFaults`; corporate actions (``POST /sim/adjust``) and an open
session (``POST /sim/open``) are switched on by :mod:`live.sim.routes_control`.

This module assembles the app; the routes are in :mod:`live.sim.routes_trading`,
:mod:`live.sim.routes_positions`, :mod:`live.sim.routes_data`,
:mod:`live.sim.routes_control` and :mod:`live.sim.routes_streams`, the middlewares in
:mod:`live.sim.middleware`, and the thread it is served from in :mod:`live.aiothread`.

Examples
--------
>>> app = build_app({"SIM": frame}, key_id="k", secret="s")   # doctest: +SKIP
>>> with serve(app) as server:                                 # doctest: +SKIP
...     client = TradingClient("k", "s", paper=True, url_override=server.url)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import date

import pandas as pd
from aiohttp import web

from live.aiothread import RunningServer
from live.sim.appkeys import (
    ADVANCE_HOOKS_KEY,
    HUB_KEY,
    INJECTOR_KEY,
    MAX_PAGE_KEY,
    REQUESTS_KEY,
    STATE_KEY,
    VIEWS_KEY,
)
from live.sim.faults import FaultInjector, SimFaults, make_fault_middleware
from live.sim.marketdata import BarViews
from live.sim.middleware import (
    events_middleware,
    fault_exempt,
    json_errors_middleware,
    make_auth_middleware,
    make_request_log_middleware,
    rejection_middleware,
)
from live.sim.routes_control import add_control_routes
from live.sim.routes_data import add_data_routes
from live.sim.routes_orders import add_order_routes
from live.sim.routes_positions import add_position_routes
from live.sim.routes_streams import add_stream_routes
from live.sim.routes_trading import add_trading_routes
from live.sim.state import SimState
from live.sim.streams import StreamHub

DEFAULT_MAX_PAGE_SIZE = 10_000


def _add_routes(app: web.Application) -> None:
    add_trading_routes(app)
    add_order_routes(app)
    add_position_routes(app)
    add_data_routes(app)
    add_control_routes(app)
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
        Largest page the bars routes return, whatever ``limit`` asks (Alpaca: 10,000).
    partial_fills : bool
        Fill every order in two executions.
    faults : SimFaults or None
        Failures to inject; ``None`` injects none.

    Returns
    -------
    aiohttp.web.Application
        The app; the replay state is ``app[STATE_KEY]``, the websockets ``app[HUB_KEY]``
        (the keys are in :mod:`live.sim.appkeys`).

    Raises
    ------
    ValueError
        Bad feeds, a start after the last bar, or negative costs.
    """
    faults = faults or SimFaults()
    state = SimState(feeds, start=start, cash=cash, commission=commission, slippage=slippage,
                     partial_fills=partial_fills, reject_every=faults.reject_every)
    injector = FaultInjector(faults)
    requests: Counter = Counter()
    app = web.Application(middlewares=[make_request_log_middleware(requests),
                                       json_errors_middleware,
                                       make_auth_middleware(key_id, secret),
                                       make_fault_middleware(injector, fault_exempt),
                                       events_middleware, rejection_middleware])
    app[STATE_KEY] = state
    app[MAX_PAGE_KEY] = int(max_page_size)
    app[INJECTOR_KEY] = injector
    app[HUB_KEY] = StreamHub(state, key_id, secret, injector)
    app[VIEWS_KEY] = BarViews(state)
    app[REQUESTS_KEY] = requests
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
