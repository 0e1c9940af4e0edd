"""The Probability of Backtest Overfitting by Combinatorially Symmetric Cross-Validation.

Bailey, Borwein, López de Prado & Zhu 2017, "The Probability of Backtest Overfitting",
J. of Computational Finance 20(4), SSRN 2326253.  Conventions: :mod:`models.overfitting`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
Metric = str | Callable[[np.ndarray], np.ndarray]

#: Largest C(S, S/2) that ``pbo_cscv`` accepts: C(20, 10) = 184,756 and C(22, 11) = 705,432
#: pass, C(24, 12) = 2,704,156 does not.
MAX_COMBINATIONS = 1_000_000

# Elements per gathered (combinations, blocks, trials) array, to bound memory on wide sweeps.
_CHUNK_ELEMENTS = 4_000_000

__all__ = ["MAX_COMBINATIONS", "PBOResult", "pbo_cscv"]


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
