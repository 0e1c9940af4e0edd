"""Cross-sectional helpers of a portfolio backtest: model-free baselines and demeaned labels.

A *panel* is a DataFrame indexed by date with one column per symbol.  A symbol's own series
are indexed by its own bars; a panel puts them on the union of the symbols' dates (NaN where
a symbol has no bar).  The rank IC itself is :func:`models.crosssection.rank_ic`, the one
definition the pooled model is scored by too.  Nothing here imports backtrader.

- :func:`momentum` and :func:`reversal`: the model-free baselines a model should beat.
- :func:`demeaned_targets`: each symbol's forward log return less the universe's mean.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from models.targets import forward_log_return


def momentum(close: pd.Series, window: int = 63) -> pd.Series:
    """``log(c[t] / c[t - window])`` on the symbol's own bars: the trend baseline."""
    return np.log(close / close.shift(window))


def reversal(close: pd.Series, window: int = 5) -> pd.Series:
    """``-log(c[t] / c[t - window])``: the short-term reversal baseline."""
    return -np.log(close / close.shift(window))


#: The baselines every portfolio's rank IC is compared with, by name.
BASELINES = {"momentum_63": lambda c: momentum(c, 63), "reversal_5": lambda c: reversal(c, 5)}


def union_closes(closes: Mapping[str, pd.Series]) -> pd.DataFrame:
    """The closes on the union of the symbols' dates, each symbol's last price carried over
    a date it has no bar, and NaN before its first bar and after its last."""
    panel = pd.DataFrame({s: c for s, c in closes.items()}).sort_index()
    filled = panel.ffill()
    for symbol, close in closes.items():
        filled.loc[filled.index > close.index[-1], symbol] = np.nan
    return filled


def demeaned_targets(closes: Mapping[str, pd.Series], horizon: int) -> dict[str, pd.Series]:
    """Each symbol's forward log return less the universe's equal-weight mean on that date.

    The mean at date ``t`` is over the symbols whose forward log return on the union
    calendar, ``log(c[u + h] / c[u])`` with ``u`` the union session of ``t`` and each
    symbol's last price carried over its missing sessions, is known.  Every term ends at or
    before the ``horizon``-th union session after ``t``, which is at or before the symbol's
    own ``horizon``-th bar after ``t``: the label ends no later than the raw one, so the
    walk-forward schedule and the leakage audit hold unchanged.

    Returns
    -------
    dict[str, pandas.Series]
        Per symbol, on its own dates: NaN where its raw label is (the last ``horizon`` bars).
    """
    panel = union_closes(closes)
    union_label = np.log(panel.shift(-horizon) / panel)
    mean = union_label.mean(axis=1, skipna=True)
    return {s: forward_log_return(c, horizon) - mean.reindex(c.index)
            for s, c in closes.items()}
