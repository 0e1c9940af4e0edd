"""Cross-sectional prediction quality: the rank IC of a panel of predictions, date by date.

A panel is a frame indexed by date with one column per symbol.  The rank IC of a date is the
Spearman correlation, across the symbols that have both a prediction and a realised return
that day, between the two; it says how well the predictions *rank* the symbols, whatever the
day's common move.  Subtracting a per-date constant from either side (a demeaned target, the
market's move) leaves it unchanged.

This module never imports backtrader.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ensemble_bt.errors import ConfigurationError

__all__ = ["MIN_SYMBOLS", "rank_ic", "rank_ic_summary"]

#: Fewest symbols a date needs for its rank IC (with two, a rank correlation is +-1 or NaN).
MIN_SYMBOLS: int = 3


def rank_ic(predictions: pd.DataFrame, realised: pd.DataFrame) -> pd.Series:
    """Per-date Spearman rank correlation between predictions and realised returns.

    Parameters
    ----------
    predictions, realised : pd.DataFrame
        Indexed by date, one column per symbol; NaN where a symbol has no prediction or no
        realised return that day.  Only the dates and symbols both frames hold are scored.

    Returns
    -------
    pd.Series
        Indexed by the dates both frames hold, named ``rank_ic``.  NaN for a date with fewer
        than :data:`MIN_SYMBOLS` symbols holding both values, or where either side is constant
        across them (the correlation is undefined).  Ties get average ranks.

    Raises
    ------
    ConfigurationError
        If either argument is not a DataFrame.
    """
    if not isinstance(predictions, pd.DataFrame) or not isinstance(realised, pd.DataFrame):
        raise ConfigurationError("rank_ic takes two DataFrames: dates by symbols")
    dates = predictions.index.intersection(realised.index, sort=True)
    symbols = predictions.columns.intersection(realised.columns, sort=False)
    pred = predictions.loc[dates, symbols].to_numpy(dtype=np.float64)
    real = realised.loc[dates, symbols].to_numpy(dtype=np.float64)
    both = np.isfinite(pred) & np.isfinite(real)
    # Rank only the pairs both sides have, so a symbol missing on one side drops out of both.
    pred_rank = pd.DataFrame(np.where(both, pred, np.nan)).rank(axis=1).to_numpy()
    real_rank = pd.DataFrame(np.where(both, real, np.nan)).rank(axis=1).to_numpy()
    out = np.full(len(dates), np.nan)
    count = both.sum(axis=1)
    for t in np.flatnonzero(count >= MIN_SYMBOLS):
        out[t] = _pearson(pred_rank[t, both[t]], real_rank[t, both[t]])
    return pd.Series(out, index=dates, name="rank_ic")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two rank vectors; NaN when either is constant."""
    da, db = a - a.mean(), b - b.mean()
    norm = math.sqrt(float(da @ da) * float(db @ db))
    return float(da @ db) / norm if norm > 0.0 else math.nan


def rank_ic_summary(series: pd.Series) -> tuple[float, float]:
    """Mean rank IC and its information ratio over the dates that have one.

    Parameters
    ----------
    series : pd.Series
        Per-date rank ICs, as :func:`rank_ic` returns; NaN dates are left out.

    Returns
    -------
    (mean, ir) : tuple of float
        ``mean`` of the finite values, and ``ir = mean / std`` (sample std, ddof 1) per date,
        not annualised (multiply by ``sqrt(252 / horizon)`` for an annual figure).  ``mean``
        is NaN with no finite value; ``ir`` is NaN with fewer than two or a zero std.
    """
    values = np.asarray(series, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan
    std = float(values.std(ddof=1))
    return mean, mean / std if std > 0.0 else math.nan
