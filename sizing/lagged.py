"""Lagged track-record statistics: only predictions whose outcome is known count.

A prediction made at the close of bar ``s`` over horizon ``h`` resolves at the close of bar
``s + h``, when its outcome ``log(c[s+h] / c[s])`` is known.  :meth:`LaggedStats.observe` is
called once per bar, in order; it resolves the prediction made ``h`` bars earlier before the
current bar's decision, so a decision never sees an outcome that ends after it.
"""

from __future__ import annotations

import math
from collections import deque


class LaggedStats:
    """Rolling hit rate and payoff ratio over the last ``window`` resolved predictions.

    Parameters
    ----------
    horizon : int
        Bars until a prediction resolves.
    window : int
        Resolved predictions kept (oldest dropped first).
    """

    def __init__(self, horizon: int, window: int = 252) -> None:
        self.horizon = horizon
        self.window = window
        self._pending: deque[tuple[float, float]] = deque()
        self._resolved: deque[tuple[bool, float]] = deque()
        self.n = 0  # resolved predictions in the window
        self._hits = 0
        self._win_sum = 0.0
        self._loss_sum = 0.0

    def observe(self, prediction: float, close: float) -> None:
        """Record this bar's prediction and close; resolve the one made ``horizon`` bars ago."""
        if len(self._pending) == self.horizon:
            old_pred, old_close = self._pending.popleft()
            outcome = math.log(close / old_close)
            if math.isfinite(old_pred) and old_pred != 0.0 and outcome != 0.0:
                self._add((old_pred > 0.0) == (outcome > 0.0), abs(outcome))
        self._pending.append((prediction, close))

    def _add(self, hit: bool, size: float) -> None:
        self._resolved.append((hit, size))
        self._account(hit, size, +1)
        if self.n < self.window:
            self.n += 1
        else:
            self._account(*self._resolved.popleft(), -1)

    def _account(self, hit: bool, size: float, sign: int) -> None:
        if hit:
            self._hits += sign
            self._win_sum += sign * size
        else:
            self._loss_sum += sign * size

    @property
    def hit_rate(self) -> float:
        return self._hits / self.n if self.n else math.nan

    @property
    def payoff(self) -> float:
        """Mean winning |outcome| over mean losing |outcome| (NaN until both exist)."""
        wins, losses = self._hits, self.n - self._hits
        if wins == 0 or losses == 0 or self._loss_sum <= 0.0:
            return math.nan
        return (self._win_sum / wins) / (self._loss_sum / losses)
