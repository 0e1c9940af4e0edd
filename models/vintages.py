"""Walk-forward vintages: an expanding-window schedule of fits, and its leakage audit.

Vintage k has a cutoff bar ``c_k`` (a position in the bar index).  It predicts the bars
``[c_k, c_{k+1})`` and trains on every row ``i`` whose label ends early enough::

    i + horizon + embargo <= c_k

The label of row ``i`` ends at bar ``i + horizon`` (the purge equals the horizon), and the
embargo keeps a further gap of ``embargo`` bars.  A prediction made at the close of bar ``t``
therefore comes from a model whose every training label ended at or before ``t``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from loguru import logger
from tqdm import tqdm

from ensemble_bt.errors import ConfigurationError, DataError
from models.learners.base import purged_tail_split
from models.metrics import direction_accuracy


class Regressor(Protocol):
    def fit(self, X: Any, y: Any) -> Regressor: ...
    def predict(self, X: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class VintageSpec:
    """One scheduled fit, by bar position (inclusive bounds)."""

    index: int
    cutoff: int  # first bar this vintage predicts
    predict_last: int  # last bar it predicts
    train_rows: np.ndarray  # positions of the training rows, ascending
    embargo: int = 0  # bars between the last training label's end and the cutoff, at least


@dataclass
class Vintage:
    """A fitted vintage: its schedule, its model and the facts the audit checks."""

    spec: VintageSpec
    model: Regressor
    horizon: int
    predict_start: pd.Timestamp
    predict_end: pd.Timestamp
    train_start: pd.Timestamp
    train_end: pd.Timestamp  # date of the bar where the last training label ends
    train_label_end: int  # position of that bar
    holdout_dir_acc: float = float("nan")  # the model's walk-forward validation accuracy
    train_positive_pct: float = float("nan")  # share of positive training labels
    source: str = "walk-forward"  # or the bundle directory it was loaded from
    n_train: int | None = None  # training rows, when not positions in this dataset

    def record(self) -> dict[str, Any]:
        """The JSON-ready row of ``vintages.json``."""
        describe = getattr(self.model, "describe", None)
        return {
            "index": self.spec.index,
            "train_start": self.train_start.date().isoformat(),
            "train_end": self.train_end.date().isoformat(),
            "predict_start": self.predict_start.date().isoformat(),
            "predict_end": self.predict_end.date().isoformat(),
            "n_train": int(len(self.spec.train_rows)) if self.n_train is None else self.n_train,
            "source": self.source,
            "horizon": self.horizon,
            "holdout_dir_acc": self.holdout_dir_acc,
            "train_positive_pct": self.train_positive_pct,
            "models": describe() if describe else {},
        }


def fixed_vintage(model: Regressor, manifest: dict[str, Any], source: str, *, horizon: int,
                  predict_start: pd.Timestamp, predict_end: pd.Timestamp, positions: tuple[
                      int, int, int] = (-1, -1, -1)) -> Vintage:
    """A trained bundle as the only vintage, predicting ``[predict_start, predict_end]``.

    ``manifest`` must hold ``training_window`` (``start``, ``end``, ``rows``); the caller
    checks that ``predict_start`` comes after its ``end``.  ``positions`` are the dataset
    positions of the first and last predicted bars and of the last training label, for
    :func:`leakage_audit`; -1 where the bars are not known yet (paper trading).
    """
    window = manifest["training_window"]
    cutoff, predict_last, train_label_end = positions
    spec = VintageSpec(0, cutoff, predict_last, np.empty(0, dtype=np.int64))
    return Vintage(spec=spec, model=model, horizon=horizon, predict_start=predict_start,
                   predict_end=predict_end, train_start=pd.Timestamp(window["start"]),
                   train_end=pd.Timestamp(window["end"]), train_label_end=train_label_end,
                   holdout_dir_acc=float(manifest.get("holdout_dir_acc", np.nan)),
                   train_positive_pct=float(manifest.get("train_positive_pct", np.nan)),
                   source=source, n_train=int(window["rows"]))


def build_schedule(valid: np.ndarray, start: int, end: int, *, horizon: int,
                   retrain_every: int = 63, min_train: int = 504,
                   embargo: int = 5) -> list[VintageSpec]:
    """Lay out the vintages that cover the evaluation bars ``[start, end]``.

    Parameters
    ----------
    valid : np.ndarray of bool
        Rows whose features are complete (labels are checked by position, not by this mask).
    start, end : int
        First and last evaluation bar, inclusive.  ``start`` is the first cutoff.
    horizon, retrain_every, min_train, embargo : int
        See the module docstring.  ``start`` must have ``min_train`` bars of history.
    """
    if horizon < 1 or retrain_every < 1 or embargo < 0:
        raise ConfigurationError("horizon and retrain_every must be >= 1, embargo >= 0")
    if start < min_train:
        raise ConfigurationError(f"the first cutoff needs {min_train} bars of history, has {start}")
    if end < start:
        raise ConfigurationError("the evaluation period is empty: end is before start")
    positions = np.flatnonzero(np.asarray(valid, dtype=bool))
    specs = []
    for k, cutoff in enumerate(range(start, end + 1, retrain_every)):
        last_row = cutoff - horizon - embargo
        rows = positions[positions <= last_row]
        if len(rows) < 100:
            raise DataError(
                f"vintage {k} (cutoff bar {cutoff}) has only {len(rows)} complete training rows; "
                "use a later --start or a longer dataset")
        specs.append(VintageSpec(k, cutoff, min(cutoff + retrain_every - 1, end), rows,
                                 embargo))
    return specs


def fit_vintages(features: pd.DataFrame, target: pd.Series, schedule: Sequence[VintageSpec],
                 make_model: Callable[[], Regressor], *, horizon: int,
                 val_fraction: float = 0.2, progress: bool = True) -> list[Vintage]:
    """Fit one model per scheduled vintage, on that vintage's training rows only."""
    X = features.to_numpy(dtype=np.float64)
    y = target.to_numpy(dtype=np.float64)
    dates = features.index
    fitted = []
    bar = tqdm(schedule, desc="training vintages", unit="vintage", disable=not progress,
               leave=False)
    for spec in bar:
        rows = spec.train_rows
        label_end = int(rows[-1]) + horizon
        if label_end > spec.cutoff or not np.isfinite(y[rows]).all():
            raise ConfigurationError(f"vintage {spec.index}: training labels reach past its cutoff")
        model = make_model().fit(X[rows], y[rows])
        fitted.append(Vintage(
            spec=spec, model=model, horizon=horizon,
            predict_start=dates[spec.cutoff], predict_end=dates[spec.predict_last],
            train_start=dates[rows[0]], train_end=dates[label_end], train_label_end=label_end,
            holdout_dir_acc=holdout_accuracy(model, X[rows], y[rows], horizon, val_fraction),
            train_positive_pct=float(np.mean(y[rows] > 0.0))))
    logger.info("trained {} vintages", len(fitted))
    return fitted


