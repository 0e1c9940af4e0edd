"""Daily bars from Alpaca's market-data API, and which sessions Alpaca says are complete.

:class:`AlpacaHistory` wraps alpaca-py's ``StockHistoricalDataClient`` (bars) and
``TradingClient`` (clock, calendar, assets), both pointed wherever ``url_override`` says: a
local ``ensemble-bt sim-server`` serves all of it on one URL.

- Bars come from ``/v2/stocks/bars`` for many symbols at once, 10,000 to a page, following
  ``next_page_token`` (pages are ordered by symbol, then time).  Each request is built by
  alpaca-py's ``StockBarsRequest`` (``feed``, ``adjustment``).
- Every request is retried here, page by page, on 429 and 5xx, and on a dropped connection,
  with a bounded exponential backoff that honours ``Retry-After`` (alpaca-py's own fixed-wait
  retry is switched off).  What still fails raises :class:`HistoryUnavailable` (exit 1).
- 401 and 403 are the keys' fault: :class:`~ensemble_bt.errors.ConfigurationError`
  (exit 2).  An asset the trading API does not know is an unknown symbol
  (:class:`~ensemble_bt.errors.DataError`, exit 2).

Keys go to the clients only: no message, log line or return value holds them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetCalendarRequest
from loguru import logger
from requests.adapters import HTTPAdapter

from backtests.sessions import session_dates
from ensemble_bt.errors import ConfigurationError, DataError, EnsembleBTError
from live.alpaca.clock import NEW_YORK
from live.alpaca.endpoints import PAPER_TRADING_URL

DATA_URL = "https://data.alpaca.markets"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PAGE_LIMIT = 10_000
#: Alpaca serves SIP bars of the last 15 minutes to paying subscribers only.
RECENT_DATA_DELAY = pd.Timedelta(minutes=16)
_FIELDS = (("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"), ("volume", "v"))
T = TypeVar("T")


class HistoryUnavailable(EnsembleBTError):
    """The data source cannot be reached, or keeps failing: the CLI exits with code 1."""


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry one request.

    Attempt ``k`` (from 1) waits ``min(first_wait * 2 ** (k - 1), max_wait)`` seconds, or the
    server's ``Retry-After`` when it sends one (capped at ``max_wait`` too).  A connection
    that cannot be made at all gets ``connect_attempts``: nothing is listening there.
    """

    attempts: int = 6
    connect_attempts: int = 3
    first_wait: float = 0.25
    max_wait: float = 8.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_wait)
        return min(self.first_wait * 2 ** (attempt - 1), self.max_wait)


@dataclass(frozen=True)
class Session:
    """One trading session of Alpaca's calendar: its date and its close (New York time)."""

    day: date
    close: pd.Timestamp


