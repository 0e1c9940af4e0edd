"""Statistics that say whether the best cell of a backtest sweep is luck.

A robustness run tries many configurations and reports the best. Its Sharpe ratio is the
maximum of many noisy estimates, so it is biased upwards. This module measures how much:

- ``probabilistic_sharpe_ratio`` (PSR): the probability that the true Sharpe ratio beats a
  benchmark, given the track length and the skewness and kurtosis of the returns
  (Bailey & López de Prado 2012, "The Sharpe Ratio Efficient Frontier", J. of Risk 15(2));
- ``expected_max_sharpe``: the Sharpe ratio that the best of N skill-less trials reaches on
  average (the False Strategy theorem);
- ``deflated_sharpe_ratio`` (DSR): the PSR benchmarked against that expected maximum
  (Bailey & López de Prado 2014, "The Deflated Sharpe Ratio", J. of Portfolio Management
  40(5), SSRN 2460551);
- ``pbo_cscv``: the Probability of Backtest Overfitting by Combinatorially Symmetric
  Cross-Validation (Bailey, Borwein, López de Prado & Zhu 2017, "The Probability of Backtest
  Overfitting", J. of Computational Finance 20(4), SSRN 2326253).

Conventions:

- every Sharpe ratio here is **per period** (not annualised), with a zero risk-free rate and
  the sample standard deviation (ddof=1). Divide an annualised ratio by
  ``sqrt(periods_per_year)`` before passing it in. This differs from
  ``models.metrics.sharpe_ratio``, which annualises and reports 0.0 for a flat series;
- an undefined statistic is NaN, never a crash: a zero-variance series, fewer than three
  finite returns, or NaN inputs give NaN. Inputs that cannot be right (negative variance,
  fewer than one trial, an impossible kurtosis, a malformed PBO matrix) raise ``ValueError``;
- ``kurtosis`` is always the **non-excess (Pearson)** kurtosis, 3 for a normal distribution.
  See ``probabilistic_sharpe_ratio`` for the trap this avoids.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from models.metrics import as_1d, finite_values

ArrayLike = npt.ArrayLike
Metric = str | Callable[[np.ndarray], np.ndarray]

EULER_MASCHERONI = 0.5772156649015329

#: Largest C(S, S/2) that ``pbo_cscv`` accepts: C(20, 10) = 184,756 and C(22, 11) = 705,432
#: pass, C(24, 12) = 2,704,156 does not.
MAX_COMBINATIONS = 1_000_000

# Elements per gathered (combinations, blocks, trials) array, to bound memory on wide sweeps.
_CHUNK_ELEMENTS = 4_000_000

# Sample moments sit exactly on the bound kurtosis = 1 + skew**2 for a two-valued series;
# let rounding below the bound through.
_KURTOSIS_BOUND_RTOL = 1e-9

__all__ = [
    "EULER_MASCHERONI",
    "MAX_COMBINATIONS",
    "PBOResult",
    "deflated_sharpe_ratio",
    "dsr_from_trials",
    "expected_max_sharpe",
    "pbo_cscv",
    "probabilistic_sharpe_ratio",
    "psr_from_returns",
    "sharpe_ratio",
]


# --------------------------------------------------------------------------- Sharpe and PSR


def sharpe_ratio(returns: ArrayLike) -> float:
    """Per-period Sharpe ratio, ``mean / std(ddof=1)``, with a zero risk-free rate.

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
    sr = sharpe_ratio(r)
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
        ``probabilistic_sharpe_ratio(sharpe_ratio(r), sr_benchmark, n, γ3, γ4)`` with γ3 and γ4
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


# --------------------------------------------------------------------------- PBO by CSCV


@dataclass(frozen=True)
class PBOResult:
    """Outcome of ``pbo_cscv``; the arrays have one entry per combination.

    Attributes
    ----------
    pbo : float
        Share of combinations whose logit is <= 0: the in-sample winner did no better than
        the out-of-sample median.
    logits : np.ndarray
        λ = ln(ω / (1 − ω)), with ω the out-of-sample relative rank of the in-sample winner.
    n_combinations : int
        C(S, S/2).
    is_performance : np.ndarray
        In-sample metric of the in-sample winner (x axis of the paper's performance
        degradation plot).
    oos_performance : np.ndarray
        Out-of-sample metric of the same configuration (y axis).
    best_index : np.ndarray
        Column of the in-sample winner.
    n_splits : int
        Number of blocks S.
    """

    pbo: float
    logits: np.ndarray
    n_combinations: int
    is_performance: np.ndarray
    oos_performance: np.ndarray
    best_index: np.ndarray
    n_splits: int

    @property
    def prob_oos_loss(self) -> float:
        """Share of combinations where the in-sample winner loses out of sample (metric < 0)."""
        return float(np.mean(self.oos_performance < 0))


