"""The local server's websockets and fault switches, driven by the real alpaca-py clients.

Streams run in daemon threads the way a live feed runs them; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack
import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce, TradeEvent
from alpaca.trading.requests import MarketOrderRequest
from alpaca.trading.stream import TradingStream
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from backtests.synthetic import random_walk
from live.aiothread import RunningServer
from live.sim.appkeys import HUB_KEY, INJECTOR_KEY
from live.sim.faults import SimFaults
from live.sim.server import build_app, serve
from live.sim.streams import StreamHub

KEY, SECRET = "stream-key", "stream-secret"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
START, CASH, SLIPPAGE, COMMISSION = 20, 100_000.0, 0.001, 0.0005
MSGPACK = {"Content-Type": "application/msgpack"}


@dataclass
class Sim:
    """A running two-symbol server and its bars."""

    server: RunningServer
    frames: dict[str, pd.DataFrame]

    @property
    def hub(self) -> StreamHub:
        return self.server.app[HUB_KEY]

    def day(self, index: int) -> pd.Timestamp:
        return self.frames["AAA"].index[index]

    def advance(self) -> dict:
        response = requests.post(f"{self.server.url}/sim/advance", headers=HEADERS, timeout=10)
        response.raise_for_status()
        return response.json()

    def trading(self) -> TradingClient:
        return TradingClient(KEY, SECRET, paper=True, url_override=self.server.url)

    def buy(self, qty: float, symbol: str = "AAA") -> Any:
        return self.trading().submit_order(MarketOrderRequest(
            symbol=symbol, qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))


@contextmanager
def sim_server(**options: Any) -> Iterator[Sim]:
    frames = {"AAA": random_walk(n=40, seed=1), "BBB": random_walk(n=40, seed=2)}
    app = build_app(frames, key_id=KEY, secret=SECRET, start=frames["AAA"].index[START].date(),
                    cash=CASH, slippage=SLIPPAGE, commission=COMMISSION, **options)
    server = serve(app)
    try:
        yield Sim(server, frames)
    finally:
        server.stop()


@pytest.fixture
def sim() -> Iterator[Sim]:
    with sim_server() as running:
        yield running


def wait_until(condition: Callable[[], Any], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@contextmanager
def running(stream: StockDataStream | TradingStream) -> Iterator[threading.Thread]:
    """Run an alpaca-py stream in a daemon thread; stop it on exit."""
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        if getattr(stream, "_loop", None) is not None:
            stream.stop()


def bar_stream(sim: Sim, *symbols: str, daily: tuple[str, ...] = ()) -> tuple[
        StockDataStream, queue.Queue]:
    received: queue.Queue = queue.Queue()

    async def on_bar(bar: Any) -> None:
        received.put(bar)

    stream = StockDataStream(KEY, SECRET, url_override=f"{sim.server.ws_url}/v2/iex")
    stream.subscribe_bars(on_bar, *symbols)
    if daily:
        stream.subscribe_daily_bars(on_bar, *daily)
    return stream, received


def trade_stream(sim: Sim) -> tuple[TradingStream, queue.Queue]:
    received: queue.Queue = queue.Queue()

    async def on_update(update: Any) -> None:
        received.put(update)

    stream = TradingStream(KEY, SECRET, paper=True, url_override=f"{sim.server.ws_url}/stream")
    stream.subscribe_trade_updates(on_update)
    return stream, received


def bar_time(day: pd.Timestamp) -> datetime:
    return pd.Timestamp(f"{day.date()}").tz_localize("America/New_York").tz_convert(
        "UTC").to_pydatetime()


def raw_data_connection(sim: Sim, key: str = KEY, secret: str = SECRET) -> tuple[Any, list]:
    """Connect and authenticate by hand; returns the socket and the auth reply."""
    ws = connect(f"{sim.server.ws_url}/v2/iex", additional_headers=MSGPACK)
    assert msgpack.unpackb(ws.recv(timeout=5)) == [{"T": "success", "msg": "connected"}]
    ws.send(msgpack.packb({"action": "auth", "key": key, "secret": secret}))
    return ws, msgpack.unpackb(ws.recv(timeout=5))


def assert_closed(ws: Any) -> None:
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)


# ------------------------------------------------------------------------ market data
def test_data_stream_gets_each_subscribed_bar_stamped_at_its_session(sim):
    stream, received = bar_stream(sim, "AAA", daily=("BBB",))
    with running(stream):
        wait_until(lambda: sim.hub.data_subscriptions() == {"bars": ["AAA"],
                                                            "dailyBars": ["BBB"]})
        step = sim.advance()
        bars = [received.get(timeout=5), received.get(timeout=5)]

    day = sim.day(START + 1)
    by_symbol = {bar.symbol: bar for bar in bars}
    assert set(by_symbol) == {"AAA", "BBB"}
    for symbol, bar in by_symbol.items():
        assert bar.timestamp == bar_time(day)
        assert bar.open == pytest.approx(sim.frames[symbol].loc[day, "open"])
        assert bar.close == pytest.approx(step["bars"][symbol]["c"])
        assert bar.volume == sim.frames[symbol].loc[day, "volume"]
    assert received.empty()


def test_data_stream_refuses_a_bad_key_and_closes(sim):
    ws, reply = raw_data_connection(sim, secret="wrong")

    assert reply == [{"T": "error", "code": 402, "msg": "auth failed"}]
    assert_closed(ws)
    assert sim.hub.data_client is None


def test_a_second_data_connection_is_refused_with_406_until_the_first_closes(sim):
    first, first_reply = raw_data_connection(sim)

    second, second_reply = raw_data_connection(sim)
    assert_closed(second)
    first.close()
    wait_until(lambda: sim.hub.data_client is None)
    third, third_reply = raw_data_connection(sim)
    third.close()

    assert first_reply == third_reply == [{"T": "success", "msg": "authenticated"}]
    assert second_reply == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]


def test_data_stream_speaks_json_text_to_a_client_without_msgpack(sim):
    with connect(f"{sim.server.ws_url}/v2/sip") as ws:
        connected = json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"action": "auth", "key": KEY, "secret": SECRET}))
        authenticated = json.loads(ws.recv(timeout=5))
        ws.send(json.dumps({"action": "subscribe", "bars": ["bbb"]}))
        subscription = json.loads(ws.recv(timeout=5))[0]
        sim.advance()
        bar = json.loads(ws.recv(timeout=5))[0]

    assert connected == [{"T": "success", "msg": "connected"}]
    assert authenticated == [{"T": "success", "msg": "authenticated"}]
    assert subscription["T"] == "subscription" and subscription["bars"] == ["BBB"]
    assert {"trades", "quotes", "updatedBars", "dailyBars", "statuses", "lulds",
            "corrections", "cancelErrors"} <= set(subscription)
    assert bar["T"] == "b" and bar["S"] == "BBB"
    assert bar["t"] == bar_time(sim.day(START + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_dropped_stream_misses_one_bar_then_reconnects_for_the_next(sim_drop_after_one):
    sim = sim_drop_after_one
    stream, received = bar_stream(sim, "AAA")
    with running(stream):
        wait_until(lambda: sim.hub.data_subscriptions())
        sim.advance()
        first = received.get(timeout=5)
        sim.advance()
        assert sim.hub.stream_dropped and sim.hub.data_client is None
        wait_until(lambda: sim.hub.data_subscriptions())
        sim.advance()
        third = received.get(timeout=5)

    data = StockHistoricalDataClient(KEY, SECRET, url_override=sim.server.url)
    backfill = data.get_stock_bars(StockBarsRequest(
        symbol_or_symbols="AAA", timeframe=TimeFrame.Day, start=bar_time(sim.day(START + 2))))
    assert first.timestamp == bar_time(sim.day(START + 1))
    assert third.timestamp == bar_time(sim.day(START + 3))
    assert received.empty()
    assert backfill.data["AAA"][0].timestamp == bar_time(sim.day(START + 2))


@pytest.fixture
def sim_drop_after_one() -> Iterator[Sim]:
    with sim_server(faults=SimFaults(drop_stream_after=1)) as running_sim:
        yield running_sim


# ---------------------------------------------------------------------- trade updates
def test_trading_stream_reports_new_then_fill_with_the_execution_price(sim):
    stream, updates = trade_stream(sim)
    with running(stream):
        wait_until(lambda: sim.hub.trade_listeners)
        order = sim.buy(qty=10)
        new = updates.get(timeout=5)
        step = sim.advance()
        fill = updates.get(timeout=5)

    price = sim.frames["AAA"].loc[sim.day(START + 1), "open"] * (1 + SLIPPAGE)
    assert new.event == TradeEvent.NEW and new.order.id == order.id
    assert new.order.status == OrderStatus.NEW
    assert new.price is None and new.qty is None and new.execution_id is None
    assert fill.event == TradeEvent.FILL and fill.order.status == OrderStatus.FILLED
    assert fill.qty == 10 and fill.position_qty == 10
    assert fill.price == pytest.approx(price, rel=1e-12)
    assert float(fill.order.filled_qty) == 10 and fill.execution_id is not None
    assert step["orders"][0]["status"] == "filled"


def test_partial_fills_report_two_executions_that_add_up_and_each_moves_cash():
    with sim_server(partial_fills=True) as sim:
        stream, updates = trade_stream(sim)
        with running(stream):
            wait_until(lambda: sim.hub.trade_listeners)
            sim.buy(qty=7)
            sim.advance()
            events = [updates.get(timeout=5) for _ in range(3)]
        account = sim.trading().get_account()

    new, partial, fill = events
    price = sim.frames["AAA"].loc[sim.day(START + 1), "open"] * (1 + SLIPPAGE)
    assert [e.event for e in events] == [TradeEvent.NEW, TradeEvent.PARTIAL_FILL, TradeEvent.FILL]
    assert (partial.qty, fill.qty) == (3, 4) and partial.qty + fill.qty == 7
    assert partial.order.status == OrderStatus.PARTIALLY_FILLED
    assert float(partial.order.filled_qty) == 3 and float(fill.order.filled_qty) == 7
    assert (partial.position_qty, fill.position_qty) == (3, 7)
    assert partial.price == fill.price == pytest.approx(price, rel=1e-12)
    assert partial.execution_id != fill.execution_id
    paid = sum(q * price * (1 + COMMISSION) for q in (3, 4))
    assert float(account.cash) == pytest.approx(CASH - paid, rel=1e-12)


def test_reject_every_order_gives_a_rejected_event_and_no_position():
    with sim_server(faults=SimFaults(reject_every=1)) as sim:
        stream, updates = trade_stream(sim)
        with running(stream):
            wait_until(lambda: sim.hub.trade_listeners)
            order = sim.buy(qty=5)
            step = sim.advance()
            events = [updates.get(timeout=5) for _ in range(2)]
        trading = sim.trading()
        positions, account = trading.get_all_positions(), trading.get_account()
        stored = trading.get_order_by_id(order.id)

    assert [e.event for e in events] == [TradeEvent.NEW, TradeEvent.REJECTED]
    assert events[1].qty is None and events[1].order.status == OrderStatus.REJECTED
    assert stored.status == OrderStatus.REJECTED and stored.failed_at is not None
    assert step["orders"][0]["status"] == "rejected"
    assert positions == [] and float(account.cash) == CASH


def test_cancel_reports_a_canceled_event_without_an_execution(sim):
    stream, updates = trade_stream(sim)
    with running(stream):
        wait_until(lambda: sim.hub.trade_listeners)
        order = sim.buy(qty=3, symbol="BBB")
        sim.trading().cancel_order_by_id(order.id)
        events = [updates.get(timeout=5) for _ in range(2)]

    assert [e.event for e in events] == [TradeEvent.NEW, TradeEvent.CANCELED]
    assert events[1].order.status == OrderStatus.CANCELED and events[1].order.id == order.id
    assert events[1].execution_id is None and events[1].price is None


def test_trading_stream_refuses_a_bad_key(sim):
    with connect(f"{sim.server.ws_url}/stream") as ws:
        ws.send(json.dumps({"action": "authenticate",
                            "data": {"key_id": KEY, "secret_key": "wrong"}}))
        reply = json.loads(ws.recv(timeout=5))
        assert_closed(ws)

    assert reply["stream"] == "authorization"
    assert reply["data"]["status"] == "unauthorized"


def test_trading_stream_answers_listen_in_binary_json_frames(sim):
    with connect(f"{sim.server.ws_url}/stream") as ws:
        ws.send(json.dumps({"action": "authenticate",
                            "data": {"key_id": KEY, "secret_key": SECRET}}))
        auth = ws.recv(timeout=5)
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        listening = ws.recv(timeout=5)

    assert isinstance(auth, bytes) and isinstance(listening, bytes)
    assert json.loads(auth) == {"stream": "authorization",
                                "data": {"action": "authenticate", "status": "authorized"}}
    assert json.loads(listening) == {"stream": "listening",
                                     "data": {"streams": ["trade_updates"]}}


# ----------------------------------------------------------------------------- faults
def test_error_rate_one_answers_every_rest_call_with_the_status_but_not_sim_routes():
    with sim_server(faults=SimFaults(error_rate=1.0, error_status=500)) as sim:
        with pytest.raises(APIError) as failed:
            sim.trading().get_account()
        status = requests.get(f"{sim.server.url}/sim/status", headers=HEADERS, timeout=5)

    assert failed.value.status_code == 500
    assert status.status_code == 200


def test_trading_client_retries_through_injected_429s(monkeypatch):
    import alpaca.common.rest as rest

    monkeypatch.setattr(rest, "DEFAULT_RETRY_WAIT_SECONDS", 0)
    with sim_server(faults=SimFaults(error_rate=0.5, error_status=429, seed=3)) as sim:
        trading = sim.trading()
        accounts = [trading.get_account() for _ in range(6)]
        order = sim.buy(qty=1)
        raw = requests.get(f"{sim.server.url}/v2/clock", headers=HEADERS, timeout=5)
        while raw.status_code != 429:
            raw = requests.get(f"{sim.server.url}/v2/clock", headers=HEADERS, timeout=5)
        injected = sim.server.app[INJECTOR_KEY].errors_injected

    assert all(float(a.cash) == CASH for a in accounts) and order.symbol == "AAA"
    assert injected >= 3
    assert raw.headers["Retry-After"] == "0" and raw.json()["code"] == 42910000


def test_auth_delay_holds_back_both_streams_auth_replies():
    delay = 0.3
    with sim_server(faults=SimFaults(auth_delay=delay)) as sim:
        began = time.monotonic()
        ws, reply = raw_data_connection(sim)
        data_wait = time.monotonic() - began
        ws.close()
        with connect(f"{sim.server.ws_url}/stream") as trading:
            began = time.monotonic()
            trading.send(json.dumps({"action": "authenticate",
                                     "data": {"key_id": KEY, "secret_key": SECRET}}))
            trading_reply = json.loads(trading.recv(timeout=5))
            trading_wait = time.monotonic() - began

    assert reply == [{"T": "success", "msg": "authenticated"}]
    assert trading_reply["data"]["status"] == "authorized"
    assert data_wait >= delay and trading_wait >= delay
