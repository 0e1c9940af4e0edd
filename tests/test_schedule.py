"""The decision clock of real (non-replay) sessions, against a fake account clock."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pandas as pd
import pytest

from live.alpaca.clock import DecisionClock, decision_time


def test_decision_time_is_the_close_plus_the_delay_in_new_york():
    close = pd.Timestamp("2026-11-27 13:00", tz="America/New_York")  # an early close
    assert decision_time(close, 10) == pd.Timestamp("2026-11-27 13:10", tz="America/New_York")
    with pytest.raises(ValueError, match="timezone-aware"):
        decision_time(pd.Timestamp("2026-11-27 16:00"), 10)


class Feed:
    def __init__(self) -> None:
        self.expected: list[pd.Timestamp] = []
        self.called = threading.Event()

    def expect(self, day: pd.Timestamp) -> None:
        self.expected.append(day)
        self.called.set()


def test_the_clock_sleeps_until_the_decision_then_every_feed_expects_that_day():
    close = pd.Timestamp.now(tz="America/New_York") + pd.Timedelta(seconds=0.3)
    calls = []

    def get_clock():
        calls.append(1)
        return SimpleNamespace(next_close=close.to_pydatetime(), is_open=True)

    feeds = {"AAA": Feed(), "BBB": Feed()}
    clock = DecisionClock(SimpleNamespace(trading=SimpleNamespace(get_clock=get_clock),
                                          feeds=feeds), delay_minutes=0)
    clock.start()
    try:
        assert not feeds["AAA"].called.wait(0.1), "decided before the close"
        assert feeds["AAA"].called.wait(5) and feeds["BBB"].called.wait(5)
    finally:
        clock.stop()
        clock.join(5)
    assert not clock.is_alive()
    assert feeds["AAA"].expected == [pd.Timestamp(close.date())]
    assert len(calls) <= 2, "one clock call per session, not a poll"
