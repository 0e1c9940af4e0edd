"""What every sizing decision records, in order.

The strategy, the fast path, the backtest's ``decisions.csv`` and the paper journal's
``decisions`` table all use these fields, so they live beside the sizing math rather than with
the backtrader strategy: reading a journal never needs backtrader.
"""

from __future__ import annotations

DECISION_FIELDS = ("date", "symbol", "prediction", "expected_return", "volatility", "p_win",
                   "payoff", "n_resolved", "target_weight", "held_weight", "drawdown",
                   "breaker")
