"""The conversations of the local server's two websockets, and their registration.

:func:`data_stream` answers a market-data client (``StockDataStream``): auth, then
``subscribe`` / ``unsubscribe``.  :func:`trading_stream` answers a trading-stream client
(``TradingStream``): auth, then ``listen`` to ``trade_updates``.  What the server pushes to
them afterwards, and who is connected, is :class:`live.sim.streams.StreamHub`'s.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
from aiohttp import WSMsgType, web
from loguru import logger

from ensemble_bt import jsonio
from live.sim.appkeys import HUB_KEY
from live.sim.streams import (
    DATA_FEEDS,
    TRADING_STREAM_PATH,
    DataClient,
    StreamHub,
    send_quietly,
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
        client.update_subscriptions(request, add=action == "subscribe")
        await client.send([client.subscription_message()])
        return True
    await client.send([data_error(400, "invalid syntax")])
    return True


async def data_stream(request: web.Request) -> web.WebSocketResponse:
    """``GET /v2/{feed}``: the market-data websocket."""
    hub = request.app[HUB_KEY]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    client = DataClient(ws, binary="msgpack" in request.headers.get("Content-Type", ""),
                        feed=request.path.rsplit("/", 1)[-1])
    hub.sockets.add(ws)
    try:
        await client.send([{"T": "success", "msg": "connected"}])
        async for message in ws:
            if message.type in _FRAME_TYPES and not await _data_message(hub, client, message):
                await ws.close()
                break
    finally:
        hub.sockets.discard(ws)
        hub.release(client)
    return ws


# --------------------------------------------------------------------------- trading
def _auth_reply(action: str, authorized: bool) -> dict[str, Any]:
    data: dict[str, Any] = {"action": action,
                            "status": "authorized" if authorized else "unauthorized"}
    if not authorized:
        data["message"] = "access key verification failed"
    return {"stream": "authorization", "data": data}


async def _send_json(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
    await send_quietly(ws, jsonio.dumps(message).encode())


async def _trading_auth(hub: StreamHub, ws: web.WebSocketResponse,
                        request: dict[str, Any]) -> bool:
    data = request.get("data") if isinstance(request.get("data"), dict) else {}
    key_id = data.get("key_id", request.get("key"))
    secret = data.get("secret_key", request.get("secret"))
    await hub.auth_pause()
    authorized = hub.credentials_ok(key_id, secret)
    if not authorized:
        logger.warning("sim trading stream: auth failed")
    await _send_json(ws, _auth_reply("authenticate", authorized))
    return authorized


async def _trading_listen(hub: StreamHub, ws: web.WebSocketResponse,
                          request: dict[str, Any]) -> None:
    data = request.get("data") if isinstance(request.get("data"), dict) else {}
    streams = data.get("streams") or []
    listening = ["trade_updates"] if "trade_updates" in streams else []
    hub.stop_listening(ws)
    if listening:
        hub.trade_listeners.append(ws)
    await _send_json(ws, {"stream": "listening", "data": {"streams": listening}})


async def _trading_message(hub: StreamHub, ws: web.WebSocketResponse, message: Any,
                           authorized: bool) -> tuple[bool, bool]:
    """Answer one client message; returns ``(keep_open, authorized)``."""
    try:
        request = json.loads(message.data)
    except (ValueError, TypeError):
        request = None
    if not isinstance(request, dict):
        await _send_json(ws, {"stream": "error", "data": {"error_message": "invalid syntax"}})
        return True, authorized
    action = request.get("action")
    if action in ("authenticate", "auth"):
        ok = await _trading_auth(hub, ws, request)
        return ok, ok
    if not authorized:
        await _send_json(ws, _auth_reply(str(action), False))
        return False, False
    if action == "listen":
        await _trading_listen(hub, ws, request)
    else:
        await _send_json(ws, {"stream": "error",
                              "data": {"error_message": f"unrecognized action {action!r}"}})
    return True, True


async def trading_stream(request: web.Request) -> web.WebSocketResponse:
    """``GET /stream``: the trading websocket (``trade_updates``)."""
    hub = request.app[HUB_KEY]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    hub.sockets.add(ws)
    authorized = False
    try:
        async for message in ws:
            if message.type not in _FRAME_TYPES:
                continue
            keep, authorized = await _trading_message(hub, ws, message, authorized)
            if not keep:
                await ws.close()
                break
    finally:
        hub.sockets.discard(ws)
        hub.stop_listening(ws)
    return ws


def add_stream_routes(app: web.Application) -> None:
    """Register the websocket endpoints and their shutdown hook on ``app``."""
    for feed in DATA_FEEDS:
        app.router.add_get(f"/v2/{feed}", data_stream)
    app.router.add_get(TRADING_STREAM_PATH, trading_stream)

    async def close_streams(app: web.Application) -> None:
        await app[HUB_KEY].close_all()

    app.on_shutdown.append(close_streams)
