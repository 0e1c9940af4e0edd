"""Drawdown circuit breaker: a small state machine with a pure ``step``.

Rules (``docs/sizing.md``):

- the high-water mark is the highest equity seen at a close;
- at a close where drawdown >= ``trigger`` the breaker trips (and ``trips`` counts it);
  while tripped, |weight| is capped at ``max_position``;
- at a close where drawdown >= ``halt`` (optional, deeper), new exposure stops: the weight
  may shrink toward 0 but never grow beyond what is held;
- **reset**: the breaker releases at the first close where drawdown <= ``reset``, i.e. once
  equity has recovered to within ``reset`` of its high-water mark.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ensemble_bt import jsonio


@dataclass(frozen=True)
class BreakerState:
    """Everything the breaker remembers; JSON round-trips exactly."""

    high_water: float = 0.0
    drawdown: float = 0.0
    tripped: bool = False
    halted: bool = False
    trips: int = 0

    def to_json(self) -> str:
        # repr of a float round-trips exactly through json; strict: never NaN.
        return jsonio.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BreakerState:
        raw = json.loads(text)
        return cls(high_water=float(raw["high_water"]), drawdown=float(raw["drawdown"]),
                   tripped=bool(raw["tripped"]), halted=bool(raw["halted"]),
                   trips=int(raw["trips"]))


@dataclass(frozen=True)
class BreakerParams:
    """Thresholds as drawdown fractions, ``0 < reset < trigger < halt < 1``."""

    trigger: float = 0.25
    max_position: float = 0.60
    reset: float = 0.10
    halt: float | None = None


def step(state: BreakerState, equity: float, params: BreakerParams) -> BreakerState:
    """The state after observing ``equity`` at a close."""
    high = max(state.high_water, equity)
    dd = 1.0 - equity / high if high > 0 else 0.0
    tripped, trips = state.tripped, state.trips
    if not tripped and dd >= params.trigger:
        tripped, trips = True, trips + 1
    elif tripped and dd <= params.reset:
        tripped = False
    halted = tripped and params.halt is not None and dd >= params.halt
    return BreakerState(high, dd, tripped, halted, trips)


def cap_weight(weight: float, held: float, state: BreakerState, params: BreakerParams) -> float:
    """Apply the breaker to a target weight, given the weight currently held."""
    if state.tripped:
        weight = min(max(weight, -params.max_position), params.max_position)
    if state.halted:
        # No new exposure: only move toward zero from what is held.
        weight = min(max(weight, min(held, 0.0)), max(held, 0.0))
    return weight


def position_limits(state: BreakerState, params: BreakerParams, max_long: float,
                    max_short: float) -> tuple[float, float]:
    """``(long, short)``: the largest long and short weights that may be held now.

    While tripped both are capped at ``max_position``; a held weight beyond a limit is traded
    back at once (:func:`sizing.rebalance.needs_rebalance`).
    """
    if state.tripped:
        return min(params.max_position, max_long), min(params.max_position, max_short)
    return max_long, max_short
