"""The learners by name, without importing any of them.

Config validation asks only for names, so it never loads XGBoost, LightGBM or TensorFlow;
:func:`learner_class` imports the module of the learner asked for.  The deep learners need the
``deep`` extra: their availability is checked with ``importlib.util.find_spec``, without
importing TensorFlow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ensemble_bt.errors import ConfigurationError
from models.learners.base import missing_tensorflow_message, tensorflow_available

if TYPE_CHECKING:
    from models.learners.base import Learner

#: Gradient-boosted learners (models.learners.gbm).
GBM_LEARNERS = ("lgbm", "xgb")
#: Keras sequence learners (models.learners.deep): they need ensemble-bt[deep].
DEEP_LEARNERS = ("lstm", "xlstm")
KNOWN_LEARNERS = (*GBM_LEARNERS, *DEEP_LEARNERS)
def check_learner_name(name: str) -> None:
    """Refuse an unknown name, or a deep learner where TensorFlow is not importable."""
    if name in GBM_LEARNERS:
        return
    if name not in DEEP_LEARNERS:
        raise ConfigurationError(
            f"unknown model {name!r}: choose from {', '.join(GBM_LEARNERS)} (or "
            f"{', '.join(DEEP_LEARNERS)} with ensemble-bt[deep])")
    if not tensorflow_available():
        raise ConfigurationError(missing_tensorflow_message(name))


def learner_class(name: str) -> type[Learner]:
    """The class registered under ``name``; its module is imported on demand."""
    check_learner_name(name)
    if name in GBM_LEARNERS:
        from models.learners.gbm import GBM_CLASSES

        return GBM_CLASSES[name]
    from models.learners.deep import DEEP_CLASSES

    return DEEP_CLASSES[name]


def make_learner(name: str, **params: Any) -> Learner:
    """Build a learner by name: ``xgb``, ``lgbm``, or ``lstm``/``xlstm`` (ensemble-bt[deep])."""
    return learner_class(name)(**params)
