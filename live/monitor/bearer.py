"""Who may read the status endpoint: the bearer token, and where it may bind without one.

One rule (:func:`check_binding`): a loopback address may be served without a token; any
other address needs one, from the environment variable :data:`TOKEN_ENV`.  When a token is
set, every request must carry ``Authorization: Bearer <token>`` or gets 401
(:func:`make_auth_middleware`).  The token is never logged.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from loguru import logger

from ensemble_bt.errors import ConfigurationError
from live.aiothread import is_loopback
from live.monitor.replies import Handler, error_json

#: The environment variable the caller reads the bearer token from.
TOKEN_ENV = "ENSEMBLE_BT_HTTP_TOKEN"


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a bearer token.

    Parameters
    ----------
    host : str
        The address to bind, as :func:`live.aiothread.parse_address` returns it.
    token : str | None
        The bearer token (``os.environ.get(TOKEN_ENV)``); empty counts as none.

    Raises
    ------
    ConfigurationError
        ``host`` is not loopback and there is no token.
    """
    if not token and not is_loopback(host):
        raise ConfigurationError(f"binding {host} needs a bearer token: set {TOKEN_ENV}")


def make_auth_middleware(token: str) -> Any:
    """401 for any request without ``Authorization: Bearer <token>`` (constant-time compare)."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            logger.warning("status endpoint refused {} {}: missing or wrong bearer token",
                           request.method, request.path)
            return error_json(401, "a bearer token is required",
                              **{"WWW-Authenticate": 'Bearer realm="ensemble-bt"'})
        return await handler(request)

    return auth
