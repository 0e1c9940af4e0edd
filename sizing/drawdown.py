"""``DrawdownBreaker``: the account's drawdown circuit breaker as one small object.

A user's own strategy keeps one breaker for the account, feeds it the account value once per
bar (:meth:`DrawdownBreaker.update`) and passes every target weight through
:meth:`DrawdownBreaker.cap`.  The rules are those of :mod:`sizing.breaker` (``docs/sizing.md``)
and so those :class:`strategies.strategy.EnsembleStrategy` and the fast path run; this object
only holds the state and the thresholds between calls.

Example
-------
>>> from sizing.config import SizingConfig
>>> breaker = DrawdownBreaker(SizingConfig(drawdown_circuit_breaker=0.2))
>>> breaker.update(100_000.0).tripped, breaker.update(79_000.0).tripped
(False, True)
>>> breaker.cap(1.5, held=1.2)  # capped at drawdown_max_position while tripped
0.6
"""

from __future__ import annotations

from sizing.breaker import (
    BreakerState,
    breaker_params,
    cap_weight,
    position_limits,
    step,
)
from sizing.config import SizingConfig


class DrawdownBreaker:
    """The drawdown circuit breaker of one account.

    Parameters
    ----------
    sizing : SizingConfig | None
        ``drawdown_circuit_breaker`` (trips), ``drawdown_max_position`` (the |weight| cap while
        tripped), ``drawdown_reset`` (releases), ``drawdown_halt`` (no new exposure) and
        ``max_long``/``max_short`` (:meth:`limits`); the defaults when None.
    state : BreakerState | None
        Resume from a saved state (``BreakerState.to_json``/``from_json``); a fresh breaker
        when None.

    Attributes
    ----------
    state : BreakerState
        High-water mark, drawdown, tripped, halted and trips after the last :meth:`update`.
    """

    def __init__(self, sizing: SizingConfig | None = None, *,
                 state: BreakerState | None = None) -> None:
        self.sizing = sizing or SizingConfig()
        self.params = breaker_params(self.sizing)
        self.state = state or BreakerState()

    def update(self, equity: float) -> BreakerState:
        """Observe the account value at a close; call it once per bar, before :meth:`cap`.

        Parameters
        ----------
        equity : float
            The account value (``self.broker.getvalue()`` in a ``bt.Strategy``).

        Returns
        -------
        BreakerState
            The state after this close.
        """
        self.state = step(self.state, equity, self.params)
        return self.state

    def cap(self, weight: float, held: float) -> float:
        """The target ``weight`` the breaker allows, given the weight ``held`` now.

        While tripped, |weight| is capped at ``drawdown_max_position``; while halted, the
        weight may only move from ``held`` toward 0.
        """
        return cap_weight(weight, held, self.state, self.params)

    def limits(self) -> tuple[float, float]:
        """``(long, short)``: the largest long and short weights that may be held now.

        ``max_long`` and ``max_short``, both capped at ``drawdown_max_position`` while
        tripped; a held weight beyond them should be traded back at once.
        """
        return position_limits(self.state, self.params, self.sizing.max_long,
                               self.sizing.max_short)

    @property
    def tripped(self) -> bool:
        """Whether the breaker is tripped (the cap applies)."""
        return self.state.tripped

    @property
    def halted(self) -> bool:
        """Whether new exposure is halted (``drawdown_halt`` reached while tripped)."""
        return self.state.halted

    @property
    def drawdown(self) -> float:
        """The drawdown from the high-water mark at the last :meth:`update`, a fraction >= 0."""
        return self.state.drawdown

    @property
    def trips(self) -> int:
        """How many times the breaker has tripped."""
        return self.state.trips
