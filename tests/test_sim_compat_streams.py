"""The local server's websockets as clients it was not built for speak to them: the older SDK's
``/stream/`` and JSON auth, msgpack on the trading stream, key headers on the data stream, and
malformed messages.  Raw websocket clients (``websockets``) written here, plus alpaca-py's.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from backtests.synthetic import random_walk
from live.aiothread import RunningServer
from live.sim.appkeys import HUB_KEY
from live.sim.server import build_app, serve

KEY, SECRET = "compat-key", "compat-secret"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
TIMEOUT = 10


@pytest.fixture
def server() -> Iterator[RunningServer]:
    frames = {"AAA": random_walk(n=30, seed=5)}
    running = serve(build_app(frames, key_id=KEY, secret=SECRET,
                              start=frames["AAA"].index[10].date()))
    try:
        yield running
    finally:
        running.stop()


def buy(server: RunningServer, qty: float) -> None:
    TradingClient(KEY, SECRET, paper=True, url_override=server.url).submit_order(
        MarketOrderRequest(symbol="AAA", qty=qty, side=OrderSide.BUY,
                           time_in_force=TimeInForce.DAY))


def advance(server: RunningServer) -> None:
    requests.post(f"{server.url}/sim/advance", headers=HEADERS, timeout=TIMEOUT
                  ).raise_for_status()


def recv_json(ws: ClientConnection) -> Any:
    return json.loads(ws.recv(timeout=TIMEOUT))


def recv_packed(ws: ClientConnection) -> Any:
    frame = ws.recv(timeout=TIMEOUT)
    assert isinstance(frame, bytes)
    return msgpack.unpackb(frame)


# ----------------------------------------------------------------- trading stream
def test_trading_stream_at_stream_slash_talks_like_the_older_sdk(server):
    with connect(f"{server.ws_url}/stream/") as ws:
        ws.send(json.dumps({"action": "authenticate",
                            "data": {"key_id": KEY, "secret_key": SECRET}}))
        authorized = recv_json(ws)
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        listening = recv_json(ws)
        buy(server, 3)
        update = recv_json(ws)

    assert authorized["data"]["status"] == "authorized"
    assert listening == {"stream": "listening", "data": {"streams": ["trade_updates"]}}
    assert (update["stream"], update["data"]["event"]) == ("trade_updates", "new")
    assert update["data"]["order"]["qty"] == "3"


def test_alpaca_py_trading_stream_also_works_at_stream_slash(server):
    received: queue.Queue = queue.Queue()

    async def on_update(update: Any) -> None:
        received.put(update)

    stream = TradingStream(KEY, SECRET, paper=True, url_override=f"{server.ws_url}/stream/")
    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not server.app[HUB_KEY].trade_listeners and time.monotonic() < deadline:
            time.sleep(0.02)
        buy(server, 2)
        update = received.get(timeout=TIMEOUT)
    finally:
        stream.stop()

    assert update.event == "new" and float(update.order.qty) == 2


def test_trading_stream_answers_msgpack_in_msgpack_binary_frames(server):
    with connect(f"{server.ws_url}/stream") as ws:
        ws.send(msgpack.packb({"action": "authenticate",
                               "data": {"key_id": KEY, "secret_key": SECRET}}))
        authorized = recv_packed(ws)
        ws.send(msgpack.packb({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        listening = recv_packed(ws)
        buy(server, 4)
        new = recv_packed(ws)
        advance(server)
        fill = recv_packed(ws)

    assert authorized["data"]["status"] == "authorized"
    assert listening["data"]["streams"] == ["trade_updates"]
    assert [new["data"]["event"], fill["data"]["event"]] == ["new", "fill"]
    assert (fill["data"]["qty"], fill["data"]["position_qty"]) == ("4", "4")


def test_trading_stream_refuses_msgpack_with_wrong_keys_and_closes(server):
    with connect(f"{server.ws_url}/stream") as ws:
        ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": "wrong"}))
        reply = recv_packed(ws)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)

    assert reply["data"]["status"] == "unauthorized"


def test_a_wrong_typed_listen_gets_an_error_and_the_stream_stays_open(server):
    with connect(f"{server.ws_url}/stream") as ws:
        ws.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
        recv_json(ws)
        ws.send(json.dumps({"action": "listen", "data": {"streams": 123}}))
        error = recv_json(ws)
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        listening = recv_json(ws)

    assert error["stream"] == "error" and "streams" in error["data"]["error_message"]
    assert listening["data"]["streams"] == ["trade_updates"]


# -------------------------------------------------------------------- data stream
def test_data_stream_authenticates_by_key_headers_on_the_upgrade(server):
    with connect(f"{server.ws_url}/v2/iex", additional_headers=HEADERS) as ws:
        connected, authenticated = recv_json(ws), recv_json(ws)
        ws.send(json.dumps({"action": "subscribe", "bars": ["AAA"]}))
        subscription = recv_json(ws)
        advance(server)
        (bar,) = recv_json(ws)

    assert connected == [{"T": "success", "msg": "connected"}]
    assert authenticated == [{"T": "success", "msg": "authenticated"}]
    assert subscription[0]["bars"] == ["AAA"]
    assert (bar["T"], bar["S"]) == ("b", "AAA")
    assert type(bar["v"]) is int


def test_data_stream_refuses_wrong_key_headers_with_402_and_closes(server):
    wrong = {**HEADERS, "APCA-API-SECRET-KEY": "wrong"}
    with connect(f"{server.ws_url}/v2/iex", additional_headers=wrong) as ws:
        recv_json(ws)
        refused = recv_json(ws)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)

    assert refused == [{"T": "error", "code": 402, "msg": "auth failed"}]


@pytest.mark.parametrize("bad", [{"action": "subscribe", "bars": 123},
                                 {"action": "subscribe", "trades": [1, 2]},
                                 {"action": "unsubscribe", "quotes": {"AAA": 1}}])
def test_a_wrong_typed_subscription_gets_error_400_and_the_stream_stays_open(server, bad):
    with connect(f"{server.ws_url}/v2/iex") as ws:
        recv_json(ws)
        ws.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
        recv_json(ws)
        ws.send(json.dumps(bad))
        error = recv_json(ws)
        ws.send(json.dumps({"action": "subscribe", "bars": ["AAA"]}))
        subscription = recv_json(ws)

    assert error == [{"T": "error", "code": 400, "msg": "invalid syntax"}]
    assert subscription[0]["T"] == "subscription" and subscription[0]["bars"] == ["AAA"]


def test_msgpack_data_stream_bars_carry_integer_volume(server):
    with connect(f"{server.ws_url}/v2/sip",
                 additional_headers={**HEADERS, "Content-Type": "application/msgpack"}) as ws:
        recv_packed(ws), recv_packed(ws)
        ws.send(msgpack.packb({"action": "subscribe", "bars": ["AAA"]}))
        recv_packed(ws)
        advance(server)
        (bar,) = recv_packed(ws)

    assert type(bar["v"]) is int and bar["v"] % 40 == 0
