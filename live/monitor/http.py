"""An optional, read-only HTTP view of a paper state directory.

Two routes, GET only; nothing here places, changes or cancels an order:

- ``GET /status``: :func:`live.monitor.status.read_status` as JSON;
- ``GET /decision?symbol=S``: the journal's latest decision for ``S``, the bundle that made it
  and the breaker state of the last journaled bar.

Any other method gets 405 and any other path 404, both as ``{"error": "..."}``.

Binding follows one rule (:func:`check_binding`): a loopback address may be served without a
token; any other address needs a bearer token, from the environment variable
:data:`TOKEN_ENV`.  When a token is set, every request must carry
``Authorization: Bearer <token>`` or gets 401.  The token is never logged.

Every request must also name this server in its ``Host`` header (:func:`make_host_guard`), a
guard against DNS rebinding: a web page on ``http://evil.example`` whose name the attacker
re-points at 127.0.0.1 could otherwise read ``/status`` from the victim's browser, which sends
``Host: evil.example``.  Accepted are the address the connection arrived on (so the bound
address, and the machine's own address when bound to ``0.0.0.0``), ``localhost``, the host
name bound, and the names listed in the environment variable :data:`HOSTS_ENV` (a comma list,
e.g. ``status.lan,pi.local``), or given as ``allowed_hosts``.  A port in the header is ignored;
IPv6 addresses come in brackets.  Anything else gets 421; a missing or malformed ``Host`` gets
400 (HTTP/1.1 requires one, every browser and client sends one, and without it the guard could
not tell which name the client used, so it fails closed).

The app is served on its own event loop in a daemon thread (:class:`HttpHandle`, a
:class:`live.sim.server.RunningServer` like the replay server's), so the daemon's backtrader
loop never waits on a client.

Examples
--------
>>> with start_http("127.0.0.1:0", Path("paper_state/aapl")) as http:   # doctest: +SKIP
...     requests.get(http.url + "/status").json()["state"]
'running'
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Self

from aiohttp import web
from loguru import logger

from ensemble_bt.errors import ConfigurationError, StopError
from live.aiothread import HOSTNAME, RunningServer, is_loopback, parse_address
from live.monitor.status import read_status, scrub
from live.session.journal import JOURNAL_FILE, Journal

#: The environment variable the caller reads the bearer token from.
TOKEN_ENV = "ENSEMBLE_BT_HTTP_TOKEN"
#: The environment variable listing extra names the ``Host`` header may carry (comma list).
HOSTS_ENV = "ENSEMBLE_BT_HTTP_HOSTS"
STATE_DIR_KEY: web.AppKey[Path] = web.AppKey("state_dir", Path)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A Host header: [IPv6] or a name / IPv4, then an optional :port.
_HOST_HEADER = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::\d*)?|([^:\[\]]+)(?::\d*)?")


# ------------------------------------------------------------------------- binding
def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a bearer token.

    Parameters
    ----------
    host : str
        The address to bind, as :func:`parse_address` returns it.
    token : str | None
        The bearer token (``os.environ.get(TOKEN_ENV)``); empty counts as none.

    Raises
    ------
    ConfigurationError
        ``host`` is not loopback and there is no token.
    """
    if not token and not is_loopback(host):
        raise ConfigurationError(f"binding {host} needs a bearer token: set {TOKEN_ENV}")


# --------------------------------------------------------------------- host guard
def canonical_host(host: str) -> str | None:
    """``host`` as the guard compares it, or None when it is neither a name nor an address.

    Names are lower-cased without a trailing dot; IP addresses are written the standard way
    (``0:0::1`` becomes ``::1``, an IPv4-mapped IPv6 address its IPv4 address).
    """
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        name = host.lower().removesuffix(".")
        return name if len(name) <= 253 and HOSTNAME.match(name) else None
    mapped = getattr(parsed, "ipv4_mapped", None)
    return str(mapped or parsed)



def header_host(value: str) -> str | None:
    """The canonical host part of a ``Host`` header (``name``, ``name:port``, ``[v6]:port``)."""
    match = _HOST_HEADER.fullmatch(value.strip())
    if match is None:
        return None
    return canonical_host(match.group(1) or match.group(2))


def parse_allowed_hosts(text: str | None) -> tuple[str, ...]:
    """The names of a comma list such as :data:`HOSTS_ENV`'s, canonical; blanks are skipped.

    Raises
    ------
    ConfigurationError
        An entry is not a host name or an IP address (IPv6 may come in brackets).
    """
    names = []
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        name = canonical_host(entry.removeprefix("[").removesuffix("]"))
        if name is None:
            shown = entry if len(entry) <= 80 else entry[:80] + "..."
            raise ConfigurationError(f"{HOSTS_ENV}: {shown!r} is not a host name or address; "
                                     "use a comma list, e.g. status.lan,192.168.1.10")
        names.append(name)
    return tuple(names)


