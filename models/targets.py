"""Training targets: forward log returns, and their conversion to a daily arithmetic return.

The label of row ``i`` is ``log(c_{i+h} / c_i)``: it is known only at the close of bar
``i + h`` (:func:`label_end_index`).  The vintage schedule uses that end index to keep every
training label at or before a model's cutoff, which is what makes the backtest causal.

Log returns add up over time, so a model predicts them; sizing wants the expected daily
arithmetic return, which :func:`to_daily_return` derives.

This module never imports backtrader.
"""

from __future__ import annotations

import numbers
from typing import TypeVar

import numpy as np
import pandas as pd

from ensemble_bt.errors import ConfigurationError

__all__ = ["forward_log_return", "label_end_index", "to_daily_return"]

ArrayLikeT = TypeVar("ArrayLikeT", float, np.ndarray, pd.Series)


def check_horizon(horizon: int) -> int:
    """Return ``horizon`` as an int, or raise ``ConfigurationError`` naming the fix."""
    # bool is an Integral, but ``horizon=True`` is a config mistake, not a one-bar horizon.
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
        raise ConfigurationError(
            f"horizon must be an integer number of bars >= 1, got {horizon!r}; "
            "set it to 1 or 5 (the supported defaults)"
        )
    return int(horizon)


def forward_log_return(close: pd.Series, horizon: int) -> pd.Series:
    """Forward log return over ``horizon`` bars: ``y_t = log(c_{t+h} / c_t)``.

    Parameters
    ----------
    close : pd.Series
        Positive close prices, in time order.
    horizon : int
        Number of bars ahead, at least 1.

    Returns
    -------
    pd.Series
        Same index as ``close``, float64, named ``fwd_ret_<h>``.  The last ``horizon`` rows
        are NaN: their outcome is not known yet.  Row ``t`` equals the feature ``ret_<h>``
        of row ``t + h`` bit for bit, since both are the same elementwise expression.

    Raises
    ------
    ConfigurationError
        If ``horizon`` is not an integer >= 1.
    """
    h = check_horizon(horizon)
    values = close.to_numpy(dtype=np.float64)
    out = np.full(values.shape[0], np.nan)
    if h < values.shape[0]:
        out[:-h] = np.log(values[h:] / values[:-h])
    return pd.Series(out, index=close.index, name=f"fwd_ret_{h}")


def to_daily_return(pred: ArrayLikeT, horizon: int) -> ArrayLikeT:
    """Turn a predicted ``horizon``-bar log return into an expected daily arithmetic return.

    ``exp(pred / horizon) - 1``: the log return is spread evenly over the horizon's bars, then
    compounded back to one bar.  The inverse is ``horizon * log1p(daily)``.

    Parameters
    ----------
    pred : float, np.ndarray or pd.Series
        Predicted log return(s) over ``horizon`` bars.
    horizon : int
        The horizon the prediction was trained for, at least 1.

    Returns
    -------
    float, np.ndarray or pd.Series
        The same kind as ``pred`` (a Python float for a scalar input).

    Raises
    ------
    ConfigurationError
        If ``horizon`` is not an integer >= 1.
    """
    h = check_horizon(horizon)
    daily = np.exp(pred / h) - 1.0
    if isinstance(pred, numbers.Real):
        return float(daily)
    return daily


def label_end_index(i: int, horizon: int) -> int:
    """Index of the bar at whose close the label of row ``i`` becomes known.

    The label of row ``i`` is ``log(c_{i+h} / c_i)``, so it ends at bar ``i + horizon``.  A
    model may train on row ``i`` only if ``label_end_index(i, horizon)`` is at or before its
    cutoff; otherwise the label would reveal prices the model is later asked to predict.

    Parameters
    ----------
    i : int
        Row (bar) index of the features.
    horizon : int
        Label horizon in bars, at least 1.

    Returns
    -------
    int
        ``i + horizon``.

    Raises
    ------
    ConfigurationError
        If ``horizon`` is not an integer >= 1.
    """
    return i + check_horizon(horizon)
