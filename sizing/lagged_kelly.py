"""``LaggedKelly``: the lagged half-Kelly hybrid of one instrument, fed bar by bar.

:class:`strategies.strategy.EnsembleStrategy` sizes each feed this way; a user's own strategy
does the same with one ``LaggedKelly`` per feed.  Each bar, :meth:`LaggedKelly.update` takes
the predictor's three lines and the close, resolves the prediction made ``horizon`` bars
earlier into the track record (:class:`sizing.lagged.LaggedStats`), and returns the target
weight of :func:`sizing.kelly.target_weight`.  Call it on every bar, traded or not: a skipped
bar is a prediction missing from the track record.

Example
-------
>>> kelly = LaggedKelly(horizon=5)
>>> round(kelly.update(prediction=0.01, close=100.0, volatility=0.012, prior=0.55), 4)
1.5494
>>> kelly.update(prediction=float("nan"), close=101.0, volatility=0.012, prior=0.55)
0.0
"""

from __future__ import annotations

import math

from models.targets import check_horizon
from sizing.config import SizingConfig
from sizing.kelly import lagged_inputs, target_weight
from sizing.lagged import LaggedStats


class LaggedKelly:
    """Target weights from predictions and their lagged track record, for one instrument.

    Parameters
    ----------
    horizon : int
        Bars the predictions look ahead (the signal's label horizon): a prediction joins the
        track record ``horizon`` bars after it was made, once its outcome is known.
    sizing : SizingConfig | None
        The hybrid's bounds, anchors, Kelly fraction, priors and ``stats_window``; the
        defaults when None.

    Attributes
    ----------
    mu, p_win, payoff : float
        The last :meth:`update`'s expected daily return and prior-blended win probability and
        payoff ratio (NaN before the first).
    """

    def __init__(self, horizon: int, sizing: SizingConfig | None = None) -> None:
        self.horizon = check_horizon(horizon)
        self.sizing = sizing or SizingConfig()
        self.stats = LaggedStats(self.horizon, self.sizing.stats_window)
        self.mu = self.p_win = self.payoff = math.nan

    @property
    def n_resolved(self) -> int:
        """Resolved predictions in the track record."""
        return self.stats.n

    def update(self, prediction: float, close: float, volatility: float,
               prior: float) -> float:
        """Record this bar and return its target weight in ``[-max_short, max_long]``.

        Parameters
        ----------
        prediction : float
            The predicted log return over the horizon (``EnsemblePredictor.prediction``);
            NaN means none, and the weight is 0.
        close : float
            This bar's close: it resolves the prediction made ``horizon`` bars ago.
        volatility : float
            Realised daily volatility (``EnsemblePredictor.volatility``).
        prior : float
            The predicting model's raw win-rate prior (``EnsemblePredictor.prior``); NaN
            falls back to ``prior_low``.

        Returns
        -------
        float
            The weight before the drawdown breaker (:meth:`DrawdownBreaker.cap
            <sizing.drawdown.DrawdownBreaker.cap>`).
        """
        cfg = self.sizing
        self.stats.observe(prediction, close)
        # exp(pred / h) - 1 (models.targets.to_daily_return) in math, as the strategy does.
        self.mu = math.exp(prediction / self.horizon) - 1.0
        self.p_win, self.payoff = lagged_inputs(prior, self.stats.hit_rate, self.stats.payoff,
                                                self.stats.n, cfg)
        return target_weight(self.mu, volatility, self.p_win, self.payoff, cfg)
