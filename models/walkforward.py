"""Walk-forward validation inside one vintage's training window.

Each fold trains on rows before its test block and leaves a gap of ``purge + embargo`` rows,
so no training label (which ends ``purge`` = horizon bars after its row) reaches into the test
block.  Everything here sees only the rows it is given: called with a vintage's training rows,
nested validation never touches that vintage's prediction period.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ensemble_bt.errors import ConfigurationError

Scheme = Literal["anchored", "rolling"]


@dataclass(frozen=True)
class Fold:
    """Row positions of one fold (ascending)."""

    train: np.ndarray
    test: np.ndarray


def walk_forward_splits(n_rows: int, *, n_folds: int = 3, scheme: Scheme = "anchored",
                        purge: int = 5, embargo: int = 0, test_fraction: float = 0.5,
                        rolling_window: int | None = None, min_train: int = 100) -> list[Fold]:
    """Forward-only folds over the last ``test_fraction`` of ``n_rows`` rows.

    Parameters
    ----------
    n_rows : int
        Rows in the window, oldest first.
    n_folds : int
        Contiguous test blocks.
    scheme : {"anchored", "rolling"}
        Anchored folds train on every earlier row; rolling folds on the last
        ``rolling_window`` of them.
    purge, embargo : int
        Rows left out between a fold's training rows and its test block (purge >= horizon).
    test_fraction : float
        Share of rows covered by the test blocks.
    min_train : int
        Fewest training rows a fold may have.
    """
    if n_folds < 1 or not 0.0 < test_fraction < 1.0 or purge < 0 or embargo < 0:
        raise ConfigurationError("walk-forward needs n_folds >= 1, 0 < test_fraction < 1, "
                                 "purge >= 0 and embargo >= 0")
    if scheme not in ("anchored", "rolling"):
        raise ConfigurationError(f"unknown walk-forward scheme {scheme!r}: anchored or rolling")
    first_test = n_rows - int(n_rows * test_fraction)
    bounds = np.linspace(first_test, n_rows, n_folds + 1).astype(int)
    window = rolling_window or first_test
    folds = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        train_end = lo - purge - embargo
        train_start = 0 if scheme == "anchored" else max(0, train_end - window)
        if train_end - train_start < min_train or hi <= lo:
            raise ConfigurationError(
                f"a walk-forward fold would train on {max(train_end - train_start, 0)} rows "
                f"(< {min_train}); lengthen min_train or use fewer folds")
        folds.append(Fold(np.arange(train_start, train_end), np.arange(lo, hi)))
    return folds


def out_of_fold(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold],
                make_learners: Callable[[], Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions of every base learner.

    Returns
    -------
    (rows, preds)
        Test row positions (ascending) and a ``(len(rows), n_learners)`` matrix: each row
        predicted by learners fitted only on that fold's earlier, purged training rows.
    """
    rows, blocks = [], []
    for fold in folds:
        learners = [lr.fit(X[fold.train], y[fold.train]) for lr in make_learners()]
        blocks.append(np.column_stack([predict_block(lr, X, fold.test[0], fold.test[-1] + 1)
                                       for lr in learners]))
        rows.append(fold.test)
    return np.concatenate(rows), np.vstack(blocks)


def predict_block(model: Any, X: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``model``'s predictions of rows ``lo .. hi-1`` of ``X``, each with its history.

    A sequence learner (``context_rows > 0``, :mod:`models.learners.deep`) reads earlier rows; they
    are passed in front of the block (features only, all at or before each row) and their
    predictions dropped, so the block's first rows see the same window as later ones.
    """
    start = max(lo - getattr(model, "context_rows", 0), 0)
    return np.asarray(model.predict(X[start:hi]), dtype=np.float64)[lo - start:]
