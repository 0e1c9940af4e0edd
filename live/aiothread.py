"""An aiohttp app on its own event loop in a daemon thread, and where it may bind.

Both servers run this way: the local Alpaca-protocol venue (:mod:`live.sim.server`) and the
paper daemon's read-only status endpoint (:mod:`live.monitor.http`), so that backtrader's loop
never waits on a client.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import threading
from typing import Self

from aiohttp import web
from loguru import logger

from ensemble_bt.errors import ConfigurationError

HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_ADDRESS_HELP = "use HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080"


def parse_address(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv6 hosts in brackets) into ``(host, port)``.

    Parameters
    ----------
    text : str
        ``"127.0.0.1:8080"``, ``"localhost:0"``, ``"[::1]:8080"``, ``"0.0.0.0:9000"``...
        Port 0 picks a free port.

    Returns
    -------
    tuple[str, int]
        The host (without brackets) and the port.

    Raises
    ------
    ConfigurationError
        The text is not a host and a port in 0..65535.
    """
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", text.strip())
    if match is None:
        raise ConfigurationError(f"HTTP address {text!r}: {_ADDRESS_HELP}")
    bracketed, host = match.group(1) is not None, match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ConfigurationError(f"HTTP address {text!r}: port {port} is not in 0..65535")
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        parsed = None
    if bracketed and (parsed is None or parsed.version != 6):
        raise ConfigurationError(f"HTTP address {text!r}: brackets hold an IPv6 address only")
    if parsed is None and not HOSTNAME.match(host):
        raise ConfigurationError(f"HTTP address {text!r}: {host!r} is not a host name; "
                                 f"{_ADDRESS_HELP}")
    return host, port


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1, ::ffff:127.x.y.z)."""
    if host.lower() == "localhost":
        return True
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name could resolve anywhere: treat it as exposed
    mapped = getattr(parsed, "ipv4_mapped", None)
    return parsed.is_loopback or (mapped is not None and mapped.is_loopback)


class RunningServer:
    """An app served on its own event loop in a daemon thread.

    Use :func:`live.sim.server.serve` to start one; call :meth:`stop` (or use it as a context
    manager) to shut it down.  :class:`live.monitor.http.HttpHandle` serves the read-only status
    endpoint the same way.

    Parameters
    ----------
    app : aiohttp.web.Application
        The app to serve.
    host : str
        Interface to bind.
    port : int
        Port to bind; 0 picks a free one.
    name : str
        What log lines and errors call the server; its thread is named after it (spaces as
        dashes).
    shutdown_timeout : float
        Seconds :meth:`stop` gives open connections to finish (aiohttp's
        ``AppRunner(shutdown_timeout=...)``).

    Attributes
    ----------
    host : str
        Bound host.
    port : int
        Bound port (the ephemeral one when asked for port 0).
    url : str
        ``http://host:port`` (IPv6 hosts in brackets), the value for the REST clients'
        ``url_override``.
    ws_url : str
        ``ws://host:port``; the streams are at ``ws_url + "/stream"`` and
        ``ws_url + "/v2/iex"`` (or ``/v2/sip``, ``/v2/test``).
    """

    def __init__(self, app: web.Application, host: str, port: int, *, name: str = "sim server",
                 shutdown_timeout: float = 5.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._name = name
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name.replace(" ", "-"),
                                        daemon=True)

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL for alpaca-py's ``url_override``."""
        return f"http://{self._netloc}"

    @property
    def ws_url(self) -> str:
        """Base URL of the websockets (append ``/stream`` or ``/v2/iex``)."""
        return f"ws://{self._netloc}"

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.TCPSite(self._runner, self.host, self.port).start())
            self.port = int(self._runner.addresses[0][1])
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        self._ready.set()
        try:
            if self._error is None:
                loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def start(self, timeout: float = 10.0) -> Self:
        """Start the thread and wait until the socket is bound.

        Raises
        ------
        TimeoutError
            The socket was not bound within ``timeout`` seconds.
        RuntimeError
            The server failed to start; the cause (e.g. an ``OSError`` for an address in use)
            is its ``__cause__``.
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self._name} did not start in time")
        if self._error is not None:
            raise RuntimeError(f"{self._name} failed to start") from self._error
        logger.info("{} listening on {}", self._name, self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, close the socket and join the thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            logger.info("{} on {} stopped", self._name, self.url)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