def hosts_from_env() -> tuple[str, ...]:
    """:func:`parse_allowed_hosts` of the :data:`HOSTS_ENV` environment variable."""
    return parse_allowed_hosts(os.environ.get(HOSTS_ENV))


def _local_address(request: web.Request) -> str | None:
    """The address of this machine that the connection arrived on."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return canonical_host(str(sockname[0])) if sockname else None


def make_host_guard(allowed_hosts: Iterable[str] = ()) -> Any:
    """400 without a usable ``Host`` header, 421 for one that names another server.

    Parameters
    ----------
    allowed_hosts : iterable of str
        Names accepted besides ``localhost`` and the address the connection arrived on.
    """
    allowed = {"localhost", *(canonical_host(h) or h for h in allowed_hosts)}

    @web.middleware
    async def host_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = request.headers.get("Host")
        host = None if raw is None else header_host(raw)
        if host is None:
            return error_json(400, "a valid Host header is required")
        if host not in allowed and host != _local_address(request):
            logger.warning("status endpoint refused {} {}: Host {!r} is not this server (set "
                           "{} to allow a name)", request.method, request.path, raw[:80],
                           HOSTS_ENV)
            return error_json(421, f"Host {raw[:80]!r} is not this server")
        return await handler(request)

    return host_guard


# ------------------------------------------------------------------------ handlers
def error_json(status: int, message: str, **headers: str) -> web.Response:
    """The endpoint's error body, ``{"error": message}``, with ``status`` and ``headers``."""
    return web.json_response({"error": message}, status=status, headers=headers or None)


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


def stop_error(exc: StopError, state_dir: Path) -> web.Response:
    """503 for an unreadable state directory, naming it ``<state>`` rather than by path."""
    return error_json(503, str(exc).replace(str(state_dir), "<state>"))


async def get_status(request: web.Request) -> web.Response:
    state_dir = request.app[STATE_DIR_KEY]
    try:
        status = await asyncio.to_thread(read_status, state_dir)
    except StopError as exc:
        return stop_error(exc, state_dir)
    return web.json_response(status)


def latest_decision(state_dir: Path, symbol: str) -> dict[str, Any] | None:
    """The ``/decision`` body for ``symbol``, or None when there is no decision for it.

    Returns
    -------
    dict | None
        ``{"symbol", "date", "decision": <the journal row: DECISION_FIELDS and "bundle">,
        "bundle": {"id", "path", "manifest_sha256", "predict_start"} | None,
        "breaker": {"as_of", "high_water", "drawdown", "tripped", "halted", "trips"} | None}``.
    """
    path = state_dir / JOURNAL_FILE
    if not path.is_file():
        return None
    journal = Journal(path, readonly=True)
    try:
        journal.db.execute("BEGIN")  # one snapshot: the decision, its bundle, the breaker
        decision = journal.latest_decision(symbol)
        bundles = {row["id"]: row for row in journal.bundles()}
        equity = journal.last_equity()
        journal.db.execute("COMMIT")
    finally:
        journal.close()
    if decision is None:
        return None
    row = bundles.get(decision.get("bundle"))
    bundle = None if row is None else {k: row[k] for k in ("id", "path", "manifest_sha256",
                                                           "predict_start")}
    breaker = None if equity is None else {"as_of": equity["date"], **equity["breaker"]}
    return scrub({"symbol": symbol, "date": decision["date"], "decision": decision,
                  "bundle": bundle, "breaker": breaker})


async def get_decision(request: web.Request) -> web.Response:
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
    (:func:`make_host_guard`).
    """
    middlewares = [json_errors, make_host_guard(allowed_hosts)]
    middlewares += [make_auth_middleware(token)] if token else []
    app = web.Application(middlewares=middlewares)
    app[STATE_DIR_KEY] = Path(state_dir)
    # allow_head=False: GET is the only method served, everything else is 405.
    app.router.add_get("/status", get_status, allow_head=False)
    app.router.add_get("/decision", get_decision, allow_head=False)
    return app


# -------------------------------------------------------------------------- server
class HttpHandle(RunningServer):
    """The endpoint served on its own event loop in a daemon thread.

    A :class:`live.sim.server.RunningServer` that names itself ``read-only status endpoint``,
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
        ``HOST:PORT`` (see :func:`parse_address`); port 0 picks a free one, read it back from
        ``.port``.  ``localhost`` binds 127.0.0.1.
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
