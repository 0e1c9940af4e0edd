"""The probabilistic and the deflated Sharpe ratio of the best trial of a sweep.

- ``probabilistic_sharpe_ratio`` (PSR): the probability that the true Sharpe ratio beats a
  benchmark, given the track length and the skewness and kurtosis of the returns
  (Bailey & López de Prado 2012, "The Sharpe Ratio Efficient Frontier", J. of Risk 15(2));
- ``expected_max_sharpe``: the Sharpe ratio that the best of N skill-less trials reaches on
  average (the False Strategy theorem);
- ``deflated_sharpe_ratio`` (DSR): the PSR benchmarked against that expected maximum
  (Bailey & López de Prado 2014, "The Deflated Sharpe Ratio", J. of Portfolio Management
  40(5), SSRN 2460551).

Sharpe ratios are per period, kurtosis is non-excess, and an undefined statistic is NaN
(:mod:`models.overfitting`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from models.metrics import as_1d, finite_values, per_period_sharpe

ArrayLike = npt.ArrayLike

EULER_MASCHERONI = 0.5772156649015329

# Sample moments sit exactly on the bound kurtosis = 1 + skew**2 for a two-valued series;
# let rounding below the bound through.
_KURTOSIS_BOUND_RTOL = 1e-9

__all__ = [
    "EULER_MASCHERONI",
    "deflated_sharpe_ratio",
    "dsr_from_trials",
    "expected_max_sharpe",
    "probabilistic_sharpe_ratio",
    "psr_from_returns",
]


# --------------------------------------------------------------------------- PSR


def _check_kurtosis(skew: float, kurtosis: float) -> None:
    bound = 1.0 + skew * skew
    if kurtosis < bound * (1.0 - _KURTOSIS_BOUND_RTOL):
        raise ValueError(
            f"kurtosis={float(kurtosis):.6g} is impossible with skew={float(skew):.6g}: the "
            f"non-excess kurtosis of any distribution is at least 1 + skew**2 = {bound:.6g}. "
            "Was excess kurtosis passed "
            "(pandas .kurt(), scipy.stats.kurtosis(fisher=True))? Add 3, or use "
            "psr_from_returns."
        )


def probabilistic_sharpe_ratio(sr: float, sr_benchmark: float, n: int, skew: float,
                               kurtosis: float) -> float:
    """Probability that the true Sharpe ratio exceeds ``sr_benchmark`` (PSR).

    ``PSR = Φ((SR − SR*)·sqrt(n − 1) / sqrt(1 − γ3·SR + (γ4 − 1)/4·SR²))``
    (Bailey & López de Prado 2012, eq. for the PSR; the denominator is Mertens' (2002)
    standard error of the Sharpe ratio under non-normal i.i.d. returns).

    .. warning::
       ``kurtosis`` is the **non-excess (Pearson)** kurtosis γ4, which is 3 for a normal
       distribution. ``pandas.Series.kurt()`` and ``scipy.stats.kurtosis`` (default
       ``fisher=True``) return the **excess** kurtosis γ4 − 3. Passing it unadjusted
       understates the tails, shrinks the standard error and inflates the PSR of a winning
       strategy. A kurtosis below ``1 + skew**2`` (impossible for any distribution, and the
       usual symptom of this mistake) raises ``ValueError``; an excess kurtosis large enough
       to look possible cannot be caught, so prefer ``psr_from_returns``.

    Parameters
    ----------
    sr : float
        Observed per-period (non-annualised) Sharpe ratio.
    sr_benchmark : float
        Per-period benchmark Sharpe ratio SR*.
    n : int
        Number of return observations behind ``sr``.
    skew : float
        Skewness γ3 of the returns.
    kurtosis : float
        Non-excess (Pearson) kurtosis γ4 of the returns; 3 for normal returns.

    Returns
    -------
    float
        A probability in [0, 1]. NaN when any input is NaN, when ``n < 3`` (too short to
        estimate the moments), or when the standard-error term is not positive (only on the
        boundary ``kurtosis == 1 + skew**2`` with ``sr == 2 / skew``).

    Raises
    ------
    ValueError
        If ``kurtosis < 1 + skew**2``.
    """
    if not all(math.isfinite(v) for v in (sr, sr_benchmark, n, skew, kurtosis)) or n < 3:
        return math.nan
    _check_kurtosis(skew, kurtosis)
    var_term = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if var_term <= 0.0:
        return math.nan
    z = (sr - sr_benchmark) * math.sqrt(n - 1) / math.sqrt(var_term)
    return float(special.ndtr(z))


def _return_moments(returns: ArrayLike) -> tuple[float, int, float, float] | None:
    """``(sr, n, skew, kurtosis)`` of the finite returns, or None when the SR is undefined.

    The moments are the plug-in sample moments ``m3 / m2**1.5`` and ``m4 / m2**2``
    (``scipy.stats.skew(bias=True)``, ``scipy.stats.kurtosis(fisher=False, bias=True)``), the
    estimators of López de Prado's reference code. They are the moments of the empirical
    distribution, so they always satisfy ``kurtosis >= 1 + skew**2`` and exist from n = 3 on;
    the bias-corrected versions differ by O(1/n) and need n >= 4.
    """
    r = finite_values(returns)
    if r.size < 3:
        return None
    sr = per_period_sharpe(r)
    if math.isnan(sr):
        return None
    skew = float(stats.skew(r, bias=True))
    kurt = float(stats.kurtosis(r, fisher=False, bias=True))
    return sr, int(r.size), skew, kurt


def psr_from_returns(returns: ArrayLike, sr_benchmark: float = 0.0) -> float:
    """PSR of a return series, with its moments estimated the right way.

    Parameters
    ----------
    returns : array-like of float
        Per-period returns. Non-finite values are dropped.
    sr_benchmark : float, default 0.0
        Per-period benchmark Sharpe ratio SR*.

    Returns
    -------
    float
        ``probabilistic_sharpe_ratio(per_period_sharpe(r), sr_benchmark, n, γ3, γ4)`` with γ3 and γ4
        the plug-in sample skewness and non-excess kurtosis (see ``_return_moments``). NaN for
        fewer than three finite returns or a zero-variance series.
    """
    moments = _return_moments(returns)
    if moments is None:
        return math.nan
    sr, n, skew, kurt = moments
    return probabilistic_sharpe_ratio(sr, sr_benchmark, n, skew, kurt)


# --------------------------------------------------------------------------- DSR


def expected_max_sharpe(n_trials: float, sr_variance: float) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` skill-less trials (False Strategy theorem).

    ``E[max SR] ≈ sqrt(V)·((1 − γ)·Φ⁻¹(1 − 1/N) + γ·Φ⁻¹(1 − 1/(N·e)))`` with γ the
    Euler–Mascheroni constant, assuming the trial Sharpe ratios are normal with mean 0 and
    variance V (Bailey & López de Prado 2014, eq. for SR_0).

    Parameters
    ----------
    n_trials : float
        Number of independent trials N >= 1. A non-integer effective number of trials (e.g.
        after clustering correlated configurations) is accepted.
    sr_variance : float
        Variance V of the per-period Sharpe ratios across the trials.

    Returns
    -------
    float
        The expected maximum per-period Sharpe ratio: 0.0 for one trial (no selection, so no
        inflation, whatever V is), NaN when ``sr_variance`` is NaN and N > 1.

    Raises
    ------
    ValueError
        If ``n_trials < 1`` or is not finite, or ``sr_variance`` is negative or infinite.
    """
    if not math.isfinite(n_trials) or n_trials < 1:
        raise ValueError(f"n_trials must be a finite number >= 1, got {n_trials!r}")
    if n_trials == 1:
        return 0.0
    if math.isnan(sr_variance):
        return math.nan
    if sr_variance < 0 or math.isinf(sr_variance):
        raise ValueError(f"sr_variance must be finite and >= 0, got {sr_variance!r}")
    g = EULER_MASCHERONI
    z = (1.0 - g) * special.ndtri(1.0 - 1.0 / n_trials) + g * special.ndtri(
        1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sr_variance) * z)


