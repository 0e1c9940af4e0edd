"""The local server as clients it was not built for see it: raw HTTP, and alpaca-py calls the
project never makes (closing positions, listing assets, weekly and monthly bars).

Each test names the Alpaca behaviour it holds the server to (issue 17).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetExchange, AssetStatus, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import FailedClosePositionDetails, Order
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetOrdersRequest,
    MarketOrderRequest,
)

from backtests.synthetic import random_walk
from live.aiothread import RunningServer
from live.sim.server import build_app, serve
from live.sim.wire import num, qty_num

KEY, SECRET = "compat-key", "compat-secret"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
START = 60


@dataclass
class Sim:
    """A running two-symbol server, its bars and the real clients."""

    server: RunningServer
    frames: dict[str, pd.DataFrame]
    trading: TradingClient
    data: StockHistoricalDataClient

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.server.url}{path}", params=params, headers=HEADERS,
                            timeout=10)

    def delete(self, path: str, **params: Any) -> requests.Response:
        return requests.delete(f"{self.server.url}{path}", params=params, headers=HEADERS,
                               timeout=10)

    def advance(self) -> None:
        requests.post(f"{self.server.url}/sim/advance", headers=HEADERS,
                      timeout=10).raise_for_status()

    def order(self, symbol: str, side: OrderSide, qty: float | None = None,
              notional: float | None = None) -> Order:
        return self.trading.submit_order(MarketOrderRequest(
            symbol=symbol, qty=qty, notional=notional, side=side,
            time_in_force=TimeInForce.DAY))

    def visible(self, symbol: str) -> pd.DataFrame:
        """The daily bars the server may serve now: up to its current one."""
        index = requests.get(f"{self.server.url}/sim/status", headers=HEADERS,
                             timeout=10).json()["index"]
        return self.frames[symbol].iloc[: index + 1]


@pytest.fixture
def sim() -> Iterator[Sim]:
    frames = {"AAA": random_walk(n=90, seed=3), "BBB": random_walk(n=90, seed=4)}
    app = build_app(frames, key_id=KEY, secret=SECRET, start=frames["AAA"].index[START].date())
    server = serve(app)
    try:
        yield Sim(server, frames, TradingClient(KEY, SECRET, paper=True, url_override=server.url),
                  StockHistoricalDataClient(KEY, SECRET, url_override=server.url))
    finally:
        server.stop()


def midnight_new_york(days: pd.DatetimeIndex) -> list[str]:
    stamps = days.tz_localize("America/New_York").tz_convert("UTC")
    return list(stamps.strftime("%Y-%m-%dT%H:%M:%SZ"))


# ------------------------------------------------------------- 1. single-symbol bars
def test_single_symbol_bars_answer_in_alpacas_shape_and_page_to_the_current_bar(sim):
    pages, token = [], None
    while True:
        params = {"timeframe": "1Day", "limit": 25, **({"page_token": token} if token else {})}
        body = sim.get("/v2/stocks/aaa/bars", **params).json()
        assert set(body) == {"bars", "symbol", "next_page_token"} and body["symbol"] == "AAA"
        pages.append(body["bars"])
        token = body["next_page_token"]
        if token is None:
            break

    bars = [bar for page in pages for bar in page]
    expected = sim.visible("AAA")
    assert [len(p) for p in pages] == [25, 25, 11]
    assert [b["t"] for b in bars] == midnight_new_york(expected.index)
    assert [b["c"] for b in bars] == expected["close"].tolist()


def test_single_symbol_bars_of_a_symbol_not_replayed_are_an_empty_list(sim):
    body = sim.get("/v2/stocks/ZZZ/bars", timeframe="1Day").json()

    assert body == {"bars": [], "symbol": "ZZZ", "next_page_token": None}


# ------------------------------------------------------------ 4b. closing positions
def test_closing_a_position_sells_all_of_it_at_the_next_open(sim):
    sim.order("AAA", OrderSide.BUY, qty=10)
    sim.advance()

    order = sim.trading.close_position("AAA")
    sim.advance()

    assert (order.side, order.qty, order.type.value) == (OrderSide.SELL, "10", "market")
    assert sim.trading.get_order_by_id(order.id).status == OrderStatus.FILLED
    assert sim.trading.get_all_positions() == []


@pytest.mark.parametrize(("bought", "close", "sold"), [
    (10, ClosePositionRequest(qty="3"), "3"),
    (10, ClosePositionRequest(percentage="55"), "5"),  # whole shares of a whole position
    (3.5, ClosePositionRequest(percentage="50"), "1.75"),
])
def test_closing_part_of_a_position_sells_the_qty_or_percentage_asked(sim, bought, close, sold):
    sim.order("AAA", OrderSide.BUY, qty=bought)
    sim.advance()

    order = sim.trading.close_position("AAA", close)

    assert order.qty == sold


def test_closing_a_flat_position_is_404_and_both_qty_and_percentage_422(sim):
    with pytest.raises(APIError) as flat:
        sim.trading.close_position("AAA")
    sim.order("AAA", OrderSide.BUY, qty=4)
    sim.advance()
    both = sim.delete("/v2/positions/AAA", qty="1", percentage="10")
    over = sim.delete("/v2/positions/AAA", percentage="150")

    assert flat.value.status_code == 404
    assert (both.status_code, over.status_code) == (422, 422)


def test_close_all_cancels_open_orders_first_and_answers_207_per_symbol(sim):
    sim.order("AAA", OrderSide.BUY, qty=5)
    sim.order("BBB", OrderSide.BUY, qty=7)
    sim.advance()
    pending = sim.order("AAA", OrderSide.BUY, qty=1)

    raw = sim.delete("/v2/positions", cancel_orders="true")

    assert raw.status_code == 207
    assert [(r["symbol"], r["status"], r["body"]["qty"]) for r in raw.json()] == [
        ("AAA", 200, "5"), ("BBB", 200, "7")]
    assert sim.trading.get_order_by_id(pending.id).status == OrderStatus.CANCELED


def test_close_all_reports_a_position_whose_shares_open_orders_hold(sim):
    sim.order("AAA", OrderSide.BUY, qty=5)
    sim.order("BBB", OrderSide.BUY, qty=7)
    sim.advance()
    sim.order("AAA", OrderSide.SELL, qty=5)

    replies = sim.trading.close_all_positions()

    by_symbol = {reply.symbol: reply for reply in replies}
    assert by_symbol["AAA"].status == 403
    assert isinstance(by_symbol["AAA"].body, FailedClosePositionDetails)
    assert by_symbol["AAA"].body.held_for_orders == 5.0
    assert by_symbol["BBB"].status == 200 and by_symbol["BBB"].body.qty == "7"


def test_bad_cancel_orders_is_422(sim):
    assert sim.delete("/v2/positions", cancel_orders="maybe").status_code == 422


# ------------------------------------------------------------------- 4c. asset list
def test_assets_are_listed_and_filtered_like_alpacas(sim):
    every = sim.trading.get_all_assets()
    nasdaq = sim.trading.get_all_assets(GetAssetsRequest(exchange=AssetExchange.NASDAQ))
    nyse = sim.trading.get_all_assets(GetAssetsRequest(exchange=AssetExchange.NYSE))
    inactive = sim.trading.get_all_assets(GetAssetsRequest(status=AssetStatus.INACTIVE))
    fractional = sim.get("/v2/assets", attributes="ptp_no_exception,fractional_eh_enabled")

    assert [a.symbol for a in every] == [a.symbol for a in nasdaq] == ["AAA", "BBB"]
    assert nyse == inactive == []
    assert [a["symbol"] for a in fractional.json()] == ["AAA", "BBB"]
    assert sim.get("/v2/assets", status="sleeping").status_code == 422


# ---------------------------------------------------------------- 5. number formats
def test_whole_quantities_read_as_integers_and_fractional_ones_carry_no_float_noise(sim):
    sim.order("AAA", OrderSide.BUY, qty=10)
    sim.order("BBB", OrderSide.BUY, qty=0.1)
    sim.order("BBB", OrderSide.BUY, qty=0.2)  # 0.1 + 0.2 is 0.30000000000000004 in floats
    sim.advance()

    aaa, bbb = sim.trading.get_all_positions()
    orders = sim.get("/v2/orders", status="all").json()

    assert (aaa.qty, int(aaa.qty), aaa.qty_available) == ("10", 10, "10")
    assert bbb.qty == "0.3"
    assert {o["qty"] for o in orders} == {"10", "0.1", "0.2"}
    assert sim.get("/v2/account").json()["cash"] == num(float(sim.trading.get_account().cash))


def test_qty_available_leaves_out_shares_held_by_open_sells(sim):
    sim.order("AAA", OrderSide.BUY, qty=10)
    sim.advance()
    sim.order("AAA", OrderSide.SELL, qty=4)

    position = sim.trading.get_open_position("AAA")

    assert (position.qty, position.qty_available) == ("10", "6")


@pytest.mark.parametrize(("value", "text"), [
    (10.0, "10"), (-0.0, "0"), (1e-05, "0.00001"), (101.25, "101.25"),
    (0.1 + 0.2, "0.30000000000000004"), (None, None)])
def test_num_writes_the_shortest_exact_decimal_without_exponent_or_trailing_zero(value, text):
    assert num(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (32.973982107000005, "32.973982107"), (10.0, "10"), (0.1 + 0.2, "0.3"),
    (1e-9, "0.000000001"), (None, None)])
def test_qty_num_rounds_to_nine_decimals_and_strips_trailing_zeros(value, text):
    assert qty_num(value) == text


def test_bar_volume_is_an_integer_on_every_feed(sim):
    iex = sim.get("/v2/stocks/bars", symbols="AAA", timeframe="1Day", limit=5).json()
    sip = sim.get("/v2/stocks/AAA/bars", timeframe="1Week", feed="sip", limit=5).json()

    volumes = [b["v"] for b in iex["bars"]["AAA"]] + [b["v"] for b in sip["bars"]]
    assert volumes and all(type(v) is int for v in volumes)


# ------------------------------------------------------------------- 7. timeframes
def expected_periods(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Weekly (Monday-stamped) or monthly (1st-stamped) bars, as Alpaca stamps them."""
    grouped = frame.groupby(frame.index.to_period(rule).start_time)
    return pd.DataFrame({"open": grouped["open"].first(), "high": grouped["high"].max(),
                         "low": grouped["low"].min(), "close": grouped["close"].last(),
                         "volume": grouped["volume"].sum()})


