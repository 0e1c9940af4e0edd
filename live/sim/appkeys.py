"""The keys under which the local Alpaca-protocol server's app holds its parts.

:func:`live.sim.server.build_app` fills them; the route handlers, the middlewares and
``ensemble-bt sim-server`` (its saver) read them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from aiohttp import web

from live.sim.faults import FaultInjector
from live.sim.marketdata import BarViews
from live.sim.state import SimState
from live.sim.streams import StreamHub

AdvanceHook = Callable[[SimState], None]

STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
MAX_PAGE_KEY: web.AppKey[int] = web.AppKey("max_page_size", int)
INJECTOR_KEY: web.AppKey[FaultInjector] = web.AppKey("sim_faults", FaultInjector)
HUB_KEY: web.AppKey[StreamHub] = web.AppKey("sim_stream_hub", StreamHub)
#: Each feed's and adjustment's bars, and the corporate-action switches.
VIEWS_KEY: web.AppKey[BarViews] = web.AppKey("sim_bar_views", BarViews)
#: Requests answered so far, by ``"METHOD /route"`` (``/sim/status`` reports them).
REQUESTS_KEY: web.AppKey[Counter] = web.AppKey("sim_requests", Counter)
#: Callables run with the state after every advance, before the response (e.g. persistence).
ADVANCE_HOOKS_KEY: web.AppKey[list[AdvanceHook]] = web.AppKey("sim_advance_hooks", list)
