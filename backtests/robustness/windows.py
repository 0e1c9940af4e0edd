"""Where a robustness window falls in a dataset, and whether the dataset can hold it."""

from __future__ import annotations

import pandas as pd

from backtests.robustness.config import Window
from ensemble_bt.errors import ConfigurationError

# A dataset covers a year's end when it has a bar in its last week (holidays aside).
_YEAR_END = (12, 24)


def window_period(ohlcv: pd.DataFrame, window: Window, min_train: int, name: str,
                  ) -> tuple[int, int]:
    """First and last evaluation bar of ``window``, checking the history it needs.

    Raises
    ------
    ConfigurationError
        The window starts before ``min_train`` bars of history or ends after the data: the
        message names the dataset, its range and the windows it can hold.
    """
    dates = ohlcv.index
    start = int(dates.searchsorted(pd.Timestamp(window.start_date)))
    end = int(dates.searchsorted(pd.Timestamp(window.end_date), "right")) - 1
    last_ok = dates[-1].year - (dates[-1] < pd.Timestamp(dates[-1].year, *_YEAR_END))
    if start >= min_train and window.last <= last_ok and end > start:
        return start, end
    first_ok = dates[min_train - 1].year + 1 if len(dates) >= min_train else None
    span = (f"windows within {first_ok}:{last_ok} fit" if first_ok and first_ok <= last_ok
            else "it is too short for that history plus a full year")
    raise ConfigurationError(
        f"window {window.label} is outside dataset {name} ({dates[0].date()}..{dates[-1].date()}):"
        f" evaluation needs min_train={min_train} bars of history before the window and data "
        f"through its last year; {span}")
