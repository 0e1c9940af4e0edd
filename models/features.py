"""Causal feature pipeline: OHLCV bars -> one row of features per bar.

Row ``t`` of :func:`build_features` depends on bars ``t - LOOKBACK + 1 .. t`` only, and the
same row comes out bit for bit whether the pipeline sees the whole history, a prefix ending at
``t`` or just the last ``LOOKBACK`` bars.  The streaming predictor relies on that: it rebuilds
the features from the last ``LOOKBACK`` bars every bar, and the batch path builds them once
for the whole series, and the two must agree exactly.

Two rules make that hold:

* every rolling statistic is recomputed from scratch over its own window, with a fixed
  summation order (explicit numba loops, no running sums, no exponential smoothing), so no
  floating-point error or state is carried in from rows before the window;
* transcendental functions (``log``, ``log1p``, ``sin``, ``cos``) are applied elementwise by
  numpy, never inside numba loops.  numba may vectorise a loop of ``log`` calls through SVML
  when that library is installed, and a vector lane can differ from the scalar remainder by an
  ulp, which would make a value depend on where a bar sits in the array.  The numba kernels
  use only ``+ - * /`` and ``sqrt``, which IEEE 754 rounds exactly the same either way (numba
  does not contract to FMA without ``fastmath``).

This module never imports backtrader.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from ensemble_bt.errors import DataError

__all__ = ["FEATURE_NAMES", "LOOKBACK", "build_features"]

RETURN_HORIZONS: tuple[int, ...] = (1, 2, 5, 10, 21, 63)
VOLATILITY_WINDOWS: tuple[int, ...] = (5, 21, 63)
RANGE_WINDOW: int = 10
RSI_WINDOW: int = 14
MACD_FAST: int = 12
MACD_SLOW: int = 26
MACD_SIGNAL: int = 9
VOLUME_Z_WINDOWS: tuple[int, ...] = (21, 63)
MA_WINDOWS: tuple[int, ...] = (10, 50, 100)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"ret_{h}" for h in RETURN_HORIZONS),
    *(f"vol_{w}" for w in VOLATILITY_WINDOWS),
    "hl_range_1",
    f"hl_range_{RANGE_WINDOW}",
    "clv",
    f"rsi_{RSI_WINDOW}",
    "macd",
    "macd_signal",
    "macd_hist",
    *(f"volume_z_{w}" for w in VOLUME_Z_WINDOWS),
    *(f"ma_dist_{w}" for w in MA_WINDOWS),
    "day_of_week",
    "month",
    "month_sin",
    "month_cos",
)

# Bars each feature needs before its value is complete; LOOKBACK is the largest.  A return over
# h bars needs h + 1 closes, a statistic of n one-bar returns needs n + 1 bars, and the MACD
# signal averages MACD_SIGNAL values of a line that itself needs MACD_SLOW bars.
_BARS_NEEDED: dict[str, int] = {
    **{f"ret_{h}": h + 1 for h in RETURN_HORIZONS},
    **{f"vol_{w}": w + 1 for w in VOLATILITY_WINDOWS},
    f"hl_range_{RANGE_WINDOW}": RANGE_WINDOW,
    f"rsi_{RSI_WINDOW}": RSI_WINDOW + 1,
    "macd_signal": MACD_SLOW + MACD_SIGNAL - 1,
    **{f"volume_z_{w}": w for w in VOLUME_Z_WINDOWS},
    **{f"ma_dist_{w}": w for w in MA_WINDOWS},
}
LOOKBACK: int = max(_BARS_NEEDED.values())

# Built once: turning the names into a (string-dtype) pandas Index costs more than all the
# numba kernels together on a LOOKBACK-bar window.  An Index is immutable, so sharing is safe.
_FEATURE_INDEX = pd.Index(FEATURE_NAMES)

_REQUIRED_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
_FLAT_TOLERANCE: float = 1e-12


# --------------------------------------------------------------------------------------------
# numba kernels.  Each returns a fresh array, NaN where the window is not yet complete.
# ``first`` is the index of the first valid input value (1 for one-bar returns, whose row 0
# is undefined), so the first complete window ends at ``first + window - 1``.
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _rolling_mean(x: np.ndarray, window: int, first: int) -> np.ndarray:
    """Mean of ``x[t - window + 1 .. t]`` summed left to right, from scratch for every t."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(first + window - 1, n):
        total = 0.0
        for j in range(t - window + 1, t + 1):
            total += x[j]
        out[t] = total / window
    return out


