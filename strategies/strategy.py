"""``EnsembleStrategy``: decide at the close of bar t, fill at the open of bar t+1.

The strategy has no live branches: backtests, replays and paper trading differ only in the
feed and broker that cerebro wires in.  One predictor and one sizing decision per data feed;
one drawdown circuit breaker for the account.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time

import backtrader as bt

from models.targets import check_horizon
from sizing.breaker import (
    BreakerState,
    breaker_params,
    cap_weight,
    position_limits,
    step,
)
from sizing.config import SizingConfig
from sizing.kelly import lagged_inputs, target_weight
from sizing.lagged import LaggedStats
from sizing.rebalance import needs_rebalance
from strategies.predictor import EnsemblePredictor


class EnsembleStrategy(bt.Strategy):
    """Trade each data feed toward the target weight its predictor implies.

    Parameters
    ----------
    signals : dict[str, models.signal.Signal]
        One signal per data name.
    horizon : int
        Label horizon of the signals, to turn predictions into daily returns.
    trade_start : datetime.date | None
        No decision before this date (bars before it only warm up indicators).
    sizing : SizingConfig
        Sizing and breaker parameters.
    breaker_state : BreakerState | None
        Resume the breaker from a saved state (the paper daemon persists it).
    resume_after : datetime.date | None
        Bars up to this date were decided in an earlier run (the daemon's journal says so):
        they only feed the lagged hit-rate statistics, exactly as when they were decided.
    """

    params = (("signals", None), ("horizon", 5), ("trade_start", None),
              ("sizing", SizingConfig()), ("breaker_state", None), ("resume_after", None))

    def __init__(self) -> None:
        cfg = self.p.sizing
        self.predictors = {d._name: EnsemblePredictor(d, signal=self.p.signals[d._name],
                                                      vol_window=cfg.vol_window)
                           for d in self.datas}
        self.stats = {d._name: LaggedStats(self.p.horizon, cfg.stats_window) for d in self.datas}
        self.breaker = self.p.breaker_state or BreakerState()
        self._breaker_params = breaker_params(cfg)
        # Compare backtrader's float datetimes: no date conversion per bar.
        start: date | None = self.p.trade_start
        self._start_num = bt.date2num(datetime.combine(start, time())) if start else -math.inf
        resume: date | None = self.p.resume_after
        self._resume_num = (bt.date2num(datetime.combine(resume, time())) if resume
                            else -math.inf)
        self._horizon = float(check_horizon(self.p.horizon))
        self.decisions: list[tuple] = []  # rows of DECISION_FIELDS, date as a float

    def held_weight(self, data: bt.AbstractDataBase) -> float:
        value = self.broker.getvalue()
        size = self.getposition(data).size
        return size * data.close[0] / value if value > 0 else 0.0

    def next(self) -> None:
        day = self.data.datetime[0]
        if day < self._start_num:
            return
        if day <= self._resume_num:  # decided before a restart: replay its statistics only
            for data in self.datas:
                self.stats[data._name].observe(self.predictors[data._name].prediction[0],
                                               data.close[0])
            return
        cfg = self.p.sizing
        self.breaker = step(self.breaker, self.broker.getvalue(), self._breaker_params)
        limits = position_limits(self.breaker, self._breaker_params, cfg.max_long,
                                 cfg.max_short)
        for data in self.datas:
            self._decide(data, day, cfg, limits)

    def _decide(self, data: bt.AbstractDataBase, day: float, cfg: SizingConfig,
                limits: tuple[float, float]) -> None:
        predictor, stats = self.predictors[data._name], self.stats[data._name]
        pred = predictor.prediction[0]
        stats.observe(pred, data.close[0])  # resolves the prediction made `horizon` bars ago
        mu = math.exp(pred / self._horizon) - 1.0  # models.targets.to_daily_return
        sigma = predictor.volatility[0]
        p_win, payoff = lagged_inputs(predictor.prior[0], stats.hit_rate, stats.payoff,
                                      stats.n, cfg)
        held = self.held_weight(data)
        weight = cap_weight(target_weight(mu, sigma, p_win, payoff, cfg), held, self.breaker,
                            self._breaker_params)
        self.decisions.append((day, data._name, pred, mu, sigma, p_win, payoff, stats.n, weight,
                               held, self.breaker.drawdown, self.breaker.tripped))
        if not needs_rebalance(weight, held, cfg.rebalance_band, *limits):
            return
        sizer = self.getsizer()
        sizer.set_target(data, weight)
        delta = sizer.delta_shares(data)
        if delta > 0:
            self.buy(data=data)
        elif delta < 0:
            self.sell(data=data)

    def prediction(self, data: bt.AbstractDataBase) -> float:
        value = self.predictors[data._name].prediction[0]
        return value if math.isfinite(value) else float("nan")
