"""The exchange's calendar as Alpaca gives it: session dates of bars, and when to decide.

:func:`bar_day` is the one place a bar's timestamp becomes its session date.  The
:class:`DecisionClock` decides after each session's close, by Alpaca's clock.

Real sessions only (a replay server moves on acknowledgements instead).  The thread asks the
account clock once per session for the next close, sleeps until ``close + delay`` (all the
time the market is closed), then tells every feed that the day's bar is due.  A feed whose bar
has not come over the stream by then backfills it over REST (``bar_timeout``), so a decision
never waits on a silent stream.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pandas as pd
from loguru import logger

NEW_YORK = "America/New_York"


def bar_day(stamp: datetime | pd.Timestamp) -> pd.Timestamp:
    """The session date of a daily bar stamped at midnight New York (UTC on the wire)."""
    ts = pd.Timestamp(stamp)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return pd.Timestamp(ts.tz_convert(NEW_YORK).date())


def decision_time(next_close: datetime | pd.Timestamp, delay_minutes: int) -> pd.Timestamp:
    """The moment to decide on the session that closes at ``next_close`` (tz-aware)."""
    close = pd.Timestamp(next_close)
    if close.tzinfo is None:
        raise ValueError("next_close must be timezone-aware")
    return close + pd.Timedelta(minutes=delay_minutes)


class DecisionClock(threading.Thread):
    """Daemon thread: at each decision time, every feed of ``store`` expects its daily bar.

    Parameters
    ----------
    store : AlpacaStore
        Gives ``trading.get_clock()`` and ``feeds``.
    delay_minutes : int
        Minutes after the close.
    """

    def __init__(self, store: Any, delay_minutes: int) -> None:
        super().__init__(name="decision-clock", daemon=True)
        self.store, self.delay = store, int(delay_minutes)
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                clock = self.store.trading.get_clock()
            except Exception as exc:  # the REST client already retried; try again later
                logger.warning("clock unavailable ({}); retrying in 60 s", exc)
                self._halt.wait(60.0)
                continue
            at = decision_time(clock.next_close, self.delay)
            now = pd.Timestamp.now(tz="UTC")
            logger.info("market {}; next decision at {}", "open" if clock.is_open else "closed",
                        at.tz_convert("America/New_York"))
            if self._halt.wait(max((at - now).total_seconds(), 0.0)):
                return
            day = bar_day(at.tz_convert("America/New_York").normalize())
            for feed in list(self.store.feeds.values()):
                feed.expect(day)
            self._halt.wait(1.0)  # the next clock call sees the following close
