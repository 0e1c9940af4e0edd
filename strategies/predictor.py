"""``EnsemblePredictor``: a signal exposed to backtrader as an indicator.

Lines:
- ``prediction``: the signal's forecast for the bar (log return over the horizon);
- ``volatility``: realised daily volatility of log returns over ``vol_window`` bars;
- ``prior``: the predicting model's raw win-rate prior (see ``models.signal``).

The vectorised ``once`` path (backtests) and the bar-by-bar ``next`` path (live feeds, and
``runonce=False``) give identical values: both hand the same bars to the same pure functions.
"""

from __future__ import annotations

from array import array

import backtrader as bt
import numpy as np
import pandas as pd

from sizing.volatility import realised_vol, realised_vol_last

# backtrader stores datetimes as days since 0001-01-01 (proleptic Gregorian ordinal).
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


_EPOCH = pd.Timestamp("1970-01-01")


def bt_dates(nums: np.ndarray) -> pd.DatetimeIndex:
    """Convert backtrader float datetimes to a DatetimeIndex, rounded to the second."""
    seconds = np.round((np.asarray(nums, dtype=np.float64) - _EPOCH_ORDINAL) * 86400.0)
    return pd.DatetimeIndex(pd.to_datetime(seconds, unit="s"), name="date")


def bt_date(num: float) -> pd.Timestamp:
    """:func:`bt_dates` for one value (same rounding: half to even, to the second)."""
    return _EPOCH + pd.Timedelta(seconds=round((num - _EPOCH_ORDINAL) * 86400.0))


class EnsemblePredictor(bt.Indicator):
    """Predictions of a :mod:`models.signal` signal for one data feed.

    Parameters
    ----------
    signal : models.signal.Signal
        ``lookback``, ``predict_batch``, ``predict_last``, ``prior_batch`` and
        ``prior_last``: a :class:`~models.signal.VintageSignal`, a
        :class:`~models.signal.SeriesSignal`, or a pooled model's per-symbol view
        (:class:`~models.panel_signal.PanelView`), which the predictor registers its window
        with: a pooled prediction reads every feed's bars of the same date.
    vol_window : int
        Bars in the realised-volatility window.
    """

    lines = ("prediction", "volatility", "prior")
    params = (("signal", None), ("vol_window", 21))
    plotinfo = dict(subplot=True)

    def __init__(self) -> None:
        self._batch: tuple[np.ndarray, ...] | None = None
        register = getattr(self.p.signal, "register", None)
        if callable(register):  # a pooled view reads every feed's window at a date
            register(self._window)

    def _window(self) -> pd.DataFrame | None:
        """This feed's last ``signal.lookback`` bars (None before its first bar)."""
        n = len(self.data)
        return self._frame(min(n, self.p.signal.lookback)) if n else None

    def _frame(self, size: int | None = None) -> pd.DataFrame:
        d = self.data
        if size is None:  # the whole buffer (runonce)
            cols = {n: np.asarray(getattr(d, n).array, dtype=np.float64)
                    for n in ("datetime", "open", "high", "low", "close", "volume")}
        else:
            cols = {n: np.asarray(getattr(d, n).get(size=size), dtype=np.float64)
                    for n in ("datetime", "open", "high", "low", "close", "volume")}
        index = bt_dates(cols.pop("datetime"))
        return pd.DataFrame(cols, index=index)

    def next(self) -> None:
        signal, n = self.p.signal, len(self.data)
        date = bt_date(self.data.datetime[0])
        window = self._window() if signal.lookback > 0 else None
        closes = np.asarray(self.data.close.get(size=min(n, self.p.vol_window + 1)))
        self.lines.prediction[0] = signal.predict_last(window, date)
        self.lines.volatility[0] = realised_vol_last(closes, self.p.vol_window)
        self.lines.prior[0] = signal.prior_last(date)

    def once(self, start: int, end: int) -> None:
        if self._batch is None:
            frame = self._frame()
            self._batch = (self.p.signal.predict_batch(frame),
                           realised_vol(frame["close"].to_numpy(), self.p.vol_window),
                           self.p.signal.prior_batch(frame.index))
        # Line buffers are array.array('d'): they take slices of the same type only.
        for line, values in zip(self.lines, self._batch, strict=True):
            line.array[start:end] = array("d", values[start:end])
