"""Where the Alpaca clients connect, and whether that moves real money.

:class:`AlpacaEndpoints` holds the URLs and stream settings of one account's clients;
:meth:`AlpacaEndpoints.trading_endpoints` resolves a null URL as alpaca-py does, and
:func:`endpoint_kind` says whose money a resolved URL moves.  The resolved URL decides, never
a flag: ``paper: true`` with ``trading_url: https://api.alpaca.markets`` is live.  Whether a
live endpoint is allowed is not decided here but by whoever starts the clients (the paper
session's opt-in, ``check_live``), from :func:`live_endpoint`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ensemble_bt.errors import ConfigurationError

#: alpaca-py's base URLs (``alpaca.common.enums.BaseURL``): what a null URL resolves to.
PAPER_TRADING_URL = "https://paper-api.alpaca.markets"
LIVE_TRADING_URL = "https://api.alpaca.markets"
PAPER_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_STREAM_URL = "wss://api.alpaca.markets/stream"
PAPER_HOST = "paper-api.alpaca.markets"
ALPACA_DOMAIN = "alpaca.markets"
EndpointKind = Literal["paper", "loopback", "sim", "live"]
# Printable ASCII without spaces or backslashes: parsers agree on such URLs.
_PLAIN_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[!-\[\]-~]+$")
_DNS_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


def _host_of(url: str) -> str | None:
    """The lower-case host ``url`` connects to, or None when parsers could disagree on it.

    alpaca-py appends ``/v2/...`` to a REST base URL and requests parses the result with
    urllib3; websockets parses a stream URL with :func:`urllib.parse.urlsplit`.  The host
    counts only when both parsers, on the base and on the request URL, name the same one.
    """
    if not _PLAIN_URL.match(url):
        return None
    try:
        hosts = {urlsplit(url).hostname, urlsplit(f"{url}/v2/account").hostname,
                 parse_url(f"{url}/v2/account").host}
        urlsplit(url).port  # noqa: B018 (raises ValueError on a malformed port)
    except (ValueError, LocationParseError):
        return None
    hosts = {h.lower().strip("[]").rstrip(".") if h else None for h in hosts}
    return hosts.pop() if len(hosts) == 1 and None not in hosts else None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def endpoint_kind(url: str, sim: bool = False, secure_scheme: str = "https") -> EndpointKind:
    """Whose money an endpoint moves: ``"paper"``, ``"loopback"``, ``"sim"`` or ``"live"``.

    Parameters
    ----------
    url : str
        The base URL a client connects to, already resolved (see
        :meth:`AlpacaEndpoints.trading_endpoints`).
    sim : bool
        The config says the endpoints are a local replay server (``alpaca.sim: true``).
    secure_scheme : str
        ``"https"`` for REST, ``"wss"`` for a stream: Alpaca's paper host counts as paper only
        over it.

    Returns
    -------
    str
        ``"paper"``: Alpaca's paper host over ``secure_scheme``; ``"loopback"``: localhost,
        127.0.0.0/8 or ::1; ``"sim"``: with ``sim``, any host outside ``alpaca.markets``;
        ``"live"``: anything else, including a URL whose host is ambiguous.  Only ``"live"``
        can move real money.

    Examples
    --------
    >>> endpoint_kind("https://api.alpaca.markets/")
    'live'
    >>> endpoint_kind("https://paper-api.alpaca.markets.evil.com", sim=True)
    'sim'
    >>> endpoint_kind("https://paper-api.alpaca.markets.evil.com")
    'live'
    """
    host = _host_of(url)
    if host is None:
        return "live"
    if host == PAPER_HOST and _scheme(url) == secure_scheme:
        return "paper"
    if _loopback(host):
        return "loopback"
    alpaca = host == ALPACA_DOMAIN or host.endswith(f".{ALPACA_DOMAIN}")
    if sim and not alpaca and (_DNS_NAME.match(host) or _is_ip(host)):
        return "sim"
    return "live"


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def shown_url(url: str, limit: int = 120) -> str:
    """``url`` for a message or a log: credentials in it masked, cut to ``limit`` characters."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        url = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url if len(url) <= limit else f"{url[:limit]}... ({len(url)} characters)"


