"""Per-symbol scope on a panel: today's single-symbol walk-forward, one symbol at a time.

The baseline a pooled model is measured against (tests/test_panel_honesty.py,
benchmarks/bench_panel.py): each symbol's own vintages (:func:`models.vintages.build_schedule`,
:func:`models.vintages.fit_vintages`), trained on its own rows only, with predictions laid
out like :attr:`models.panel.PanelFit.predictions` so that :func:`models.crosssection.rank_ic`
scores both the same way.

This module never imports backtrader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from models.features import build_features
from models.panel_data import check_frames
from models.signal import VintageSignal
from models.targets import forward_log_return
from models.vintages import Regressor, build_schedule, fit_vintages

__all__ = ["fit_per_symbol"]


def fit_per_symbol(frames: Mapping[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp,
                   *, horizon: int, retrain_every: int, min_train: int, embargo: int,
                   make_model: Callable[[], Regressor], progress: bool = False) -> pd.DataFrame:
    """Each symbol's own walk-forward predictions over ``[start, end]``.

    Parameters are those of :func:`models.panel.fit_panel` (``make_model`` unadapted: these
    are single-symbol rows).  Each symbol's first cutoff is its first bar at or after
    ``start`` and needs ``min_train`` of its own bars before it.

    Returns
    -------
    pd.DataFrame
        The union of the symbols' dates in ``[start, end]`` by symbols (sorted); NaN where a
        symbol has no bar or no prediction.

    Raises
    ------
    ConfigurationError, DataError
        As :func:`models.vintages.build_schedule`, for the first symbol with too little data.
    """
    columns = {}
    for symbol in check_frames(frames):
        ohlcv = frames[symbol]
        features = build_features(ohlcv)
        dates = ohlcv.index
        lo = int(dates.searchsorted(pd.Timestamp(start)))
        hi = int(dates.searchsorted(pd.Timestamp(end), side="right")) - 1
        schedule = build_schedule(features.notna().all(axis=1).to_numpy(), lo, hi,
                                  horizon=horizon, retrain_every=retrain_every,
                                  min_train=min_train, embargo=embargo)
        vintages = fit_vintages(features, forward_log_return(ohlcv["close"], horizon), schedule,
                                make_model, horizon=horizon, progress=progress)
        pred = VintageSignal(vintages).predict_batch(ohlcv)
        columns[symbol] = pd.Series(pred, index=dates).iloc[lo:hi + 1]
    out = pd.DataFrame(columns)
    return out.astype(np.float64).rename_axis("date")
