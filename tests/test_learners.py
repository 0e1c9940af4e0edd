"""Conformance of every base learner and the ensemble to the estimator contract."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from models.ensemble import MeanEnsemble
from models.errors import ConfigurationError, NotFittedError
from models.gbm import LEARNERS, make_learner, purged_tail_split

ESTIMATORS = [
    *(pytest.param(lambda cls=cls: cls(purge=2, seed=3), id=name)
      for name, cls in LEARNERS.items()),
    pytest.param(lambda: MeanEnsemble(("xgb", "lgbm"), {"purge": 2, "seed": 3}), id="mean"),
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