def holdout_accuracy(model: Regressor, X: np.ndarray, y: np.ndarray, horizon: int,
                     val_fraction: float) -> float:
    """The model's own walk-forward validation accuracy, when it has one (a stack does).

    Otherwise the accuracy on the purged tail its learners early-stopped on: optimistic,
    which is why the sizing prior that uses it is capped (``sizing.kelly.win_rate_prior``).
    """
    validation = getattr(model, "validation_", None)
    if validation is not None:
        return float(validation["dir_acc"])
    _, tail = purged_tail_split(len(y), val_fraction, horizon)
    return direction_accuracy(model.predict(X[tail]), y[tail])


def leakage_audit(vintages: Sequence[Vintage], prediction_dates: pd.DatetimeIndex,
                  dates: pd.DatetimeIndex, embargo: int | None = None) -> dict[str, Any]:
    """Check every predicted bar against the vintage that predicted it, and every vintage.

    A bar fails when no vintage covers it, when two do, or when the covering vintage's last
    training label ends after the bar.  A vintage fails when one of its training labels ends
    fewer than ``embargo`` bars before its first predicted bar (each vintage's own scheduled
    embargo when ``embargo`` is None; a bundle's is 0).  ``prediction_dates`` are the bars
    that carry a prediction in the run's output, so the audit checks what was used, not what
    was planned.

    Returns
    -------
    dict
        ``verdict`` ("pass"/"fail"), ``bars_checked``, ``vintages_checked``, ``embargo``
        (the configured one, or null), and up to ten ``violations``.
    """
    positions = dates.get_indexer(prediction_dates)
    violations = [*_embargo_violations(vintages, embargo)]
    for pos, date in zip(positions, prediction_dates, strict=True):
        owners = [v for v in vintages if v.spec.cutoff <= pos <= v.spec.predict_last]
        if len(owners) != 1:
            violations.append(f"{date.date()}: covered by {len(owners)} vintages")
        elif owners[0].train_label_end > pos or pos < 0:
            v = owners[0]
            violations.append(
                f"{date.date()}: vintage {v.spec.index} trained on a label ending "
                f"{v.train_end.date()}")
    verdict = "pass" if not violations and len(positions) else "fail"
    return {"verdict": verdict, "bars_checked": int(len(positions)),
            "vintages_checked": len(vintages), "embargo": embargo,
            "violations": violations[:10], "n_violations": len(violations)}


def _embargo_violations(vintages: Sequence[Vintage], embargo: int | None) -> list[str]:
    """Vintages with a training label ending fewer than ``embargo`` bars before the cutoff."""
    out = []
    for v in vintages:
        if v.spec.cutoff < 0:  # a bundle in paper trading: its bars are not known yet
            continue
        rows = v.spec.train_rows
        label_end = max(v.train_label_end, int(rows[-1]) + v.horizon if len(rows) else -1)
        gap = v.spec.embargo if embargo is None else embargo
        if label_end + gap > v.spec.cutoff:
            out.append(f"vintage {v.spec.index}: a training label ends at bar {label_end}, "
                       f"{v.spec.cutoff - label_end} bars before its first prediction (bar "
                       f"{v.spec.cutoff}); the embargo is {gap}")
    return out
