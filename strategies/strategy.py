"""``EnsembleStrategy``: decide at the close of bar t, fill at the open of bar t+1.

The strategy has no live branches: backtests, replays and paper trading differ only in the
feed and broker that cerebro wires in.  One predictor and one sizing decision per data feed.
"""

from __future__ import annotations

import math
from datetime import date

import backtrader as bt

from models.targets import to_daily_return
from sizing.interim import InterimSizing, interim_target_weight, needs_rebalance
from strategies.predictor import EnsemblePredictor


class EnsembleStrategy(bt.Strategy):
    """Trade each data feed toward the target weight its predictor implies.

    Parameters
    ----------
    signals : dict[str, signal]
        One :mod:`models.signal` signal per data name.
    horizon : int
        Label horizon of the signals, to turn predictions into daily returns.
    trade_start : datetime.date | None
        No decision before this date (bars before it only warm up indicators).
    sizing : InterimSizing
        Sizing parameters.
    vol_window : int
        Bars of realised volatility used by the sizing rule.
    """

    params = (("signals", None), ("horizon", 5), ("trade_start", None),
              ("sizing", InterimSizing()), ("vol_window", 21))

    def __init__(self) -> None:
        self.predictors = {d._name: EnsemblePredictor(d, signal=self.p.signals[d._name],
                                                      vol_window=self.p.vol_window)
                           for d in self.datas}
        self.targets: dict[str, float] = {d._name: 0.0 for d in self.datas}
        self._trade_start: date | None = self.p.trade_start

    def held_weight(self, data: bt.AbstractDataBase) -> float:
        value = self.broker.getvalue()
        size = self.getposition(data).size
        return size * data.close[0] / value if value > 0 else 0.0

    def next(self) -> None:
        if self._trade_start is not None and self.data.datetime.date(0) < self._trade_start:
            return
        sizer = self.getsizer()
        for data in self.datas:
            predictor = self.predictors[data._name]
            mu = to_daily_return(predictor.prediction[0], self.p.horizon)
            weight = interim_target_weight(mu, predictor.volatility[0], self.p.sizing)
            self.targets[data._name] = weight
            if not needs_rebalance(weight, self.held_weight(data), self.p.sizing.rebalance_band):
                continue
            sizer.set_target(data, weight)
            delta = sizer.delta_shares(data)
            if delta > 0:
                self.buy(data=data)
            elif delta < 0:
                self.sell(data=data)

    def prediction(self, data: bt.AbstractDataBase) -> float:
        value = self.predictors[data._name].prediction[0]
        return value if math.isfinite(value) else float("nan")
