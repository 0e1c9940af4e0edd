"""The bar timeframes the local server's market-data API serves, all built from daily bars.

The replay holds daily history only, so ``1Day`` is served as replayed and ``1Week`` /
``1Month`` are aggregated from it; an intraday timeframe (``1Min``, ``15Min``, ``1Hour`` ...)
is refused with 422 and a message that says why, and text that is no timeframe at all with
400, as Alpaca does.

An aggregated bar follows Alpaca's conventions: it is stamped at midnight New York of the
first *calendar* day of its period (the Monday of a week, the 1st of a month, whether or not
that day was a session), opens at its first session's open, closes at its last session's
close, takes the extreme high and low, and sums the volume; ``vw`` is the volume-weighted
mean of the daily ``vw``.  Only the daily bars the request's ``start``/``end`` and the replay
allow go into it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from live.sim.orders import SimRejection

DAY, WEEK, MONTH = "day", "week", "month"
_DAILY = {"1Day": DAY, "1D": DAY, "1Week": WEEK, "1W": WEEK, "1Month": MONTH, "1M": MONTH}
# Alpaca's timeframe grammar: an amount and a unit (Min/T, Hour/H, Day/D, Week/W, Month/M).
_GRAMMAR = re.compile(r"(\d{1,3})(Sec|S|Min|T|Hour|H|Day|D|Week|W|Month|M)")
_INTRADAY = frozenset({"Sec", "S", "Min", "T", "Hour", "H"})


def parse_timeframe(value: str | None) -> str:
    """The ``timeframe`` query parameter as :data:`DAY`, :data:`WEEK` or :data:`MONTH`.

    Raises
    ------
    SimRejection
        422 for an intraday or multi-period timeframe (the replay has daily bars only), 400
        for text that is no timeframe.
    """
    if value is None or value in _DAILY:
        return _DAILY.get(value or "1Day", DAY)
    match = _GRAMMAR.fullmatch(value)
    if match is None:
        raise SimRejection(400, 40010000, f"invalid timeframe: {value[:20]!r}")
    if match.group(2) in _INTRADAY:
        raise SimRejection(422, 42210000, f"unsupported timeframe {value}: the simulated "
                           "server replays daily bars only, so it serves 1Day, 1Week and "
                           "1Month, not intraday bars")
    raise SimRejection(422, 42210000, f"unsupported timeframe {value}: the simulated server "
                       "serves 1Day, 1Week and 1Month only")


def period_starts(days: pd.DatetimeIndex, unit: str) -> pd.DatetimeIndex:
    """The first calendar day of the week (Monday) or month of each of ``days``."""
    days = days.normalize()
    if unit == WEEK:
        return days - pd.to_timedelta(days.weekday, unit="D")
    if unit == MONTH:
        return days - pd.to_timedelta(days.day - 1, unit="D")
    return days


def aggregate(columns: dict[str, np.ndarray], days: pd.DatetimeIndex, unit: str,
              ) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """Fold daily ``columns`` (open/high/low/close/volume/vw, one value per one of ``days``,
    in date order) into one bar per week or month.

    Returns
    -------
    tuple of (pandas.DatetimeIndex, dict)
        The periods' first calendar days, ascending, and their columns.
    """
    if not len(days):
        return pd.DatetimeIndex([]), {name: values[:0] for name, values in columns.items()}
    starts = period_starts(days, unit)
    keys, first = np.unique(starts.to_numpy(), return_index=True)
    last = np.append(first[1:], len(starts)) - 1
    volume = np.add.reduceat(columns["volume"], first)
    weighted = np.add.reduceat(columns["vw"] * columns["volume"], first)
    typical = np.add.reduceat(columns["vw"], first) / (last - first + 1)
    # A period without volume (synthetic data can have it) takes the plain mean of its vw.
    vw = np.where(volume > 0, weighted / np.where(volume > 0, volume, 1.0), typical)
    folded = {"open": columns["open"][first], "high": np.maximum.reduceat(columns["high"], first),
              "low": np.minimum.reduceat(columns["low"], first),
              "close": columns["close"][last], "volume": volume, "vw": vw}
    return pd.DatetimeIndex(keys), folded
