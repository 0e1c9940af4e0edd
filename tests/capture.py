"""What an :class:`~strategies.predictor.EnsemblePredictor` sees, bar by bar, in a real
backtrader run: shared by tests/test_strategy.py and tests/test_deep.py."""

from __future__ import annotations

import backtrader as bt
import numpy as np
import pandas as pd

from backtests.engine import make_feed
from models.signal import Signal
from strategies.predictor import EnsemblePredictor


class CapturePredictions(bt.Strategy):
    """Records ``(prediction, volatility)`` of its predictor at every bar."""

    params = (("signal", None),)

    def __init__(self) -> None:
        self.pred = EnsemblePredictor(self.data, signal=self.p.signal)
        self.values: list[tuple[float, float]] = []

    def next(self) -> None:
        self.values.append((self.pred.prediction[0], self.pred.volatility[0]))


def capture(ohlcv: pd.DataFrame, signal: Signal, runonce: bool) -> np.ndarray:
    """``(bars, 2)``: prediction and volatility at each bar, from backtrader's vectorised
    pass (``runonce=True``) or its bar-by-bar pass, the live path's."""
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(make_feed(ohlcv, "X"))
    cerebro.addstrategy(CapturePredictions, signal=signal)
    return np.array(cerebro.run()[0].values)
