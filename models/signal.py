"""Signals: what a predictor asks for a bar's prediction, free of any engine.

Following Qlib's split between models and the backtest (its ``Signal`` and
``SignalWCache``), a :class:`Signal` is either a set of fitted walk-forward vintages
(:class:`VintageSignal`) or a precomputed series (:class:`SeriesSignal`: research, replays,
benchmarks and the robustness batch's prediction cache).  Both answer the same questions with
the same numbers, vectorised or bar by bar:

- ``predict_batch(ohlcv)``: every bar at once (the backtester's vectorised path);
- ``predict_last(window, date)``: the bar at ``date``, given a window of the last ``lookback``
  bars ending there (the streaming path; ``window`` is None when ``lookback`` is 0).  A
  sequence learner's bar also reads the ``context_rows`` feature rows before it, so
  ``lookback`` is the features' ``LOOKBACK`` plus the largest ``context_rows``;
- ``prior_batch(dates)`` / ``prior_last(date)``: the win-rate statistics of the model that
  predicts each bar, for the sizing prior.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from models import features as feats
from models.vintages import Vintage
from models.walkforward import predict_block


@runtime_checkable
class Signal(Protocol):
    """What :class:`strategies.predictor.EnsemblePredictor` and the fast path read.

    Attributes
    ----------
    lookback : int
        Bars ``predict_last`` needs in its window (0: it reads no bars, ``window`` is None).
    """

    lookback: int

    def predict_batch(self, ohlcv: pd.DataFrame) -> np.ndarray:
        """One prediction per bar of ``ohlcv`` (NaN where there is none)."""
        ...

    def predict_last(self, window: pd.DataFrame | None, date: pd.Timestamp) -> float:
        """The prediction for ``date``, the last bar of ``window``."""
        ...

    def prior_batch(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """The raw win-rate prior of the model that predicts each date."""
        ...

    def prior_last(self, date: pd.Timestamp) -> float:
        """The raw win-rate prior at ``date``."""
        ...


class VintageSignal:
    """Predictions from walk-forward vintages.

    Bar ``t`` is predicted by the vintage whose prediction window ``[predict_start,
    predict_end]`` holds ``t``'s date; bars outside every window get NaN.  Both paths give a
    model the ``context_rows`` feature rows before a bar
    (:func:`models.walkforward.predict_block`).
    """

    def __init__(self, vintages: Sequence[Vintage]) -> None:
        self.vintages: list[Vintage] = []
        self.lookback = feats.LOOKBACK
        for vintage in vintages:
            self.add(vintage)

    def add(self, vintage: Vintage) -> None:
        """Append a vintage that predicts from its ``predict_start`` on (a retrained bundle
        swapped in by the paper daemon); earlier vintages keep the bars before it."""
        if self.vintages and vintage.predict_start <= self.vintages[-1].predict_start:
            raise ValueError("vintages must be added in order of predict_start")
        self.vintages.append(vintage)
        self.lookback = max(self.lookback, bars_needed(vintage.model))
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
                out[lo:hi] = predict_block(v.model, X, lo, hi)
        return out

    def prior_batch(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """Per bar, the predicting vintage's ``max(holdout_dir_acc, train_positive_pct)``."""
        return np.array([self.prior_last(d) for d in dates])

    def prior_last(self, date: pd.Timestamp) -> float:
        k = self._owner(date)
        if k < 0:
            return float("nan")
        v = self.vintages[k]
        known = [x for x in (v.holdout_dir_acc, v.train_positive_pct) if np.isfinite(x)]
        return max(known) if known else float("nan")

    def predict_last(self, window: pd.DataFrame | None, date: pd.Timestamp) -> float:
        """Prediction for ``date``, the last bar of ``window`` (``lookback`` bars suffice)."""
        k = self._owner(date)
        if k < 0:
            return float("nan")
        model = self.vintages[k].model
        bars = window.iloc[-bars_needed(model):]
        rows = int(getattr(model, "context_rows", 0)) + 1
        x = feats.build_features(bars).to_numpy(dtype=np.float64)[-rows:]
        return float(model.predict(x)[-1])


def bars_needed(model: object) -> int:
    """Bars a model's prediction of one bar reads: the features' ``LOOKBACK`` for the bar and
    for each of the ``context_rows`` rows before it."""
    return feats.LOOKBACK + int(getattr(model, "context_rows", 0))


class SeriesSignal:
    """A precomputed prediction series indexed by date (benchmarks, replays, research, the
    robustness batch's cached predictions).

    Parameters
    ----------
    predictions : pandas.Series
        The prediction of each date; dates it lacks predict NaN.
    prior : float | pandas.Series
        The raw win-rate prior: one value for every bar, or one per date (dates the series
        lacks get NaN).  NaN means none: the sizing falls back to its floor.
    """

    lookback = 0

    def __init__(self, predictions: pd.Series, prior: float | pd.Series = float("nan")) -> None:
        self.predictions = predictions.astype(np.float64)
        self.prior = prior.astype(np.float64) if isinstance(prior, pd.Series) else float(prior)
        self._by_date = dict(zip(self.predictions.index, self.predictions.to_numpy(),
                                 strict=True))

    def prior_batch(self, dates: pd.DatetimeIndex) -> np.ndarray:
        if isinstance(self.prior, pd.Series):
            return self.prior.reindex(dates).to_numpy(dtype=np.float64)
        return np.full(len(dates), self.prior)

    def prior_last(self, date: pd.Timestamp) -> float:
        if isinstance(self.prior, pd.Series):
            return float(self.prior.get(date, np.nan))
        return self.prior

    def predict_batch(self, ohlcv: pd.DataFrame) -> np.ndarray:
        return self.predictions.reindex(ohlcv.index).to_numpy(dtype=np.float64)

    def predict_last(self, window: pd.DataFrame | None, date: pd.Timestamp) -> float:
        return float(self._by_date.get(date, np.nan))