@numba.njit(cache=True)
def _window_std(x: np.ndarray, lo: int, hi: int) -> tuple[float, float]:
    """Mean and sample std (ddof=1) of ``x[lo:hi]``, two-pass for accuracy."""
    count = hi - lo
    total = 0.0
    for j in range(lo, hi):
        total += x[j]
    mean = total / count
    squares = 0.0
    for j in range(lo, hi):
        dev = x[j] - mean
        squares += dev * dev
    return mean, np.sqrt(squares / (count - 1))


@numba.njit(cache=True)
def _rolling_std(x: np.ndarray, window: int, first: int) -> np.ndarray:
    """Sample standard deviation (ddof=1) over a trailing window, like pandas' default."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(first + window - 1, n):
        out[t] = _window_std(x, t - window + 1, t + 1)[1]
    return out


@numba.njit(cache=True)
def _rolling_zscore(x: np.ndarray, window: int, first: int) -> np.ndarray:
    """``(x_t - mean) / std`` over the trailing window that includes t; 0.0 when std is 0."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(first + window - 1, n):
        mean, std = _window_std(x, t - window + 1, t + 1)
        # A flat window (e.g. constant volume) has no scale: call the bar "average", not inf.
        # The tolerance catches the rounding residue of a constant window, whose mean need not
        # reproduce the constant exactly and would turn 1e-16 noise into a z-score of order 1.
        flat = std <= _FLAT_TOLERANCE * (1.0 + abs(mean))
        out[t] = 0.0 if flat else (x[t] - mean) / std
    return out


@numba.njit(cache=True)
def _simple_rsi(close: np.ndarray, window: int) -> np.ndarray:
    """Cutler's RSI (simple averages, finite memory), centred to [-1, 1].

    Wilder's RSI smooths with an infinite-memory EWM, so its value would depend on how much
    history the caller happened to pass; the simple-average form depends on the window only.
    """
    n = close.shape[0]
    out = np.full(n, np.nan)
    for t in range(window, n):
        gain = 0.0
        loss = 0.0
        for j in range(t - window + 1, t + 1):
            change = close[j] - close[j - 1]
            if change > 0.0:
                gain += change
            else:
                loss -= change
        moved = gain + loss
        # No movement at all is neither overbought nor oversold.
        out[t] = (gain - loss) / moved if moved > 0.0 else 0.0
    return out


