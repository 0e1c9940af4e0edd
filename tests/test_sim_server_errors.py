"""The local Alpaca-protocol server's error answers: every one a JSON body, none a 500.

Raw HTTP (``requests``) sends what alpaca-py never would; the real ``TradingClient`` then
checks that a refused request left the server usable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest

from backtests.synthetic import random_walk
from live.aiothread import RunningServer
from live.sim.appkeys import ADVANCE_HOOKS_KEY
from live.sim.server import build_app, serve

KEY, SECRET, SYMBOL = "err-key", "err-secret", "SIM"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
START_INDEX = 20


@pytest.fixture
def server() -> Iterator[RunningServer]:
    bars = random_walk(n=40)
    app = build_app({SYMBOL: bars}, key_id=KEY, secret=SECRET,
                    start=bars.index[START_INDEX].date())
    with serve(app) as running:
        yield running


def call(server: RunningServer, method: str, path: str, **kwargs) -> requests.Response:
    headers = {**HEADERS, **kwargs.pop("headers", {})}
    return requests.request(method, server.url + path, headers=headers, timeout=5, **kwargs)


def assert_json_error(response: requests.Response, status: int) -> dict:
    """The response has ``status`` and Alpaca's JSON error body: ``{"code", "message"}``."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message"} and isinstance(body["code"], int)
    return body


def client(server: RunningServer) -> TradingClient:
    return TradingClient(KEY, SECRET, paper=True, url_override=server.url)


# ------------------------------------------------------------------------------- dates
@pytest.mark.parametrize("query, bad", [
    ({"start": "garbage"}, "start"), ({"end": "2020-13-45"}, "end"), ({"start": "now"}, "start"),
    ({"start": "99999-01-01"}, "start"), ({"start": "2000-01-01", "end": "yesterday"}, "end")])
def test_unparsable_dates_on_stock_bars_are_422_json(server, query, bad):
    response = call(server, "GET", "/v2/stocks/bars",
                    params={"symbols": SYMBOL, "timeframe": "1Day", **query})

    body = assert_json_error(response, 422)
    assert body["message"].startswith(f"invalid {bad}: {query[bad]!r}")


@pytest.mark.parametrize("query", [{"start": "garbage"}, {"end": "01/02/2000"}, {"start": ""}])
def test_unparsable_dates_on_the_calendar_are_422_json(server, query):
    response = call(server, "GET", "/v2/calendar", params=query)

    body = assert_json_error(response, 422)
    assert f"invalid {next(iter(query))}" in body["message"]


def test_the_calendar_takes_a_time_with_an_offset_as_its_date(server):
    response = call(server, "GET", "/v2/calendar",
                    params={"start": "2000-01-03T00:00:00Z", "end": "2000-01-05T23:00:00-05:00"})

    assert response.status_code == 200
    assert [day["date"] for day in response.json()] == ["2000-01-03", "2000-01-04",
                                                        "2000-01-05"]


# ------------------------------------------------------------------------------ orders
@pytest.mark.parametrize("client_order_id", [12345, 1.5, True, ["a"], {"id": "a"}, "x" * 129])
def test_a_client_order_id_that_is_not_a_short_string_is_422_and_listing_still_works(
        server, client_order_id):
    order = {"symbol": SYMBOL, "qty": 1, "side": "buy", "type": "market",
             "time_in_force": "day", "client_order_id": client_order_id}

    response = call(server, "POST", "/v2/orders", json=order)

    body = assert_json_error(response, 422)
    assert "client_order_id" in body["message"] and len(body["message"]) < 200
    trading = client(server)
    assert trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []
    placed = trading.submit_order(MarketOrderRequest(
        symbol=SYMBOL, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY,
        client_order_id="after-the-refusal"))
    listed = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))
    assert [o.client_order_id for o in listed] == [placed.client_order_id]


@pytest.mark.parametrize("field, value", [("qty", True), ("qty", "NaN"), ("qty", "inf"),
                                          ("qty", [1]), ("notional", "abc"), ("symbol", 7),
                                          ("side", ["buy"]), ("time_in_force", 1)])
def test_order_fields_of_the_wrong_type_are_422_json(server, field, value):
    order = {"symbol": SYMBOL, "qty": 1, "side": "buy", "time_in_force": "day", field: value}
    if field == "notional":
        del order["qty"]

    response = call(server, "POST", "/v2/orders", json=order)

    body = assert_json_error(response, 422)
    assert field in body["message"]
    assert client(server).get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []


@pytest.mark.parametrize("limit", ["0", "-3", "ten"])
def test_a_bad_order_list_limit_is_422_json(server, limit):
    assert_json_error(call(server, "GET", "/v2/orders", params={"limit": limit}), 422)


def test_a_body_that_is_not_json_is_400_json(server):
    assert_json_error(call(server, "POST", "/v2/orders", data=b"{not json"), 400)


# ---------------------------------------------------------------------- aiohttp's own
@pytest.mark.parametrize("method, path", [("GET", "/v2/nope"), ("GET", "/"),
                                          ("POST", "/v2/stocks/quotes"), ("GET", "/sim/nope")])
def test_an_unknown_route_is_404_json(server, method, path):
    body = assert_json_error(call(server, method, path), 404)

    assert body["code"] == 40410000 and path in body["message"]


@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/v2/account", "GET"), ("PATCH", "/v2/orders", "DELETE,GET,POST"),
    ("GET", "/sim/advance", "POST")])
def test_a_wrong_method_is_405_json_with_allow(server, method, path, allowed):
    body = assert_json_error(call(server, method, path), 405)

    assert body["code"] == 40510000
    assert set(allowed.split(",")) <= set(call(server, method, path).headers["Allow"].split(","))


def test_an_unknown_route_without_keys_is_401_json(server):
    response = requests.get(server.url + "/v2/nope", timeout=5)

    assert assert_json_error(response, 401)["code"] == 40110000


def test_a_plain_get_on_a_websocket_path_is_400_json(server):
    assert_json_error(call(server, "GET", "/stream"), 400)


def test_a_body_over_the_size_limit_is_413_json(server):
    assert_json_error(call(server, "POST", "/v2/orders", data=b"x" * (2 << 20)), 413)


def test_an_unexpected_failure_is_500_json_and_the_server_keeps_serving(server):
    def broken_hook(state) -> None:
        raise RuntimeError("a bug in an advance hook")

    server.app[ADVANCE_HOOKS_KEY].append(broken_hook)

    body = assert_json_error(call(server, "POST", "/sim/advance"), 500)

    assert body == {"code": 50010000, "message": "internal server error"}
    assert float(client(server).get_account().cash) == 100_000.0
