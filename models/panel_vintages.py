"""A pooled panel's vintages: the schedule on the calendar, the model fits, and the audit.

The schedule is :func:`models.vintages.build_schedule`'s, laid on the panel's calendar (the
union of every symbol's sessions): the first cutoff is the first session of the evaluation
period, then one every ``retrain_every`` sessions, and vintage k predicts the sessions
``[c_k, c_{k+1})``.  It trains on every (date, symbol) row whose label ends early enough::

    label_end + embargo <= c_k

where ``label_end`` is the calendar position at whose close the row's label is known
(:mod:`models.panel_data`; the purge is the horizon, in the symbol's own bars).

The leakage audit (:func:`panel_audit`) checks every (date, symbol) prediction of the run
against the vintage that made it, and every vintage's training rows against its embargo,
from the panel's label ends, not from what the vintages say of themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ensemble_bt.errors import ConfigurationError, DataError
from models.learners.registry import DEEP_LEARNERS
from models.panel_data import PanelData
from models.panel_features import PANEL_FEATURE_NAMES
from models.panel_pool import FitResult
from models.vintages import Regressor, Vintage, VintageSpec

#: Fewest training rows a vintage may have (as :func:`models.vintages.build_schedule`).
MIN_TRAIN_ROWS = 100
SOURCE = "pooled walk-forward"


def evaluation_positions(calendar: pd.DatetimeIndex, start: pd.Timestamp, end: pd.Timestamp,
                         min_train: int) -> tuple[int, int]:
    """The first and last calendar positions of ``[start, end]``, with ``min_train`` sessions
    of history before the first; a one-line ConfigurationError otherwise."""
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if last < first:
        raise ConfigurationError(f"end {last.date()} is before start {first.date()}; swap them")
    lo = int(calendar.searchsorted(first))
    hi = int(calendar.searchsorted(last, side="right")) - 1
    if lo >= len(calendar):
        raise ConfigurationError(f"start {first.date()} is after the panel's last session "
                                 f"({calendar[-1].date()})")
    if hi < lo:
        raise ConfigurationError(f"the evaluation period {first.date()}..{last.date()} holds "
                                 "no session of the panel; widen it")
    if lo < min_train:
        earliest = (f"the earliest valid start is {calendar[min_train].date()}"
                    if min_train < len(calendar) else
                    f"the panel has only {len(calendar)} sessions")
        raise ConfigurationError(
            f"start {first.date()} leaves {lo} sessions of history on the panel's calendar, "
            f"fewer than min_train={min_train}; {earliest}")
    return lo, hi


def panel_schedule(panel: PanelData, start: int, end: int, *, horizon: int, retrain_every: int,
                   min_train: int, embargo: int) -> list[VintageSpec]:
    """Lay out the vintages covering calendar positions ``[start, end]``.

    ``train_rows`` of each spec are panel row positions (ascending, so oldest first).

    Raises
    ------
    ConfigurationError
        A setting is out of range, or ``start`` has fewer than ``min_train`` sessions before it.
    DataError
        A vintage would train on fewer than :data:`MIN_TRAIN_ROWS` rows.
    """
    if horizon < 1 or retrain_every < 1 or embargo < 0 or min_train < 0:
        raise ConfigurationError("horizon and retrain_every must be >= 1, embargo and "
                                 "min_train >= 0")
    if start < min_train:
        raise ConfigurationError(f"the first cutoff needs {min_train} sessions of history, "
                                 f"has {start}")
    labeled = panel.label_end >= 0
    specs = []
    for k, cutoff in enumerate(range(start, end + 1, retrain_every)):
        rows = np.flatnonzero(labeled & (panel.label_end + embargo <= cutoff))
        if len(rows) < MIN_TRAIN_ROWS:
            raise DataError(
                f"pooled vintage {k} (cutoff {panel.calendar[cutoff].date()}) has only "
                f"{len(rows)} complete training rows; use a later start or longer histories")
        specs.append(VintageSpec(k, cutoff, min(cutoff + retrain_every - 1, end), rows, embargo))
    return specs


def adapt_model(model: Regressor, width: int) -> Regressor:
    """Fit a single-symbol model (such as ``backtests.plan.stack_factory(cfg)()``) to pooled rows.

    - its ``feature_names`` become :data:`PANEL_FEATURE_NAMES`;
    - its ``purge`` and ``embargo``, which count *rows* in its inner walk-forward folds and
      early-stopping tails, are multiplied by ``width``: with up to ``width`` rows per date,
      that many rows span at least the intended number of dates;
    - a sequence learner is refused: the rows before a pooled row are other symbols'.
    """
    deep = sorted(set(getattr(model, "models", ())) & set(DEEP_LEARNERS))
    if deep:
        raise ConfigurationError(f"a pooled model cannot use the sequence learners {deep}: "
                                 "drop them from models, or use model_scope per_symbol")
    for name in ("purge", "embargo"):
        value = getattr(model, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            setattr(model, name, value * max(width, 1))
    if hasattr(model, "feature_names"):
        model.feature_names = PANEL_FEATURE_NAMES  # type: ignore[attr-defined]
    return model


def panel_vintages(panel: PanelData, schedule: Sequence[VintageSpec],
                   results: Sequence[FitResult], horizon: int) -> list[Vintage]:
    """The fitted vintages, with the dates and label ends their records and the audit use."""
    cal = panel.calendar
    vintages = []
    for spec, fit in zip(schedule, results, strict=True):
        label_end = int(panel.label_end[spec.train_rows].max())
        vintages.append(Vintage(
            spec=spec, model=fit.model, horizon=horizon, predict_start=cal[spec.cutoff],
            predict_end=cal[spec.predict_last],
            train_start=cal[panel.date_pos[spec.train_rows[0]]], train_end=cal[label_end],
            train_label_end=label_end, holdout_dir_acc=fit.holdout_dir_acc,
            train_positive_pct=fit.train_positive_pct, source=SOURCE))
    return vintages


def check_labels(panel: PanelData, spec: VintageSpec) -> None:
    """Refuse a vintage whose training labels are unknown or end past its embargo."""
    ends = panel.label_end[spec.train_rows]
    if (ends < 0).any() or int(ends.max()) + spec.embargo > spec.cutoff:
        raise ConfigurationError(f"pooled vintage {spec.index}: training labels reach past its "
                                 "cutoff less the embargo")


def _embargo_violations(vintages: Sequence[Vintage], panel: PanelData,
                        embargo: int | None) -> list[str]:
    out = []
    for v in vintages:
        ends = panel.label_end[v.spec.train_rows]
        gap = v.spec.embargo if embargo is None else embargo
        if len(ends) and (ends < 0).any():
            out.append(f"vintage {v.spec.index}: trained on a row whose label is not known")
        elif len(ends) and int(ends.max()) + gap > v.spec.cutoff:
            out.append(f"vintage {v.spec.index}: a training label ends "
                       f"{panel.calendar[int(ends.max())].date()}, "
                       f"{v.spec.cutoff - int(ends.max())} sessions before its first prediction; "
                       f"the embargo is {gap}")
    return out


def _date_problem(pos: int, cutoffs: np.ndarray, lasts: np.ndarray, ends: list[int]) -> str:
    """What is wrong with predictions at calendar position ``pos``; empty when nothing is."""
    owners = np.flatnonzero((cutoffs <= pos) & (pos <= lasts)) if pos >= 0 else []
    if len(owners) != 1:
        return f"covered by {len(owners)} vintages"
    if ends[owners[0]] > pos:
        return (f"made by vintage {owners[0]}, which trained on a label ending on calendar "
                f"position {ends[owners[0]]}")
    return ""


def panel_audit(vintages: Sequence[Vintage], predictions: pd.DataFrame, panel: PanelData,
                embargo: int | None = None) -> dict[str, Any]:
    """Check every (date, symbol) prediction and every vintage, as
    :func:`models.vintages.leakage_audit` does for one symbol.

    A prediction fails when no vintage or two cover its date, or when the covering vintage
    trained on a row whose label ends after that date.  A vintage fails when a training
    label ends fewer than ``embargo`` sessions before its first prediction (each vintage's
    own scheduled embargo when None).  Label ends come from ``panel``.

    Returns
    -------
    dict
        The keys of :func:`models.vintages.leakage_audit`: ``verdict``, ``bars_checked`` (here
        the (date, symbol) predictions checked), ``vintages_checked``, ``embargo``, up to ten
        ``violations`` and ``n_violations``.
    """
    violations = _embargo_violations(vintages, panel, embargo)
    values = predictions.to_numpy(dtype=np.float64)
    made = np.isfinite(values).sum(axis=1)
    positions = panel.calendar.get_indexer(predictions.index)
    cutoffs = np.array([v.spec.cutoff for v in vintages], dtype=np.int64)
    lasts = np.array([v.spec.predict_last for v in vintages], dtype=np.int64)
    ends = [int(panel.label_end[v.spec.train_rows].max()) if len(v.spec.train_rows) else -1
            for v in vintages]
    for pos, date, count in zip(positions, predictions.index, made, strict=True):
        problem = _date_problem(int(pos), cutoffs, lasts, ends) if count else ""
        if problem:
            violations.append(f"{date.date()}: {count} predictions {problem}")
    checked = int(made.sum())
    verdict = "pass" if not violations and checked else "fail"
    return {"verdict": verdict, "bars_checked": checked, "vintages_checked": len(vintages),
            "embargo": embargo, "violations": violations[:10], "n_violations": len(violations)}
