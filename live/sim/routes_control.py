"""The replay's own routes, outside Alpaca's API.

- ``POST /sim/advance``: the replay only moves when told.  It moves to the next bar, fills
  open market orders at its open, pushes the trade updates and the new bars to the
  websockets, runs the advance hooks (e.g. ``sim-server --state``'s saver), then answers.
- ``GET /sim/status``: where the replay stands, and how many requests the server answered
  by route (``"requests": {"GET /v2/stocks/bars": 3, ...}``) and bars it served.
- ``POST /sim/adjust {"symbol": "AAPL", "split": 2}`` (or ``"dividend": 0.5``): a corporate
  action whose ex-date is the next session; the market-data API re-adjusts the history it
  serves (:mod:`live.sim.marketdata`).
- ``POST /sim/open``: the next session is under way.  The clock says the market is open at
  its midday and the bars routes serve its bar as today's partial bar, until the next
  advance.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from live.sim.appkeys import ADVANCE_HOOKS_KEY, HUB_KEY, REQUESTS_KEY, STATE_KEY, VIEWS_KEY
from live.sim.orders import SimRejection
from live.sim.params import float_field, str_field
from live.sim.wire import advance_json, status_json


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
    """``GET /sim/status``: ``{"index", "day", "bar_time", "finished", "symbols", "orders",
    "duplicate_submissions", "session_open", "requests", "bars_served", "actions"}``."""
    app = request.app
    views = app[VIEWS_KEY]
    body = status_json(app[STATE_KEY])
    body.update(session_open=app[STATE_KEY].session_open,
                requests=dict(sorted(app[REQUESTS_KEY].items())),
                bars_served=views.bars_served,
                actions=[{"symbol": a.symbol, "ex_date": _day(request, a.index),
                          "split": a.split, "dividend": a.dividend} for a in views.actions])
    return web.json_response(body)


def _day(request: web.Request, index: int) -> str:
    return request.app[STATE_KEY].calendar[index].date().isoformat()


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise SimRejection(400, 40010000, "request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise SimRejection(400, 40010000, "request body must be a JSON object")
    return body


async def post_adjust(request: web.Request) -> web.Response:
    """``POST /sim/adjust``: a split or dividend of a symbol, ex-date the next session.

    Answers ``{"symbol", "ex_date", "split", "dividend"}``; 404 for a symbol not replayed,
    409 on the last bar, 422 for a bad number.
    """
    body = await _json_body(request)
    action = request.app[VIEWS_KEY].add_action(str_field(body, "symbol", "") or "",
                                               split=float_field(body, "split"),
                                               dividend=float_field(body, "dividend"))
    return web.json_response({"symbol": action.symbol, "ex_date": _day(request, action.index),
                              "split": action.split, "dividend": action.dividend})


async def post_open(request: web.Request) -> web.Response:
    """``POST /sim/open``: the next session opens (409 on the last bar); answers the status."""
    state = request.app[STATE_KEY]
    if state.finished:
        raise SimRejection(409, 40910000, "replay finished: no next session to open")
    state.session_open = True
    return web.json_response({**status_json(state), "session_open": True})


def add_control_routes(app: web.Application) -> None:
    """Register the ``/sim/*`` routes on ``app``."""
    app.router.add_post("/sim/advance", post_advance)
    app.router.add_get("/sim/status", get_status)
    app.router.add_post("/sim/adjust", post_adjust)
    app.router.add_post("/sim/open", post_open)
