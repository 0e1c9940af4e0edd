"""Gradient-boosted base learners (XGBoost, LightGBM) as scikit-learn-style estimators.

Each learner early-stops on a *purged* validation tail of its own training window: the last
``val_fraction`` of rows are held out, and the ``purge`` rows before them are dropped so that no
training label overlaps the validation period.  The fitted booster is truncated to its best
iteration, so what is saved is exactly what predicts.  Models are stored in their native formats
only (XGBoost UBJSON, LightGBM text), never pickled.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from models.errors import BundleError, ConfigurationError, NotFittedError


def purged_tail_split(n_rows: int, val_fraction: float, purge: int) -> tuple[slice, slice]:
    """Split ``n_rows`` time-ordered rows into a training head and a validation tail.

    Parameters
    ----------
    n_rows : int
        Number of rows, oldest first.
    val_fraction : float
        Share of rows in the validation tail, in (0, 0.5].
    purge : int
        Rows dropped between head and tail; equal to the label horizon so that no training
        label ends inside the validation period.

    Returns
    -------
    (slice, slice)
        Training rows and validation rows.
    """
    n_val = max(int(round(n_rows * val_fraction)), 20)
    n_train = n_rows - n_val - purge
    if n_train < 50:
        raise ConfigurationError(
            f"too few training rows ({n_rows}) for a purged validation tail of {n_val} rows "
            f"and a purge of {purge}: increase min_train"
        )
    return slice(0, n_train), slice(n_rows - n_val, n_rows)


def _as_matrix(X: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(X, dtype=np.float64))


def check_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` as float arrays, after the checks every learner's ``fit`` makes."""
    X = _as_matrix(X)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise ConfigurationError(
            f"X must be 2-D with one row per label; got {X.shape}, {y.shape}")
    if not np.isfinite(y).all():
        raise ConfigurationError("y holds NaN or inf: drop unlabeled rows before fit")
    return X, y


class _Learner:
    """Shared estimator plumbing: parameters, fit checks and the saved parameter file."""

    name: ClassVar[str] = ""
    #: Earlier rows a prediction reads (0: each row alone; see ``models.deep``).
    context_rows: ClassVar[int] = 0

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters, read from its signature (as scikit-learn does)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {k: getattr(self, k) for k in names}

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(X, y) first")

    def _split(self, X: Any, y: Any) -> tuple[np.ndarray, ...]:
        X, y = check_xy(X, y)
        tr, va = purged_tail_split(len(y), self.val_fraction, self.purge)
        return X[tr], y[tr], X[va], y[va]

    def _write_params(self, directory: Path) -> Path:
        path = directory / f"{self.name}.params.json"
        meta = {"params": self.get_params(), "best_iteration": self.best_iteration_}
        path.write_text(json.dumps(meta, sort_keys=True, indent=1))
        return path

    @staticmethod
    def _read_params(directory: Path, name: str) -> dict[str, Any]:
        path = directory / f"{name}.params.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise BundleError(f"{path}: missing; re-save the model") from exc


class XGBLearner(_Learner):
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
        path = Path(directory) / "xgb.ubj"
        self.booster_.save_model(str(path))
        return [path, self._write_params(Path(directory))]

    @classmethod
    def load(cls, directory: Path) -> XGBLearner:
        directory = Path(directory)
        meta = cls._read_params(directory, cls.name)
        learner = cls(**meta["params"])
        booster = xgb.Booster()
        try:
            booster.load_model(str(directory / "xgb.ubj"))
        except xgb.core.XGBoostError as exc:
            raise BundleError(f"{directory / 'xgb.ubj'}: unreadable XGBoost model") from exc
        learner.booster_ = booster
        learner.best_iteration_ = meta["best_iteration"]
        learner.n_features_in_ = booster.num_features()
        return learner


class LGBMLearner(_Learner):
    """LightGBM regressor with early stopping on a purged validation tail.

    Parameters mirror :class:`XGBLearner`; ``num_leaves`` and ``min_child_samples`` replace
    the depth and child-weight controls.
    """

    name = "lgbm"
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
        path = Path(directory) / "lgbm.txt"
        self.booster_.save_model(str(path))
        return [path, self._write_params(Path(directory))]

    @classmethod
    def load(cls, directory: Path) -> LGBMLearner:
        directory = Path(directory)
        meta = cls._read_params(directory, cls.name)
        learner = cls(**meta["params"])
        try:
            learner.booster_ = lgb.Booster(model_file=str(directory / "lgbm.txt"))
        except lgb.basic.LightGBMError as exc:
            raise BundleError(f"{directory / 'lgbm.txt'}: unreadable LightGBM model") from exc
        learner.best_iteration_ = meta["best_iteration"]
        learner.n_features_in_ = learner.booster_.num_feature()
        return learner


LEARNERS: dict[str, type[_Learner]] = {"xgb": XGBLearner, "lgbm": LGBMLearner}
# Keras sequence learners (models.deep), imported lazily: they need ensemble-bt[deep].
DEEP_LEARNERS = ("lstm", "xlstm")
KNOWN_LEARNERS = (*sorted(LEARNERS), *DEEP_LEARNERS)


def check_learner_name(name: str) -> None:
    """Refuse an unknown name, or a deep learner where TensorFlow is not importable."""
    if name in LEARNERS:
        return
    if name not in DEEP_LEARNERS:
        raise ConfigurationError(
            f"unknown model {name!r}: choose from {', '.join(sorted(LEARNERS))} (or "
            f"{', '.join(DEEP_LEARNERS)} with ensemble-bt[deep])")
    from models.deep import missing_tensorflow_message, tensorflow_available

    if not tensorflow_available():
        raise ConfigurationError(missing_tensorflow_message(name))


def learner_class(name: str) -> type[_Learner]:
    """The class registered under ``name``; deep learners are imported on demand."""
    check_learner_name(name)
    if name in LEARNERS:
        return LEARNERS[name]
    from models.deep import DEEP_CLASSES

    return DEEP_CLASSES[name]


def make_learner(name: str, **params: Any) -> _Learner:
    """Build a learner by name: ``xgb``, ``lgbm``, or ``lstm``/``xlstm`` (ensemble-bt[deep])."""
    return learner_class(name)(**params)
