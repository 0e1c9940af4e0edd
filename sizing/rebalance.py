"""When to trade: the rebalance band and the position limits, as plain scalar functions.

Both are written in the subset of Python that numba compiles, so the fast path
(``backtests.fastkernel``) runs the very same rule as the strategy.
"""

from __future__ import annotations

#: Smallest tolerance on a limit, so that float rounding alone never triggers a trim.
MIN_TOLERANCE = 1e-12


def trim_tolerance(band: float, limit: float) -> float:
    """How far a held weight may drift beyond ``limit`` before it is traded back.

    Half the rebalance band, so that a weight that drifted a hair above a cap (prices move
    after every fill) is not trimmed bar after bar for a few shares; but at most a tenth of
    the limit, so that a small limit (``max_short`` 0.1) is still enforced.
    """
    return max(min(0.5 * band, 0.1 * limit), MIN_TOLERANCE)


def needs_rebalance(target: float, held: float, band: float, long_limit: float,
                    short_limit: float) -> bool:
    """Whether to trade from the ``held`` weight toward ``target``.

    Parameters
    ----------
    target, held : float
        Target and currently held weight (negative is short).
    band : float
        Smallest weight change worth trading (``rebalance_band``).
    long_limit, short_limit : float
        Largest long weight and largest short weight (a positive number) that may be held
        now; a held weight beyond either, by more than :func:`trim_tolerance`, is traded at
        once, whatever the band.

    Returns
    -------
    bool
        True when over a limit, when going flat from a position, or when the gap to the
        target is at least ``band``.
    """
    # trim_tolerance, inlined so that numba compiles this function on its own.
    long_tol = max(min(0.5 * band, 0.1 * long_limit), MIN_TOLERANCE)
    short_tol = max(min(0.5 * band, 0.1 * short_limit), MIN_TOLERANCE)
    if held > long_limit + long_tol or held < -(short_limit + short_tol):
        return True
    if target == 0.0:
        return held != 0.0
    return abs(target - held) >= band