@pytest.mark.parametrize(("timeframe", "rule"), [(TimeFrame.Week, "W-SUN"),
                                                 (TimeFrame.Month, "M")])
def test_weekly_and_monthly_bars_are_built_from_the_daily_ones(sim, timeframe, rule):
    bars = sim.data.get_stock_bars(StockBarsRequest(
        symbol_or_symbols="AAA", timeframe=timeframe, start=pd.Timestamp("2000-01-01"),
        limit=1000)).data["AAA"]

    expected = expected_periods(sim.visible("AAA"), rule)
    stamps = [bar.timestamp.astimezone(tz=None).isoformat() for bar in bars]
    assert stamps == [pd.Timestamp(d).tz_localize("America/New_York").tz_convert("UTC")
                      .to_pydatetime().astimezone(tz=None).isoformat() for d in expected.index]
    assert [b.open for b in bars] == expected["open"].tolist()
    assert [b.close for b in bars] == expected["close"].tolist()
    assert [b.high for b in bars] == expected["high"].tolist()
    assert [b.low for b in bars] == expected["low"].tolist()
    assert [b.volume for b in bars] == expected["volume"].tolist()


def test_weekly_bars_are_stamped_on_monday_even_when_the_week_starts_later(sim):
    body = sim.get("/v2/stocks/AAA/bars", timeframe="1Week", start="2000-01-05",
                   limit=1).json()

    first_day = sim.frames["AAA"].index[sim.frames["AAA"].index >= "2000-01-05"][0]
    monday = first_day - pd.Timedelta(days=first_day.weekday())
    assert body["bars"][0]["t"] == midnight_new_york(pd.DatetimeIndex([monday]))[0]
    assert body["bars"][0]["o"] == sim.frames["AAA"].loc[first_day, "open"]


