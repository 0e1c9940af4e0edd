"""Interim target-weight rule, used until the lagged half-Kelly sizing replaces it.

``weight = clip(kelly_scale * mu / sigma**2, 0, max_weight)`` where ``mu`` is the expected
daily arithmetic return and ``sigma`` the realised daily volatility: the continuous-time Kelly
fraction, scaled down (half-Kelly by default) and long-only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class InterimSizing:
    """Parameters of the interim rule.

    Attributes
    ----------
    max_weight : float
        Largest long weight (fraction of equity).
    kelly_scale : float
        Multiplier on the Kelly fraction (0.5 is half-Kelly).
    rebalance_band : float
        Skip a rebalance when the target differs from the held weight by less than this,
        unless the target is flat.
    """

    max_weight: float = 1.0
    kelly_scale: float = 0.5
    rebalance_band: float = 0.05


def interim_target_weight(expected_daily_return: float, daily_vol: float,
                          params: InterimSizing) -> float:
    """Target weight in ``[0, params.max_weight]``; 0 when either input is unknown."""
    if not (math.isfinite(expected_daily_return) and math.isfinite(daily_vol)) or daily_vol <= 0:
        return 0.0
    raw = params.kelly_scale * expected_daily_return / (daily_vol * daily_vol)
    return min(max(raw, 0.0), params.max_weight)


def needs_rebalance(target: float, held: float, band: float) -> bool:
    """Whether moving from ``held`` to ``target`` weight is worth an order."""
    if target == 0.0:
        return held != 0.0
    return abs(target - held) >= band
