"""Gradient-boosted base learners (XGBoost, LightGBM) as scikit-learn-style estimators.

Each learner early-stops on a *purged* validation tail of its own training window: the last
``val_fraction`` of rows are held out, and the ``purge`` rows before them are dropped so that no
training label overlaps the validation period.  The fitted booster is truncated to its best
iteration, so what is saved is exactly what predicts.  Models are stored in their native formats
only (XGBoost UBJSON, LightGBM text), never pickled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from ensemble_bt.errors import ConfigurationError
from models.learners.base import (
    BundleFiles,
    Learner,
    _as_matrix,
    brief,
)
from models.learners.probe import check_native

T = TypeVar("T")
_XGB_PREFIX = re.compile(r"^\[[\d:]+\] \S+?:\d+: ")


def load_xgb_booster(raw: bytes) -> xgb.Booster:
    """An XGBoost booster from the bytes of its saved model (UBJSON or JSON), read first in a
    child process (:func:`models.learners.probe.check_native`)."""
    check_native("xgboost", raw)
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as exc:  # its first line leads with a time and a source file
        raise ValueError(_XGB_PREFIX.sub("", brief(exc))) from None
    return booster


def load_lgbm_booster(raw: bytes) -> lgb.Booster:
    """A LightGBM booster from the bytes of its text model, read first in a child process
    (:func:`models.learners.probe.check_native`)."""
    text = raw.decode("utf-8")
    if "\nend of trees" not in text:
        raise ValueError("no 'end of trees' line: cut short, or not a LightGBM model")
    check_native("lightgbm", raw)
    return lgb.Booster(model_str=text)


class XGBLearner(Learner):
    """XGBoost regressor with early stopping on a purged validation tail.

    Parameters
    ----------
    n_estimators : int
        Upper bound on boosting rounds; early stopping usually ends sooner.
    learning_rate, max_depth, min_child_weight, subsample, colsample_bytree, reg_lambda
        Usual XGBoost hyperparameters; defaults are shallow and heavily regularised, because
        daily returns are mostly noise.
    early_stopping_rounds : int
        Rounds without validation improvement before stopping.
    val_fraction : float
        Share of the training window used as the validation tail.
    purge : int
        Rows dropped before the validation tail (set to the label horizon).
    seed, n_jobs, device
        Reproducibility, threads and ``"cpu"``/``"cuda"``.
    """

    name = "xgb"
    model_suffix = ".ubj"

    def __init__(self, n_estimators: int = 400, learning_rate: float = 0.03, max_depth: int = 3,
                 min_child_weight: float = 20.0, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, reg_lambda: float = 1.0,
                 early_stopping_rounds: int = 40, val_fraction: float = 0.2, purge: int = 5,
                 seed: int = 0, n_jobs: int = 1, device: str = "cpu") -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_child_weight = min_child_weight
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.val_fraction = val_fraction
        self.purge = purge
        self.seed = seed
        self.n_jobs = n_jobs
        self.device = device

    def _booster_params(self) -> dict[str, Any]:
        return {
            "objective": "reg:squarederror", "eta": self.learning_rate,
            "max_depth": self.max_depth, "min_child_weight": self.min_child_weight,
            "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
            "lambda": self.reg_lambda, "tree_method": "hist", "seed": self.seed,
            "nthread": self.n_jobs, "device": self.device, "verbosity": 0,
        }

    def fit(self, X: Any, y: Any) -> XGBLearner:
        Xt, yt, Xv, yv = self._split(X, y)
        dtrain = xgb.DMatrix(Xt, label=yt)
        dval = xgb.DMatrix(Xv, label=yv)
        booster = xgb.train(self._booster_params(), dtrain, num_boost_round=self.n_estimators,
                            evals=[(dval, "val")],
                            early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False)
        self.best_iteration_ = int(booster.best_iteration)
        # Truncate so that the saved model is exactly the one that predicts.
        self.booster_ = booster[: self.best_iteration_ + 1]
        self.n_features_in_ = Xt.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = _as_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ConfigurationError(
                f"xgb expects {self.n_features_in_} features, got {X.shape[1]}")
        return np.asarray(self.booster_.inplace_predict(X), dtype=np.float64)

    def save(self, directory: Path) -> list[Path]:
        self._check_fitted()
        path = Path(directory) / self.file_names()[0]
        self.booster_.save_model(str(path))
        return [path, self._write_params(Path(directory))]

    @classmethod
    def from_files(cls, files: BundleFiles) -> XGBLearner:
        learner, _ = cls._from_params(files)
        learner.booster_ = files.native(cls.file_names()[0], "XGBoost model", load_xgb_booster)
        learner.n_features_in_ = learner.booster_.num_features()
        return learner


class LGBMLearner(Learner):
    """LightGBM regressor with early stopping on a purged validation tail.

    Parameters mirror :class:`XGBLearner`; ``num_leaves`` and ``min_child_samples`` replace
    the depth and child-weight controls.
    """

    name = "lgbm"
    model_suffix = ".txt"

    def __init__(self, n_estimators: int = 400, learning_rate: float = 0.03,
                 num_leaves: int = 7, min_child_samples: int = 40, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, reg_lambda: float = 1.0,
                 early_stopping_rounds: int = 40, val_fraction: float = 0.2, purge: int = 5,
                 seed: int = 0, n_jobs: int = 1, device: str = "cpu") -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.val_fraction = val_fraction
        self.purge = purge
        self.seed = seed
        self.n_jobs = n_jobs
        self.device = device

    def _booster_params(self) -> dict[str, Any]:
        return {
            "objective": "regression", "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample, "bagging_freq": 1,
            "feature_fraction": self.colsample_bytree, "lambda_l2": self.reg_lambda,
            "seed": self.seed, "num_threads": self.n_jobs, "deterministic": True,
            "force_col_wise": True, "device_type": self.device, "verbosity": -1,
        }

    def fit(self, X: Any, y: Any) -> LGBMLearner:
        Xt, yt, Xv, yv = self._split(X, y)
        train = lgb.Dataset(Xt, label=yt, free_raw_data=True)
        val = lgb.Dataset(Xv, label=yv, reference=train)
        booster = lgb.train(
            self._booster_params(), train, num_boost_round=self.n_estimators, valid_sets=[val],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)])
        self.best_iteration_ = int(booster.best_iteration) or booster.current_iteration()
        # Round-trip through the native text format so that the in-memory model and a
        # loaded bundle are the same object model, truncated at the best iteration.
        text = booster.model_to_string(num_iteration=self.best_iteration_)
        self.booster_ = lgb.Booster(model_str=text)
        self.n_features_in_ = Xt.shape[1]
        return self

    def predict(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = _as_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise ConfigurationError(
                f"lgbm expects {self.n_features_in_} features, got {X.shape[1]}")
        return np.asarray(self.booster_.predict(X, num_threads=1), dtype=np.float64)

    def save(self, directory: Path) -> list[Path]:
        self._check_fitted()
        path = Path(directory) / self.file_names()[0]
        self.booster_.save_model(str(path))
        return [path, self._write_params(Path(directory))]

    @classmethod
    def from_files(cls, files: BundleFiles) -> LGBMLearner:
        learner, _ = cls._from_params(files)
        learner.booster_ = files.native(cls.file_names()[0], "LightGBM model",
                                        load_lgbm_booster)
        learner.n_features_in_ = learner.booster_.num_feature()
        return learner



GBM_CLASSES: dict[str, type[Learner]] = {"xgb": XGBLearner, "lgbm": LGBMLearner}
