"""Synthetic OHLCV series built in code (no downloads), with known statistical properties."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from models.signal import SeriesSignal


def ohlcv_from_returns(log_returns: np.ndarray, seed: int = 0, start: str = "2000-01-03",
                       price0: float = 100.0) -> pd.DataFrame:
    """Business-day OHLCV bars whose close-to-close log returns are ``log_returns``.

    Open, high, low and volume carry independent noise, so they hold no information about
    future closes beyond what the closes themselves hold.
    """
    rng = np.random.default_rng(seed + 1_000)
    n = len(log_returns)
    close = price0 * np.exp(np.cumsum(log_returns))
    prev = np.concatenate([[price0], close[:-1]])
    open_ = prev * np.exp(rng.normal(0.0, 0.002, n))
    top = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.005, n)))
    bottom = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.005, n)))
    volume = np.round(1e6 * np.exp(rng.normal(0.0, 0.3, n)))
    index = pd.bdate_range(start, periods=n, name="date")
    return pd.DataFrame({"open": open_, "high": top, "low": bottom, "close": close,
                         "volume": volume}, index=index)


def random_walk(n: int = 5000, seed: int = 7, vol: float = 0.01) -> pd.DataFrame:
    """A driftless Gaussian random walk: no model can have an edge on it."""
    rng = np.random.default_rng(seed)
    return ohlcv_from_returns(rng.normal(0.0, vol, n), seed=seed)


def ar1_returns(n: int = 5000, seed: int = 11, phi: float = 0.2, vol: float = 0.01,
                ) -> pd.DataFrame:
    """Daily log returns following AR(1) with coefficient ``phi``: a weak, known signal."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, vol, n)
    r = np.empty(n)
    r[0] = eps[0]
    for t in range(1, n):
        r[t] = phi * r[t - 1] + eps[t]
    return ohlcv_from_returns(r, seed=seed)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write bars the way a user's CSV looks: Date, Open, High, Low, Close, Volume."""
    out = frame.rename(columns=str.capitalize).rename_axis("Date")
    out.to_csv(path)
    return path


def noisy_foresight(ohlcv: pd.DataFrame, horizon: int, noise: float, seed: int = 0,
                    ) -> SeriesSignal:
    """The realised forward log return plus heavy noise: trades often, both ways.

    The noise is ``noise`` times the daily log-return std scaled to the horizon.  The first 40
    predictions are NaN (no model yet), so the flat-on-NaN path runs too.  It looks ahead on
    purpose: it exercises simulators (tests/test_fastpath.py, benchmarks/bench_robustness.py),
    never a model.
    """
    rng = np.random.default_rng(seed)
    close = ohlcv["close"].to_numpy()
    forward = np.zeros(len(close))
    forward[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    daily = np.std(np.diff(np.log(close)))
    pred = forward + rng.normal(0.0, noise * daily * math.sqrt(horizon), len(close))
    pred[:40] = np.nan
    return SeriesSignal(pd.Series(pred, index=ohlcv.index), prior=0.57)
