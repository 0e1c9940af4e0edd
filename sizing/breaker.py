"""Drawdown circuit breaker: scalar rules that numba compiles, and a small state wrapper.

Rules (``docs/sizing.md``):

- the high-water mark is the highest equity seen at a close;
- at a close where drawdown >= ``trigger`` the breaker trips (and ``trips`` counts it);
  while tripped, |weight| is capped at ``max_position``;
- at a close where drawdown >= ``halt`` (optional, deeper), new exposure stops: the weight
  may shrink toward 0 but never grow beyond what is held;
- **reset**: the breaker releases at the first close where drawdown <= ``reset``, i.e. once
  equity has recovered to within ``reset`` of its high-water mark.

:func:`breaker_step`, :func:`breaker_cap` and :func:`breaker_limits` are plain functions of
scalars, written in the subset of Python that numba compiles, so that the fast path
(``backtests.fastkernel``) runs the very rules the strategy runs.  :class:`BreakerState` and
:func:`step`, :func:`cap_weight` and :func:`position_limits` wrap them for the strategy and
the paper journal, which persist the state.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from ensemble_bt import jsonio
from sizing.config import SizingConfig


def breaker_step(high_water: float, tripped: bool, trips: int, equity: float, trigger: float,
                 reset: float, halt: float) -> tuple[float, float, bool, bool, int]:
    """The breaker after observing ``equity`` at a close.

    Parameters
    ----------
    high_water, tripped, trips
        The state before this close: high-water mark, whether tripped, trips so far.
    equity : float
        Account value at this close.
    trigger, reset, halt : float
        Drawdown thresholds; ``halt`` NaN never halts.

    Returns
    -------
    tuple
        ``(high_water, drawdown, tripped, halted, trips)`` after this close.
    """
    high = max(high_water, equity)
    dd = 1.0 - equity / high if high > 0 else 0.0
    if not tripped and dd >= trigger:
        tripped = True
        trips += 1
    elif tripped and dd <= reset:
        tripped = False
    halted = tripped and dd >= halt  # NaN compares False: no halt
    return high, dd, tripped, halted, trips


def breaker_cap(weight: float, held: float, tripped: bool, halted: bool,
                max_position: float) -> float:
    """Apply the breaker to a target ``weight``, given the weight currently ``held``."""
    if tripped:
        weight = min(max(weight, -max_position), max_position)
    if halted:
        # No new exposure: only move toward zero from what is held.
        weight = min(max(weight, min(held, 0.0)), max(held, 0.0))
    return weight


def breaker_limits(tripped: bool, max_position: float, max_long: float,
                   max_short: float) -> tuple[float, float]:
    """``(long, short)``: the largest long and short weights that may be held now.

    While tripped both are capped at ``max_position``; a held weight beyond a limit is traded
    back at once (:func:`sizing.rebalance.needs_rebalance`).
    """
    if tripped:
        return min(max_position, max_long), min(max_position, max_short)
    return max_long, max_short


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
    """:func:`breaker_step` on a :class:`BreakerState`."""
    halt = math.nan if params.halt is None else params.halt
    high, dd, tripped, halted, trips = breaker_step(
        state.high_water, state.tripped, state.trips, equity, params.trigger, params.reset, halt)
    return BreakerState(high, dd, tripped, halted, trips)


def cap_weight(weight: float, held: float, state: BreakerState, params: BreakerParams) -> float:
    """:func:`breaker_cap` on a :class:`BreakerState`."""
    return breaker_cap(weight, held, state.tripped, state.halted, params.max_position)


def position_limits(state: BreakerState, params: BreakerParams, max_long: float,
                    max_short: float) -> tuple[float, float]:
    """:func:`breaker_limits` on a :class:`BreakerState`."""
    return breaker_limits(state.tripped, params.max_position, max_long, max_short)


def breaker_params(cfg: SizingConfig) -> BreakerParams:
    """The breaker thresholds of a sizing configuration."""
    return BreakerParams(trigger=cfg.drawdown_circuit_breaker,
                         max_position=cfg.drawdown_max_position, reset=cfg.drawdown_reset,
                         halt=cfg.drawdown_halt)
