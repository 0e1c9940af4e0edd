"""Exchange session dates of daily bars' timestamps, whatever zone a file writes them in.

Loaders (:mod:`backtests.datasets`) turn every timestamp column into the session date of its
bar here; intraday bars are refused.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ensemble_bt.errors import DataError
from ensemble_bt.yamlio import short_repr

EXCHANGE_TZ = "America/New_York"
# A time of day followed by a zone: "...T20:00:00-05:00", "... 00:00Z", "...T16:00+0900".
_ZONED = r"^(.*\d:\d\d(?::\d\d(?:\.\d+)?)?)\s*(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"


def session_dates(stamps: pd.Series, source: str) -> pd.DatetimeIndex:
    """The exchange session date of every bar's timestamp (NaT where it does not parse).

    - A timestamp without a time zone is the exchange's local wall time.
    - Zoned timestamps that all fall at midnight in their own zone are dates written in that
      zone (``2002-10-04T00:00Z``, or a Parquet index localised to Asia/Tokyo): their own
      date.  Other zoned timestamps are converted to New York time first, so
      ``2002-10-04T20:00:00-05:00`` is the session of 2002-10-04, never a Saturday.
    - A daily file stamps every bar at one time of day (in its own zone or in New York's);
      times that differ mean intraday bars, which are refused.

    Raises
    ------
    DataError
        Intraday timestamps, naming the first row whose time of day differs.
    """
    own, new_york = _clocks(stamps)
    if not (_one_time_of_day(own) or _one_time_of_day(new_york)):
        known = np.flatnonzero(own.notna())
        first = int(known[0])
        row = next(int(r) for r in known if own[r].time() != own[first].time())
        given = short_repr(str(stamps.iloc[row]), 60)
        raise DataError(f"{source}: data row {row + 1} ({given}): intraday timestamps in a "
                        f"daily file (row {first + 1} is at {own[first].time()}, this one at "
                        f"{own[row].time()}); fix: one bar per session, dated YYYY-MM-DD; "
                        "resample intraday bars to daily")
    walls = own if _one_time_of_day(own, midnight=True) else new_york
    return walls.normalize()


def _clocks(stamps: pd.Series) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """Naive wall times of ``stamps`` in their own zone and in New York.

    Timestamps without a zone are New York wall times: both clocks agree on them.
    """
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        aware = pd.DatetimeIndex(stamps)
        aware = aware.where(_in_range(aware.tz_convert(None)).notna(), pd.NaT)
        return _in_range(aware.tz_localize(None)), _new_york(aware)
    if pd.api.types.is_datetime64_dtype(stamps.dtype):
        naive = _in_range(pd.DatetimeIndex(stamps))
        return naive, naive
    text = stamps.astype("string").str.strip().reset_index(drop=True)
    own_wall = text.str.extract(_ZONED, expand=False)
    zoned = own_wall.notna().to_numpy()
    own = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    own[~zoned] = _parse_naive(text[~zoned]).to_numpy()
    new_york = own.copy()
    if zoned.any():
        own[zoned] = _parse_naive(own_wall[zoned]).to_numpy()
        instants = pd.to_datetime(text[zoned], utc=True, format="ISO8601", errors="coerce")
        new_york[zoned] = _new_york(instants).to_numpy()
    return pd.DatetimeIndex(own), pd.DatetimeIndex(new_york)


def _one_time_of_day(walls: pd.DatetimeIndex, midnight: bool = False) -> bool:
    """Whether every known wall time has the same time of day (midnight, when asked)."""
    known = walls[walls.notna()]
    if not len(known):
        return True
    offsets = known - known.normalize()
    first = pd.Timedelta(0) if midnight else offsets[0]
    return bool((offsets == first).all())


def _parse_naive(text: pd.Series) -> pd.DatetimeIndex:
    """ISO 8601; a column with no ISO date at all is in another format, inferred by pandas."""
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
    if len(text) and parsed.isna().all():
        with warnings.catch_warnings():  # "could not infer format": each row is then parsed
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(text, errors="coerce")
    return _in_range(pd.DatetimeIndex(parsed))


def _in_range(stamps: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """``stamps`` in nanoseconds; a date pandas cannot hold so (before 1677, after 2262) is
    NaT, which validation reports as an unparseable date of its row."""
    outside = (stamps < pd.Timestamp.min) | (stamps > pd.Timestamp.max)
    return stamps.where(~outside, pd.NaT).as_unit("ns")


def _new_york(instants: pd.Series | pd.DatetimeIndex) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(instants).tz_convert(EXCHANGE_TZ).tz_localize(None).as_unit("ns")
