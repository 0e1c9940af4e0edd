"""The order routes driven by the real alpaca-py TradingClient and raw HTTP over 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, OrderType, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
    TrailingStopOrderRequest,
)

from live.aiothread import RunningServer
from live.sim.server import build_app, serve

KEY, SECRET = "k", "s"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
ROWS = [(100, 101, 99, 100), (100, 104, 96, 103), (103, 108, 102, 107), (107, 107, 95, 96)]


@pytest.fixture
def server() -> Iterator[RunningServer]:
    index = pd.bdate_range("2021-01-04", periods=len(ROWS))
    bars = pd.DataFrame(ROWS, index=index, columns=["open", "high", "low", "close"])
    with serve(build_app({"SIM": bars.assign(volume=1e3)}, key_id=KEY, secret=SECRET)) as run:
        yield run


@pytest.fixture
def trading(server) -> TradingClient:
    return TradingClient(KEY, SECRET, paper=True, url_override=server.url)


def advance(server: RunningServer) -> dict:
    response = requests.post(f"{server.url}/sim/advance", headers=HEADERS, timeout=5)
    response.raise_for_status()
    return response.json()


def post(server: RunningServer, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/v2/orders", json=body, headers=HEADERS, timeout=5)


def test_every_order_type_round_trips_through_alpaca_py(trading):
    placed = [
        trading.submit_order(LimitOrderRequest(symbol="SIM", qty=1, side=OrderSide.BUY,
                                               time_in_force=TimeInForce.GTC, limit_price=97)),
        trading.submit_order(StopOrderRequest(symbol="SIM", qty=1, side=OrderSide.BUY,
                                              time_in_force=TimeInForce.DAY, stop_price=103)),
        trading.submit_order(StopLimitOrderRequest(
            symbol="SIM", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            stop_price=103, limit_price=104)),
        trading.submit_order(TrailingStopOrderRequest(
            symbol="SIM", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC,
            trail_percent=2)),
    ]

    assert [o.type for o in placed] == [OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT,
                                        OrderType.TRAILING_STOP]
    assert float(placed[0].limit_price) == 97 and float(placed[1].stop_price) == 103
    assert float(placed[3].trail_percent) == 2 and float(placed[3].hwm) == 100


def test_a_limit_buy_fills_at_its_limit_when_the_low_reaches_it(server, trading):
    order = trading.submit_order(LimitOrderRequest(
        symbol="SIM", qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=97))

    step = advance(server)
    filled = trading.get_order_by_id(order.id)

    assert [o["id"] for o in step["orders"]] == [str(order.id)]
    assert filled.status == OrderStatus.FILLED and float(filled.filled_avg_price) == 97
    assert float(trading.get_account().cash) == 100_000 - 194


def test_a_day_limit_that_misses_expires_and_says_when(server, trading):
    order = trading.submit_order(LimitOrderRequest(
        symbol="SIM", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=90))

    advance(server)
    expired = trading.get_order_by_id(order.id)

    assert expired.status == OrderStatus.EXPIRED and expired.expired_at is not None


def test_replace_creates_a_linked_order_and_marks_the_old_one_replaced(server, trading):
    old = trading.submit_order(LimitOrderRequest(
        symbol="SIM", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=50))

    new = trading.replace_order_by_id(old.id, ReplaceOrderRequest(qty=3, limit_price=98,
                                                                  client_order_id="bigger"))
    before = trading.get_order_by_id(old.id)
    advance(server)

    assert before.status == OrderStatus.REPLACED and before.replaced_by == new.id
    assert new.replaces == old.id and new.client_order_id == "bigger" and float(new.qty) == 3
    assert trading.get_order_by_id(new.id).status == OrderStatus.FILLED


def test_replacing_a_filled_order_or_a_price_its_type_lacks_is_422(server, trading):
    market = trading.submit_order(MarketOrderRequest(symbol="SIM", qty=1, side=OrderSide.BUY,
                                                     time_in_force=TimeInForce.DAY))
    advance(server)

    with pytest.raises(APIError) as closed:
        trading.replace_order_by_id(market.id, ReplaceOrderRequest(qty=2))
    limit = trading.submit_order(LimitOrderRequest(
        symbol="SIM", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=50))
    with pytest.raises(APIError) as wrong_price:
        trading.replace_order_by_id(limit.id, ReplaceOrderRequest(stop_price=5))

    assert closed.value.status_code == wrong_price.value.status_code == 422
    assert "stop_price" in wrong_price.value.message


def test_order_list_filters_by_side_symbol_and_time_and_pages_by_until(server, trading):
    trading.submit_order(MarketOrderRequest(symbol="SIM", qty=5, side=OrderSide.BUY,
                                            time_in_force=TimeInForce.DAY))
    advance(server)
    for number in range(4):
        trading.submit_order(LimitOrderRequest(
            symbol="SIM", qty=1, side=OrderSide.BUY if number % 2 else OrderSide.SELL,
            time_in_force=TimeInForce.GTC, limit_price=50 if number % 2 else 500))
    every = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    open_ = trading.get_orders(GetOrdersRequest())
    buys = trading.get_orders(GetOrdersRequest(side=OrderSide.BUY, symbols=["SIM"]))
    pages, until = [], None
    while True:
        page = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=1,
                                                   until=until))
        if not page:
            break
        pages += page
        until = page[-1].submitted_at

    assert len(every) == 5 and len(open_) == 4
    assert [o.id for o in pages] == [o.id for o in every]
    assert [o.id for o in buys] == [every[0].id, every[2].id]
    assert len(trading.get_orders(GetOrdersRequest(side=OrderSide.SELL))) == 2
    assert trading.get_orders(GetOrdersRequest(symbols=["OTHER"])) == []
    oldest_first = trading.get_orders(GetOrdersRequest(direction="asc", nested=True))
    assert [o.id for o in oldest_first] == [o.id for o in reversed(open_)]
    after = trading.get_orders(GetOrdersRequest(after=every[1].submitted_at))
    assert [o.id for o in after] == [every[0].id]


@pytest.mark.parametrize("body, needle", [
    ({"type": "market", "qty": 1.5, "time_in_force": "gtc"}, "fractional"),
    ({"type": "market", "notional": 100, "time_in_force": "gtc"}, "fractional"),
    ({"type": "market", "qty": 1, "time_in_force": "day", "extended_hours": True},
     "extended_hours"),
    ({"qty": 1, "time_in_force": "day"}, "type is required"),
    ({"type": "market", "qty": 1}, "time_in_force is required"),
    ({"type": "market", "qty": 1, "time_in_force": "day", "client_order_id": "x" * 129},
     "client_order_id"),
    ({"type": "market", "qty": True, "time_in_force": "day"}, "qty"),
    ({"type": "limit", "qty": 1, "time_in_force": "day"}, "limit_price"),
    ({"type": "stop", "qty": 1, "time_in_force": "day"}, "stop_price"),
    ({"type": "market", "qty": 1, "time_in_force": "day", "symbol": "NOPE"}, "NOPE"),
])
def test_requests_alpaca_refuses_are_422_with_an_alpaca_error_body(server, body, needle):
    response = post(server, {"symbol": "SIM", "side": "buy", **body})

    assert response.status_code == 422
    error = response.json()
    assert isinstance(error["code"], int) and needle in error["message"]


@pytest.mark.parametrize("query", [{"side": "both"}, {"direction": "up"}, {"until": "soon"},
                                   {"nested": "maybe"}, {"status": "done"}])
def test_a_bad_order_list_filter_is_422(server, query):
    response = requests.get(f"{server.url}/v2/orders", params=query, headers=HEADERS, timeout=5)

    assert response.status_code == 422 and next(iter(query)) in response.json()["message"]