@dataclass(frozen=True)
class TradingEndpoint:
    """A resolved trading endpoint: the config key that sets it, its URL and its kind."""

    key: str
    url: str
    kind: EndpointKind


class AlpacaEndpoints(BaseModel):
    """Where the clients connect.  ``null`` URLs mean Alpaca's own (paper) endpoints.

    ``ensemble-bt paper --replay`` points every URL at the local server it starts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    paper: bool = Field(True, description="what a null trading URL means: Alpaca's paper "
                        "endpoints (true) or its live-money ones (false); the resolved URL, "
                        "not this flag, decides whether a session is live")
    sim: bool = Field(False, description="the endpoints are a local replay server "
                      "(ensemble-bt sim-server): drive its replay")
    trading_url: str | None = Field(None, description="TradingClient url_override")
    data_url: str | None = Field(None, description="StockHistoricalDataClient url_override")
    data_stream_url: str | None = Field(None, description="StockDataStream url_override")
    trading_stream_url: str | None = Field(None, description="TradingStream url_override")
    feed: Literal["iex", "sip"] = Field("iex", description="market-data feed")
    stream_bars: Literal["bars", "dailyBars"] = Field(
        "dailyBars", description="stream channel: dailyBars for daily strategies, bars for the "
        "local server's replay")
    rest_retries: int = Field(3, ge=0, le=10, description="retries of a 429/5xx REST reply")
    rest_retry_wait: float = Field(0.5, ge=0, le=60, description="seconds between retries")
    fill_timeout: float = Field(10.0, gt=0, description="seconds to wait for the trading "
                                "stream before reconciling fills over REST (replay)")
    bar_timeout: float = Field(5.0, gt=0, description="seconds to wait for a streamed bar "
                               "before backfilling it over REST (replay)")

    def trading_endpoints(self) -> tuple[TradingEndpoint, TradingEndpoint]:
        """The trading REST and trading-stream endpoints, resolved as alpaca-py resolves them.

        A null (or empty) URL is Alpaca's paper URL when ``paper`` is true, else its live URL.
        Orders go over REST only, but the stream authenticates with the same keys and carries
        the account's fills, so both count: a session is live when either is.

        Raises
        ------
        ConfigurationError
            A URL set with the wrong scheme (REST needs http(s), a stream ws(s)).
        """
        rest = self.trading_url or (PAPER_TRADING_URL if self.paper else LIVE_TRADING_URL)
        stream = self.trading_stream_url or (PAPER_STREAM_URL if self.paper
                                             else LIVE_STREAM_URL)
        out = []
        for key, url, schemes in (("trading_url", rest, ("http", "https")),
                                  ("trading_stream_url", stream, ("ws", "wss"))):
            if _scheme(url) not in schemes:
                raise ConfigurationError(f"alpaca.{key} {shown_url(url)!r}: use a "
                                         f"{schemes[1]}:// (or {schemes[0]}://) URL")
            out.append(TradingEndpoint(f"alpaca.{key}", url,
                                       endpoint_kind(url, self.sim, secure_scheme=schemes[1])))
        return out[0], out[1]


def live_endpoint(endpoints: AlpacaEndpoints) -> TradingEndpoint | None:
    """The first resolved trading endpoint that can move real money, or None.

    Parameters
    ----------
    endpoints : AlpacaEndpoints
        The effective endpoints (``--replay`` has already pointed them at its local server).

    Returns
    -------
    TradingEndpoint | None
        The trading REST endpoint when it is live, else the trading stream when it is, else
        None: both authenticate with the account's keys, so either makes a session live.

    Raises
    ------
    ConfigurationError
        A URL set with the wrong scheme (see :meth:`AlpacaEndpoints.trading_endpoints`).
    """
    return next((e for e in endpoints.trading_endpoints() if e.kind == "live"), None)


def why_live(endpoint: TradingEndpoint) -> str:
    """Why ``endpoint`` is real money, for the message that refuses it."""
    return (f"{endpoint.key} resolves to {shown_url(endpoint.url)}, a live-money endpoint (not "
            f"{PAPER_HOST} over https, loopback or a sim server)")
