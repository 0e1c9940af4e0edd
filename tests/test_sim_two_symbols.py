"""The local Alpaca-protocol server replaying two symbols on their shared dates, and its pure
parts (calendar checks, partial-fill splits)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import GetCalendarRequest, MarketOrderRequest

from backtests.synthetic import random_walk
from live.aiothread import RunningServer
from live.sim.orders import split_quantity
from live.sim.server import build_app, serve
from live.sim.state import SimState

KEY, SECRET = "test-key", "test-secret"
START_INDEX, CASH, PAGE = 30, 100_000.0, 7


@pytest.fixture
def pair() -> Iterator[tuple[RunningServer, dict[str, pd.DataFrame]]]:
    """Two symbols; BBB lacks two early dates, so the replay calendar skips them."""
    aaa = random_walk(n=60, seed=7)
    bbb = random_walk(n=60, seed=8).drop(aaa.index[[3, 9]])
    common = bbb.index
    app = build_app({"aaa": aaa, "BBB": bbb}, key_id=KEY, secret=SECRET,
                    start=common[START_INDEX].date(), cash=CASH, max_page_size=PAGE)
    server = serve(app)
    try:
        yield server, {"AAA": aaa.loc[common], "BBB": bbb}
    finally:
        server.stop()


def sim_get(server: RunningServer, path: str) -> dict:
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    response = requests.get(f"{server.url}{path}", headers=headers, timeout=5)
    response.raise_for_status()
    return response.json()


def sim_advance(server: RunningServer) -> dict:
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    response = requests.post(f"{server.url}/sim/advance", headers=headers, timeout=5)
    response.raise_for_status()
    return response.json()


def test_two_symbols_replay_on_the_dates_both_have(pair):
    server, frames = pair
    trading = TradingClient(KEY, SECRET, paper=True, url_override=server.url)

    status = sim_get(server, "/sim/status")
    days = trading.get_calendar(GetCalendarRequest(start=frames["AAA"].index[0].date(),
                                                   end=frames["AAA"].index[-1].date()))

    common = frames["AAA"].index
    assert status["symbols"] == ["AAA", "BBB"]
    assert status["index"] == START_INDEX and status["finished"] is False
    assert status["day"] == common[START_INDEX].date().isoformat()
    assert status["bar_time"] == bar_time(common[START_INDEX])
    assert [d.date for d in days] == [d.date() for d in common]
    assert {trading.get_asset(s).symbol for s in ("AAA", "bbb")} == {"AAA", "BBB"}
    with pytest.raises(APIError) as unknown:
        trading.get_asset("CCC")
    assert unknown.value.status_code == 404


def test_bars_of_two_symbols_are_paged_by_symbol_then_time_and_merged_by_the_client(pair):
    server, frames = pair
    data = StockHistoricalDataClient(KEY, SECRET, url_override=server.url)

    barset = data.get_stock_bars(StockBarsRequest(
        symbol_or_symbols=["BBB", "AAA", "ZZZ"], timeframe=TimeFrame.Day,
        start=datetime(1999, 1, 1, tzinfo=UTC)))

    assert set(barset.data) == {"AAA", "BBB"}
    for symbol, frame in frames.items():
        visible = frame.iloc[: START_INDEX + 1]
        bars = barset.data[symbol]
        assert [b.timestamp for b in bars] == [pd.Timestamp(bar_time(d)).to_pydatetime()
                                               for d in visible.index]
        assert [b.close for b in bars] == pytest.approx(visible["close"].tolist())


def test_a_raw_multi_symbol_page_token_crosses_from_one_symbol_to_the_next(pair):
    server, _ = pair
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    params = {"symbols": "AAA,BBB", "timeframe": "1Day", "limit": 1000, "start": "1999-01-01"}
    order = []
    while True:
        body = requests.get(f"{server.url}/v2/stocks/bars", params=params, headers=headers,
                            timeout=5).json()
        order += [(symbol, bar["t"]) for symbol, bars in body["bars"].items() for bar in bars]
        if body["next_page_token"] is None:
            break
        params["page_token"] = body["next_page_token"]

    assert order == sorted(order) and len(set(order)) == len(order) == 2 * (START_INDEX + 1)


def test_each_symbol_keeps_its_own_position_and_equity_sums_them(pair):
    server, frames = pair
    trading = TradingClient(KEY, SECRET, paper=True, url_override=server.url)
    for symbol, qty in (("AAA", 10), ("BBB", 4)):
        trading.submit_order(MarketOrderRequest(symbol=symbol, qty=qty, side=OrderSide.BUY,
                                                time_in_force=TimeInForce.DAY))

    step = sim_advance(server)

    day = frames["AAA"].index[START_INDEX + 1]
    opens = {s: f.loc[day, "open"] for s, f in frames.items()}
    closes = {s: f.loc[day, "close"] for s, f in frames.items()}
    cash = CASH - 10 * opens["AAA"] - 4 * opens["BBB"]
    positions = {p.symbol: float(p.qty) for p in trading.get_all_positions()}
    account = trading.get_account()
    assert positions == {"AAA": 10.0, "BBB": 4.0}
    assert float(trading.get_open_position("BBB").avg_entry_price) == pytest.approx(opens["BBB"])
    assert float(account.cash) == pytest.approx(cash, rel=1e-12)
    assert float(account.equity) == pytest.approx(
        cash + 10 * closes["AAA"] + 4 * closes["BBB"], rel=1e-12)
    with pytest.raises(APIError) as oversell:
        trading.submit_order(MarketOrderRequest(symbol="BBB", qty=5, side=OrderSide.SELL,
                                                time_in_force=TimeInForce.DAY))
    assert oversell.value.status_code == 403
    assert set(step) == {"index", "day", "bar_time", "finished", "orders", "bars"}
    assert [o["symbol"] for o in step["orders"]] == ["AAA", "BBB"]
    assert all(o["status"] == "filled" for o in step["orders"])
    assert step["day"] == day.date().isoformat() and step["bar_time"] == bar_time(day)
    assert set(step["bars"]) == {"AAA", "BBB"}
    assert step["bars"]["BBB"]["o"] == pytest.approx(opens["BBB"])
    assert step["bars"]["AAA"]["t"] == bar_time(day)


def test_bars_list_nothing_for_a_symbol_that_is_not_replayed(pair):
    server, _ = pair
    data = StockHistoricalDataClient(KEY, SECRET, url_override=server.url)

    barset = data.get_stock_bars(StockBarsRequest(symbol_or_symbols="ZZZ",
                                                  timeframe=TimeFrame.Day))

    assert barset.data == {}


def bar_time(day: pd.Timestamp) -> str:
    stamp = pd.Timestamp(f"{day.date()} 00:00").tz_localize("America/New_York")
    return stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------- pure parts
def test_feeds_that_share_no_date_are_refused():
    early, late = random_walk(n=10, seed=1), random_walk(n=10, seed=2)
    late.index = late.index + pd.Timedelta(days=100)

    with pytest.raises(ValueError, match="share no date"):
        SimState({"EARLY": early, "LATE": late})


def test_a_start_after_the_last_bar_or_negative_costs_are_refused():
    bars = random_walk(n=10)

    with pytest.raises(ValueError, match="after the last bar"):
        SimState({"SIM": bars}, start=date(2030, 1, 1))
    with pytest.raises(ValueError, match="commission"):
        SimState({"SIM": bars}, commission=-0.01)


@pytest.mark.parametrize("qty, parts", [(10, [5, 5]), (7, [3, 4]), (2, [1, 1]),
                                        (1, [0.5, 0.5]), (0.3, [0.15, 0.15]),
                                        (2.5, [1.25, 1.25])])
def test_a_partial_fill_splits_whole_shares_when_it_can(qty, parts):
    assert split_quantity(qty, partial=True) == pytest.approx(parts)
    assert split_quantity(qty, partial=False) == [qty]
