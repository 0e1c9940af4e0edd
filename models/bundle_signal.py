"""A trained bundle as a signal: one vintage that predicts only after its training window.

:func:`load_signal` is what a user's own script calls to put a bundle written by
``ensemble-bt train`` into an :class:`~strategies.predictor.EnsemblePredictor`.  The bundle is
verified on load (:func:`models.artifacts.load_bundle`: every file's sha256, the feature list
and the horizon), and it predicts no bar at or before the bar where its last training label
ends, so that every prediction it makes is out of sample.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from ensemble_bt.errors import ConfigurationError
from models.artifacts import load_bundle, training_end
from models.features import FEATURE_NAMES
from models.signal import VintageSignal
from models.vintages import fixed_vintage

#: ``predict_end`` of a bundle's vintage when none is given: it predicts until replaced.
OPEN_END = pd.Timestamp("2200-01-01")


def load_signal(bundle: str | Path, *, horizon: int, start: date | str | None = None,
                end: date | str | None = None) -> VintageSignal:
    """Load a verified bundle as a signal that predicts only after its training window.

    Parameters
    ----------
    bundle : str | Path
        A bundle directory written by ``ensemble-bt train``.
    horizon : int
        The label horizon your strategy assumes (``EnsembleStrategy(horizon=...)``,
        ``LaggedKelly(horizon)``); the bundle must have been trained for it.
    start : date | str | None
        First date it may predict; after the training window, which is also the default
        (the first bar after the bar where the bundle's last training label ends).
    end : date | str | None
        Last date it predicts; open-ended when None.

    Returns
    -------
    VintageSignal
        One vintage; bars outside ``[start, end]`` predict NaN.

    Raises
    ------
    BundleError
        The bundle is missing, tampered with, or trained for other features or another
        horizon.
    ConfigurationError
        ``start`` is inside the training window (in-sample), or ``end`` is before ``start``.

    Examples
    --------
    >>> signal = load_signal("bundles/aapl", horizon=5)  # doctest: +SKIP
    >>> predictor = EnsemblePredictor(self.data, signal=signal)  # doctest: +SKIP
    """
    model, manifest = load_bundle(Path(bundle), feature_names=FEATURE_NAMES, horizon=horizon)
    train_end = training_end(manifest, bundle)
    first = train_end + pd.Timedelta(days=1) if start is None else pd.Timestamp(start)
    if first <= train_end:
        raise ConfigurationError(
            f"{bundle}: start {first.date()} is inside the bundle's training window (labels "
            f"through {train_end.date()}); a bundle predicts out of sample only: start after "
            f"{train_end.date()}, or train it with an earlier --end")
    last = OPEN_END if end is None else pd.Timestamp(end)
    if last < first:
        raise ConfigurationError(f"{bundle}: end {last.date()} is before start {first.date()}")
    vintage = fixed_vintage(model, manifest, str(bundle), horizon=horizon, predict_start=first,
                            predict_end=last)
    return VintageSignal([vintage])
