"""The replayed bars: one calendar over several symbols, and the times of a session.

:func:`align_feeds` cuts every symbol's daily bars to the dates all of them have, the calendar
:class:`live.sim.state.SimState` replays.  :func:`session_time` and :func:`bar_timestamp` give
the New York wall times the server reports (the open, the close, a bar's stamp).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce

import pandas as pd

NEW_YORK = "America/New_York"
COLUMNS = ("open", "high", "low", "close", "volume")


def session_time(day: pd.Timestamp, hhmm: str) -> pd.Timestamp:
    """New York wall time ``hhmm`` on the calendar date of ``day``, tz-aware."""
    return pd.Timestamp(f"{day.date().isoformat()} {hhmm}").tz_localize(NEW_YORK)


def bar_timestamp(day: pd.Timestamp) -> pd.Timestamp:
    """Alpaca's stamp for a daily bar: midnight New York of its date, in UTC."""
    return session_time(day, "00:00").tz_convert("UTC")


def bar_stamp_texts(days: pd.DatetimeIndex) -> list[str]:
    """:func:`bar_timestamp` of each of ``days`` as the data API writes it (RFC 3339, UTC)."""
    stamps = pd.DatetimeIndex(days).normalize().tz_localize(NEW_YORK).tz_convert("UTC")
    return list(stamps.strftime("%Y-%m-%dT%H:%M:%SZ"))


def align_feeds(feeds: Mapping[str, pd.DataFrame],
                ) -> tuple[dict[str, pd.DataFrame], pd.DatetimeIndex, int]:
    """Upper-case the symbols and cut every frame to the dates all of them have.

    Returns
    -------
    tuple of (dict, pandas.DatetimeIndex, int)
        The frames keyed by symbol, in symbol order, the common calendar, and how many dates
        some but not all frames have (dropped from the replay).

    Raises
    ------
    ValueError
        No feeds, a duplicate symbol, a frame without OHLCV columns, or no common date.
    """
    if not feeds:
        raise ValueError("no feeds to replay: pass at least one symbol's bars")
    frames: dict[str, pd.DataFrame] = {}
    for name, frame in feeds.items():
        symbol = str(name).strip().upper()
        missing = set(COLUMNS) - set(frame.columns)
        if missing:
            raise ValueError(f"{symbol}: bars lack columns {sorted(missing)}")
        if not symbol or symbol in frames:
            raise ValueError(f"symbol {name!r} is empty or given twice")
        frames[symbol] = frame.sort_index()
    union = reduce(lambda a, b: a.union(b), (f.index for f in frames.values()))
    calendar = reduce(lambda a, b: a.intersection(b), (f.index for f in frames.values()))
    if calendar.empty:
        raise ValueError(f"the bars of {', '.join(sorted(frames))} share no date to replay")
    aligned = {s: frames[s].loc[calendar] for s in sorted(frames)}
    return aligned, pd.DatetimeIndex(calendar), len(union) - len(calendar)
