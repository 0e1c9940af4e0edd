"""Websocket side of the local Alpaca-protocol server: the open connections and the pushes.

Two endpoints, speaking what alpaca-py's clients speak (their conversations are in
:mod:`live.sim.routes_streams`):

- ``GET /v2/{iex,sip,test}``: the market-data stream (``StockDataStream``).  Frames are
  msgpack lists of messages when the client sends ``Content-Type: application/msgpack`` (as
  alpaca-py does), JSON text otherwise.  One authenticated connection per account, like
  Alpaca: a second one gets error 406 and is closed.  Bars on ``/v2/sip`` carry the SIP
  feed's volume (:func:`live.sim.marketdata.feed_volume`), as the REST bars do.
- ``GET /stream`` (and ``/stream/``, where alpaca-trade-api connects): the trading stream
  (``TradingStream``).  JSON in binary frames, like Alpaca's paper endpoint, or msgpack
  frames for a client that writes msgpack; ``trade_updates`` carries
  :attr:`SimState.events`.

:class:`StreamHub` owns the open connections.  The REST handlers call
:meth:`StreamHub.publish_events` after every change to the event log and
:meth:`StreamHub.publish_bars` after an advance, so everything is on the wire before the
request that caused it is answered.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import msgpack
from aiohttp import WSCloseCode, web
from loguru import logger

from ensemble_bt import jsonio
from live.sim.bars import bar_timestamp
from live.sim.faults import FaultInjector
from live.sim.marketdata import feed_volume
from live.sim.state import SimState
from live.sim.wire import bar_json, trade_update_json, volume_int

DATA_FEEDS = ("iex", "sip", "test")
TRADING_STREAM_PATH = "/stream"
#: Channels a stock subscription message lists; the last two follow ``trades``.
DATA_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds",
                 "corrections", "cancelErrors")
_SUBSCRIBABLE = DATA_CHANNELS[:7]
_BAR_CHANNELS = (("bars", "b"), ("dailyBars", "d"))
_CLOSE_TIMEOUT = 5.0


def stream_bar(symbol: str, row_json: dict[str, Any], stamp: Any, kind: str) -> dict[str, Any]:
    """A bar message of the market-data stream: ``T`` is ``b`` (bars) or ``d`` (dailyBars)."""
    fields = {key: row_json[key] for key in ("o", "h", "l", "c", "v", "n", "vw")}
    return {"T": kind, "S": symbol, **fields, "t": stamp}


def _json_default(value: Any) -> Any:
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime().strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(f"cannot encode {type(value).__name__}")


async def send_quietly(ws: web.WebSocketResponse, payload: bytes | str) -> bool:
    """Send one frame; ``False`` when the peer is gone."""
    if ws.closed:
        return False
    try:
        if isinstance(payload, bytes):
            await ws.send_bytes(payload)
        else:
            await ws.send_str(payload)
    except (ConnectionError, RuntimeError) as exc:
        logger.debug("sim stream: send failed ({})", exc)
        return False
    return True


class DataClient:
    """One market-data connection: its encoding, auth flag and subscriptions."""

    def __init__(self, ws: web.WebSocketResponse, binary: bool, feed: str = "iex") -> None:
        self.ws = ws
        self.binary = binary
        self.feed = feed
        self.authenticated = False
        self.subscriptions: dict[str, set[str]] = {channel: set() for channel in _SUBSCRIBABLE}

    async def send(self, messages: list[dict[str, Any]]) -> bool:
        """Send a list of messages as one frame; ``False`` when the peer is gone."""
        if self.binary:
            return await send_quietly(self.ws, msgpack.packb(messages))
        return await send_quietly(self.ws, jsonio.dumps(messages, default=_json_default))

    def subscription_message(self) -> dict[str, Any]:
        """The ``subscription`` reply listing every channel."""
        lists = {channel: sorted(symbols) for channel, symbols in self.subscriptions.items()}
        return {"T": "subscription", **lists, "corrections": lists["trades"],
                "cancelErrors": lists["trades"]}

    def update_subscriptions(self, request: dict[str, Any], add: bool) -> None:
        """Apply a ``subscribe`` (``add``) or ``unsubscribe`` message.

        Raises
        ------
        ValueError
            A channel's value is neither a symbol nor a list of symbols (``"bars": 123``);
            nothing is applied then.
        """
        wanted: dict[str, set[str]] = {}
        for channel in _SUBSCRIBABLE:
            symbols = request.get(channel) or []
            if isinstance(symbols, str):
                symbols = [symbols]
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                raise ValueError(f"{channel} must be a list of symbols")
            wanted[channel] = {s.strip().upper() for s in symbols if s.strip()}
        for channel, chosen in wanted.items():
            if add:
                self.subscriptions[channel] |= chosen
            else:
                self.subscriptions[channel] -= chosen

    def wants(self, channel: str, symbol: str) -> bool:
        """Whether ``symbol`` is subscribed on ``channel`` (``*`` subscribes every symbol)."""
        chosen = self.subscriptions[channel]
        return symbol in chosen or "*" in chosen


class StreamHub:
    """The open websocket connections of one server, and what the server pushes to them.

    Parameters
    ----------
    state : SimState
        The replay whose events and bars are pushed.
    key_id, secret : str
        The only credentials either stream accepts.
    injector : FaultInjector
        Dropped-connection and auth-delay faults.

    Attributes
    ----------
    data_client : DataClient or None
        The one authenticated market-data connection.
    trade_listeners : list of aiohttp.web.WebSocketResponse
        Authenticated trading-stream connections listening to ``trade_updates``.
    msgpack_sockets : set of aiohttp.web.WebSocketResponse
        Trading-stream connections that speak msgpack rather than JSON.
    bars_sent : int
        Bar messages sent over market-data connections so far.
    stream_dropped : bool
        Whether the ``drop_stream_after`` fault has fired.
    """

    def __init__(self, state: SimState, key_id: str, secret: str,
                 injector: FaultInjector) -> None:
        self.state = state
        self.injector = injector
        self._key_id = key_id
        self._secret = secret
        self.sockets: set[web.WebSocketResponse] = set()
        self.data_client: DataClient | None = None
        self.trade_listeners: list[web.WebSocketResponse] = []
        self.msgpack_sockets: set[web.WebSocketResponse] = set()
        self.bars_sent = 0
        self.stream_dropped = False
        self.drops = 0
        self.advance_lock = asyncio.Lock()
        self._events_lock = asyncio.Lock()
        self._published = 0

    def credentials_ok(self, key_id: Any, secret: Any) -> bool:
        """Whether a stream's auth message carries the server's credentials."""
        if not isinstance(key_id, str) or not isinstance(secret, str):
            return False
        return (hmac.compare_digest(key_id.encode(), self._key_id.encode())
                and hmac.compare_digest(secret.encode(), self._secret.encode()))

    async def auth_pause(self) -> None:
        """Sleep the ``auth_delay`` fault before an auth reply."""
        if self.injector.faults.auth_delay > 0:
            await asyncio.sleep(self.injector.faults.auth_delay)

    def data_subscriptions(self) -> dict[str, list[str]]:
        """Channels and symbols of the authenticated market-data connection (``{}`` if none)."""
        client = self.data_client
        if client is None:
            return {}
        return {channel: sorted(s) for channel, s in client.subscriptions.items() if s}

    def release(self, client: DataClient) -> None:
        """Free the market-data slot when ``client`` held it."""
        if self.data_client is client:
            self.data_client = None

    # ------------------------------------------------------------------ push
    async def publish_events(self) -> None:
        """Send every trade event not sent yet to every ``trade_updates`` listener, in order."""
        async with self._events_lock:
            while self._published < len(self.state.events):
                event = self.state.events[self._published]
                self._published += 1
                message = trade_update_json(event)
                payloads = {False: jsonio.dumps(message).encode(),
                            True: msgpack.packb(message)}
                for ws in list(self.trade_listeners):
                    if not await send_quietly(ws, payloads[ws in self.msgpack_sockets]):
                        self.stop_listening(ws)

    def stop_listening(self, ws: web.WebSocketResponse) -> None:
        """Drop ``ws`` from the trade-update listeners."""
        if ws in self.trade_listeners:
            self.trade_listeners.remove(ws)

    def _bar_messages(self, client: DataClient) -> list[dict[str, Any]]:
        day = self.state.current_day
        stamp = msgpack.Timestamp.from_unix_nano(bar_timestamp(day).value)
        messages = []
        for symbol in self.state.symbols:
            row = bar_json(day, self.state.bar(symbol))
            row["v"] = volume_int(feed_volume(client.feed, row["v"]))
            messages += [stream_bar(symbol, row, stamp, kind)
                         for channel, kind in _BAR_CHANNELS if client.wants(channel, symbol)]
        return messages

    def _drop_due(self) -> bool:
        faults = self.injector.faults
        limit = faults.drop_stream_after
        if limit is not None and not self.stream_dropped and self.bars_sent >= limit:
            return True
        every = faults.drop_stream_every
        return every is not None and self.bars_sent >= every * (self.drops + 1)

    async def publish_bars(self) -> None:
        """Send the current bar of each subscribed symbol to the market-data connection.

        With the ``drop_stream_after`` fault due, the connection is closed instead of getting
        the bar, once per server.
        """
        client = self.data_client
        if client is None:
            return
        for message in self._bar_messages(client):
            if self._drop_due():
                self.stream_dropped = True
                self.drops += 1
                logger.warning("sim fault: dropping the market-data stream after {} bars",
                               self.bars_sent)
                self.release(client)
                await client.ws.close(code=WSCloseCode.GOING_AWAY, message=b"sim fault: drop")
                return
            if not await client.send([message]):
                return
            self.bars_sent += 1

    async def close_all(self) -> None:
        """Close every open websocket (server shutdown)."""
        sockets = [ws for ws in self.sockets if not ws.closed]
        if sockets:
            await asyncio.wait([asyncio.ensure_future(
                ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown"))
                for ws in sockets], timeout=_CLOSE_TIMEOUT)


def stream_paths() -> list[str]:
    """Every websocket path: the trading stream and each feed, with and without a trailing
    slash (alpaca-trade-api's ``TradingStream`` connects to ``/stream/``)."""
    bare = [TRADING_STREAM_PATH, *(f"/v2/{feed}" for feed in DATA_FEEDS)]
    return bare + [f"{path}/" for path in bare]


_STREAM_PATHS = frozenset(stream_paths())


def is_stream_path(path: str) -> bool:
    """Whether ``path`` is one of the websocket endpoints (auth happens in-band there)."""
    return path in _STREAM_PATHS
