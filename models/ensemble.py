"""The interim ensemble: the plain mean of its base learners' predictions.

The stacking issue replaces this with a meta-learner trained on out-of-fold predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from models.errors import ConfigurationError, NotFittedError
from models.gbm import make_learner


class MeanEnsemble:
    """Average of base learners, each fitted on the same rows.

    Parameters
    ----------
    models : sequence of str
        Learner names from :data:`models.gbm.LEARNERS`.
    learner_params : dict
        Parameters passed to every learner (e.g. ``purge``, ``seed``).
    """

    def __init__(self, models: Sequence[str] = ("xgb", "lgbm"),
                 learner_params: dict[str, Any] | None = None) -> None:
        self.models = tuple(models)
        self.learner_params = dict(learner_params or {})

    def fit(self, X: Any, y: Any) -> MeanEnsemble:
        if not self.models:
            raise ConfigurationError("an ensemble needs at least one model")
        self.learners_ = [make_learner(m, **self.learner_params).fit(X, y) for m in self.models]
        return self

    def predict(self, X: Any) -> np.ndarray:
        if not hasattr(self, "learners_"):
            raise NotFittedError("MeanEnsemble is not fitted: call fit(X, y) first")
        preds = [learner.predict(X) for learner in self.learners_]
        # Summing in a fixed order then dividing keeps batch and row-wise results identical.
        total = preds[0].copy()
        for p in preds[1:]:
            total += p
        return total / len(preds)

    def describe(self) -> dict[str, Any]:
        """Per-learner facts for ``vintages.json``."""
        return {lr.name: {"best_iteration": lr.best_iteration_} for lr in self.learners_}
