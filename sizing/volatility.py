"""Realised volatility, computed window by window so that batch and streaming agree exactly."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _window_std(logret: np.ndarray, lo: int, hi: int) -> float:
    n = hi - lo
    mean = 0.0
    for j in range(lo, hi):
        mean += logret[j]
    mean /= n
    acc = 0.0
    for j in range(lo, hi):
        acc += (logret[j] - mean) ** 2
    return np.sqrt(acc / (n - 1))


@numba.njit(cache=True)
def _rolling_std(logret: np.ndarray, window: int) -> np.ndarray:
    n = logret.shape[0]
    out = np.full(n, np.nan)
    for t in range(window, n):
        out[t] = _window_std(logret, t - window + 1, t + 1)
    return out


def realised_vol(close: np.ndarray, window: int) -> np.ndarray:
    """Sample std of daily log returns over the last ``window`` returns (NaN until complete).

    Each window is summed from scratch rather than with a running sum, so the value at bar
    ``t`` does not depend on how many bars came before the window.  The logarithm runs in
    numpy, elementwise, because a numba loop may vectorise it and round a vector lane
    differently from the scalar tail (see :mod:`models.features`).
    """
    close = np.asarray(close, dtype=np.float64)
    logret = np.empty(close.shape[0])
    logret[:1] = np.nan
    logret[1:] = np.log(close[1:] / close[:-1])
    return _rolling_std(logret, window)


def realised_vol_last(close: np.ndarray, window: int) -> float:
    """:func:`realised_vol` at the last bar of ``close``."""
    if close.shape[0] <= window:
        return float("nan")
    return float(realised_vol(np.ascontiguousarray(close[-(window + 1):]), window)[-1])
