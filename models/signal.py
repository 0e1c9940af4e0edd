"""Signals: what a predictor asks for a bar's prediction, free of any engine.

Following Qlib's split between models and the backtest, a signal is either a set of fitted
walk-forward vintages (:class:`VintageSignal`) or a precomputed series
(:class:`SeriesSignal`).  Both answer two questions with the same numbers:

- ``predict_batch(ohlcv)``: every bar at once (the backtester's vectorised path);
- ``predict_last(window)``: the last bar of a window of recent bars (the streaming path).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models import features as feats
from models.vintages import Vintage


class VintageSignal:
    """Predictions from walk-forward vintages.

    Bar ``t`` is predicted by the vintage whose prediction window ``[predict_start,
    predict_end]`` holds ``t``'s date; bars outside every window get NaN.
    """

    lookback = feats.LOOKBACK

    def __init__(self, vintages: Sequence[Vintage]) -> None:
        self.vintages = list(vintages)
        self._starts = pd.DatetimeIndex([v.predict_start for v in self.vintages])
        self._ends = pd.DatetimeIndex([v.predict_end for v in self.vintages])

    def _owner(self, date: pd.Timestamp) -> int:
        k = int(self._starts.searchsorted(date, side="right")) - 1
        if k < 0 or date > self._ends[k]:
            return -1
        return k

    def predict_batch(self, ohlcv: pd.DataFrame) -> np.ndarray:
        """One model call per vintage over all of its bars."""
        X = feats.build_features(ohlcv).to_numpy(dtype=np.float64)
        out = np.full(len(ohlcv), np.nan)
        dates = ohlcv.index
        for v in self.vintages:
            lo = dates.searchsorted(v.predict_start, side="left")
            hi = dates.searchsorted(v.predict_end, side="right")
            if hi > lo:
                out[lo:hi] = v.model.predict(X[lo:hi])
        return out

    def predict_last(self, window: pd.DataFrame) -> float:
        """Prediction for the last bar of ``window`` (at most ``lookback`` bars needed)."""
        k = self._owner(window.index[-1])
        if k < 0:
            return float("nan")
        x = feats.build_features(window.iloc[-self.lookback:]).to_numpy(dtype=np.float64)[-1:]
        return float(self.vintages[k].model.predict(x)[0])


class SeriesSignal:
    """A precomputed prediction series indexed by date (benchmarks, replays, research)."""

    lookback = 1

    def __init__(self, predictions: pd.Series) -> None:
        self.predictions = predictions.astype(np.float64)

    def predict_batch(self, ohlcv: pd.DataFrame) -> np.ndarray:
        return self.predictions.reindex(ohlcv.index).to_numpy(dtype=np.float64)

    def predict_last(self, window: pd.DataFrame) -> float:
        return float(self.predictions.get(window.index[-1], np.nan))
