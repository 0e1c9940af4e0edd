"""The market-data REST route of the local Alpaca-protocol server: ``/v2/stocks/bars``.

What alpaca-py's ``StockHistoricalDataClient`` calls for daily bars.  Only bars up to the
replay's current one are served (no look-ahead), ordered by symbol then time and paged with
Alpaca's opaque ``page_token``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from aiohttp import web

from live.sim.appkeys import MAX_PAGE_KEY, STATE_KEY
from live.sim.bars import bar_timestamp
from live.sim.orders import SimRejection
from live.sim.state import SimState
from live.sim.wire import bar_json, int_param, parse_time

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


def _visible_days(state: SimState, query: Mapping[str, str]) -> pd.DatetimeIndex:
    """Calendar dates up to the current bar whose stamps fall inside ``[start, end]``."""
    days = state.calendar[: state.index + 1]
    stamps = pd.DatetimeIndex([bar_timestamp(day) for day in days])
    keep = np.ones(len(days), dtype=bool)
    if query.get("start"):
        keep &= stamps >= parse_time(query["start"], "start")
    if query.get("end"):
        keep &= stamps <= parse_time(query["end"], "end")
    return days[keep]


def _bar_keys(state: SimState, symbols: list[str], query: Mapping[str, str]) -> list[BarKey]:
    """Bars to serve, ordered by symbol then time (as ``sort`` asks), after ``page_token``.

    Alpaca orders a multi-symbol bars response by symbol first; the page token names the last
    (symbol, date) served, so paging works across symbols.
    """
    descending = query.get("sort", "asc") == "desc"
    days = _visible_days(state, query)
    days = days[::-1] if descending else days
    keys = [(symbol, day) for symbol in sorted(set(symbols) & set(state.symbols))
            for day in days]

    def order(key: BarKey) -> tuple[str, int]:
        return key[0], -key[1].value if descending else key[1].value

    if query.get("page_token"):
        after = order(_decode_token(query["page_token"]))
        keys = [key for key in keys if order(key) > after]
    return keys


async def get_stock_bars(request: web.Request) -> web.Response:
    """``GET /v2/stocks/bars``: daily bars up to the current one, paged by ``limit``.

    The page size is ``min(limit, max_page_size)`` bars over all symbols; ``next_page_token``
    is ``null`` on the last page.  Symbols that are not replayed get no bars.
    """
    state, query = request.app[STATE_KEY], request.query
    if query.get("timeframe", "1Day") not in ("1Day", "1D"):
        raise SimRejection(422, 42210000, f"unsupported timeframe {query.get('timeframe')}")
    symbols = [s.strip().upper() for s in query.get("symbols", "").split(",") if s.strip()]
    limit = min(int_param(query, "limit", 1000), request.app[MAX_PAGE_KEY])
    if limit < 1:
        raise SimRejection(422, 42210000, "limit must be positive")
    keys = _bar_keys(state, symbols, query)
    page = keys[:limit]
    token = _encode_token(*page[-1]) if len(keys) > limit else None
    bars: dict[str, list[dict[str, Any]]] = {}
    for symbol, day in page:
        row = state.feeds[symbol].iloc[state.calendar.get_loc(day)]
        bars.setdefault(symbol, []).append(bar_json(day, row))
    return web.json_response({"bars": bars, "next_page_token": token})


def add_data_routes(app: web.Application) -> None:
    """Register the market-data REST route on ``app``."""
    app.router.add_get("/v2/stocks/bars", get_stock_bars)
