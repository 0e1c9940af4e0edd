"""The conversations of the local server's two websockets, and their registration.

:func:`data_stream` answers a market-data client (``StockDataStream``): auth, then
``subscribe`` / ``unsubscribe``.  :func:`trading_stream` answers a trading-stream client
(``TradingStream``): auth, then ``listen`` to ``trade_updates``.  What the server pushes to
them afterwards, and who is connected, is :class:`live.sim.streams.StreamHub`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgpack
from aiohttp import WSMsgType, web
from loguru import logger

from ensemble_bt import jsonio
from live.sim.appkeys import HUB_KEY
from live.sim.params import quote
from live.sim.streams import (
    TRADING_STREAM_PATH,
    DataClient,
    StreamHub,
    send_quietly,
    stream_paths,
)

_FRAME_TYPES = (WSMsgType.TEXT, WSMsgType.BINARY)


def data_error(code: int, message: str) -> dict[str, Any]:
    """A market-data stream error message."""
    return {"T": "error", "code": code, "msg": message}


# ---------------------------------------------------------------------- market data
def _decode_data(message: Any) -> dict[str, Any] | None:
    try:
        if message.type is WSMsgType.BINARY:
            decoded = msgpack.unpackb(message.data)
        else:
            decoded = json.loads(message.data)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    return decoded if isinstance(decoded, dict) else None


async def _data_auth(hub: StreamHub, client: DataClient, request: dict[str, Any]) -> bool:
    if client.authenticated:
        await client.send([data_error(403, "already authenticated")])
        return True
    await hub.auth_pause()
    if not hub.credentials_ok(request.get("key"), request.get("secret")):
        logger.warning("sim data stream: auth failed")
        await client.send([data_error(402, "auth failed")])
        return False
    if hub.data_client is not None:
        logger.warning("sim data stream: second connection refused (406)")
        await client.send([data_error(406, "connection limit exceeded")])
        return False
    hub.data_client = client
    client.authenticated = True
    await client.send([{"T": "success", "msg": "authenticated"}])
    return True


async def _data_message(hub: StreamHub, client: DataClient, message: Any) -> bool:
    """Answer one client message; ``False`` when the connection must close."""
    request = _decode_data(message)
    if request is None:
        await client.send([data_error(400, "invalid syntax")])
        return True
    action = request.get("action")
    if action == "auth":
        return await _data_auth(hub, client, request)
    if not client.authenticated:
        await client.send([data_error(401, "not authenticated")])
        return True
    if action in ("subscribe", "unsubscribe"):
        try:
            client.update_subscriptions(request, add=action == "subscribe")
        except ValueError as exc:
            logger.debug("sim data stream: bad {} ({})", action, exc)
            await client.send([data_error(400, "invalid syntax")])
            return True
        await client.send([client.subscription_message()])
        return True
    await client.send([data_error(400, "invalid syntax")])
    return True


async def _header_auth(hub: StreamHub, client: DataClient, request: web.Request) -> bool:
    """Authenticate by the upgrade request's key headers, as Alpaca allows; ``False`` when
    the connection must close.  Without the headers the client authenticates in-band."""
    key_id = request.headers.get("APCA-API-KEY-ID")
    secret = request.headers.get("APCA-API-SECRET-KEY")
    if key_id is None and secret is None:
        return True
    return await _data_auth(hub, client, {"key": key_id, "secret": secret})


async def data_stream(request: web.Request) -> web.WebSocketResponse:
    """``GET /v2/{feed}``: the market-data websocket."""
    hub = request.app[HUB_KEY]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    client = DataClient(ws, binary="msgpack" in request.headers.get("Content-Type", ""),
                        feed=request.path.rstrip("/").rsplit("/", 1)[-1])
    hub.sockets.add(ws)
    try:
        await client.send([{"T": "success", "msg": "connected"}])
        if not await _header_auth(hub, client, request):
            await ws.close()
            return ws
        async for message in ws:
            if message.type in _FRAME_TYPES and not await _data_message(hub, client, message):
                await ws.close()
                break
    finally:
        hub.sockets.discard(ws)
        hub.release(client)
    return ws


# --------------------------------------------------------------------------- trading
@dataclass
class _TradingClient:
    """One trading-stream connection: whether it speaks msgpack and is authorized."""

    ws: web.WebSocketResponse
    packed: bool = False
    authorized: bool = False

    async def send(self, message: dict[str, Any]) -> None:
        payload = msgpack.packb(message) if self.packed else jsonio.dumps(message).encode()
        await send_quietly(self.ws, payload)


def _auth_reply(action: str, authorized: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"action": action,
                            "status": "authorized" if authorized else "unauthorized"}
    if not authorized:
        data["message"] = "access key verification failed"
    return {"stream": "authorization", "data": data}


def _trading_error(message: str) -> dict[str, Any]:
    return {"stream": "error", "data": {"error_message": message}}


def _decode_trading(message: Any) -> tuple[Any, bool]:
    """A client message and whether it came as msgpack (a binary frame that unpacks to a
    map); anything else is read as JSON.  ``None`` when it is neither."""
    if message.type is WSMsgType.BINARY:
        try:
            decoded = msgpack.unpackb(message.data)
        except (ValueError, TypeError, msgpack.UnpackException):
            decoded = None
        if isinstance(decoded, dict):
            return decoded, True
    try:
        return json.loads(message.data), False
    except (ValueError, TypeError):
        return None, False


async def _trading_auth(hub: StreamHub, client: _TradingClient,
                        request: dict[str, Any]) -> bool:
    data = request.get("data") if isinstance(request.get("data"), dict) else {}
    key_id = data.get("key_id", request.get("key"))
    secret = data.get("secret_key", request.get("secret"))
    await hub.auth_pause()
    client.authorized = hub.credentials_ok(key_id, secret)
    if not client.authorized:
        logger.warning("sim trading stream: auth failed")
    await client.send(_auth_reply("authenticate", client.authorized))
    return client.authorized


async def _trading_listen(hub: StreamHub, client: _TradingClient,
                          request: dict[str, Any]) -> None:
    data = request.get("data")
    streams = data.get("streams", []) if isinstance(data, dict) else None
    if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
        await client.send(_trading_error("invalid syntax: data.streams must be a list of "
                                         "stream names"))
        return
    hub.stop_listening(client.ws)
    if "trade_updates" in streams:
        hub.trade_listeners.append(client.ws)
    await client.send({"stream": "listening",
                       "data": {"streams": ["trade_updates"] if "trade_updates" in streams
                                else []}})


async def _trading_message(hub: StreamHub, client: _TradingClient, message: Any) -> bool:
    """Answer one client message; ``False`` when the connection must close."""
    request, client.packed = _decode_trading(message)
    if client.packed:
        hub.msgpack_sockets.add(client.ws)
    else:
        hub.msgpack_sockets.discard(client.ws)
    if not isinstance(request, dict):
        await client.send(_trading_error("invalid syntax"))
        return True
    action = request.get("action")
    if action in ("authenticate", "auth"):
        return await _trading_auth(hub, client, request)
    if not client.authorized:
        await client.send(_auth_reply(str(action), False))
        return False
    if action == "listen":
        await _trading_listen(hub, client, request)
    else:
        await client.send(_trading_error(f"unrecognized action {quote(action)}"))
    return True


async def trading_stream(request: web.Request) -> web.WebSocketResponse:
    """``GET /stream``: the trading websocket (``trade_updates``)."""
    hub = request.app[HUB_KEY]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    hub.sockets.add(ws)
    client = _TradingClient(ws)
    try:
        async for message in ws:
            if message.type in _FRAME_TYPES and not await _trading_message(hub, client,
                                                                           message):
                await ws.close()
                break
    finally:
        hub.sockets.discard(ws)
        hub.msgpack_sockets.discard(ws)
        hub.stop_listening(ws)
    return ws


def add_stream_routes(app: web.Application) -> None:
    """Register the websocket endpoints and their shutdown hook on ``app``."""
    for path in stream_paths():
        is_trading = path.rstrip("/") == TRADING_STREAM_PATH
        app.router.add_get(path, trading_stream if is_trading else data_stream)

    async def close_streams(app: web.Application) -> None:
        await app[HUB_KEY].close_all()

    app.on_shutdown.append(close_streams)
