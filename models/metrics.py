"""Performance and prediction-quality metrics as pure functions.

Every function takes plain array-likes (numpy arrays, pandas Series, lists) and returns a
float or an array; none of them knows about backtrader, a strategy or a results directory.
Conventions shared with ``summary.json``:

- returns and drawdowns are fractions (0.25 means +25 %);
- ``max_drawdown`` is negative (-0.35 means a 35 % peak-to-trough loss);
- a ratio whose denominator vanishes (constant returns, too few observations) is 0.0, so a
  flat strategy reports "no risk-adjusted edge" rather than NaN or infinity;
  :func:`per_period_sharpe`, the input of the overfitting statistics, is the one exception:
  there a flat series has no defined Sharpe ratio (NaN);
- a statistic that is undefined on its inputs (no scorable pairs) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

ArrayLike = npt.ArrayLike
DateLike = str | date | datetime | pd.Timestamp | np.datetime64

DAYS_PER_YEAR = 365.25

__all__ = [
    "annualised_sharpe",
    "cagr",
    "direction_accuracy",
    "drawdown_series",
    "information_coefficient",
    "max_drawdown",
    "per_period_sharpe",
    "sortino_ratio",
    "total_return",
]


def as_1d(values: ArrayLike | Sequence[float], name: str) -> np.ndarray:
    """``values`` as a 1-D float array (a scalar becomes one element); ValueError otherwise."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _finite_pairs(pred: ArrayLike, actual: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = as_1d(pred, "pred")
    a = as_1d(actual, "actual")
    if p.shape != a.shape:
        raise ValueError(f"pred and actual differ in length: {p.size} != {a.size}")
    keep = np.isfinite(p) & np.isfinite(a)
    return p[keep], a[keep]


def finite_values(returns: ArrayLike, name: str = "returns") -> np.ndarray:
    """The finite entries of a 1-D series (NaN and inf dropped)."""
    r = as_1d(returns, name)
    return r[np.isfinite(r)]


# --------------------------------------------------------------------------- prediction quality


def direction_accuracy(pred: ArrayLike, actual: ArrayLike) -> float:
    """Share of bars where the prediction has the sign of the realised outcome.

    Parameters
    ----------
    pred, actual : array-like of float, same length
        Predicted and realised returns, aligned bar by bar.

    Returns
    -------
    float
        Hits divided by scorable pairs, in [0, 1]. A pair is scorable when both values are
        finite and ``actual != 0`` (a flat outcome has no direction). A zero prediction on a
        scorable pair is a miss. NaN when no pair is scorable.

    Raises
    ------
    ValueError
        If the inputs differ in length or are not one-dimensional.
    """
    p, a = _finite_pairs(pred, actual)
    scorable = a != 0
    if not scorable.any():
        return math.nan
    hits = np.sign(p[scorable]) == np.sign(a[scorable])
    return float(hits.mean())


def information_coefficient(pred: ArrayLike, actual: ArrayLike) -> float:
    """Spearman rank correlation between predictions and outcomes.

    Parameters
    ----------
    pred, actual : array-like of float, same length
        Predicted and realised returns, aligned bar by bar. Pairs with a non-finite value on
        either side are dropped.

    Returns
    -------
    float
        The rank correlation in [-1, 1]. NaN with fewer than three finite pairs or when either
        side is constant, where the correlation is undefined.

    Raises
    ------
    ValueError
        If the inputs differ in length or are not one-dimensional.
    """
    p, a = _finite_pairs(pred, actual)
    if p.size < 3 or np.ptp(p) == 0 or np.ptp(a) == 0:
        return math.nan
    return float(stats.spearmanr(p, a).statistic)


# --------------------------------------------------------------------------- risk-adjusted return


