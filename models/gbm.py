"""Gradient-boosted base learners (XGBoost, LightGBM) as scikit-learn-style estimators.

Each learner early-stops on a *purged* validation tail of its own training window: the last
``val_fraction`` of rows are held out, and the ``purge`` rows before them are dropped so that no
training label overlaps the validation period.  The fitted booster is truncated to its best
iteration, so what is saved is exactly what predicts.  Models are stored in their native formats
only (XGBoost UBJSON, LightGBM text), never pickled.

A saved model is read through :class:`BundleFiles`: from a directory, or from bytes that
:func:`models.artifacts.load_bundle` has already checked against the manifest, so that what is
loaded is exactly what was verified.  Every learner declares the files it reads
(:meth:`_Learner.file_names`), and a file the native library cannot parse is refused with a
:class:`BundleError` naming it.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from loguru import logger

from models import jsonio
from models.errors import BundleError, ConfigurationError, NotFittedError

T = TypeVar("T")
_XGB_PREFIX = re.compile(r"^\[[\d:]+\] \S+?:\d+: ")


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


def brief(exc: BaseException, limit: int = 160) -> str:
    """The first line of ``exc``'s message, cut to ``limit`` characters, for a one-line error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def native_stderr_to_debug_log() -> Iterator[None]:
    """Move what is written to file descriptor 2 meanwhile into the debug log.

    Native libraries write there directly, past Python: TensorFlow's C++ start-up lines, and
    LightGBM's ``[LightGBM] [Fatal]`` line before it raises.  Left alone they turn a CLI's
    one-line error into several.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                logger.debug("native: {}", line)


class BundleFiles:
    """The files of a saved model, by name: read from ``directory``, or served from
    ``verified`` bytes only.

    :func:`models.artifacts.load_bundle` passes the bytes it checked against the manifest's
    sha256, so a loader never reads a file twice or reads one that was not verified; a name
    those bytes lack was not listed in the manifest and is refused.  Without ``verified``
    (``learner.load(directory)``) the files are read from disk as they are.
    """

    def __init__(self, directory: Path, verified: Mapping[str, bytes] | None = None) -> None:
        self.directory = Path(directory)
        self._verified = None if verified is None else dict(verified)

    def path(self, name: str) -> Path:
        """Where ``name`` lies (for messages; never read directly once verified)."""
        return self.directory / name

    def __contains__(self, name: object) -> bool:
        if self._verified is not None:
            return name in self._verified
        return isinstance(name, str) and self.path(name).is_file()

    def _absent(self, name: str) -> BundleError:
        if self._verified is not None:
            return BundleError(f"{self.path(name)}: the model reads it but the bundle's "
                               "manifest.json does not list it; retrain the bundle")
        return BundleError(f"{self.path(name)}: missing; re-save the model")

    def require(self, names: Iterable[str]) -> None:
        """Refuse the first of ``names`` that is not there (before loading anything)."""
        for name in names:
            if name not in self:
                raise self._absent(name)

    def error(self, name: str, problem: str) -> BundleError:
        """The one-line error for ``name``: its path, the problem and the fix."""
        return BundleError(f"{self.path(name)}: {problem}; restore it or retrain the bundle")

    def read(self, name: str) -> bytes:
        """The bytes of ``name``; a BundleError when it is absent (or was not verified)."""
        if self._verified is not None:
            if name not in self._verified:
                raise self._absent(name)
            return self._verified[name]
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            raise self._absent(name) from None
        except OSError as exc:
            raise self.error(name, f"unreadable ({exc.strerror})") from None

    def json(self, name: str) -> dict[str, Any]:
        """The file's strict JSON object (no NaN, bounded nesting)."""
        try:
            value = jsonio.loads(self.read(name))
        except ValueError as exc:
            raise self.error(name, f"not valid JSON ({brief(exc)})") from None
        if not isinstance(value, dict):
            raise self.error(name, f"holds a JSON {type(value).__name__}, not an object")
        return value

    @contextlib.contextmanager
    def reading(self, name: str) -> Iterator[None]:
        """Turn a missing key or a wrong value met while using ``name``'s content into a
        BundleError naming the file, instead of a traceback."""
        try:
            yield
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise self.error(name, f"unexpected content ({type(exc).__name__}: "
                                   f"{brief(exc)})") from None

    def native(self, name: str, what: str, load: Callable[[bytes], T]) -> T:
        """``load(bytes of name)``, with the library's failure turned into a BundleError."""
        raw = self.read(name)
        if not raw:  # XGBoost aborts the process on an empty buffer
            raise self.error(name, f"empty, not {what}")
        try:
            with native_stderr_to_debug_log():
                return load(raw)
        except Exception as exc:  # each library fails in its own way; all mean "not a model"
            raise self.error(name, f"not a readable {what} ({brief(exc)})") from None


def load_xgb_booster(raw: bytes) -> xgb.Booster:
    """An XGBoost booster from the bytes of its saved model (UBJSON or JSON)."""
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as exc:  # its first line leads with a time and a source file
        raise ValueError(_XGB_PREFIX.sub("", brief(exc))) from None
    return booster


def load_lgbm_booster(raw: bytes) -> lgb.Booster:
    """A LightGBM booster from the bytes of its text model."""
    text = raw.decode("utf-8")
    # LightGBM aborts the whole process, past any exception handler, on a tree cut short:
    # refuse a model text that does not reach its end first.
    if "\nend of trees" not in text:
        raise ValueError("no 'end of trees' line: cut short, or not a LightGBM model")
    return lgb.Booster(model_str=text)


class _Learner:
    """Shared estimator plumbing: parameters, fit checks and the saved parameter file."""

    name: ClassVar[str] = ""
    #: Suffix of the native model file (``<name><suffix>``).
    model_suffix: ClassVar[str] = ""
    #: Earlier rows a prediction reads (0: each row alone; see ``models.deep``).
    context_rows: ClassVar[int] = 0

    @classmethod
    def file_names(cls) -> tuple[str, str]:
        """The files ``save`` writes and ``load`` reads: the native model, then its parameters."""
        return f"{cls.name}{cls.model_suffix}", f"{cls.name}.params.json"

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

    def _write_params(self, directory: Path, **extra: Any) -> Path:
        path = Path(directory) / self.file_names()[1]
        meta = {"params": self.get_params(), "best_iteration": self.best_iteration_, **extra}
        jsonio.write_text_atomic(path, jsonio.dumps(meta, sort_keys=True, indent=1))
        return path

    @classmethod
    def _from_params(cls, files: BundleFiles) -> tuple[Self, dict[str, Any]]:
        """A learner built from its parameter file, and that file's content."""
        name = cls.file_names()[1]
        meta = files.json(name)
        with files.reading(name):
            learner = cls(**dict(meta["params"]))
            learner.best_iteration_ = int(meta["best_iteration"])
        return learner, meta

    @classmethod
    def load(cls, directory: Path) -> Self:
        """The learner saved in ``directory``, read as it is (a bundle is verified first:
        :func:`models.artifacts.load_bundle`)."""
        return cls.from_files(BundleFiles(directory))

    @classmethod
    def from_files(cls, files: BundleFiles) -> Self:
        """The learner from :meth:`file_names` in ``files``."""
        raise NotImplementedError


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


class LGBMLearner(_Learner):
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
