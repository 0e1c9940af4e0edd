"""The read-only status endpoint's error answers: every one ``{"error": "..."}`` JSON.

:func:`error_json` is the one shape every refusal takes, whether a handler, the host guard
(:mod:`live.monitor.hostguard`), the bearer check (:mod:`live.monitor.bearer`) or aiohttp
itself (:func:`json_errors`) refuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from loguru import logger

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_json(status: int, message: str, **headers: str) -> web.Response:
    """The endpoint's error body, ``{"error": message}``, with ``status`` and ``headers``."""
    return web.json_response({"error": message}, status=status, headers=headers or None)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404 and 405 (any HTTP error) and unexpected failures as ``{"error": ...}``."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return error_json(exc.status, exc.reason, **headers)
    except Exception:
        logger.exception("status endpoint: {} {} failed", request.method, request.path)
        return error_json(500, "internal error")