@numba.njit(cache=True)
def _bar_shape(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> tuple:
    """One-bar range over close, and close-location value in [-1, 1] (0 for a flat bar)."""
    n = close.shape[0]
    hl_range = np.empty(n)
    clv = np.empty(n)
    for t in range(n):
        span = high[t] - low[t]
        hl_range[t] = span / close[t]
        clv[t] = ((close[t] - low[t]) - (high[t] - close[t])) / span if span > 0.0 else 0.0
    return hl_range, clv


@numba.njit(cache=True)
def _macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple:
    """MACD from simple moving averages, normalised by close so it is scale-free.

    The signal line is a simple mean of the last ``signal`` MACD values, each of which is
    itself recomputed from scratch, so the whole chain has a finite window.
    """
    fast_ma = _rolling_mean(close, fast, 0)
    slow_ma = _rolling_mean(close, slow, 0)
    line = (fast_ma - slow_ma) / close
    signal_line = _rolling_mean(line, signal, slow - 1)
    return line, signal_line, line - signal_line


# --------------------------------------------------------------------------------------------
# Assembly.
# --------------------------------------------------------------------------------------------


def _lagged_log_return(close: np.ndarray, horizon: int) -> np.ndarray:
    """``log(c_t / c_{t-h})``, NaN for the first h rows; elementwise, so position-independent."""
    out = np.full(close.shape[0], np.nan)
    if horizon < close.shape[0]:
        out[horizon:] = np.log(close[horizon:] / close[:-horizon])
    return out


def _column(ohlcv: pd.DataFrame, name: str) -> np.ndarray:
    return np.ascontiguousarray(ohlcv[name].to_numpy(dtype=np.float64))


def _price_features(ohlcv: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every feature computed from prices and volume, keyed by feature name."""
    high, low, close = (_column(ohlcv, c) for c in ("high", "low", "close"))
    log_volume = np.log1p(_column(ohlcv, "volume"))  # log1p: a zero-volume bar stays finite

    feats = {f"ret_{h}": _lagged_log_return(close, h) for h in RETURN_HORIZONS}
    one_bar = feats["ret_1"]
    for w in VOLATILITY_WINDOWS:
        feats[f"vol_{w}"] = _rolling_std(one_bar, w, 1)

    hl_range, clv = _bar_shape(high, low, close)
    feats["hl_range_1"] = hl_range
    feats[f"hl_range_{RANGE_WINDOW}"] = _rolling_mean(hl_range, RANGE_WINDOW, 0)
    feats["clv"] = clv

    feats[f"rsi_{RSI_WINDOW}"] = _simple_rsi(close, RSI_WINDOW)
    feats["macd"], feats["macd_signal"], feats["macd_hist"] = _macd(
        close, MACD_FAST, MACD_SLOW, MACD_SIGNAL
    )
    for w in VOLUME_Z_WINDOWS:
        feats[f"volume_z_{w}"] = _rolling_zscore(log_volume, w, 0)
    for w in MA_WINDOWS:
        # log(c / ma) outside numba: see the module docstring on transcendental functions.
        feats[f"ma_dist_{w}"] = np.log(close / _rolling_mean(close, w, 0))
    return feats


def _calendar_features(index: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Day of week (0 = Monday), month (1-12) and the month on the unit circle."""
    # Wall-clock dates: a tz-aware index keeps its local calendar, not UTC's.
    stamps = (index.tz_localize(None) if index.tz is not None else index).to_numpy()
    # numpy's datetime64 arithmetic is about twice as fast as pandas' field accessors, which
    # matters on the streaming path.  Day 0 of the epoch (1970-01-01) was a Thursday.
    days = stamps.astype("datetime64[D]").astype(np.int64)
    months = stamps.astype("datetime64[M]").astype(np.int64)
    month = (months % 12 + 1).astype(np.float64)
    angle = 2.0 * np.pi * (month - 1.0) / 12.0
    return {
        "day_of_week": ((days + 3) % 7).astype(np.float64),
        "month": month,
        "month_sin": np.sin(angle),
        "month_cos": np.cos(angle),
    }


def build_features(ohlcv: pd.DataFrame) -> pd.DataFrame:
    """Build the causal feature matrix of an OHLCV frame.

    Parameters
    ----------
    ohlcv : pd.DataFrame
        Validated bars: a ``DatetimeIndex`` and float columns ``open, high, low, close,
        volume`` with positive prices and no NaN.

    Returns
    -------
    pd.DataFrame
        Columns :data:`FEATURE_NAMES` in order, the same index, float64.  A feature is NaN
        until its window is complete; from row ``LOOKBACK - 1`` on every value is finite.
        Row ``t`` uses bars ``t - LOOKBACK + 1 .. t`` only, and equals bit for bit the last
        row of ``build_features(ohlcv.iloc[t - LOOKBACK + 1 : t + 1])``.

    Raises
    ------
    DataError
        If a required column is missing or the index is not a ``DatetimeIndex``.
    """
    missing = [c for c in _REQUIRED_COLUMNS if c not in ohlcv.columns]
    if missing:
        raise DataError(f"OHLCV frame lacks columns {missing}; expected {list(_REQUIRED_COLUMNS)}")
    if not isinstance(ohlcv.index, pd.DatetimeIndex):
        raise DataError(
            f"OHLCV frame index is {type(ohlcv.index).__name__}; the calendar features need a "
            "DatetimeIndex (parse the date column and set it as the index)"
        )

    feats = _price_features(ohlcv) | _calendar_features(ohlcv.index)
    # Stack as (features, bars) and hand pandas the transpose: it stores one float64 block in
    # exactly that layout, so the frame is built without another copy.
    matrix = np.empty((len(FEATURE_NAMES), len(ohlcv)), dtype=np.float64)
    for k, name in enumerate(FEATURE_NAMES):
        matrix[k] = feats[name]
    return pd.DataFrame(matrix.T, index=ohlcv.index, columns=_FEATURE_INDEX, copy=False)