class _Timeout(HTTPAdapter):
    """A requests adapter with a default timeout: alpaca-py sets none."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def send(self, request: Any, **kwargs: Any) -> Any:  # requests' adapter hook
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().send(request, **kwargs)


def _tune(client: Any, timeout: float) -> None:
    # alpaca-py's RESTClient keeps its retry policy and session in attributes without a
    # public setter: retries happen in AlpacaHistory._call, page by page, with backoff.
    client._retry = 0
    for prefix in ("http://", "https://"):
        client._session.mount(prefix, _Timeout(timeout))


def _retry_after(exc: APIError) -> float | None:
    response = exc.response
    text = response.headers.get("Retry-After") if response is not None else None
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _message(exc: APIError) -> str:
    try:
        text = str(exc.message)
    except (ValueError, KeyError, TypeError):
        text = str(exc)
    return " ".join(text.split())[:160]


def _reason(exc: requests.RequestException) -> str:
    root: BaseException = exc
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    text = " ".join(str(root).split()) or type(root).__name__
    return f"{type(exc).__name__}: {text[:120]}"


class AlpacaHistory:
    """Alpaca's bars, clock, calendar and assets for the ``data`` commands.

    Parameters
    ----------
    key_id, secret : str
        The account's keys (from :func:`live.alpaca.keys.credentials_from_env`).
    data_url : str or None
        The market-data API; ``None`` is Alpaca's (:data:`DATA_URL`).
    trading_url : str or None
        The trading API (clock, calendar, assets); ``None`` is ``data_url`` when that is
        given (a local server serves both), else Alpaca's paper API.
    retry : Retry
        Retries of each request.
    timeout : float
        Seconds one request may take.
    sleep : callable
        How to wait between attempts.
    """

    def __init__(self, key_id: str, secret: str, data_url: str | None = None,
                 trading_url: str | None = None, retry: Retry | None = None,
                 timeout: float = 60.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.data_url = (data_url or DATA_URL).rstrip("/")
        self.trading_url = (trading_url or data_url or PAPER_TRADING_URL).rstrip("/")
        self.retry = retry or Retry()
        self._sleep = sleep
        self.data = StockHistoricalDataClient(key_id, secret, url_override=self.data_url)
        self.trading = TradingClient(key_id, secret, paper=True, url_override=self.trading_url)
        _tune(self.data, timeout)
        _tune(self.trading, timeout)

    # ------------------------------------------------------------------ requests
    def _call(self, what: str, url: str, request: Callable[[], T]) -> T:
        """``request()``, retried on 429, 5xx and lost connections; errors mapped."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return request()
            except APIError as exc:
                limit = self._api_failure(what, url, exc)
                failure, after = f"HTTP {exc.status_code}", _retry_after(exc)
            except requests.RequestException as exc:
                limit, failure, after = self.retry.connect_attempts, _reason(exc), None
                if not isinstance(exc, requests.ConnectionError | requests.Timeout):
                    limit = 1
            if attempt >= limit:
                raise HistoryUnavailable(f"{url}: {what}: {failure} (after {attempt} "
                                         f"attempt{'s' * (attempt > 1)}); fix: check the URL "
                                         "and try again later") from None
            wait = self.retry.wait(attempt, after)
            logger.debug("{}: {}: {}; retry {} of {} in {:.2f} s", url, what, failure, attempt,
                         limit - 1, wait)
            self._sleep(wait)

    def _api_failure(self, what: str, url: str, exc: APIError) -> int:
        """How many attempts an API error allows (1: none more); raises what never retries."""
        status = exc.status_code
        if status == 401:
            raise ConfigurationError(f"{url} refused the keys in APCA_API_KEY_ID and "
                                     f"APCA_API_SECRET_KEY ({what}: HTTP 401: {_message(exc)}); "
                                     "fix: set the keys of the account") from None
        if status == 403:
            raise ConfigurationError(f"{url} forbids it ({what}: HTTP 403: {_message(exc)}); "
                                     "fix: use keys whose subscription covers the request, "
                                     "e.g. --feed iex") from None
        if status in RETRY_STATUSES:
            return self.retry.attempts
        raise HistoryUnavailable(f"{url}: {what}: HTTP {status}: {_message(exc)}") from None

    # -------------------------------------------------------------- trading API
    def now(self) -> pd.Timestamp:
        """Alpaca's clock: the time, in New York."""
        clock: Any = self._call("clock", self.trading_url, self.trading.get_clock)
        if clock.is_open:
            logger.debug("{}: the market is open", self.trading_url)
        return pd.Timestamp(clock.timestamp).tz_convert(NEW_YORK)

    def sessions(self, start: date, end: date) -> list[Session]:
        """Alpaca's calendar: every session from ``start`` to ``end``, with its close."""
        if start > end:
            return []
        days: Any = self._call("calendar", self.trading_url, lambda: self.trading.get_calendar(
            GetCalendarRequest(start=start, end=end)))
        return [Session(c.date, pd.Timestamp(c.close).tz_localize(NEW_YORK)) for c in days]

    def check_symbols(self, symbols: Sequence[str]) -> None:
        """Refuse a symbol the trading API has no asset for.

        Raises
        ------
        DataError
            Naming the first unknown symbol.
        """
        for symbol in symbols:
            try:
                self._call(f"asset {symbol}", self.trading_url,
                           lambda s=symbol: self._asset(s))
            except _UnknownAsset:
                raise DataError(f"unknown symbol {symbol}: {self.trading_url} has no such asset; "
                                "fix: check the ticker (Alpaca writes class shares as BRK.B)"
                                ) from None

    def _asset(self, symbol: str) -> Any:
        try:
            return self.trading.get_asset(symbol)
        except APIError as exc:
            if exc.status_code in (404, 422):
                raise _UnknownAsset(symbol) from None
            raise

    # --------------------------------------------------------------------- bars
    def bars(self, symbols: Sequence[str], start: pd.Timestamp, end: pd.Timestamp, feed: str,
             adjustment: str, on_page: Callable[[int, int], None] | None = None,
             ) -> dict[str, pd.DataFrame]:
        """Daily bars of ``symbols`` stamped in ``[start, end]``, indexed by session date.

        ``on_page(symbols_done, bars_so_far)`` is called after each page.  The frames are
        not validated here; a symbol without bars is absent.
        """
        params = StockBarsRequest(symbol_or_symbols=list(symbols), timeframe=TimeFrame.Day,
                                  start=start.to_pydatetime(), end=end.to_pydatetime(),
                                  adjustment=Adjustment(adjustment),
                                  feed=DataFeed(feed)).to_request_fields()
        params["limit"] = PAGE_LIMIT
        rows: dict[str, list[dict[str, Any]]] = {}
        tokens: set[str] = set()
        while True:
            page: Any = self._call("bars", self.data_url,
                                   lambda: self.data.get("/stocks/bars", dict(params)))
            if not isinstance(page, dict) or not isinstance(page.get("bars") or {}, dict):
                raise HistoryUnavailable(f"{self.data_url}: bars: the answer is not Alpaca's "
                                         "bars object")
            for symbol, bars in (page.get("bars") or {}).items():
                rows.setdefault(symbol, []).extend(bars or [])
            token = page.get("next_page_token")
            if on_page is not None:
                on_page(len(rows) - bool(token), sum(map(len, rows.values())))
            if not token:
                break
            if token in tokens:
                raise HistoryUnavailable(f"{self.data_url}: bars: the same page_token came "
                                         "twice; the server's paging is broken")
            tokens.add(token)
            params["page_token"] = token
        return {symbol: _frame(bars, f"{self.data_url} {symbol}")
                for symbol, bars in rows.items() if bars}


