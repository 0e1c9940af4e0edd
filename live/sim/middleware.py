"""The local Alpaca-protocol server's middlewares: errors, credentials, pushed events.

Every answer the server gives is Alpaca's JSON: aiohttp's own errors, a handler's
:class:`~live.sim.orders.SimRejection` and an unexpected failure alike, because alpaca-py
reads every error body as JSON.  :func:`live.sim.server.build_app` stacks them, outermost
first: :func:`make_request_log_middleware`, :func:`json_errors_middleware`,
:func:`make_auth_middleware`, the fault middleware (:mod:`live.sim.faults`),
:func:`events_middleware`, :func:`rejection_middleware`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from loguru import logger

from live.sim.appkeys import HUB_KEY
from live.sim.orders import SimRejection
from live.sim.streams import is_stream_path
from live.sim.wire import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Alpaca-style codes of the errors aiohttp raises itself (no route, wrong method, big body).
_HTTP_ERROR_CODES = {404: 40410000, 405: 40510000, 413: 41310000}


def make_request_log_middleware(counter: Counter) -> Any:
    """Count every request in ``counter`` by ``"METHOD /route"`` and log it (DEBUG).

    The route is the pattern it matched (``GET /v2/stocks/{symbol}/bars``), or ``(no
    route)``; ``/sim/status`` reports the counts.  Keys travel in headers, never logged.
    """

    @web.middleware
    async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "(no route)"
        counter[f"{request.method} {route}"] += 1
        logger.debug("sim request {} {}", request.method, request.path_qs[:300])
        return await handler(request)

    return request_log


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


def fault_exempt(path: str) -> bool:
    """Whether ``path`` is never failed by the fault middleware: ``/sim/*`` and websockets."""
    return path.startswith("/sim/") or is_stream_path(path)

