"""The long-biased, lagged half-Kelly hybrid: a prediction and a track record to a weight.

Every function is a plain function of explicit scalar inputs, written in the subset of Python
that numba compiles (``numba.njit(hybrid_weight)``) for vectorised paths; the strategy calls
the Python functions bar by bar, where a numba dispatch would cost more than the arithmetic.
See ``docs/sizing.md`` for the formula with a worked example.
"""

from __future__ import annotations

import math

NAN = float("nan")


def win_rate_prior(holdout_dir_acc: float, train_positive_pct: float, lo: float = 0.50,
                   hi: float = 0.60) -> float:
    """``max(holdout_dir_acc, train_positive_pct)`` clipped to ``[lo, hi]``; NaN inputs ignored."""
    best = lo
    if holdout_dir_acc == holdout_dir_acc and holdout_dir_acc > best:
        best = holdout_dir_acc
    if train_positive_pct == train_positive_pct and train_positive_pct > best:
        best = train_positive_pct
    return min(best, hi)


def blend(prior: float, observed: float, n_observed: float, prior_strength: float) -> float:
    """Shrink an observed rate toward its prior: ``prior_strength`` counts as pseudo-outcomes."""
    if n_observed <= 0.0 or observed != observed:
        return prior
    w = n_observed / (n_observed + prior_strength)
    return (1.0 - w) * prior + w * observed


def hybrid_weight(mu: float, sigma: float, p_win: float, payoff: float, max_long: float,
                  max_short: float, base_long_bias: float, bearish_risk_off: float,
                  kelly_scale: float, signal_scale: float, prior_hi: float,
                  vol_target: float) -> float:
    """Target weight in ``[-max_short, max_long]`` for one bar.

    Parameters
    ----------
    mu : float
        Expected daily arithmetic return of the prediction (NaN: no prediction, weight 0).
    sigma : float
        Realised daily volatility.
    p_win, payoff : float
        Lagged, prior-blended hit rate and payoff ratio of past predictions.
    max_long, max_short, base_long_bias, bearish_risk_off : float
        Bounds and the two anchor weights: ``base_long_bias`` when bullish, ``bearish_risk_off``
        when bearish, before the Kelly-scaled tilt.
    kelly_scale : float
        Fraction of full Kelly (0.5 is half-Kelly).
    signal_scale : float
        Forecast information ratio ``mu / sigma`` at which the tilt reaches ``tanh(1)``.
    prior_hi : float
        Largest plausible hit rate; confidence is measured against Kelly at ``prior_hi``.
    vol_target : float
        Annualised volatility target; ``<= 0`` disables volatility targeting.
    """
    if mu != mu or sigma != sigma or sigma <= 0.0:
        return 0.0
    # Kelly's fraction p - (1 - p) / b; a non-positive payoff is a bet with no edge (-1).
    kelly = p_win - (1.0 - p_win) / payoff if payoff > 0.0 else -1.0
    half = kelly_scale * max(kelly, 0.0)
    half_ref = kelly_scale * (prior_hi - (1.0 - prior_hi))
    conf = min(half / half_ref, 1.0) if half_ref > 0.0 else 0.0
    s = math.tanh(mu / sigma / signal_scale)
    if mu >= 0.0:
        w = base_long_bias + (max_long - base_long_bias) * conf * s
    else:
        w = bearish_risk_off * (1.0 + s) + max_short * conf * s
    if vol_target > 0.0:
        w *= min(vol_target / (sigma * math.sqrt(252.0)), 2.0)
    return min(max(w, -max_short), max_long)


def target_weight(mu: float, sigma: float, p_win: float, payoff: float, cfg) -> float:
    """:func:`hybrid_weight` with the parameters of a :class:`sizing.config.SizingConfig`."""
    return hybrid_weight(mu, sigma, p_win, payoff, cfg.max_long, cfg.max_short,
                         cfg.base_long_bias, cfg.bearish_risk_off, cfg.kelly_scale,
                         cfg.signal_scale, cfg.prior_high, cfg.vol_target or 0.0)


def lagged_inputs(prior_raw: float, hit_rate: float, payoff: float, n_resolved: int,
                  cfg) -> tuple[float, float]:
    """Win probability and payoff ratio: the track record shrunk toward the priors.

    The win-rate prior is the vintage's ``max(holdout_dir_acc, train_positive_pct)`` clipped
    to ``[prior_low, prior_high]``; the payoff prior is 1 (wins as large as losses).
    """
    prior = win_rate_prior(prior_raw, NAN, cfg.prior_low, cfg.prior_high)
    p_win = blend(prior, hit_rate, n_resolved, cfg.prior_strength)
    b = blend(1.0, payoff, n_resolved if payoff == payoff else 0, cfg.prior_strength)
    return p_win, b
