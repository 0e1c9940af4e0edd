"""The replay's own routes, outside Alpaca's API: ``POST /sim/advance`` and ``GET /sim/status``.

The replay only moves when told: :func:`post_advance` moves to the next bar, fills open
market orders at its open, pushes the trade updates and the new bars to the websockets, runs
the advance hooks (e.g. ``sim-server --state``'s saver), then answers.
"""

from __future__ import annotations

from aiohttp import web

from live.sim.appkeys import ADVANCE_HOOKS_KEY, HUB_KEY, STATE_KEY
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
    """``GET /sim/status``: ``{"index", "day", "bar_time", "finished", "symbols"}``."""
    return web.json_response(status_json(request.app[STATE_KEY]))


def add_control_routes(app: web.Application) -> None:
    """Register ``/sim/advance`` and ``/sim/status`` on ``app``."""
    app.router.add_post("/sim/advance", post_advance)
    app.router.add_get("/sim/status", get_status)