def annualised_sharpe(returns: ArrayLike, periods_per_year: float = 252) -> float:
    """Annualised Sharpe ratio of per-period returns, with a zero risk-free rate.

    The ``sharpe`` of ``summary.json``.

    Parameters
    ----------
    returns : array-like of float
        Per-period simple returns. Non-finite values (e.g. the leading NaN of
        ``pct_change``) are dropped.
    periods_per_year : float, default 252
        Periods in a year, used to annualise.

    Returns
    -------
    float
        ``mean / std(ddof=1) * sqrt(periods_per_year)``; 0.0 with fewer than two returns or
        zero standard deviation.
    """
    r = finite_values(returns)
    # Test constancy exactly: the std of e.g. [0.1, 0.1, 0.1] is ~1e-17 in floating point,
    # which would turn a flat series into a Sharpe of ~1e16.
    if r.size < 2 or np.ptp(r) == 0:
        return 0.0
    sd = float(r.std(ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return 0.0
    return float(r.mean() / sd * math.sqrt(periods_per_year))


def per_period_sharpe(returns: ArrayLike) -> float:
    """Per-period Sharpe ratio, ``mean / std(ddof=1)``, with a zero risk-free rate.

    The Sharpe ratio of the deflated Sharpe ratio and the PBO (:mod:`models.overfitting`):
    not annualised, and undefined on a flat series, unlike :func:`annualised_sharpe`.

    Parameters
    ----------
    returns : array-like of float
        Per-period returns. Non-finite values are dropped.

    Returns
    -------
    float
        The non-annualised Sharpe ratio; NaN with fewer than two finite returns or zero
        variance (a flat series has no defined risk-adjusted return).
    """
    r = finite_values(returns)
    # Test constancy exactly: the std of [0.1, 0.1, 0.1] is ~1e-17 in floating point, which
    # would turn a flat series into a Sharpe ratio of ~1e16.
    if r.size < 2 or np.ptp(r) == 0:
        return math.nan
    return float(r.mean() / r.std(ddof=1))


def sortino_ratio(returns: ArrayLike, periods_per_year: float = 252) -> float:
    """Annualised Sortino ratio of per-period returns, with a zero target.

    Parameters
    ----------
    returns : array-like of float
        Per-period simple returns. Non-finite values are dropped.
    periods_per_year : float, default 252
        Periods in a year, used to annualise.

    Returns
    -------
    float
        ``mean / downside_deviation * sqrt(periods_per_year)`` where the downside deviation
        is ``sqrt(mean(min(r, 0) ** 2))`` over all observations, gains counting as zero.
        0.0 with fewer than two returns or no losing period.
    """
    r = finite_values(returns)
    if r.size < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside == 0.0:
        return 0.0
    return float(r.mean() / downside * math.sqrt(periods_per_year))


# --------------------------------------------------------------------------- equity curve


def drawdown_series(equity: ArrayLike) -> np.ndarray:
    """Fractional distance of each point below the running peak of an equity curve.

    Parameters
    ----------
    equity : array-like of float
        Account value over time; the first value must be positive.

    Returns
    -------
    numpy.ndarray
        ``equity / cummax(equity) - 1``, same length as the input, every value <= 0.

    Raises
    ------
    ValueError
        If the curve contains non-finite values or its first value is not positive.
    """
    eq = as_1d(equity, "equity")
    if eq.size == 0:
        return eq
    if not np.isfinite(eq).all():
        raise ValueError("equity contains NaN or infinite values")
    if eq[0] <= 0:
        raise ValueError(f"equity must start positive, got {eq[0]}")
    return eq / np.maximum.accumulate(eq) - 1.0


def max_drawdown(equity: ArrayLike) -> float:
    """Deepest peak-to-trough loss of an equity curve.

    Parameters
    ----------
    equity : array-like of float
        Account value over time; the first value must be positive.

    Returns
    -------
    float
        A negative fraction (-0.35 is a 35 % loss); 0.0 for an empty, single-point or
        never-falling curve.
    """
    dd = drawdown_series(equity)
    return float(dd.min()) if dd.size else 0.0


def total_return(equity: ArrayLike) -> float:
    """Return from the first to the last point of an equity curve.

    Parameters
    ----------
    equity : array-like of float
        Account value over time; the first value must be positive.

    Returns
    -------
    float
        ``equity[-1] / equity[0] - 1`` as a fraction; 0.0 with fewer than two points.

    Raises
    ------
    ValueError
        If the first value is not positive or an end point is not finite.
    """
    eq = as_1d(equity, "equity")
    if eq.size < 2:
        return 0.0
    first, last = float(eq[0]), float(eq[-1])
    if not (math.isfinite(first) and math.isfinite(last)):
        raise ValueError("equity end points must be finite")
    if first <= 0:
        raise ValueError(f"equity must start positive, got {first}")
    return last / first - 1.0


def cagr(total_return: float, start: DateLike, end: DateLike) -> float:
    """Compound annual growth rate over a calendar period.

    Parameters
    ----------
    total_return : float
        Return over the whole period as a fraction (0.21 means +21 %).
    start, end : date-like
        Period bounds; anything ``pandas.Timestamp`` accepts. Years are calendar days
        divided by 365.25, so the figure does not depend on the bar frequency.

    Returns
    -------
    float
        ``(1 + total_return) ** (1 / years) - 1``; -1.0 when the capital was wiped out
        (``total_return <= -1``); NaN for a zero-length period.

    Raises
    ------
    ValueError
        If ``end`` is before ``start``.
    """
    t0, t1 = pd.Timestamp(start), pd.Timestamp(end)
    if t1 < t0:
        raise ValueError(f"end {t1} is before start {t0}")
    years = (t1 - t0) / pd.Timedelta(days=1) / DAYS_PER_YEAR
    if years == 0:
        return math.nan
    if total_return <= -1.0:
        return -1.0
    return float((1.0 + total_return) ** (1.0 / years) - 1.0)


def walk_forward_efficiency(test_acc: float, val_acc: float) -> float:
    """Baseline-adjusted WFE in percent: ``(test_acc - 0.5) / (val_acc - 0.5) * 100``.

    Defined only when ``val_acc - 0.5 > 0.001``; NaN otherwise, since a validation score at or
    below chance leaves nothing for the test period to be efficient about.
    """
    if not (np.isfinite(test_acc) and np.isfinite(val_acc)) or val_acc - 0.5 <= 0.001:
        return float("nan")
    return float((test_acc - 0.5) / (val_acc - 0.5) * 100.0)


def sign_imbalance(pred: ArrayLike, threshold: float = 0.85) -> dict[str, float | bool]:
    """Flag predictions of which more than ``threshold`` share one sign.

    Returns ``{"positive_share", "fired"}``; zeros count toward neither sign.
    """
    values = finite_values(pred)
    nonzero = values[values != 0.0]
    if len(nonzero) == 0:
        return {"positive_share": float("nan"), "fired": True}
    share = float(np.mean(nonzero > 0.0))
    return {"positive_share": share, "fired": bool(max(share, 1.0 - share) > threshold)}


def variance_collapse(pred: ArrayLike, target: ArrayLike, fraction: float = 0.01,
                      ) -> dict[str, float | bool]:
    """Flag predictions whose std is below ``fraction`` of the target's std.

    A learner that collapsed to a constant predicts nothing; its std ratio tells how far.
    """
    p, t = finite_values(pred), finite_values(target)
    if len(p) < 2 or len(t) < 2:
        return {"std_ratio": float("nan"), "fired": True}
    t_std = float(np.std(t, ddof=1))
    ratio = float(np.std(p, ddof=1) / t_std) if t_std > 0 else float("nan")
    return {"std_ratio": ratio, "fired": bool(not np.isfinite(ratio) or ratio < fraction)}