def deflated_sharpe_ratio(sr: float, n: int, skew: float, kurtosis: float, n_trials: float,
                          sr_variance: float) -> float:
    """Deflated Sharpe ratio: the PSR against the expected maximum of ``n_trials`` trials.

    Parameters
    ----------
    sr : float
        Observed per-period Sharpe ratio of the selected (best) trial.
    n : int
        Number of return observations behind ``sr``.
    skew : float
        Skewness of the selected trial's returns.
    kurtosis : float
        Non-excess (Pearson) kurtosis of the selected trial's returns; 3 for normal returns.
    n_trials : float
        Number of trials the selection was made from (>= 1).
    sr_variance : float
        Variance of the per-period Sharpe ratios across the trials.

    Returns
    -------
    float
        ``probabilistic_sharpe_ratio(sr, expected_max_sharpe(n_trials, sr_variance), ...)``.
        With one trial the benchmark is 0, so the DSR equals the PSR against SR* = 0.

    Raises
    ------
    ValueError
        As ``expected_max_sharpe`` and ``probabilistic_sharpe_ratio``.
    """
    sr_star = expected_max_sharpe(n_trials, sr_variance)
    return probabilistic_sharpe_ratio(sr, sr_star, n, skew, kurtosis)


def dsr_from_trials(best_returns: ArrayLike, trial_sharpes: ArrayLike) -> float:
    """Deflated Sharpe ratio of the best trial of a sweep.

    Parameters
    ----------
    best_returns : array-like of float
        Per-period returns of the selected trial. Non-finite values are dropped.
    trial_sharpes : array-like of float
        Per-period Sharpe ratios of **every** trial tried, the selected one included. Their
        count is N; the sample variance (ddof=1) of the finite ones is V. A NaN Sharpe (a
        trial that never traded) still counts as a trial, because it was tried.

    Returns
    -------
    float
        The DSR. NaN when the best returns are too short or flat, or when N > 1 but fewer
        than two trial Sharpe ratios are finite (V undefined).

    Raises
    ------
    ValueError
        If ``trial_sharpes`` is empty or not one-dimensional.
    """
    sharpes = as_1d(trial_sharpes, "trial_sharpes")
    if sharpes.size == 0:
        raise ValueError("trial_sharpes is empty: a DSR needs the Sharpe ratio of every trial")
    finite = sharpes[np.isfinite(sharpes)]
    sr_variance = float(np.var(finite, ddof=1)) if finite.size >= 2 else math.nan
    moments = _return_moments(best_returns)
    if moments is None:
        return math.nan
    sr, n, skew, kurt = moments
    return deflated_sharpe_ratio(sr, n, skew, kurt, sharpes.size, sr_variance)
