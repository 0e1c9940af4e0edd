"""Stacked ensembles: base learners, out-of-fold predictions and a meta-learner.

Inside one training window (a vintage's rows, or a production bundle's history):

1. optional feature selection (SHAP top-k, or importances when SHAP is unavailable);
2. walk-forward out-of-fold (OOF) predictions of every base learner
   (:mod:`models.walkforward`: forward-only folds, purged by the horizon, embargoed);
3. validation metrics of the stack on those OOF rows: the meta-learner is fitted on the
   first half of them and scored on the second, so the score is out of sample;
4. the meta-learner refitted on all OOF rows, and the base learners refitted on all rows.

Meta-learners: ``mean`` (equal weights), ``elasticnet`` (non-negative ElasticNet weights on
the base predictions, no intercept), ``xgb`` (a shallow XGBoost on the base predictions plus
model-agreement and volatility/trend regime features).  Every part is saved in a native
format: learner files, ``stack.json`` for weights and metadata, ``meta_xgb.ubj``.
:meth:`StackedEnsemble.files_needed` names every file loading reads, so that a bundle's
manifest can be checked to cover them all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from loguru import logger
from sklearn.linear_model import ElasticNet

from ensemble_bt import jsonio
from ensemble_bt.errors import ConfigurationError, NotFittedError
from models.learners.base import BundleFiles
from models.learners.gbm import load_xgb_booster
from models.learners.registry import (
    DEEP_LEARNERS,
    KNOWN_LEARNERS,
    check_learner_name,
    learner_class,
    make_learner,
)
from models.metrics import direction_accuracy, information_coefficient, variance_collapse
from models.walkforward import out_of_fold, walk_forward_splits

META_LEARNERS = ("mean", "elasticnet", "xgb")
STATE_FILE = "stack.json"
META_BOOSTER_FILE = "meta_xgb.ubj"
_REGIME = ("vol_21", "vol_63", "ma_dist_50")


def select_features(X: np.ndarray, y: np.ndarray, top_k: int, method: str, seed: int,
                    ) -> tuple[np.ndarray, str]:
    """Indices of the ``top_k`` most useful columns, by mean |SHAP| or by importance.

    A quick XGBoost fit on the given rows only ranks the columns.  SHAP (TreeExplainer) is
    used when ``method == "shap"`` and the package works; otherwise XGBoost's gain importance.
    Returns the sorted indices and the method actually used.
    """
    booster = xgb.train({"max_depth": 3, "eta": 0.1, "seed": seed, "nthread": 1,
                         "verbosity": 0}, xgb.DMatrix(X, label=y), num_boost_round=50)
    scores, used = None, "importance"
    if method == "shap":
        try:
            import shap

            values = shap.TreeExplainer(booster).shap_values(X)
            scores, used = np.abs(np.asarray(values)).mean(axis=0), "shap"
        except Exception as exc:  # not installed, or an incompatible version
            logger.debug("SHAP unavailable ({}); ranking features by importance", exc)
    if scores is None:
        gain = booster.get_score(importance_type="gain")
        scores = np.array([gain.get(f"f{j}", 0.0) for j in range(X.shape[1])])
    order = np.argsort(-scores, kind="stable")[:top_k]
    return np.sort(order), used


class StackedEnsemble:
    """Base learners stacked by a meta-learner fitted on walk-forward OOF predictions.

    Parameters
    ----------
    models : sequence of str
        Base learners (:mod:`models.learners.registry`): ``xgb``, ``lgbm``, or ``lstm``,
        ``xlstm`` (:mod:`models.learners.deep`, needs ensemble-bt[deep]).  A learner that
        monitors itself for collapse (``collapsed_``) and collapsed gets weight 0; see
        :meth:`describe`.
    meta : {"elasticnet", "xgb", "mean"}
        The meta-learner.
    feature_names : sequence of str
        Names of X's columns (regime features and the bundle's feature contract use them).
    n_folds, scheme, purge, embargo
        Walk-forward validation settings (:func:`models.walkforward.walk_forward_splits`).
    top_k : int | None
        Keep only this many features, chosen on the training rows; None keeps all.
    selection : {"shap", "importance"}
        How ``top_k`` ranks features.
    alpha : float
        ElasticNet penalty on standardised predictions.
    seed : int
        Seed of every learner.
    devices : dict | None
        ``{"xgb": ..., "lgbm": ...}`` from :func:`models.devices.resolve_devices`.
    deep_params : dict | None
        Hyperparameters for the sequence learners (``seq_len``, ``units``, ``epochs``...;
        see :class:`models.learners.deep._SequenceLearner`); the GBMs ignore them.
    """

    def __init__(self, models: Sequence[str] = ("xgb", "lgbm"), meta: str = "elasticnet",
                 feature_names: Sequence[str] = (), n_folds: int = 3, scheme: str = "anchored",
                 purge: int = 5, embargo: int = 5, top_k: int | None = None,
                 selection: str = "shap", alpha: float = 0.01, seed: int = 0,
                 devices: dict[str, str] | None = None,
                 deep_params: dict[str, Any] | None = None) -> None:
        self.models = tuple(models)
        self.meta = meta
        self.feature_names = tuple(feature_names)
        self.n_folds = n_folds
        self.scheme = scheme
        self.purge = purge
        self.embargo = embargo
        self.top_k = top_k
        self.selection = selection
        self.alpha = alpha
        self.seed = seed
        self.devices = dict(devices or {})
        self.deep_params = dict(deep_params or {})

    # ------------------------------------------------------------------ fitting
    def _learners(self) -> list[Any]:
        return [make_learner(m, purge=self.purge, seed=self.seed,
                             device=self.devices.get(m, "cpu"),
                             **(self.deep_params if m in DEEP_LEARNERS else {}))
                for m in self.models]

    def _check_params(self) -> None:
        if self.meta not in META_LEARNERS:
            raise ConfigurationError(
                f"unknown stack meta-learner {self.meta!r}: choose from {', '.join(META_LEARNERS)}")
        unknown = [m for m in self.models if m not in KNOWN_LEARNERS]
        if not self.models or unknown:
            raise ConfigurationError(f"unknown or missing base learners: {unknown or 'none'}")
        for m in self.models:
            check_learner_name(m)  # a deep learner without TensorFlow stops here

    def _screen_collapse(self, P: np.ndarray, y: np.ndarray,
                         fitted: list[list[Any]]) -> dict[str, str]:
        """Base learners that collapsed, with the reason; they get weight 0 in the stack.

        Screened are the learners that monitor themselves (``collapsed_``, the deep ones):
        excluded when most of their fold fits flagged a collapse or their OOF prediction std
        is below 1% of the target's.  GBMs are not screened: an early-stopped booster on pure
        noise is nearly constant by design, and that is its honest answer.
        """
        excluded = {}
        for j, m in enumerate(self.models):
            flags = [getattr(lrs[j], "collapsed_", None) for lrs in fitted]
            if flags and flags[0] is None:
                continue
            oof = variance_collapse(P[:, j], y)
            if 2 * sum(bool(f) for f in flags) > len(flags):
                excluded[m] = f"collapsed in {sum(map(bool, flags))} of {len(flags)} folds"
            elif oof["fired"]:
                excluded[m] = f"OOF prediction std is {oof['std_ratio']:.4g} of the target's"
        if excluded and len(excluded) == len(self.models):
            logger.warning("every base learner collapsed ({}); keeping them all", excluded)
            return {}
        for m, why in excluded.items():
            logger.warning("stack: base learner {} collapsed ({}); it gets weight 0", m, why)
        return excluded

    def _active(self) -> np.ndarray:
        excluded = getattr(self, "excluded_", {})
        return np.array([m not in excluded for m in self.models])

    def _meta_inputs(self, P: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Base predictions, plus agreement and regime features for the xgb meta-learner."""
        if self.meta != "xgb":
            return P
        active = self._active()
        if not active.all():  # a collapsed learner's column is a constant: never split on
            P = np.where(active, P, 0.0)
        agree = np.mean(P[:, active] > 0.0, axis=1, keepdims=True)
        spread = P[:, active].std(axis=1, keepdims=True)
        names = self.feature_names
        cols = [X[:, names.index(n)] if n in names else np.full(len(X), np.nan)
                for n in _REGIME]
        vol_regime = (cols[0] / cols[1])[:, None]
        trend = cols[2][:, None]
        return np.hstack([P, agree, spread, vol_regime, trend])

    def _fit_meta(self, Z: np.ndarray, y: np.ndarray) -> dict[str, Any]:
        active = self._active()
        equal = (active / active.sum()).tolist()  # collapsed learners: weight 0
        if self.meta == "mean":
            return {"weights": equal}
        if self.meta == "elasticnet":
            Za = Z[:, active]
            p_scale = Za.std(axis=0) + 1e-12
            y_scale = float(y.std()) + 1e-12
            net = ElasticNet(alpha=self.alpha, l1_ratio=0.5, positive=True,
                             fit_intercept=False, max_iter=10_000)
            net.fit(Za / p_scale, y / y_scale)
            if not np.any(net.coef_ > 0.0):
                # Every learner shrunk away: the stack has no view.  Fall back to equal
                # weights and say so, rather than predict a constant zero.
                return {"weights": equal, "fallback": "all ElasticNet weights were 0"}
            weights = np.zeros(len(self.models))
            weights[active] = net.coef_ * y_scale / p_scale
            return {"weights": weights.tolist()}
        booster = xgb.train({"max_depth": 2, "eta": 0.05, "min_child_weight": 20,
                             "subsample": 0.8, "lambda": 5.0, "seed": self.seed, "nthread": 1,
                             "device": self.devices.get("xgb", "cpu"), "verbosity": 0},
                            xgb.DMatrix(Z, label=y), num_boost_round=100)
        return {"booster": booster}

    def _apply_meta(self, meta: dict[str, Any], Z: np.ndarray) -> np.ndarray:
        if "booster" in meta:
            return np.asarray(meta["booster"].inplace_predict(Z), dtype=np.float64)
        weights = meta["weights"]
        total = Z[:, 0] * weights[0]
        for j in range(1, len(weights)):  # fixed order: batch and row-wise agree exactly
            total = total + Z[:, j] * weights[j]
        return total

    def fit(self, X: Any, y: Any) -> StackedEnsemble:
        self._check_params()
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
        y = np.asarray(y, dtype=np.float64)
        if self.top_k and self.top_k < X.shape[1]:
            self.selected_, self.selection_used_ = select_features(
                X, y, self.top_k, self.selection, self.seed)
        else:
            self.selected_, self.selection_used_ = np.arange(X.shape[1]), "all"
        Xs = X[:, self.selected_]
        folds = walk_forward_splits(len(y), n_folds=self.n_folds, scheme=self.scheme,
                                    purge=self.purge, embargo=self.embargo)
        fitted: list[list[Any]] = []

        def learners() -> list[Any]:
            fitted.append(self._learners())
            return fitted[-1]

        rows, P = out_of_fold(Xs, y, folds, learners)
        self.excluded_ = self._screen_collapse(P, y[rows], fitted)
        Z, y_oof = self._meta_inputs(P, X[rows]), y[rows]
        self.oof_rows_ = rows
        self.validation_ = self._validate(Z, y_oof, P)
        self.meta_ = self._fit_meta(Z, y_oof)
        self.learners_ = [lr.fit(Xs, y) for lr in self._learners()]
        self.n_features_in_ = X.shape[1]
        return self

    def _validate(self, Z: np.ndarray, y: np.ndarray, P: np.ndarray) -> dict[str, Any]:
        """Stack scored on the later half of the OOF rows, its meta fitted on the earlier."""
        half = len(y) // 2
        pred = self._apply_meta(self._fit_meta(Z[:half], y[:half]), Z[half:])
        return {
            "dir_acc": direction_accuracy(pred, y[half:]),
            "ic": information_coefficient(pred, y[half:]),
            "pred_std": float(np.std(pred)), "target_std": float(np.std(y[half:])),
            "learners": {m: {"dir_acc": direction_accuracy(P[half:, j], y[half:]),
                             "ic": information_coefficient(P[half:, j], y[half:])}
                         for j, m in enumerate(self.models)},
        }

    # ------------------------------------------------------------------ predicting
    @property
    def context_rows(self) -> int:
        """Earlier rows a prediction reads: the most any fitted base learner reads."""
        return max((lr.context_rows for lr in getattr(self, "learners_", ())), default=0)

    def predict(self, X: Any) -> np.ndarray:
        if not hasattr(self, "learners_"):
            raise NotFittedError("StackedEnsemble is not fitted: call fit(X, y) first")
        X = np.ascontiguousarray(np.asarray(X, dtype=np.float64))
        if X.shape[1] != self.n_features_in_:
            raise ConfigurationError(
                f"the stack expects {self.n_features_in_} features, got {X.shape[1]}")
        Xs = X[:, self.selected_]
        P = np.column_stack([lr.predict(Xs) for lr in self.learners_])
        return self._apply_meta(self.meta_, self._meta_inputs(P, X))

    def describe(self) -> dict[str, Any]:
        """Meta weights or importances and validation metrics, for ``vintages.json``."""
        if "booster" in self.meta_:
            names = [*self.models, "agreement", "spread", "vol_regime", "trend"]
            gain = self.meta_["booster"].get_score(importance_type="gain")
            meta = {names[int(k[1:])]: v for k, v in gain.items()}
        else:
            meta = dict(zip(self.models, self.meta_["weights"], strict=True))
        return {
            "meta": self.meta, "meta_weights": meta, "validation": self.validation_,
            "meta_fallback": self.meta_.get("fallback"),
            "excluded": dict(getattr(self, "excluded_", {})),
            "features": [self.feature_names[j] if self.feature_names else int(j)
                         for j in self.selected_] if self.selection_used_ != "all" else "all",
            "learners": {lr.name: {"best_iteration": lr.best_iteration_,
                                   **({"collapsed": lr.collapsed_}
                                      if hasattr(lr, "collapsed_") else {})}
                         for lr in self.learners_},
        }

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> list[Path]:
        """Write native files into ``directory``; returns every path written."""
        if not hasattr(self, "learners_"):
            raise NotFittedError("StackedEnsemble is not fitted: call fit(X, y) first")
        directory = Path(directory)
        files: list[Path] = []
        for lr in self.learners_:
            files += lr.save(directory)
        meta = {k: v for k, v in self.meta_.items() if k != "booster"}
        if "booster" in self.meta_:
            path = directory / META_BOOSTER_FILE
            self.meta_["booster"].save_model(str(path))
            files.append(path)
        state = {
            "params": self.get_params(),
            "selected": self.selected_.tolist(), "selection_used": self.selection_used_,
            "meta": meta, "validation": self.validation_, "n_features_in": self.n_features_in_,
            "excluded": self.excluded_,
        }
        path = directory / STATE_FILE
        jsonio.write_text_atomic(path, jsonio.dumps(state, indent=1, sort_keys=True))
        return [*files, path]

    def get_params(self) -> dict[str, Any]:
        keys = ("models", "meta", "feature_names", "n_folds", "scheme", "purge", "embargo", "top_k",
                "selection", "alpha", "seed", "devices", "deep_params")
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in ((k, getattr(self, k)) for k in keys)}

    @staticmethod
    def read_state(files: BundleFiles) -> dict[str, Any]:
        """``stack.json``, with its learners and meta-learner checked against the known ones."""
        state = files.json(STATE_FILE)
        params = state.get("params")
        models = params.get("models") if isinstance(params, dict) else None
        if not (isinstance(models, list) and models and all(m in KNOWN_LEARNERS for m in models)):
            raise files.error(STATE_FILE, f"params.models must list learners among "
                                          f"{', '.join(KNOWN_LEARNERS)}")
        if params.get("meta") not in META_LEARNERS:
            raise files.error(STATE_FILE, f"params.meta must be one of {', '.join(META_LEARNERS)}")
        return state

    @staticmethod
    def files_needed(state: dict[str, Any]) -> list[str]:
        """Every file :meth:`from_files` reads, given ``state`` (from :meth:`read_state`)."""
        names = [STATE_FILE]
        for m in state["params"]["models"]:
            names += learner_class(m).file_names()
        if state["params"]["meta"] == "xgb":
            names.append(META_BOOSTER_FILE)
        return names

    @classmethod
    def load(cls, directory: Path) -> StackedEnsemble:
        """The stack saved in ``directory``, read as it is (a bundle is verified first:
        :func:`models.artifacts.load_bundle`)."""
        return cls.from_files(BundleFiles(directory))

    @classmethod
    def from_files(cls, files: BundleFiles) -> StackedEnsemble:
        """The stack from ``files``; it reads exactly :meth:`files_needed`."""
        state = cls.read_state(files)
        files.require(cls.files_needed(state))
        with files.reading(STATE_FILE):
            est = cls(**state["params"])
            est.excluded_ = dict(state.get("excluded", {}))
            est.selected_ = np.asarray(state["selected"], dtype=np.int64)
            est.selection_used_ = str(state["selection_used"])
            est.validation_ = dict(state["validation"])
            est.n_features_in_ = int(state["n_features_in"])
            est.meta_ = dict(state["meta"])
            est._check_loaded_state()
        est.learners_ = [learner_class(m).from_files(files) for m in est.models]
        if est.meta == "xgb":
            est.meta_["booster"] = files.native(META_BOOSTER_FILE, "XGBoost model",
                                                load_xgb_booster)
        return est

    def _check_loaded_state(self) -> None:
        """Raise ValueError where ``stack.json`` cannot describe this stack: selected columns
        outside the input, or meta weights that are not one finite number per learner."""
        selected = self.selected_
        if selected.ndim != 1 or not ((selected >= 0) & (selected < self.n_features_in_)).all():
            raise ValueError(f"selected columns must lie in 0..{self.n_features_in_ - 1}")
        if self.meta == "xgb":
            return
        weights = self.meta_["weights"]
        if (not isinstance(weights, list) or len(weights) != len(self.models)
                or not all(isinstance(w, int | float) and math.isfinite(w) for w in weights)):
            raise ValueError(f"meta.weights must be {len(self.models)} finite numbers")
