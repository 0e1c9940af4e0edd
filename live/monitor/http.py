"""An optional, read-only HTTP view of a paper state directory.

GET only; nothing here places, changes or cancels an order:

- ``GET /`` and ``GET /dashboard.json``: the page a person leaves open, and the panels its
  script refreshes (:mod:`live.monitor.page`);
- ``GET /status``: :func:`live.monitor.status.read_status` as JSON;
- ``GET /decision?symbol=S``: :func:`live.monitor.status.latest_decision`, the journal's
  latest decision for ``S``, the bundle that made it and the breaker state of the last
  journaled bar.

Any other method gets 405 and any other path 404, both as ``{"error": "..."}``
(:mod:`live.monitor.replies`).

Binding follows one rule (:func:`live.monitor.bearer.check_binding`): a loopback address may be
served without a token; any other address needs a bearer token, from the environment variable
:data:`~live.monitor.bearer.TOKEN_ENV`.  When a token is set, every request must carry
``Authorization: Bearer <token>`` or gets 401.  The token is never logged.

Every request must also name this server in its ``Host`` header, a guard against DNS
rebinding (:mod:`live.monitor.hostguard`): accepted are the address the connection arrived on,
``localhost``, the host name bound, and the names in the environment variable
:data:`~live.monitor.hostguard.HOSTS_ENV` or given as ``allowed_hosts``.

The app is served on its own event loop in a daemon thread (:class:`HttpHandle`, a
:class:`live.aiothread.RunningServer` like the replay server's), so the daemon's backtrader
loop never waits on a client.

Examples
--------
>>> with start_http("127.0.0.1:0", Path("paper_state/aapl")) as http:   # doctest: +SKIP
...     requests.get(http.url + "/status").json()["state"]
'running'
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from aiohttp import web
from loguru import logger

from ensemble_bt.errors import ConfigurationError, StopError
from live.aiothread import RunningServer, parse_address
from live.monitor.bearer import check_binding, make_auth_middleware
from live.monitor.hostguard import hosts_from_env, make_host_guard, parse_allowed_hosts
from live.monitor.page import add_page_routes
from live.monitor.replies import error_json, json_errors
from live.monitor.status import latest_decision, read_status

STATE_DIR_KEY: web.AppKey[Path] = web.AppKey("state_dir", Path)


# ------------------------------------------------------------------------ handlers
def stop_error(exc: StopError, state_dir: Path) -> web.Response:
    """503 for an unreadable state directory, naming it ``<state>`` rather than by path."""
    return error_json(503, str(exc).replace(str(state_dir), "<state>"))


async def get_status(request: web.Request) -> web.Response:
    """``GET /status``: :func:`live.monitor.status.read_status`, 503 when unreadable."""
    state_dir = request.app[STATE_DIR_KEY]
    try:
        status = await asyncio.to_thread(read_status, state_dir)
    except StopError as exc:
        return stop_error(exc, state_dir)
    return web.json_response(status)


async def get_decision(request: web.Request) -> web.Response:
    """``GET /decision?symbol=S``: :func:`live.monitor.status.latest_decision`, 404 without one."""
    state_dir = request.app[STATE_DIR_KEY]
    symbol = request.query.get("symbol", "").strip()
    if not symbol:
        return error_json(400, "the symbol query parameter is required: /decision?symbol=AAPL")
    try:
        body = await asyncio.to_thread(latest_decision, state_dir, symbol)
    except StopError as exc:
        return stop_error(exc, state_dir)
    except sqlite3.Error as exc:  # e.g. a journal replaced under us
        logger.warning("status endpoint: /decision?symbol={} failed: {}", symbol, exc)
        return error_json(503, "the journal cannot be read right now")
    if body is None:
        return error_json(404, f"no decision for {symbol} yet (or not a symbol of this "
                               "session)")
    return web.json_response(body)


def build_app(state_dir: Path, token: str | None = None, *,
              allowed_hosts: Iterable[str] = ()) -> web.Application:
    """The read-only app for ``state_dir``.

    With ``token``, every request must carry it.  Every request's ``Host`` must be
    ``localhost``, the address it arrived on, or one of ``allowed_hosts``
    (:func:`live.monitor.hostguard.make_host_guard`).
    """
    middlewares = [json_errors, make_host_guard(allowed_hosts)]
    middlewares += [make_auth_middleware(token)] if token else []
    app = web.Application(middlewares=middlewares)
    app[STATE_DIR_KEY] = Path(state_dir)
    # allow_head=False: GET is the only method served, everything else is 405.
    app.router.add_get("/status", get_status, allow_head=False)
    app.router.add_get("/decision", get_decision, allow_head=False)
    add_page_routes(app, Path(state_dir))
    return app


# -------------------------------------------------------------------------- server
class HttpHandle(RunningServer):
    """The endpoint served on its own event loop in a daemon thread.

    A :class:`live.aiothread.RunningServer` that names itself ``read-only status endpoint``,
    gives open connections 2 s to finish on :meth:`stop`, and reports an address it cannot
    bind as a :class:`~ensemble_bt.errors.ConfigurationError`.  Use :func:`start_http` to start
    one; :meth:`stop` (or leaving the ``with`` block) shuts it down.

    Attributes
    ----------
    host : str
        Bound host.
    port : int
        Bound port (the ephemeral one when asked for port 0).
    url : str
        ``http://host:port`` (IPv6 hosts in brackets).
    """

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        super().__init__(app, host, port, name="read-only status endpoint",
                         shutdown_timeout=2.0)

    def start(self, timeout: float = 10.0) -> Self:
        """Start the thread and return once the socket is bound.

        Raises
        ------
        ConfigurationError
            The address cannot be bound (in use, not an address of this machine...).
        TimeoutError
            The socket was not bound within ``timeout`` seconds.
        RuntimeError
            The endpoint failed to start for another reason (the cause is its ``__cause__``).
        """
        try:
            return super().start(timeout)
        except RuntimeError as exc:
            if not isinstance(exc.__cause__, OSError):
                raise
            reason = exc.__cause__.strerror or str(exc.__cause__)
            raise ConfigurationError(f"cannot serve HTTP on {self.url}: {reason}") from None


def start_http(address: str, state_dir: Path, token: str | None = None, *,
               allowed_hosts: Iterable[str] | None = None) -> HttpHandle:
    """Serve the read-only endpoint for ``state_dir`` on ``address``.

    Parameters
    ----------
    address : str
        ``HOST:PORT`` (see :func:`live.aiothread.parse_address`); port 0 picks a free one,
        read it back from ``.port``.  ``localhost`` binds 127.0.0.1.
    state_dir : pathlib.Path
        The paper state directory to read; it must exist (its files may come later).
    token : str | None
        Bearer token every request must carry; required for a non-loopback address.  The
        caller passes ``os.environ.get(TOKEN_ENV)``.
    allowed_hosts : iterable of str or None
        Extra names the ``Host`` header may carry (see the module docstring); ``None`` reads
        them from :data:`HOSTS_ENV` (:func:`hosts_from_env`).  The host of ``address`` is
        always accepted.

    Returns
    -------
    HttpHandle
        ``.url``, ``.port``, ``.stop()``; also a context manager.

    Raises
    ------
    ConfigurationError
        A malformed address, a non-loopback address without a token, a malformed host list,
        a missing state directory, or an address that cannot be bound.
    """
    host, port = parse_address(address)
    check_binding(host, token)
    names = hosts_from_env() if allowed_hosts is None else parse_allowed_hosts(
        ",".join(allowed_hosts))
    if not Path(state_dir).is_dir():
        raise ConfigurationError(f"{state_dir}: no such state directory to serve")
    # "localhost" may resolve to both ::1 and 127.0.0.1, and port 0 would then give each its
    # own port; one address keeps .port and .url exact.
    bind = "127.0.0.1" if host.lower() == "localhost" else host
    app = build_app(Path(state_dir), token or None, allowed_hosts=(*names, host))
    return HttpHandle(app, bind, port).start()
