"""``EnsembleStrategy``: decide at the close of bar t, fill at the open of bar t+1.

The strategy has no live branches: backtests, replays and paper trading differ only in the
feed and broker that cerebro wires in.  One predictor and one lagged track record per data
feed; one drawdown circuit breaker for the account.  Over several feeds it runs on the union
of their sessions: a feed without a bar at a close is neither decided nor traded, and keeps
its last price; a feed that starts later joins at its first bar.  How the feeds share the
account is :mod:`sizing.portfolio` (``docs/sizing.md``, "Portfolios").
"""

from __future__ import annotations

import math
from datetime import date, datetime, time

import backtrader as bt
import numpy as np

from models.targets import check_horizon
from sizing.breaker import BreakerState, breaker_params, position_limits, step
from sizing.config import PortfolioConfig, SizingConfig
from sizing.kelly import lagged_inputs, target_weight
from sizing.lagged import LaggedStats
from sizing.portfolio import Book, gross_cap, target_weights
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
    portfolio : PortfolioConfig | None
        How the feeds share the account (``mode``, ``k``, ``dropout``, ``weights``,
        ``max_gross``); None is equal slices and no cap beyond ``sizing``.  The slices
        themselves are the sizer's (``KellySizer(allocations=...)``).
    breaker_state : BreakerState | None
        Resume the breaker from a saved state (the paper daemon persists it).
    resume_after : datetime.date | None
        Bars up to this date were decided in an earlier run (the daemon's journal says so):
        they only feed the lagged hit-rate statistics, exactly as when they were decided.
    """

    params = (("signals", None), ("horizon", 5), ("trade_start", None),
              ("sizing", SizingConfig()), ("portfolio", None), ("breaker_state", None),
              ("resume_after", None))

    def __init__(self) -> None:
        cfg = self.p.sizing
        self.predictors = {d._name: EnsemblePredictor(d, signal=self.p.signals[d._name],
                                                      vol_window=cfg.vol_window)
                           for d in self.datas}
        self.stats = {d._name: LaggedStats(self.p.horizon, cfg.stats_window) for d in self.datas}
        self.breaker = self.p.breaker_state or BreakerState()
        self._breaker_params = breaker_params(cfg)
        self._portfolio: PortfolioConfig = self.p.portfolio or PortfolioConfig()
        # Compare backtrader's float datetimes: no date conversion per bar.
        start: date | None = self.p.trade_start
        self._start_num = bt.date2num(datetime.combine(start, time())) if start else -math.inf
        resume: date | None = self.p.resume_after
        self._resume_num = (bt.date2num(datetime.combine(resume, time())) if resume
                            else -math.inf)
        self._horizon = float(check_horizon(self.p.horizon))
        self.decisions: list[tuple] = []  # rows of DECISION_FIELDS, date as a float

    def slice_of(self, data: bt.AbstractDataBase) -> float:
        """The share of the account ``data`` trades (the sizer's allocation)."""
        return self.getsizer().allocation(data)

    def held_weight(self, data: bt.AbstractDataBase) -> float:
        """The position's value over the value of ``data``'s slice of the account (over the
        account when the slice is 0: such a position can only be closed)."""
        value = self.broker.getvalue()
        size = self.getposition(data).size
        if value <= 0 or size == 0:
            return 0.0
        share = self.slice_of(data)
        held = size * data.close[0] / value
        return held / share if share > 0 else held

    def prenext(self) -> None:
        # A feed that starts later than the others holds the strategy in prenext until its
        # first bar; every rule below already skips a feed without a bar.
        self.next()

    def next(self) -> None:
        day = self.lines.datetime[0]  # the strategy's clock: the union of the feeds' sessions
        if day < self._start_num:
            return
        live = [len(d) > 0 and d.datetime[0] == day for d in self.datas]
        if day <= self._resume_num:  # decided before a restart: replay its statistics only
            for data, has_bar in zip(self.datas, live, strict=True):
                if has_bar:
                    self.stats[data._name].observe(self.predictors[data._name].prediction[0],
                                                   data.close[0])
            return
        self.breaker = step(self.breaker, self.broker.getvalue(), self._breaker_params)
        self._decide(day, np.array(live, dtype=bool))

    def _assess(self, data: bt.AbstractDataBase) -> tuple:
        """This close's sizing inputs and hybrid weight of a feed with a bar."""
        cfg = self.p.sizing
        predictor, stats = self.predictors[data._name], self.stats[data._name]
        pred = predictor.prediction[0]
        stats.observe(pred, data.close[0])  # resolves the prediction made `horizon` bars ago
        mu = math.exp(pred / self._horizon) - 1.0  # models.targets.to_daily_return
        sigma = predictor.volatility[0]
        p_win, payoff = lagged_inputs(predictor.prior[0], stats.hit_rate, stats.payoff,
                                      stats.n, cfg)
        return pred, mu, sigma, p_win, payoff, stats.n, target_weight(mu, sigma, p_win,
                                                                       payoff, cfg)

    def _book(self, live: np.ndarray) -> tuple[Book, dict[int, tuple]]:
        inputs = {i: self._assess(d) for i, d in enumerate(self.datas) if live[i]}
        n = len(self.datas)
        kelly, scores = [0.0] * n, [math.nan] * n  # lists: one array each below, not n writes
        for i, row in inputs.items():
            scores[i] = row[0] if math.isfinite(row[0]) else math.nan
            kelly[i] = row[-1]
        book = Book(kelly=np.array(kelly), scores=np.array(scores),
                    held=np.array([self.held_weight(d) for d in self.datas]),
                    slices=np.array([self.slice_of(d) for d in self.datas]), live=live)
        return book, inputs

    def _decide(self, day: float, live: np.ndarray) -> None:
        cfg = self.p.sizing
        book, inputs = self._book(live)
        targets = target_weights(book, self._portfolio, self.breaker, self._breaker_params)
        limits = position_limits(self.breaker, self._breaker_params, cfg.max_long,
                                 cfg.max_short)
        cap = gross_cap(self._portfolio.max_gross, self.breaker, self._breaker_params)
        force = book.over_gross(cap, cfg.rebalance_band)
        for i, row in inputs.items():
            data, weight, held = self.datas[i], float(targets[i]), float(book.held[i])
            self.decisions.append((day, data._name, *row[:-1], weight, held,
                                   self.breaker.drawdown, self.breaker.tripped))
            trim = force and abs(weight) < abs(held)
            if trim or needs_rebalance(weight, held, cfg.rebalance_band, *limits):
                self._order(data, weight)

    def _order(self, data: bt.AbstractDataBase, weight: float) -> None:
        sizer = self.getsizer()
        sizer.set_target(data, weight)
        delta = sizer.delta_shares(data)
        if delta > 0:
            self.buy(data=data)
        elif delta < 0:
            self.sell(data=data)

    def prediction(self, data: bt.AbstractDataBase) -> float:
        if len(data) == 0:  # not started: its line would read the last preloaded value
            return float("nan")
        value = self.predictors[data._name].prediction[0]
        return value if math.isfinite(value) else float("nan")
