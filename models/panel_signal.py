"""A pooled model as signals: one :class:`PanelSignal`, one per-symbol view of it.

:meth:`PanelSignal.view` gives each symbol an object with the :class:`models.signal.Signal`
protocol, so ``EnsemblePredictor(data, signal=panel.view("AAPL"))`` works as for one symbol:

- **batch** (``predict_batch``): the predictions of the whole panel, computed once (one model
  call per vintage over all of its rows) and cached; a view returns its symbol's column,
  aligned to the bars it is given.  Those bars must be the ones the panel was built from.
- **streaming** (``predict_last(window, date)``): a pooled row needs every symbol's features
  at ``date``, so every view registers a window provider (:meth:`PanelView.register`, a
  callable returning that symbol's current window of bars).  The first view asked for a date
  builds the whole cross-section from all windows, predicts it with one model call and caches
  it; every view reads its own cell.  A symbol whose window does not end on ``date`` has no
  bar that day: it is left out of the cross-section and predicts NaN.  Every symbol of the
  panel must be registered (a cross-section missing one would differ from the batch).

Both paths build the same rows from the same bars (:mod:`models.panel_features`), so they
give the same numbers: bit for bit with the GBM learners.  A date's streamed cross-section
stays cached, so a view asked again for an earlier date (backtrader calls ``next`` on an
indicator whose feed had no bar that day) gets the same value as the first time.

This module never imports backtrader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ensemble_bt.errors import ConfigurationError, DataError
from models.features import FEATURE_NAMES, LOOKBACK, build_features
from models.panel_data import PanelData, build_panel
from models.panel_features import panel_rows
from models.vintages import Regressor, Vintage

__all__ = ["PanelSignal", "PanelView"]

WindowFn = Callable[[], "pd.DataFrame | None"]
# Relative tolerance when checking that batch bars are the panel's own (float round trips).
_CLOSE_RTOL = 1e-9


class PanelSignal:
    """The vintages of one pooled model, predicting every symbol of its panel.

    Parameters
    ----------
    vintages : sequence of Vintage
        Fitted pooled vintages, in order of ``predict_start``.
    symbols : sequence of str
        The panel's symbols.
    """

    def __init__(self, vintages: Sequence[Vintage], symbols: Sequence[str]) -> None:
        self.vintages = list(vintages)
        self.symbols = tuple(sorted(symbols))
        self.lookback = LOOKBACK  # pooled models read no earlier rows (no sequence learners)
        self._starts = pd.DatetimeIndex([v.predict_start for v in self.vintages])
        self._ends = pd.DatetimeIndex([v.predict_end for v in self.vintages])
        self._batch: pd.DataFrame | None = None
        self._closes: dict[str, pd.Series] = {}
        self._windows: dict[str, WindowFn] = {}
        self._stream: dict[pd.Timestamp, dict[str, float]] = {}
        self._views: dict[str, PanelView] = {}

    @classmethod
    def from_frames(cls, vintages: Sequence[Vintage],
                    frames: Mapping[str, pd.DataFrame]) -> PanelSignal:
        """A signal whose batch predictions are those of ``frames`` (every symbol's bars)."""
        if not vintages:
            raise ConfigurationError("a pooled signal needs at least one vintage")
        panel = build_panel(frames, vintages[0].horizon)
        signal = cls(vintages, panel.symbols)
        signal.attach(signal.predict_panel(panel), frames)
        return signal

    # ------------------------------------------------------------------ batch
    def predict_panel(self, panel: PanelData) -> pd.DataFrame:
        """Every row's prediction: the sessions the vintages cover, by symbols (NaN: none)."""
        out = np.full(len(panel.date_pos), np.nan)
        for v in self.vintages:  # by date: ``panel`` need not be the one the vintages fitted on
            first = panel.calendar.searchsorted(v.predict_start)
            stop = panel.calendar.searchsorted(v.predict_end, "right")
            lo, hi = np.searchsorted(panel.date_pos, [first, stop])
            if hi > lo:
                out[lo:hi] = np.asarray(v.model.predict(panel.X[lo:hi]), dtype=np.float64)
        first = int(panel.calendar.searchsorted(self._starts[0])) if self.vintages else 0
        last = int(panel.calendar.searchsorted(self._ends[-1], "right")) if self.vintages else 0
        return panel.grid(out, first, last)

    def attach(self, predictions: pd.DataFrame, frames: Mapping[str, pd.DataFrame]) -> None:
        """Cache the batch ``predictions`` of ``frames``, whose closes later batches must match."""
        self._batch = predictions
        self._closes = {s: frames[s]["close"].astype(np.float64) for s in self.symbols}

    def predict_batch(self, symbol: str, ohlcv: pd.DataFrame) -> np.ndarray:
        """``symbol``'s cached predictions, aligned to ``ohlcv.index``."""
        self._check_symbol(symbol)
        if self._batch is None:
            raise ConfigurationError("this PanelSignal has no batch predictions: build it with "
                                     "fit_panel or PanelSignal.from_frames")
        self._check_bars(symbol, ohlcv)
        return self._batch[symbol].reindex(ohlcv.index).to_numpy(dtype=np.float64)

    def _check_bars(self, symbol: str, ohlcv: pd.DataFrame) -> None:
        """Refuse bars other than those the batch predictions were computed from."""
        known = self._closes[symbol]
        common = ohlcv.index.intersection(known.index)
        same = np.allclose(ohlcv.loc[common, "close"].to_numpy(dtype=np.float64),
                           known.loc[common].to_numpy(), rtol=_CLOSE_RTOL, atol=0.0)
        span = self._batch.index if self._batch is not None else ohlcv.index[:0]
        extra = ohlcv.index.difference(known.index)
        if not same or (len(span) and ((extra >= span[0]) & (extra <= span[-1])).any()):
            raise DataError(f"{symbol}: the bars given to predict_batch differ from those the "
                            "pooled model was fitted and predicted on; pass the panel's own bars")

    # ------------------------------------------------------------------ streaming
    def register(self, symbol: str, window_fn: WindowFn) -> None:
        """Let streaming read ``symbol``'s current window of bars through ``window_fn()``.

        Registering starts a new stream: cross-sections cached from earlier windows are
        dropped.
        """
        self._check_symbol(symbol)
        self._windows[symbol] = window_fn
        self._stream.clear()

    def predict_last(self, symbol: str, window: pd.DataFrame | None,
                     date: pd.Timestamp) -> float:
        """``symbol``'s prediction at ``date``, the last bar of ``window``."""
        self._check_symbol(symbol)
        k = self._owner(date)
        if k < 0:
            return float("nan")
        row = self._stream.get(date)
        if row is None:
            row = self._stream[date] = self._cross_section(symbol, window, date,
                                                           self.vintages[k].model)
        return row.get(symbol, float("nan"))

    def _cross_section(self, symbol: str, window: pd.DataFrame | None, date: pd.Timestamp,
                       model: Regressor) -> dict[str, float]:
        missing = [s for s in self.symbols if s != symbol and s not in self._windows]
        if missing:
            raise ConfigurationError(
                f"streaming a pooled model needs every symbol's bars; {len(missing)} are not "
                f"registered (e.g. {missing[0]}): register each one's window provider "
                "(PanelView.register) before the first bar")
        cube = np.full((1, len(self.symbols), len(FEATURE_NAMES)), np.nan)
        for j, s in enumerate(self.symbols):
            bars = window if s == symbol else self._windows[s]()
            if bars is not None and len(bars) and bars.index[-1] == date:
                cube[0, j] = build_features(bars.iloc[-LOOKBACK:]).to_numpy(np.float64)[-1]
        _, members, X = panel_rows(cube)
        if not len(members):
            return {}
        preds = np.asarray(model.predict(X), dtype=np.float64)
        return {self.symbols[j]: float(p) for j, p in zip(members, preds, strict=True)}

    # ------------------------------------------------------------------ priors
    def _owner(self, date: pd.Timestamp) -> int:
        k = int(self._starts.searchsorted(date, side="right")) - 1
        return -1 if k < 0 or date > self._ends[k] else k

    def prior_last(self, date: pd.Timestamp) -> float:
        """The predicting vintage's ``max(holdout_dir_acc, train_positive_pct)`` (NaN: none)."""
        k = self._owner(date)
        if k < 0:
            return float("nan")
        v = self.vintages[k]
        known = [x for x in (v.holdout_dir_acc, v.train_positive_pct) if np.isfinite(x)]
        return max(known) if known else float("nan")

    def prior_batch(self, dates: pd.DatetimeIndex) -> np.ndarray:
        """:meth:`prior_last` of every date."""
        return np.array([self.prior_last(d) for d in dates], dtype=np.float64)

    # ------------------------------------------------------------------ views
    def view(self, symbol: str) -> PanelView:
        """The :class:`~models.signal.Signal` of one symbol (the same object every call)."""
        self._check_symbol(symbol)
        if symbol not in self._views:
            self._views[symbol] = PanelView(self, symbol)
        return self._views[symbol]

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self.symbols:
            shown = ", ".join(self.symbols[:10]) + (", ..." if len(self.symbols) > 10 else "")
            raise ConfigurationError(f"{symbol!r} is not in the pooled panel ({shown})")


class PanelView:
    """One symbol of a :class:`PanelSignal`, with the :class:`models.signal.Signal` protocol.

    Attributes
    ----------
    lookback : int
        Bars a window needs (the features' ``LOOKBACK``).
    symbol : str
        The symbol it predicts.
    """

    def __init__(self, panel: PanelSignal, symbol: str) -> None:
        self.panel = panel
        self.symbol = symbol
        self.lookback = panel.lookback

    def register(self, window_fn: WindowFn) -> None:
        """Give streaming this symbol's current window of bars (:meth:`PanelSignal.register`)."""
        self.panel.register(self.symbol, window_fn)

    def predict_batch(self, ohlcv: pd.DataFrame) -> np.ndarray:
        return self.panel.predict_batch(self.symbol, ohlcv)

    def predict_last(self, window: pd.DataFrame | None, date: pd.Timestamp) -> float:
        return self.panel.predict_last(self.symbol, window, date)

    def prior_batch(self, dates: pd.DatetimeIndex) -> np.ndarray:
        return self.panel.prior_batch(dates)

    def prior_last(self, date: pd.Timestamp) -> float:
        return self.panel.prior_last(date)