def _validate_performance(performance: ArrayLike, n_splits: int) -> np.ndarray:
    perf = np.asarray(performance, dtype=float)
    if perf.ndim != 2:
        raise ValueError("performance must be a 2-D T×N matrix (rows = periods, columns = "
                         f"configurations), got shape {perf.shape}")
    n_periods, n_configs = perf.shape
    if n_configs < 2:
        raise ValueError(f"PBO needs at least two configurations (N >= 2), got N={n_configs}: "
                         "with one trial nothing was selected; use psr_from_returns instead")
    bad = int(np.size(perf) - np.count_nonzero(np.isfinite(perf)))
    if bad:
        raise ValueError(f"performance holds {bad} non-finite value(s): drop or fill those "
                         "periods first (e.g. a flat day is a return of 0.0)")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer):
        raise ValueError(f"n_splits must be an integer, got {n_splits!r}")
    if n_splits < 2 or n_splits % 2:
        raise ValueError(f"n_splits must be an even integer >= 2, got {n_splits}")
    if n_splits > n_periods:
        raise ValueError(f"n_splits={n_splits} exceeds the {n_periods} periods (rows) of "
                         "performance: every block needs at least one period")
    n_comb = math.comb(n_splits, n_splits // 2)
    if n_comb > MAX_COMBINATIONS:
        raise ValueError(f"n_splits={n_splits} gives C({n_splits}, {n_splits // 2})={n_comb} "
                         f"combinations, more than {MAX_COMBINATIONS}: use n_splits <= 22")
    return perf


def _combinations(n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    """All S/2-subsets of the blocks, and for each the index of its complement."""
    combos = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)),
                      dtype=np.intp)
    masks = (np.int64(1) << combos.astype(np.int64)).sum(axis=1)
    complement = (np.int64(1) << n_splits) - 1 - masks
    order = np.argsort(masks)
    partner = order[np.searchsorted(masks[order], complement)]
    return combos, partner