class _UnknownAsset(Exception):
    """The trading API answered 404 for an asset."""


def _frame(bars: list[dict[str, Any]], source: str) -> pd.DataFrame:
    """Raw bars as a frame indexed by session date (validation is the caller's)."""
    try:
        # RFC 3339 in UTC: parsed here in one pass; session_dates then reads zoned instants
        stamps = pd.Series(pd.to_datetime([bar["t"] for bar in bars], utc=True,
                                          format="ISO8601", errors="coerce"))
        values = {name: np.array([bar[key] for bar in bars], dtype="float64")
                  for name, key in _FIELDS}
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryUnavailable(f"{source}: malformed bar ({type(exc).__name__}: "
                                 f"{str(exc)[:80]})") from None
    index = session_dates(stamps, source).as_unit("ns").rename("date")
    return pd.DataFrame(values, index=index)


def request_window(first: date, last: Session, now: pd.Timestamp,
                   ) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The ``start``/``end`` of a bars request for the sessions ``first`` to ``last``.

    ``start`` is midnight New York of ``first`` (a daily bar's stamp); ``end`` is the close of
    ``last``, or 16 minutes before ``now`` when that is earlier (still after the bar's stamp).
    """
    start = pd.Timestamp(first).tz_localize(NEW_YORK)
    return start, min(last.close, now - RECENT_DATA_DELAY)