def test_weekly_bars_page_without_gaps_or_repeats_in_both_directions(sim):
    def collect(sort: str) -> list[str]:
        stamps, token = [], None
        while True:
            body = sim.get("/v2/stocks/bars", symbols="AAA,BBB", timeframe="1Week", limit=4,
                           sort=sort, **({"page_token": token} if token else {})).json()
            stamps += [(s, b["t"]) for s, bars in body["bars"].items() for b in bars]
            token = body["next_page_token"]
            if token is None:
                return stamps

    ascending, descending = collect("asc"), collect("desc")
    weeks = len(expected_periods(sim.visible("AAA"), "W-SUN"))
    assert len(ascending) == len(set(ascending)) == 2 * weeks
    assert sorted(ascending) == ascending
    assert descending == [(s, t) for s in ("AAA", "BBB")
                          for _, t in sorted(x for x in ascending if x[0] == s)[::-1]]


@pytest.mark.parametrize("timeframe", [TimeFrame.Minute, TimeFrame.Hour,
                                       TimeFrame(15, TimeFrameUnit.Minute)])
def test_intraday_timeframes_are_refused_with_422_saying_the_history_is_daily(sim, timeframe):
    with pytest.raises(APIError) as refused:
        sim.data.get_stock_bars(StockBarsRequest(symbol_or_symbols="AAA", timeframe=timeframe))

    assert refused.value.status_code == 422
    assert "daily bars only" in str(refused.value)


def test_other_timeframes_are_refused_with_422_and_garbage_with_400(sim):
    months = sim.get("/v2/stocks/AAA/bars", timeframe="3Month")
    garbage = sim.get("/v2/stocks/AAA/bars", timeframe="fortnight")

    assert months.status_code == 422 and "1Day, 1Week and 1Month" in months.json()["message"]
    assert garbage.status_code == 400


def test_orders_json_still_parses_in_alpaca_py_after_fills(sim):
    sim.order("AAA", OrderSide.BUY, notional=1234.5)
    sim.advance()

    order = sim.trading.get_orders(GetOrdersRequest(status="all"))[0]

    assert order.status == OrderStatus.FILLED
    assert float(order.filled_qty) == pytest.approx(1234.5 / float(order.filled_avg_price),
                                                    abs=1e-9)
    assert np.isfinite(float(sim.trading.get_account().equity))