def _moment_scores(perf: np.ndarray, starts: np.ndarray, combos: np.ndarray,
                   kind: str) -> np.ndarray:
    """Mean or Sharpe ratio of every column on the blocks of every combination.

    The metric is rebuilt from per-block counts, sums and sums of squares, so each
    combination costs a sum over S/2 blocks instead of a pass over T/2 rows. The data are
    centred on their column means first, which keeps the sum-of-squares variance accurate.
    """
    center = perf.mean(axis=0)
    x = perf - center
    counts = np.diff(np.append(starts, perf.shape[0])).astype(float)
    sums = np.add.reduceat(x, starts, axis=0)
    sumsq = np.add.reduceat(x * x, starts, axis=0)
    # Exact constancy from block extremes: a half is flat iff its min equals its max.
    lows = np.minimum.reduceat(perf, starts, axis=0)
    highs = np.maximum.reduceat(perf, starts, axis=0)
    n_comb, half = combos.shape
    out = np.empty((n_comb, perf.shape[1]))
    step = max(1, _CHUNK_ELEMENTS // (half * perf.shape[1]))
    for lo in range(0, n_comb, step):
        idx = combos[lo:lo + step]
        n = counts[idx].sum(axis=1)[:, None]
        s = sums[idx].sum(axis=1)
        mean = s / n + center
        if kind == "mean":
            out[lo:lo + step] = mean
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.maximum(sumsq[idx].sum(axis=1) - s * s / n, 0.0) / (n - 1)
            sharpe = mean / np.sqrt(var)
        flat = lows[idx].min(axis=1) == highs[idx].max(axis=1)
        out[lo:lo + step] = np.where(flat | (n < 2), np.nan, sharpe)
    return out


def _callable_scores(perf: np.ndarray, starts: np.ndarray, combos: np.ndarray,
                     metric: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    bounds = np.append(starts, perf.shape[0])
    blocks = [np.arange(bounds[b], bounds[b + 1]) for b in range(starts.size)]
    out = np.empty((combos.shape[0], perf.shape[1]))
    for i, combo in enumerate(combos):
        rows = np.concatenate([blocks[b] for b in combo])
        scores = np.asarray(metric(perf[rows]), dtype=float)
        if scores.shape != (perf.shape[1],):
            raise ValueError(f"metric must return one score per column, shape "
                             f"({perf.shape[1]},), got {scores.shape}")
        out[i] = scores
    return out


def _summarise(is_scores: np.ndarray, oos_scores: np.ndarray, n_splits: int) -> PBOResult:
    n_comb, n_configs = is_scores.shape
    rows = np.arange(n_comb)
    # A NaN metric (a flat half) ranks below every number; ties go to the first column.
    is_key = np.where(np.isfinite(is_scores), is_scores, -np.inf)
    best = np.argmax(is_key, axis=1)
    oos_key = np.where(np.isfinite(oos_scores), oos_scores, -np.inf)
    chosen = oos_key[rows, best][:, None]
    # Average rank among ties, 1 = worst ... N = best.
    rank = (oos_key < chosen).sum(axis=1) + ((oos_key == chosen).sum(axis=1) + 1) / 2.0
    # ln(r/(N+1)) - ln(1 - r/(N+1)) written so ranks r and N+1-r give exact opposites.
    logits = np.log(rank) - np.log(n_configs + 1 - rank)
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        n_combinations=n_comb,
        is_performance=is_scores[rows, best],
        oos_performance=oos_scores[rows, best],
        best_index=best,
        n_splits=n_splits,
    )


def pbo_cscv(performance: ArrayLike, n_splits: int = 16, metric: Metric = "sharpe",
             ) -> PBOResult:
    """Probability of Backtest Overfitting by Combinatorially Symmetric Cross-Validation.

    The T rows are cut into S contiguous blocks (sizes differ by at most one row when S does
    not divide T; no row is dropped). For each of the C(S, S/2) ways to pick half of the
    blocks, the picked blocks, concatenated in time order, are the in-sample (IS) set and the
    rest the out-of-sample (OOS) set. The configuration with the best IS metric, n*, is
    ranked among all N configurations OOS; ω = rank / (N + 1) with rank 1 the worst and N the
    best (ties share their average rank), and λ = ln(ω / (1 − ω)).

    PBO is the share of combinations with **λ <= 0**. The paper writes PBO = ∫_{-∞}^0 f(λ)dλ;
    the two readings differ only when n* lands exactly on the OOS median (λ = 0, possible
    for odd N or ties). Counting that case as overfit is the conservative choice: picking n*
    then did no better than picking a configuration at random. Under pure noise the IS winner's
    OOS rank is uniform, so PBO is about floor((N + 1) / 2) / N (0.5 for even N).

    Parameters
    ----------
    performance : array-like of float, shape (T, N)
        Per-period returns, one row per period and one column per configuration (trial).
    n_splits : int, default 16
        Number of blocks S: even, >= 2, <= T, and with C(S, S/2) <= ``MAX_COMBINATIONS``.
        C(16, 8) = 12,870.
    metric : {"sharpe", "mean"} or callable, default "sharpe"
        ``"sharpe"``: per-period ``mean / std(ddof=1)``, NaN on a flat half; ``"mean"``: mean
        return. Both are computed from per-block sums (vectorised). A callable receives the
        (rows, N) returns of one half and returns N scores; it is called C(S, S/2) times.
        A NaN score ranks below every number and is never the IS winner unless all are NaN.

    Returns
    -------
    PBOResult
        ``pbo``, ``logits``, ``n_combinations`` and the (IS, OOS) metric pairs of each
        combination's winner for the performance-degradation plot.

    Raises
    ------
    ValueError
        If ``performance`` is not 2-D, has fewer than two columns or a non-finite value, if
        ``n_splits`` is odd, < 2, > T or gives too many combinations, or if ``metric`` is an
        unknown name or returns the wrong shape.
    """
    perf = _validate_performance(performance, n_splits)
    n_periods = perf.shape[0]
    starts = (np.arange(n_splits) * n_periods) // n_splits
    combos, partner = _combinations(n_splits)
    if callable(metric):
        half_scores = _callable_scores(perf, starts, combos, metric)
    elif metric in ("sharpe", "mean"):
        half_scores = _moment_scores(perf, starts, combos, metric)
    else:
        raise ValueError(f"metric must be 'sharpe', 'mean' or a callable, got {metric!r}")
    # Each half is the IS set of one combination and the OOS set of its complement.
    return _summarise(half_scores, half_scores[partner], n_splits)
