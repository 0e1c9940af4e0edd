"""The market-data REST routes of the local Alpaca-protocol server: daily bars.

- ``GET /v2/stocks/bars?symbols=A,B``: what alpaca-py's ``StockHistoricalDataClient`` calls;
  bars ordered by symbol then time (as ``sort`` asks), paged over all symbols with Alpaca's
  opaque ``page_token``.
- ``GET /v2/stocks/{symbol}/bars``: the single-symbol route the older Alpaca SDK
  (alpaca-trade-api) calls; the same bars as ``{"bars": [...], "symbol", "next_page_token"}``.

Both honour ``start``, ``end``, ``limit``, ``sort``, ``feed`` and ``adjustment``
(:mod:`live.sim.marketdata`), ``timeframe`` (``1Day``, and ``1Week`` / ``1Month`` built from
it; intraday ones are refused: :mod:`live.sim.timeframes`) and accept ``asof`` and
``currency`` (no symbol was ever
renamed, every price is in USD).  Only bars up to the replay's current one are served, no
look-ahead; while the next session is under way (``POST /sim/open``) its bar is served too,
as Alpaca serves today's partial bar.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from aiohttp import web

from live.sim.appkeys import MAX_PAGE_KEY, VIEWS_KEY
from live.sim.bars import bar_stamp_texts
from live.sim.marketdata import BarViews, parse_adjustment, parse_feed
from live.sim.orders import SimRejection
from live.sim.params import int_param, parse_time
from live.sim.timeframes import DAY, aggregate, parse_timeframe

BarKey = tuple[str, pd.Timestamp]


def _encode_token(symbol: str, day: pd.Timestamp) -> str:
    """A page token naming the last bar served: its symbol and date."""
    return base64.urlsafe_b64encode(f"{symbol}|{day.date().isoformat()}".encode()).decode()


def _decode_token(token: str) -> BarKey:
    try:
        symbol, day = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        return symbol, pd.Timestamp(day)
    except (ValueError, binascii.Error) as exc:
        raise SimRejection(422, 42210000, "invalid page_token") from exc


def _positions(views: BarViews, query: Mapping[str, str]) -> tuple[np.ndarray, bool]:
    """Calendar positions up to the visible bar whose stamps fall in ``[start, end]``,
    ascending, and whether ``sort`` asks for them descending."""
    stamps = views.stamps[: views.visible()]
    keep = np.ones(len(stamps), dtype=bool)
    if query.get("start"):
        keep &= stamps >= parse_time(query["start"], "start")
    if query.get("end"):
        keep &= stamps <= parse_time(query["end"], "end")
    sort = query.get("sort", "asc")
    if sort not in ("asc", "desc"):
        raise SimRejection(400, 40010000, f"invalid sort: {sort[:20]!r}; asc or desc")
    return np.flatnonzero(keep), sort == "desc"


@dataclass
class _Series:
    """One symbol's bars of the asked timeframe: each bar's date (ascending) and a renderer
    of the bars at some of those indices."""

    days: pd.DatetimeIndex
    render: Callable[[np.ndarray], list[dict[str, Any]]]


def _series(views: BarViews, symbol: str, positions: np.ndarray, unit: str, feed: str,
            adjustment: frozenset[str]) -> _Series:
    calendar = views.state.calendar
    if unit == DAY:
        return _Series(calendar[positions],
                       lambda idx: views.rows(symbol, positions[idx], feed, adjustment))
    daily = {k: v[positions] for k, v in views.columns(symbol, feed, adjustment).items()}
    days, cols = aggregate(daily, calendar[positions], unit)
    texts = bar_stamp_texts(days)
    return _Series(days, lambda idx: views.render([texts[i] for i in idx.tolist()],
                                                   {k: v[idx] for k, v in cols.items()}))


def _after(order: np.ndarray, days: pd.DatetimeIndex, descending: bool, symbol: str,
           token: BarKey | None) -> np.ndarray:
    """The indices in ``order`` of ``symbol``'s bars after the one the page token names."""
    if token is None or symbol > token[0]:
        return order
    if symbol < token[0]:
        return order[:0]
    chosen = days[order]
    return order[chosen < token[1]] if descending else order[chosen > token[1]]


def bars_page(views: BarViews, symbols: list[str], query: Mapping[str, str], max_page: int,
              ) -> tuple[dict[str, list[dict[str, Any]]], str | None]:
    """One page of bars: ``min(limit, max_page)`` bars over all symbols, and the token of
    the next page (``None`` on the last)."""
    unit = parse_timeframe(query.get("timeframe"))
    feed, adjustment = parse_feed(query.get("feed")), parse_adjustment(query.get("adjustment"))
    limit = min(int_param(query, "limit", 1000), max_page)
    if limit < 1:
        raise SimRejection(422, 42210000, "limit must be positive")
    positions, descending = _positions(views, query)
    token = _decode_token(query["page_token"]) if query.get("page_token") else None
    page: dict[str, list[dict[str, Any]]] = {}
    last: BarKey | None = None
    for symbol in sorted(set(symbols) & set(views.state.symbols)):
        if token is not None and symbol < token[0]:
            continue
        series = _series(views, symbol, positions, unit, feed, adjustment)
        order = np.arange(len(series.days))
        wanted = _after(order[::-1] if descending else order, series.days, descending,
                        symbol, token)
        if not len(wanted):
            continue
        if limit == 0:
            return page, _encode_token(*last) if last else None
        taken = wanted[:limit]
        page[symbol] = series.render(taken)
        limit -= len(taken)
        last = (symbol, series.days[taken[-1]])
        if len(taken) < len(wanted):
            return page, _encode_token(*last)
    return page, None


async def get_stock_bars(request: web.Request) -> web.Response:
    """``GET /v2/stocks/bars``: ``{"bars": {symbol: [...]}, "next_page_token"}``.

    Symbols that are not replayed get no bars.
    """
    query = request.query
    symbols = [s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()]
    bars, token = bars_page(request.app[VIEWS_KEY], symbols, query, request.app[MAX_PAGE_KEY])
    return web.json_response({"bars": bars, "next_page_token": token})


async def get_symbol_bars(request: web.Request) -> web.Response:
    """``GET /v2/stocks/{symbol}/bars``: ``{"bars": [...], "symbol", "next_page_token"}``."""
    symbol = request.match_info["symbol"].upper()
    bars, token = bars_page(request.app[VIEWS_KEY], [symbol], request.query,
                            request.app[MAX_PAGE_KEY])
    return web.json_response({"bars": bars.get(symbol, []), "symbol": symbol,
                              "next_page_token": token})


def add_data_routes(app: web.Application) -> None:
    """Register the market-data REST routes on ``app``."""
    app.router.add_get("/v2/stocks/bars", get_stock_bars)
    app.router.add_get("/v2/stocks/{symbol}/bars", get_symbol_bars)
