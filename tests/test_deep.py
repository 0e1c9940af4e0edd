"""Keras sequence learners (lstm, xlstm): honesty guards, collapse, bundles, determinism.

Every test here needs TensorFlow except the missing-TensorFlow one, which hides it.
The full-pipeline guards reuse tests/test_honesty.py's datasets (5000 bars), thresholds and
default deep hyperparameters, walk-forward with two vintages (min_train 2000, retrain_every
1500: 3000 bars out of sample) and one OOF fold, to keep the deep fits few (four per test;
most of a CPU fit is TensorFlow tracing its training step, whatever the data size).
A small lgbm+xlstm bundle, trained once, checks the live path: bar-by-bar predictions equal
the batch ones, and a paper replay is in parity with the backtest.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loguru import logger

from backtests.config import load_config
from backtests.runner import run_backtest
from backtests.synthetic import ar1_returns, random_walk, write_csv
from ensemble_bt.errors import ConfigurationError
from models.learners.registry import make_learner
from tests.badinput import assert_bad_input
from tests.bundles import TRAIN_END
from tests.capture import capture
from tests.conftest import run_cli
from tests.sessions import REPLAY_FROM, paper_config

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
                             "retrain_every": 1500,
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
    assert len(summary["vintages"]) == 2
    for vintage in summary["vintages"]:
        assert deep in vintage["models"]["learners"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm", "xlstm"])
def test_a_deep_learner_fits_reproducibly_and_round_trips(name, xy, tmp_path):
    _needs_tf()
    import models.learners.deep as deep
    from ensemble_bt.errors import NotFittedError
    from models.learners.registry import learner_class

    X, y = xy
    est = make_learner(name, purge=2, seed=5, dropout=0.1, **SMALL)
    assert not [k for k in vars(est) if k.endswith("_")]
    with pytest.raises(NotFittedError, match="fit"):
        est.predict(X)
    deep._TRAINERS.clear()  # a cold trainer cache, then a warm one: the same fit
    assert est.fit(X, y) is est
    first = est.predict(X)
    assert first.shape == (len(X),)
    assert est.y_offset_ == pytest.approx(float(np.mean(y[: len(y) - 120 - 2])))
    again = make_learner(name, purge=2, seed=5, dropout=0.1, **SMALL).fit(X, y).predict(X)
    assert np.array_equal(first, again)
    files = est.save(tmp_path)
    loaded = learner_class(name).load(tmp_path)
    assert {f.name for f in files} == {f"{name}.keras", f"{name}.params.json"}
    assert np.array_equal(loaded.predict(X), first)  # identical on CPU, not just close
    assert loaded.get_params() == est.get_params()


@pytest.mark.slow
def test_a_keras_file_replaced_by_another_format_is_refused_naming_it(xy, tmp_path, capfd):
    _needs_tf()
    import io
    import zipfile

    from ensemble_bt.errors import BundleError
    from models.learners.registry import learner_class

    make_learner("xlstm", purge=2, seed=1, **SMALL).fit(*xy).save(tmp_path)
    other = io.BytesIO()
    with zipfile.ZipFile(other, "w") as archive:  # a zip, but not of a model Keras knows
        archive.writestr("config.json", '{"class_name": "NoSuchLayer", "config": {}}')
        archive.writestr("metadata.json", "{}")
    for content in (b'{"class_name": "Functional"}', other.getvalue()):
        (tmp_path / "xlstm.keras").write_bytes(content)
        with pytest.raises(BundleError, match="xlstm.keras: not a readable Keras model"):
            learner_class("xlstm").load(tmp_path)
    assert "Traceback" not in capfd.readouterr().err


def test_causal_window_of_a_row_never_holds_a_later_row():
    from models.learners.deep import causal_windows

    X = np.arange(10, dtype=float)[:, None]
    W = causal_windows(X, 4)
    assert W[0, :, 0].tolist() == [0, 0, 0, 0]  # padded by repeating the first row
    assert W[6, :, 0].tolist() == [3, 4, 5, 6]
    assert (W[:, :, 0] <= np.arange(10)[:, None]).all()


@pytest.mark.slow
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


@pytest.fixture(scope="module")
def deep_bundle(replay_data, tmp_path_factory) -> tuple[Path, Path]:
    """``(csv, bundle)``: the shared replay data's AAA and a small lgbm+xlstm bundle on it."""
    _needs_tf()
    from backtests.train import train_bundle

    folder = tmp_path_factory.mktemp("deep-bundle")
    csv = replay_data["AAA"]
    cfg = load_config(None, {"data": str(csv), "horizon": 1, "min_train": 500,
                             "retrain_every": 900, "end": TRAIN_END,
                             "models": ["lgbm", "xlstm"], "stack": {"n_folds": 1},
                             "deep": SMALL, "device": "cpu"})
    return csv, train_bundle(cfg, folder / "bundle", skip_gate=True, progress=False)


@pytest.mark.slow
def test_bundle_with_a_deep_learner_round_trips_on_cpu(deep_bundle):
    from backtests.datasets import load_dataset
    from models.artifacts import load_bundle
    from models.features import FEATURE_NAMES, build_features

    csv, out = deep_bundle
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"xlstm.keras", "xlstm.params.json"} <= set(manifest["files"])
    recorded = manifest["deep_learners"]["xlstm"]
    assert "y_offset" in recorded and recorded["params"]["seq_len"] == SMALL["seq_len"]
    X = build_features(load_dataset(str(csv))).to_numpy()[100:]
    first, _ = load_bundle(out, feature_names=FEATURE_NAMES, horizon=1)
    again, _ = load_bundle(out)
    assert np.array_equal(first.predict(X), again.predict(X))
    assert first.describe() == again.describe()


