"""The status endpoint's guard against DNS rebinding: every request must name this server.

A web page on ``http://evil.example`` whose name the attacker re-points at 127.0.0.1 could
otherwise read ``/status`` from the victim's browser, which sends ``Host: evil.example``.
:func:`make_host_guard` accepts the address the connection arrived on (so the bound address,
and the machine's own address when bound to ``0.0.0.0``), ``localhost``, the host name bound,
and the names listed in the environment variable :data:`HOSTS_ENV` (a comma list, e.g.
``status.lan,pi.local``), or given as ``allowed_hosts``.  A port in the header is ignored;
IPv6 addresses come in brackets.  Anything else gets 421; a missing or malformed ``Host`` gets
400 (HTTP/1.1 requires one, every browser and client sends one, and without it the guard could
not tell which name the client used, so it fails closed).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from loguru import logger

from ensemble_bt.errors import ConfigurationError
from live.aiothread import HOSTNAME
from live.monitor.replies import Handler, error_json

#: The environment variable listing extra names the ``Host`` header may carry (comma list).
HOSTS_ENV = "ENSEMBLE_BT_HTTP_HOSTS"
# A Host header: [IPv6] or a name / IPv4, then an optional :port.
_HOST_HEADER = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::\d*)?|([^:\[\]]+)(?::\d*)?")


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
