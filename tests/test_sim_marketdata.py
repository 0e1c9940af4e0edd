"""The local server's market data for ``ensemble-bt data``: paging, feeds, adjustments, the
corporate-action and open-session switches, and the request counts of ``/sim/status``.

Real alpaca-py clients over 127.0.0.1, as tests/test_sim_server.py drives the trading side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient

from backtests.synthetic import random_walk
from live.aiothread import RunningServer
from live.sim.marketdata import SIP_VOLUME_MULTIPLE
from live.sim.server import build_app, serve

KEY, SECRET = "md-key", "md-secret"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
N, START = 60, 40  # bars per symbol; the replay's current bar


@dataclass
class Venue:
    server: RunningServer
    source: dict[str, pd.DataFrame]
    data: StockHistoricalDataClient

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return requests.post(f"{self.server.url}{path}", json=body, headers=HEADERS, timeout=10)

    def status(self) -> dict:
        return requests.get(f"{self.server.url}/sim/status", headers=HEADERS, timeout=10).json()

    def bars(self, symbols=("AAA",), **kwargs) -> dict[str, pd.DataFrame]:
        barset = self.data.get_stock_bars(StockBarsRequest(
            symbol_or_symbols=list(symbols), timeframe=TimeFrame.Day,
            start=pd.Timestamp("1999-01-01", tz="UTC").to_pydatetime(), **kwargs))
        frame = barset.df
        return {s: frame.loc[s] for s in frame.index.get_level_values(0).unique()}


@pytest.fixture
def venue() -> Iterator[Venue]:
    source = {"AAA": random_walk(n=N, seed=1), "BBB": random_walk(n=N, seed=2)}
    server = serve(build_app(source, key_id=KEY, secret=SECRET,
                             start=source["AAA"].index[START].date(), max_page_size=7))
    try:
        yield Venue(server, source, StockHistoricalDataClient(KEY, SECRET,
                                                              url_override=server.url))
    finally:
        server.stop()


def visible(frame: pd.DataFrame, upto: int = START) -> pd.DataFrame:
    return frame.iloc[: upto + 1]


def test_multi_symbol_bars_page_across_symbols_up_to_the_current_bar(venue):
    got = venue.bars(("BBB", "AAA"))

    for symbol in ("AAA", "BBB"):
        assert np.array_equal(got[symbol]["close"].to_numpy(),
                              visible(venue.source[symbol])["close"].to_numpy())
    pages = -(-2 * (START + 1) // 7)
    assert venue.status()["requests"]["GET /v2/stocks/bars"] == pages
    assert venue.status()["bars_served"] == 2 * (START + 1)


def test_the_single_symbol_route_serves_the_same_bars_paged(venue):
    bars, token, calls = [], None, 0
    while True:
        reply = requests.get(f"{venue.server.url}/v2/stocks/AAA/bars", headers=HEADERS,
                             timeout=10, params={"timeframe": "1Day", "limit": 5,
                                                 **({"page_token": token} if token else {})})
        body = reply.json()
        calls += 1
        assert body["symbol"] == "AAA"
        bars += body["bars"]
        token = body["next_page_token"]
        if token is None:
            break

    assert [b["c"] for b in bars] == visible(venue.source["AAA"])["close"].tolist()
    assert calls == -(-(START + 1) // 5)
    assert venue.status()["requests"]["GET /v2/stocks/{symbol}/bars"] == calls


def test_the_sip_feed_has_the_same_prices_and_more_volume_than_iex(venue):
    iex = venue.bars(feed=DataFeed.IEX)["AAA"]
    sip = venue.bars(feed=DataFeed.SIP)["AAA"]

    assert iex["volume"].tolist() == visible(venue.source["AAA"])["volume"].tolist()
    assert (sip["volume"] == iex["volume"] * SIP_VOLUME_MULTIPLE).all()
    assert sip["close"].tolist() == iex["close"].tolist()


@pytest.mark.parametrize("params", [{"feed": "nasdaq"}, {"adjustment": "split,split"},
                                    {"adjustment": ""}, {"adjustment": "every"},
                                    {"sort": "sideways"}])
def test_an_unknown_feed_adjustment_or_sort_is_refused_with_400(venue, params):
    reply = requests.get(f"{venue.server.url}/v2/stocks/bars", headers=HEADERS, timeout=10,
                         params={"symbols": "AAA", "timeframe": "1Day", **params})

    assert reply.status_code == 400
    assert next(iter(params)) in reply.json()["message"]


def test_a_split_readjusts_the_history_the_adjusted_bars_show(venue):
    before = venue.bars(adjustment=Adjustment.ALL)["AAA"]

    assert venue.post("/sim/adjust", {"symbol": "aaa", "split": 2}).json()["ex_date"] == str(
        venue.source["AAA"].index[START + 1].date())
    venue.post("/sim/advance")

    adjusted = venue.bars(adjustment=Adjustment.SPLIT)["AAA"]
    raw = venue.bars(adjustment=Adjustment.RAW)["AAA"]
    source = visible(venue.source["AAA"], START + 1)
    assert adjusted["close"].tolist() == (source["close"] / 2).tolist()
    assert adjusted["volume"].tolist() == (source["volume"] * 2).tolist()
    assert raw["close"].iloc[:-1].tolist() == before["close"].tolist()  # as traded
    assert raw["close"].iloc[-1] == source["close"].iloc[-1] / 2
    assert venue.bars(("BBB",), adjustment=Adjustment.ALL)["BBB"]["close"].tolist() == (
        visible(venue.source["BBB"], START + 1)["close"].tolist())


def test_a_dividend_adjusts_only_dividend_adjusted_bars_before_its_ex_date(venue):
    close = venue.source["AAA"]["close"].iloc[START]
    venue.post("/sim/adjust", {"symbol": "AAA", "dividend": 0.5})
    venue.post("/sim/advance")

    split_only = venue.bars(adjustment=Adjustment.SPLIT)["AAA"]
    adjusted = venue.bars(adjustment=Adjustment.ALL)["AAA"]
    source = visible(venue.source["AAA"], START + 1)
    assert split_only["close"].tolist() == source["close"].tolist()
    assert np.allclose(adjusted["close"].iloc[:-1], source["close"].iloc[:-1] * (1 - 0.5 / close),
                       rtol=1e-12)
    assert adjusted["close"].iloc[-1] == source["close"].iloc[-1]
    assert adjusted["volume"].tolist() == source["volume"].tolist()


@pytest.mark.parametrize("body, status", [
    ({"symbol": "ZZZ", "split": 2}, 404),
    ({"symbol": "AAA"}, 422),
    ({"symbol": "AAA", "split": 2, "dividend": 1}, 422),
    ({"symbol": "AAA", "split": -2}, 422),
    ({"symbol": "AAA", "split": 1}, 422),
    ({"symbol": "AAA", "dividend": 1e9}, 422),
    ({"symbol": "AAA", "split": "two"}, 422),
])
def test_a_bad_corporate_action_is_refused(venue, body, status):
    assert venue.post("/sim/adjust", body).status_code == status
    assert venue.status()["actions"] == []


def test_while_a_session_is_open_the_clock_says_so_and_its_partial_bar_is_served(venue):
    trading = TradingClient(KEY, SECRET, paper=True, url_override=venue.server.url)
    today = venue.source["AAA"].index[START + 1]

    assert venue.post("/sim/open").json()["session_open"] is True
    clock = trading.get_clock()
    served = venue.bars()["AAA"]

    assert clock.is_open and pd.Timestamp(clock.timestamp).date() == today.date()
    assert pd.Timestamp(clock.next_close).date() == today.date()
    assert len(served) == START + 2
    venue.post("/sim/advance")
    assert trading.get_clock().is_open is False
    assert len(venue.bars()["AAA"]) == START + 2


def test_status_counts_requests_by_route_refused_ones_included(venue):
    with pytest.raises(APIError):
        StockHistoricalDataClient(KEY, "wrong", url_override=venue.server.url).get_stock_bars(
            StockBarsRequest(symbol_or_symbols="AAA", timeframe=TimeFrame.Day))
    venue.bars()

    counts = venue.status()["requests"]

    assert counts["GET /v2/stocks/bars"] == 1 + -(-(START + 1) // 7)
    assert counts["GET /sim/status"] == 1