def _bundle_signal(csv: Path, bundle: Path):
    from backtests.datasets import load_dataset
    from models.artifacts import load_bundle
    from models.features import FEATURE_NAMES
    from models.signal import VintageSignal
    from models.vintages import fixed_vintage

    ohlcv = load_dataset(str(csv))
    model, manifest = load_bundle(bundle, feature_names=FEATURE_NAMES, horizon=1)
    start = ohlcv.index[ohlcv.index > pd.Timestamp(manifest["training_window"]["end"])][0]
    vintage = fixed_vintage(model, manifest, str(bundle), horizon=1, predict_start=start,
                            predict_end=ohlcv.index[-1])
    return ohlcv, model, VintageSignal([vintage]), int(ohlcv.index.get_loc(start))


@pytest.mark.slow
def test_a_deep_bundle_predicts_bar_by_bar_what_it_predicts_in_a_batch(deep_bundle):
    from models.features import LOOKBACK, build_features
    from models.walkforward import predict_block

    ohlcv, model, signal, lo = _bundle_signal(*deep_bundle)
    ctx = SMALL["seq_len"] - 1
    assert model.context_rows == ctx and signal.lookback == LOOKBACK + ctx
    # Act: backtrader's vectorised pass and its bar-by-bar pass (the live path's)
    batch = capture(ohlcv, signal, runonce=True)[:, 0]
    stream = capture(ohlcv, signal, runonce=False)[:, 0]
    # Assert: equal up to float32 kernel rounding (batch vs one-row inference)
    assert np.isfinite(batch[lo:]).all() and np.isnan(batch[:lo]).all()
    np.testing.assert_allclose(stream, batch, rtol=0, atol=1e-6 * np.std(batch[lo:]),
                               equal_nan=True)
    # The first bars of the window read the rows before it: alone, they would differ.
    xlstm = model.learners_[1]
    assert not xlstm.collapsed_
    X = build_features(ohlcv).to_numpy()[:, model.selected_]
    with_history = predict_block(xlstm, X, lo, lo + ctx)
    alone = xlstm.predict(X[lo:lo + ctx])
    assert with_history[0] != pytest.approx(alone[0], rel=1e-3)
    assert with_history == pytest.approx(xlstm.predict(X[lo - ctx:lo + ctx])[ctx:], rel=1e-9)


@pytest.mark.slow
def test_a_deep_bundle_paper_trades_in_parity_with_the_backtest(deep_bundle, tmp_path):
    from live.session.paper import run_paper
    from live.session.parity import run_parity

    csv, bundle = deep_bundle
    folder = run_paper(paper_config(bundle), replay=[str(csv)],
                       replay_from=pd.Timestamp(REPLAY_FROM).date(), max_bars=40,
                       state=tmp_path / "state")
    report = run_parity(folder)
    assert report.identical, report.differences
    assert report.paper_orders >= 3, "the planted signal should trade"
    ohlcv, _, signal, _ = _bundle_signal(csv, bundle)
    decisions = pd.read_csv(folder / "decisions.csv", index_col="date", parse_dates=True)
    batch = pd.Series(signal.predict_batch(ohlcv), index=ohlcv.index).loc[decisions.index]
    assert len(decisions) == 41
    np.testing.assert_allclose(decisions["prediction"], batch, rtol=0,
                               atol=1e-6 * batch.std())


@pytest.mark.slow
def test_a_bundle_reading_more_history_than_the_session_backfills_exits_2(deep_bundle,
                                                                          tmp_path):
    csv, bundle = deep_bundle
    config = tmp_path / "paper.yaml"
    config.write_text(f"bundle: {bundle}\nhorizon: 1\nhistory_days: 150\n")
    proc = run_cli("paper", "--config", str(config), "--replay", str(csv), "--from",
                   REPLAY_FROM, "--state", str(tmp_path / "s"), cwd=tmp_path)
    assert_bad_input(proc, "reads 107 bars of history", "history_days to 161",
                     out=tmp_path / "s")


def test_without_tensorflow_a_deep_model_exits_2_with_the_extra_to_install(
        monkeypatch, tmp_path, capsys):
    from ensemble_bt.cli import main

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "keras", None)
    csv = write_csv(random_walk(n=600, seed=1), tmp_path / "walk.csv")
    code = main(["backtest", "--data", str(csv), "--models", "xgb,lgbm,lstm",
                 "--out", str(tmp_path / "out")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and "install ensemble-bt[deep]" in lines[0]
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigurationError, match=r"install ensemble-bt\[deep\]"):
        make_learner("xlstm")


def test_deep_hyperparameters_come_from_the_config_and_key_the_prediction_cache():
    from backtests.plan import stack_factory
    from backtests.robustness.config import prediction_hash

    cfg = load_config(None, {"models": ["xgb", "xlstm"], "device": "cpu",
                             "deep": {"seq_len": 8, "units": 4, "loss": "directional_huber"}})
    xgb_learner, xlstm = stack_factory(cfg)()._learners()
    assert (xlstm.seq_len, xlstm.units, xlstm.loss) == (8, 4, "directional_huber")
    assert not hasattr(xgb_learner, "seq_len")
    assert prediction_hash(cfg) != prediction_hash(load_config(None, {
        "models": ["xgb", "xlstm"], "device": "cpu"}))
    for bad, needle in (({"seq_len": 1}, "deep.seq_len"), ({"loss": "mae"}, "deep.loss"),
                        ({"width": 3}, "unknown key 'deep.width'")):
        with pytest.raises(ConfigurationError, match=needle):
            load_config(None, {"deep": bad})
