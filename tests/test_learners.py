"""Conformance of every base learner and the ensemble to the estimator contract."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import numpy as np
import pytest

from ensemble_bt.errors import BundleError, ConfigurationError, NotFittedError
from models.learners.base import purged_tail_split
from models.learners.gbm import GBM_CLASSES as LEARNERS
from models.learners.registry import make_learner
from models.stacking import META_LEARNERS, StackedEnsemble

ESTIMATORS = [
    *(pytest.param(lambda cls=cls: cls(purge=2, seed=3), id=name)
      for name, cls in LEARNERS.items()),
    *(pytest.param(lambda meta=meta: StackedEnsemble(meta=meta, purge=2, embargo=2, seed=3),
                   id=f"stack-{meta}") for meta in META_LEARNERS),
]


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(800, 6))
    y = 0.5 * X[:, 0] + rng.normal(size=800)
    return X, y


@pytest.mark.parametrize("make", ESTIMATORS)
def test_init_only_stores_parameters(make):
    est = make()
    assert not [k for k in vars(est) if k.endswith("_")]


@pytest.mark.parametrize("make", ESTIMATORS)
def test_predict_before_fit_raises_not_fitted(make, xy):
    with pytest.raises(NotFittedError, match="fit"):
        make().predict(xy[0])


@pytest.mark.parametrize("make", ESTIMATORS)
def test_fit_returns_self_and_learns_the_signal(make, xy):
    X, y = xy
    est = make()
    assert est.fit(X, y) is est
    assert np.corrcoef(est.predict(X), X[:, 0])[0, 1] > 0.5


@pytest.mark.parametrize("make", ESTIMATORS)
def test_row_by_row_prediction_equals_batch_exactly(make, xy):
    X, y = xy
    est = make().fit(X, y)
    batch = est.predict(X[:50])
    rows = np.array([est.predict(X[i:i + 1])[0] for i in range(50)])
    assert np.array_equal(batch, rows)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_save_load_round_trip_predicts_bit_for_bit(name, xy, tmp_path):
    X, y = xy
    learner = make_learner(name, purge=2).fit(X, y)
    files = learner.save(tmp_path)
    loaded = LEARNERS[name].load(tmp_path)
    assert all(f.exists() for f in files)
    assert not [f for f in tmp_path.iterdir() if f.suffix in {".pkl", ".joblib", ".pickle"}]
    assert np.array_equal(loaded.predict(X), learner.predict(X))
    assert loaded.get_params() == learner.get_params()


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_learner_parameters_are_its_init_arguments(name):
    cls = LEARNERS[name]
    assert set(cls().get_params()) == set(inspect.signature(cls).parameters)


def test_purged_tail_leaves_purge_rows_between_train_and_validation():
    train, val = purged_tail_split(500, 0.2, purge=5)
    assert train.stop + 5 == val.start
    assert val.stop == 500


def test_purged_tail_with_too_few_rows_raises_configuration_error():
    with pytest.raises(ConfigurationError, match="min_train"):
        purged_tail_split(60, 0.2, purge=5)


def test_unknown_learner_name_lists_the_known_ones():
    with pytest.raises(ConfigurationError, match="lgbm, xgb"):
        make_learner("rnn")


def test_labels_with_nan_are_refused(xy):
    X, y = xy
    y = y.copy()
    y[-1] = np.nan
    with pytest.raises(ConfigurationError, match="NaN"):
        make_learner("xgb").fit(X, y)


@pytest.mark.parametrize("meta", META_LEARNERS)
def test_stack_save_load_round_trip_predicts_bit_for_bit(meta, xy, tmp_path):
    X, y = xy
    stack = StackedEnsemble(meta=meta, purge=2, embargo=2, top_k=4, selection="importance")
    stack.fit(X, y)
    stack.save(tmp_path)
    loaded = StackedEnsemble.load(tmp_path)
    assert np.array_equal(loaded.predict(X), stack.predict(X))
    assert loaded.describe() == stack.describe()


def test_stack_params_round_trip_through_get_params():
    stack = StackedEnsemble(models=("lgbm",), meta="xgb", n_folds=2, top_k=5)
    assert StackedEnsemble(**stack.get_params()).get_params() == stack.get_params()


def test_elasticnet_weights_are_non_negative_and_favour_the_informative_learner(xy):
    X, y = xy
    stack = StackedEnsemble(meta="elasticnet", purge=2, embargo=2).fit(X, y)
    weights = stack.describe()["meta_weights"]
    assert all(w >= 0.0 for w in weights.values())
    assert sum(weights.values()) > 0.0


def test_top_k_keeps_the_informative_feature(xy):
    X, y = xy
    stack = StackedEnsemble(meta="mean", purge=2, embargo=2, top_k=2, selection="importance",
                            feature_names=[f"c{j}" for j in range(6)]).fit(X, y)
    assert "c0" in stack.describe()["features"]


def test_shap_selection_falls_back_to_importance_without_shap(xy, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_shap(name, *args, **kwargs):
        if name == "shap":
            raise ImportError("no shap here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_shap)
    X, y = xy
    stack = StackedEnsemble(meta="mean", purge=2, embargo=2, top_k=2, selection="shap").fit(X, y)
    assert stack.selection_used_ == "importance"


def test_unknown_meta_learner_is_refused(xy):
    with pytest.raises(ConfigurationError, match="elasticnet"):
        StackedEnsemble(meta="ridge").fit(*xy)


def test_shap_selection_uses_shap_when_installed(xy):
    pytest.importorskip("shap")
    X, y = xy
    stack = StackedEnsemble(meta="mean", purge=2, embargo=2, top_k=2, selection="shap").fit(X, y)
    assert stack.selection_used_ == "shap"
    assert 0 in stack.selected_


@pytest.fixture(scope="module")
def saved_learners(xy, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("learners")
    for name in LEARNERS:
        make_learner(name, purge=2).fit(*xy).save(folder)
    return folder


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_a_learner_saves_exactly_the_files_it_declares(name, xy, tmp_path):
    files = make_learner(name, purge=2).fit(*xy).save(tmp_path)
    assert sorted(f.name for f in files) == sorted(LEARNERS[name].file_names())


@pytest.mark.parametrize(("name", "replacement", "needle"), [
    ("xgb", lambda folder: (folder / "lgbm.txt").read_bytes(), "XGBoost model"),
    ("xgb", lambda folder: bytes(range(256)) * 4, "XGBoost model"),
    ("lgbm", lambda folder: (folder / "xgb.ubj").read_bytes(), "LightGBM model"),
    ("lgbm", lambda folder: b"tree\nversion=v4\nend of trees\n", "LightGBM model"),
    ("lgbm", lambda folder: (folder / "lgbm.txt").read_bytes()[:2000], "LightGBM.*cut short"),
])
def test_a_model_file_in_another_format_is_refused_naming_it_and_quietly(
        name, replacement, needle, saved_learners, tmp_path, capfd):
    folder = Path(shutil.copytree(saved_learners, tmp_path / "m"))
    model_file = LEARNERS[name].file_names()[0]
    (folder / model_file).write_bytes(replacement(saved_learners))
    with pytest.raises(BundleError, match=f"{model_file}: not a readable {needle}"):
        LEARNERS[name].load(folder)
    assert capfd.readouterr().err == ""  # LightGBM's own "[Fatal]" line went to the debug log
