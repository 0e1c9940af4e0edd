"""``AlpacaData``: a live daily-bar feed for one symbol, on an :class:`AlpacaStore`.

Modelled on backtrader's ``feeds/ibdata.py``:

- The feed starts ``DELAYED``: it backfills history through ``StockHistoricalDataClient``
  and delivers it, then turns ``LIVE`` at the first bar on or after ``live_from``.
- Streamed bars arrive on the store's single websocket; after every (re)subscription the feed
  backfills again from its last delivered bar.  Bars at or before the last delivered one are
  dropped, so a reconnect neither misses nor repeats a bar.
- Feeds of one store move together: a bar is delivered only when every feed holds the bar of
  that day (the backtester aligns its feeds the same way).
- Against the replay server, the feed that finds everything delivered asks the store to
  advance the replay.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import backtrader as bt
import pandas as pd
from loguru import logger

BAR_FIELDS = ("open", "high", "low", "close", "volume")


class AlpacaData(bt.feed.DataBase):
    """Daily bars of ``symbol`` from Alpaca (or the local replay server).

    Parameters
    ----------
    symbol : str
        Ticker.
    store : AlpacaStore
        The account's store (shared connections).
    history_start : pandas.Timestamp
        First date of the backfilled history.
    live_from : pandas.Timestamp
        First date delivered as ``LIVE`` (the strategy's ``trade_start``).
    barrier_timeout : float
        Seconds to wait for the other feeds' bar of the same day before delivering alone.
    """

    params = (("symbol", None), ("store", None), ("history_start", None), ("live_from", None),
              ("qcheck", 0.05), ("barrier_timeout", 60.0))

    def islive(self) -> bool:
        return True

    def __init__(self) -> None:
        # The store's threads may call push/request_backfill before cerebro starts the feed.
        self._queue: queue.Queue = queue.Queue()
        self._backfill = threading.Event()

    def start(self) -> None:
        super().start()
        self._pending: dict[pd.Timestamp, tuple[Any, float]] = {}
        self._backfill.set()
        self._last_day: pd.Timestamp | None = None
        self._expected: tuple[pd.Timestamp, float] | None = None
        self._blocked_since: float | None = None
        self.rows: list[tuple] = []  # every delivered bar: (date, open, high, low, close, vol)
        self.arrivals: dict[pd.Timestamp, float] = {}  # perf_counter when each bar arrived
        self.put_notification(self.DELAYED)
        self.p.store.start(data=self)

    def stop(self) -> None:
        self.p.store.stop()

    # ------------------------------------------------- called from the store's threads
    def push(self, day: pd.Timestamp, bar: Any, arrived: float) -> None:
        """A streamed bar (any thread)."""
        self._queue.put((day, bar, arrived))

    def request_backfill(self) -> None:
        """Backfill from the last delivered bar at the next load (any thread)."""
        self._backfill.set()

    # ------------------------------------------------------ called on cerebro's thread
    def expect(self, day: pd.Timestamp) -> None:
        """The replay published ``day``: backfill it if the stream does not bring it."""
        self._expected = (day, time.monotonic())

    def haslivedata(self) -> bool:
        return bool(self._pending) or not self._queue.empty()

    def has_bar(self, day: pd.Timestamp) -> bool:
        """Whether the bar of ``day`` is held or already delivered."""
        self._collect()
        return self.has_day(day)

    def drained(self) -> bool:
        """Whether every bar received so far, and the one the replay announced, is delivered."""
        self._collect()
        return not self._pending and self._expected is None

    def _add(self, day: pd.Timestamp, bar: Any, arrived: float) -> None:
        if (self._last_day is None or day > self._last_day) and day not in self._pending:
            self._pending[day] = (bar, arrived)

    def _collect(self) -> None:
        while True:
            try:
                self._add(*self._queue.get_nowait())
            except queue.Empty:
                break
        if self._expected is not None:
            day, since = self._expected
            if self.has_day(day):
                self._expected = None
            elif time.monotonic() - since > self.p.store.endpoints.bar_timeout:
                logger.warning("{}: bar {} did not arrive on the stream; backfilling",
                               self.p.symbol, day.date())
                self._backfill.set()
                self._expected = (day, time.monotonic())
        if self._backfill.is_set():
            self._backfill.clear()
            self._do_backfill()

    def has_day(self, day: pd.Timestamp) -> bool:
        return day in self._pending or (self._last_day is not None and self._last_day >= day)

    def _do_backfill(self) -> None:
        start = self._last_day if self._last_day is not None else pd.Timestamp(self.p.history_start)
        now = time.perf_counter()
        bars = self.p.store.fetch_bars(self.p.symbol, start)
        for day, bar in bars:
            self._add(day, bar, now)
        logger.debug("{}: backfilled {} bars from {}", self.p.symbol, len(bars), start.date())

    def _wait(self) -> None:
        try:
            self._add(*self._queue.get(timeout=max(self._qcheck, 0.001)))
        except queue.Empty:
            pass

    def _load(self) -> bool | None:
        store = self.p.store
        self._collect()
        if not self._pending:
            if store.replay and store.all_delivered():
                if store.finished or not store.advance():
                    return False
                self._collect()
            if not self._pending:
                self._wait()
                return None
        day = min(self._pending)
        if not store.all_ready(day) and not self._barrier_expired():
            self._wait()
            return None
        self._blocked_since = None
        self._deliver(day, *self._pending.pop(day))
        return True

    def _barrier_expired(self) -> bool:
        now = time.monotonic()
        if self._blocked_since is None:
            self._blocked_since = now
        if now - self._blocked_since < self.p.barrier_timeout:
            return False
        logger.warning("{}: other feeds lack this day's bar after {:.0f} s; delivering alone",
                       self.p.symbol, self.p.barrier_timeout)
        return True

    def _deliver(self, day: pd.Timestamp, bar: Any, arrived: float) -> None:
        values = tuple(float(getattr(bar, field)) for field in BAR_FIELDS)
        self.lines.datetime[0] = bt.date2num(day.to_pydatetime())
        for field, value in zip(BAR_FIELDS, values, strict=True):
            getattr(self.lines, field)[0] = value
        self.lines.openinterest[0] = 0.0
        self._last_day = day
        self.rows.append((day, *values))
        self.arrivals[day] = arrived
        if self._laststatus != self.LIVE and day >= pd.Timestamp(self.p.live_from):
            self.put_notification(self.LIVE)
