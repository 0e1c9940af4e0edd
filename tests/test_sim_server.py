"""The local Alpaca-protocol server, driven by the real alpaca-py clients over 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest, MarketOrderRequest

from backtests.synthetic import random_walk
from live.aiothread import RunningServer
from live.sim.server import build_app, serve

KEY, SECRET, SYMBOL = "test-key", "test-secret", "SIM"
START_INDEX = 30
SLIPPAGE, COMMISSION, CASH = 0.001, 0.0005, 100_000.0
PAGE = 7


@dataclass
class Sim:
    """A running server, the bars it replays and real clients pointed at it."""

    server: RunningServer
    bars: pd.DataFrame
    trading: TradingClient
    data: StockHistoricalDataClient

    def advance(self) -> dict:
        """Ask the server for the next bar, as the replay driver does."""
        response = requests.post(f"{self.server.url}/sim/advance", timeout=5,
                                 headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
        response.raise_for_status()
        return response.json()

    def buy(self, qty: float | None = None, notional: float | None = None,
            client_order_id: str | None = None, side: OrderSide = OrderSide.BUY):
        """Submit a market order through the real TradingClient."""
        return self.trading.submit_order(MarketOrderRequest(
            symbol=SYMBOL, qty=qty, notional=notional, side=side,
            time_in_force=TimeInForce.DAY, client_order_id=client_order_id))


def start_sim(bars: pd.DataFrame, max_page_size: int = PAGE) -> RunningServer:
    app = build_app({SYMBOL: bars}, key_id=KEY, secret=SECRET,
                    start=bars.index[START_INDEX].date(), cash=CASH, commission=COMMISSION,
                    slippage=SLIPPAGE, max_page_size=max_page_size)
    return serve(app)


@pytest.fixture
def sim() -> Iterator[Sim]:
    bars = random_walk(n=80)
    server = start_sim(bars)
    try:
        yield Sim(server=server, bars=bars,
                  trading=TradingClient(KEY, SECRET, paper=True, url_override=server.url),
                  data=StockHistoricalDataClient(KEY, SECRET, url_override=server.url))
    finally:
        server.stop()
    assert not server._thread.is_alive()


def ny(day: pd.Timestamp, hhmm: str) -> datetime:
    return pd.Timestamp(f"{day.date()} {hhmm}").tz_localize("America/New_York").to_pydatetime()


def all_bars(sim: Sim, **kwargs) -> list:
    request = StockBarsRequest(symbol_or_symbols=SYMBOL, timeframe=TimeFrame.Day, **kwargs)
    return sim.data.get_stock_bars(request).data.get(SYMBOL, [])


# ----------------------------------------------------------------------- account, clock
def test_fresh_account_holds_starting_cash_and_no_positions(sim):
    account = sim.trading.get_account()

    assert float(account.cash) == CASH
    assert float(account.equity) == CASH
    assert float(account.buying_power) == CASH
    assert sim.trading.get_all_positions() == []


def test_clock_sits_after_the_current_close_and_points_at_the_next_session(sim):
    clock = sim.trading.get_clock()

    assert clock.is_open is False
    assert clock.timestamp == ny(sim.bars.index[START_INDEX], "16:00")
    assert clock.next_open == ny(sim.bars.index[START_INDEX + 1], "09:30")
    assert clock.next_close == ny(sim.bars.index[START_INDEX + 1], "16:00")


def test_calendar_and_asset_describe_the_replayed_dataset(sim):
    first, fifth = sim.bars.index[0].date(), sim.bars.index[4].date()

    days = sim.trading.get_calendar(GetCalendarRequest(start=first, end=fifth))
    asset = sim.trading.get_asset(SYMBOL)

    assert [day.date for day in days] == [d.date() for d in sim.bars.index[:5]]
    assert days[0].open == datetime.combine(first, datetime.min.time()).replace(hour=9, minute=30)
    assert asset.symbol == SYMBOL and asset.fractionable and asset.tradable


# ----------------------------------------------------------------------------- orders
def test_market_buy_fills_at_next_open_with_slippage_and_commission(sim):
    order = sim.buy(qty=12.5, client_order_id="buy-1")
    assert order.status == OrderStatus.NEW

    step = sim.advance()

    next_bar = sim.bars.iloc[START_INDEX + 1]
    price = next_bar["open"] * (1 + SLIPPAGE)
    filled = sim.trading.get_order_by_id(order.id)
    account = sim.trading.get_account()
    position = sim.trading.get_open_position(SYMBOL)
    assert step["index"] == START_INDEX + 1 and step["orders"][0]["id"] == str(order.id)
    assert filled.status == OrderStatus.FILLED
    assert float(filled.filled_qty) == 12.5
    assert float(filled.filled_avg_price) == pytest.approx(price, rel=1e-12)
    assert filled.filled_at == ny(sim.bars.index[START_INDEX + 1], "09:30")
    cash = CASH - 12.5 * price * (1 + COMMISSION)
    assert float(account.cash) == pytest.approx(cash, rel=1e-12)
    assert float(account.equity) == pytest.approx(cash + 12.5 * next_bar["close"], rel=1e-12)
    assert float(position.qty) == 12.5
    assert float(position.avg_entry_price) == pytest.approx(price, rel=1e-12)


def test_notional_buy_fills_a_fractional_quantity(sim):
    order = sim.buy(notional=1_000.0)

    sim.advance()

    price = sim.bars["open"].iloc[START_INDEX + 1] * (1 + SLIPPAGE)
    filled = sim.trading.get_order_by_id(order.id)
    assert float(filled.filled_qty) == pytest.approx(1_000.0 / price, abs=1e-9)
    account = sim.trading.get_account()
    assert float(account.cash) == pytest.approx(CASH - 1_000.0 * (1 + COMMISSION), abs=1e-6)


def test_sell_closes_the_position_and_credits_cash_less_commission(sim):
    sim.buy(qty=10)
    sim.advance()
    cash_after_buy = float(sim.trading.get_account().cash)

    sim.buy(qty=10, side=OrderSide.SELL)
    sim.advance()

    price = sim.bars["open"].iloc[START_INDEX + 2] * (1 - SLIPPAGE)
    assert sim.trading.get_all_positions() == []
    expected = cash_after_buy + 10 * price * (1 - COMMISSION)
    assert float(sim.trading.get_account().cash) == pytest.approx(expected, rel=1e-12)


def test_canceled_order_never_fills(sim):
    order = sim.buy(qty=5)

    sim.trading.cancel_order_by_id(order.id)
    sim.advance()

    assert sim.trading.get_order_by_id(order.id).status == OrderStatus.CANCELED
    assert float(sim.trading.get_account().cash) == CASH
    with pytest.raises(APIError) as refused:
        sim.trading.cancel_order_by_id(order.id)
    assert refused.value.status_code == 422


def test_cancel_all_cancels_only_open_orders(sim):
    sim.buy(qty=1, client_order_id="early")
    sim.advance()
    sim.buy(qty=1, client_order_id="late-a")
    sim.buy(qty=2, client_order_id="late-b")

    canceled = sim.trading.cancel_orders()

    assert sorted(r.status for r in canceled) == [200, 200]
    assert sim.trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
    closed = sim.trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.client_order_id for o in closed] == ["late-b", "late-a", "early"]


def test_order_is_found_by_its_client_order_id(sim):
    order = sim.buy(qty=3, client_order_id="strat-SIM-20000214-1")

    found = sim.trading.get_order_by_client_id("strat-SIM-20000214-1")

    assert found.id == order.id and float(found.qty) == 3
    with pytest.raises(APIError) as missing:
        sim.trading.get_order_by_client_id("nobody")
    assert missing.value.status_code == 404


def test_duplicate_client_order_id_is_refused_with_422(sim):
    sim.buy(qty=1, client_order_id="dup")

    with pytest.raises(APIError) as refused:
        sim.buy(qty=2, client_order_id="dup")

    assert refused.value.status_code == 422
    assert "client_order_id" in refused.value.message
    assert len(sim.trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL))) == 1


def test_orders_beyond_cash_or_holdings_are_refused_with_403(sim):
    with pytest.raises(APIError) as short_sale:
        sim.buy(qty=1, side=OrderSide.SELL)
    with pytest.raises(APIError) as too_big:
        sim.buy(notional=CASH * 2)

    assert short_sale.value.status_code == too_big.value.status_code == 403


def test_same_submissions_give_the_same_order_ids_on_every_run():
    bars = random_walk(n=40)
    ids = []
    for _ in range(2):
        with start_sim(bars) as server:
            client = TradingClient(KEY, SECRET, paper=True, url_override=server.url)
            order = client.submit_order(MarketOrderRequest(
                symbol=SYMBOL, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY))
            ids.append((order.id, order.client_order_id))

    assert ids[0] == ids[1]


# ------------------------------------------------------------------------------- bars
def test_bars_are_paged_without_gaps_or_duplicates_up_to_the_current_bar(sim):
    bars = all_bars(sim, start=datetime(1999, 1, 1, tzinfo=UTC))

    days = [bar.timestamp.astimezone(UTC) for bar in bars]
    expected = [pd.Timestamp(d).tz_localize("America/New_York").tz_convert("UTC")
                for d in sim.bars.index[: START_INDEX + 1]]
    assert len(bars) == START_INDEX + 1 > 3 * PAGE
    assert days == [e.to_pydatetime() for e in expected]
    assert [bar.close for bar in bars] == pytest.approx(sim.bars["close"].iloc[: START_INDEX + 1])


def test_raw_bar_pages_carry_next_page_token_until_the_last(sim):
    url = f"{sim.server.url}/v2/stocks/bars"
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    params = {"symbols": SYMBOL, "timeframe": "1Day", "limit": 4, "start": "2000-01-01"}
    pages = []
    while True:
        body = requests.get(url, params=params, headers=headers, timeout=5).json()
        pages.append([bar["t"] for bar in body["bars"][SYMBOL]])
        if body["next_page_token"] is None:
            break
        params["page_token"] = body["next_page_token"]

    flat = [t for page in pages for t in page]
    assert [len(page) for page in pages] == [4] * 7 + [3]
    assert len(set(flat)) == len(flat) == START_INDEX + 1 and flat == sorted(flat)


def test_bars_show_nothing_after_the_current_bar_until_the_replay_advances(sim):
    far_future = datetime(2030, 1, 1, tzinfo=UTC)
    before = all_bars(sim, start=datetime(1999, 1, 1), end=far_future)

    sim.advance()
    after = all_bars(sim, start=datetime(1999, 1, 1), end=far_future)

    assert len(after) == len(before) + 1
    assert after[-1].open == pytest.approx(sim.bars["open"].iloc[START_INDEX + 1])
    assert all_bars(sim, start=datetime(2000, 1, 4), end=datetime(2000, 1, 6))[0].timestamp.day == 4


# ------------------------------------------------------------------------ auth, replay
def test_a_wrong_key_is_refused_by_trading_and_data_endpoints(sim):
    intruder = TradingClient(KEY, "wrong", paper=True, url_override=sim.server.url)
    data = StockHistoricalDataClient("wrong", SECRET, url_override=sim.server.url)

    with pytest.raises(APIError) as trading_refused:
        intruder.get_account()
    with pytest.raises(APIError) as data_refused:
        data.get_stock_bars(StockBarsRequest(symbol_or_symbols=SYMBOL, timeframe=TimeFrame.Day))

    assert trading_refused.value.status_code == data_refused.value.status_code == 401
    assert trading_refused.value.code == 40110000


def test_advancing_past_the_last_bar_is_refused_with_409():
    bars = random_walk(n=START_INDEX + 2)
    with start_sim(bars) as server:
        headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
        first = requests.post(f"{server.url}/sim/advance", headers=headers, timeout=5)
        second = requests.post(f"{server.url}/sim/advance", headers=headers, timeout=5)

    assert first.status_code == 200 and first.json()["finished"] is True
    assert second.status_code == 409 and second.json()["code"] == 40910000
