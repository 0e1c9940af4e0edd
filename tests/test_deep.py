"""Keras sequence learners (lstm, xlstm): honesty guards, collapse, bundles, determinism.

Every test here needs TensorFlow except the missing-TensorFlow one, which hides it.
The full-pipeline guards reuse tests/test_honesty.py's datasets (5000 bars) and thresholds,
with one OOF fold and a single vintage (min_train 2000, 3000 bars out of sample), to keep the
deep fits few.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from loguru import logger

from backtests.config import load_config
from backtests.runner import run_backtest
from models.errors import ConfigurationError
from models.gbm import make_learner
from tests.synthetic import ar1_returns, random_walk, write_csv

SMALL = {"epochs": 3, "units": 8, "seq_len": 8}


def _needs_tf():
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras")


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    y = 0.3 * X[:, 0] + rng.normal(size=600)
    return X, y


@pytest.fixture
def warnings_logged():
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    yield messages
    logger.remove(sink)


def _summary(frame, models: str, tmp: Path) -> dict:
    csv = write_csv(frame, tmp / "data.csv")
    cfg = load_config(None, {"data": str(csv), "horizon": 1, "out": str(tmp / "out"),
                             "models": models.split(","), "min_train": 2000,
                             "retrain_every": 3000,
                             "stack": {"meta": "mean", "n_folds": 1}})
    folder = run_backtest(cfg, progress=False)
    return {**json.loads((folder / "summary.json").read_text()),
            "vintages": json.loads((folder / "vintages.json").read_text())["vintages"]}


@pytest.mark.slow
@pytest.mark.parametrize("deep", ["lstm", "xlstm"])
def test_canary_random_walk_shows_no_out_of_sample_edge_with_a_deep_learner(deep, tmp_path):
    _needs_tf()
    summary = _summary(random_walk(n=5000, seed=7), f"xgb,lgbm,{deep}", tmp_path)
    assert summary["leakage_audit"] == "pass"
    assert summary["bars"] == 5000 - 2000
    assert 0.48 <= summary["direction_accuracy"] <= 0.52
    assert abs(summary["ic"]) <= 0.04


@pytest.mark.slow
@pytest.mark.parametrize("deep", ["lstm", "xlstm"])
def test_planted_ar1_signal_is_found_out_of_sample_with_a_deep_learner(deep, tmp_path):
    _needs_tf()
    summary = _summary(ar1_returns(n=5000, seed=11, phi=0.2), f"xgb,lgbm,{deep}", tmp_path)
    assert summary["leakage_audit"] == "pass"
    assert summary["ic"] >= 0.07
    assert summary["direction_accuracy"] >= 0.525
    models = summary["vintages"][0]["models"]
    assert deep in models["learners"]


@pytest.mark.parametrize("name", ["lstm", "xlstm"])
def test_two_fits_with_the_same_seed_predict_identically(name, xy):
    _needs_tf()
    X, y = xy
    a = make_learner(name, purge=2, seed=5, **SMALL).fit(X, y).predict(X)
    b = make_learner(name, purge=2, seed=5, **SMALL).fit(X, y).predict(X)
    assert np.array_equal(a, b)


def test_deep_learner_follows_the_estimator_contract(xy):
    _needs_tf()
    from models.errors import NotFittedError

    X, y = xy
    est = make_learner("xlstm", purge=2, **SMALL)
    assert not [k for k in vars(est) if k.endswith("_")]
    with pytest.raises(NotFittedError, match="fit"):
        est.predict(X)
    assert est.fit(X, y) is est
    assert est.predict(X).shape == (len(X),)
    assert est.y_offset_ == pytest.approx(float(np.mean(y[: len(y) - 120 - 2])))


def test_causal_window_of_a_row_never_holds_a_later_row():
    from models.deep import causal_windows

    X = np.arange(10, dtype=float)[:, None]
    W = causal_windows(X, 4)
    assert W[0, :, 0].tolist() == [0, 0, 0, 0]  # padded by repeating the first row
    assert W[6, :, 0].tolist() == [3, 4, 5, 6]
    assert (W[:, :, 0] <= np.arange(10)[:, None]).all()


def test_learning_rate_zero_is_detected_as_collapse_and_gets_zero_stack_weight(
        xy, monkeypatch, warnings_logged):
    _needs_tf()
    import models.stacking as stacking

    def collapsed_lstm(name, **params):
        if name == "lstm":
            params.update(learning_rate=0.0, **SMALL)
        return make_learner(name, **params)

    monkeypatch.setattr(stacking, "make_learner", collapsed_lstm)
    X, y = xy
    stack = stacking.StackedEnsemble(models=("xgb", "lstm"), meta="elasticnet", n_folds=1,
                                     purge=2, embargo=2).fit(X, y)
    described = stack.describe()
    assert stack.learners_[1].collapsed_
    assert described["learners"]["lstm"]["collapsed"] is True
    assert "lstm" in described["excluded"]
    assert described["meta_weights"]["lstm"] == 0.0
    assert described["meta_weights"]["xgb"] > 0.0
    assert any("lstm collapsed" in m for m in warnings_logged)
    assert any("gets weight 0" in m and "stack" in m for m in warnings_logged)


def test_mean_meta_learner_leaves_an_excluded_learner_out_of_the_average():
    from models.stacking import StackedEnsemble

    stack = StackedEnsemble(models=("xgb", "lgbm", "lstm"), meta="mean")
    stack.excluded_ = {"lstm": "collapsed in 1 of 1 folds"}
    weights = stack._fit_meta(np.ones((10, 3)), np.ones(10))["weights"]
    assert weights == [0.5, 0.5, 0.0]


def test_bundle_with_a_deep_learner_round_trips_on_cpu(tmp_path):
    _needs_tf()
    from backtests.train import train_bundle
    from models.artifacts import load_bundle
    from models.features import FEATURE_NAMES, build_features

    ohlcv = ar1_returns(n=800, seed=3)
    csv = write_csv(ohlcv, tmp_path / "ar1.csv")
    cfg = load_config(None, {"data": str(csv), "horizon": 1, "min_train": 500,
                             "retrain_every": 400, "models": ["lgbm", "xlstm"],
                             "stack": {"n_folds": 1}, "device": "cpu"})
    out = train_bundle(cfg, tmp_path / "bundle", skip_gate=True, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"xlstm.keras", "xlstm.params.json"} <= set(manifest["files"])
    assert "y_offset" in manifest["deep_learners"]["xlstm"]
    X = build_features(ohlcv).to_numpy()[100:]
    first, _ = load_bundle(out, feature_names=FEATURE_NAMES, horizon=1)
    again, _ = load_bundle(out)
    np.testing.assert_allclose(first.predict(X), again.predict(X), rtol=0, atol=1e-7)
    assert first.describe() == again.describe()


def test_saved_deep_learner_predicts_like_the_fitted_one(xy, tmp_path):
    _needs_tf()
    from models.deep import LSTMLearner

    X, y = xy
    learner = make_learner("lstm", purge=2, **SMALL).fit(X, y)
    files = learner.save(tmp_path)
    loaded = LSTMLearner.load(tmp_path)
    assert {f.name for f in files} == {"lstm.keras", "lstm.params.json"}
    np.testing.assert_allclose(loaded.predict(X), learner.predict(X), rtol=0, atol=1e-7)
    assert loaded.get_params() == learner.get_params()


def test_without_tensorflow_a_deep_model_exits_2_with_the_extra_to_install(
        monkeypatch, tmp_path, capsys):
    from backtests.cli import main

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "keras", None)
    csv = write_csv(random_walk(n=600, seed=1), tmp_path / "walk.csv")
    try:
        code = main(["backtest", "--data", str(csv), "--models", "xgb,lgbm,lstm",
                     "--out", str(tmp_path / "out")])
    finally:
        logger.remove()
        logger.add(sys.stderr)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and "install ensemble-bt[deep]" in lines[0]
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigurationError, match=r"install ensemble-bt\[deep\]"):
        make_learner("xlstm")
