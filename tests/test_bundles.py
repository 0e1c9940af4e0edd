"""Production bundles: the gate, native files, verified loading, out-of-sample backtests."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backtests.config import load_config
from backtests.plan import Period, train_vintages
from backtests.synthetic import ar1_returns, random_walk, write_csv
from backtests.train import GateRefused, train_bundle
from ensemble_bt.errors import BundleError, ConfigurationError
from models.artifacts import MANIFEST, load_bundle, save_bundle, verify_bundle
from models.features import FEATURE_NAMES, build_features
from models.learners.base import BundleFiles
from models.stacking import StackedEnsemble
from models.walkforward import walk_forward_splits
from tests.badinput import assert_bad_input
from tests.bundles import TRAIN, train_planted
from tests.conftest import run_cli


@pytest.fixture
def copy(planted_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(planted_bundle, tmp_path / "bundle"))


def test_bundle_passes_the_gate_on_planted_signal_and_records_its_manifest(planted_bundle):
    manifest = json.loads((planted_bundle / MANIFEST).read_text())
    assert manifest["gate"] == {"passed": True, "skipped": False, "reasons": []}
    assert manifest["wfe"] >= 40.0
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert manifest["horizon"] == 1
    assert manifest["training_window"]["end"] <= "2005-12-30"
    assert set(manifest["target_stats"]) == {"train", "holdout"}
    assert manifest["devices"] == {"xgb": "cpu", "lgbm": "cpu"}
    assert set(manifest["libraries"]) >= {"xgboost", "lightgbm", "python"}
    names = {p.name for p in planted_bundle.iterdir()}
    assert names == set(manifest["files"]) | {MANIFEST}
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]


@pytest.mark.slow
def test_bundle_round_trip_predicts_bit_for_bit(planted, tmp_path):
    ohlcv = ar1_returns(n=1800, seed=11)
    X = build_features(ohlcv).to_numpy()[200:]
    cfg = load_config(None, {"data": str(planted), **TRAIN})
    out = train_bundle(cfg, tmp_path / "b", progress=False)
    model, _ = load_bundle(out, feature_names=FEATURE_NAMES, horizon=1)
    again, _ = load_bundle(out)
    assert np.array_equal(model.predict(X), again.predict(X))


def test_loaded_bundle_matches_the_model_that_was_saved(planted, tmp_path):
    from backtests.plan import stack_factory
    from models.artifacts import save_bundle

    ohlcv = ar1_returns(n=900, seed=2)
    X = build_features(ohlcv).to_numpy()[100:-1]
    y = np.diff(np.log(ohlcv["close"].to_numpy()))[100:]
    model = stack_factory(load_config(None, {"horizon": 1}))().fit(X, y)
    save_bundle(tmp_path / "b", model, feature_names=list(FEATURE_NAMES), horizon=1)
    loaded, _ = load_bundle(tmp_path / "b", feature_names=FEATURE_NAMES, horizon=1)
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_tampered_file_is_refused(copy):
    path = copy / "lgbm.txt"
    path.write_text(path.read_text().replace("learning_rate", "learning_rat3", 1))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(copy)


def test_missing_file_is_refused_naming_it(copy):
    (copy / "xgb.ubj").unlink()
    with pytest.raises(BundleError, match="xgb.ubj.*missing"):
        load_bundle(copy)


def test_feature_list_mismatch_is_refused_with_the_fix(copy):
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["feature_names"][3] = "ret_7"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="position 3.*retrain"):
        load_bundle(copy, feature_names=FEATURE_NAMES)


def test_library_version_mismatch_only_warns(copy):
    from loguru import logger

    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["libraries"]["xgboost"] = "0.0.1"
    (copy / MANIFEST).write_text(json.dumps(manifest))
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING")
    try:
        load_bundle(copy, feature_names=FEATURE_NAMES, horizon=1)
    finally:
        logger.remove(sink)
    assert any("xgboost 0.0.1" in m for m in messages)


@pytest.mark.slow
def test_backtest_of_a_bundle_runs_after_its_training_window(planted, planted_bundle, tmp_path):
    proc = run_cli("backtest", "--data", str(planted), "--bundle", str(planted_bundle),
                   "--horizon", "1", "--out", str(tmp_path / "r"), "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = Path(proc.stdout.strip().splitlines()[-1])
    summary = json.loads((folder / "summary.json").read_text())
    vintages = json.loads((folder / "vintages.json").read_text())["vintages"]
    assert summary["leakage_audit"] == "pass" and summary["n_vintages"] == 1
    assert summary["start"] > vintages[0]["train_end"]
    assert vintages[0]["source"] == str(planted_bundle)


@pytest.mark.slow
@pytest.mark.parametrize(("mutate", "args", "needles"), [
    (lambda b: (b / "lgbm.txt").write_text("tampered"), ["--horizon", "1"], ["sha256"]),
    (lambda b: (b / "stack.json").unlink(), ["--horizon", "1"], ["stack.json", "missing"]),
    (lambda b: None, ["--horizon", "5"], ["horizon 1", "--horizon 1"]),
    (lambda b: None, ["--horizon", "1", "--start", "2005-06-01"], ["overlaps", "out of sample"]),
])
def test_bad_bundle_backtest_exits_2_in_one_line(mutate, args, needles, planted, copy, tmp_path):
    mutate(copy)
    proc = run_cli("backtest", "--data", str(planted), "--bundle", str(copy), *args,
                   "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert_bad_input(proc, *needles, out=tmp_path / "r")


@pytest.mark.slow
def test_gate_refuses_a_random_walk_with_the_numbers(tmp_path):
    data = write_csv(random_walk(n=1800, seed=7), tmp_path / "walk.csv")
    cfg = load_config(None, {"data": str(data), **TRAIN})
    with pytest.raises(GateRefused, match=r"refused the bundle: .*\d") as info:
        train_bundle(cfg, tmp_path / "b", progress=False)
    assert "--skip-gate" in str(info.value)
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_skip_gate_trains_anyway_and_says_so_in_the_manifest(tmp_path):
    data = write_csv(random_walk(n=1800, seed=7), tmp_path / "walk.csv")
    proc = run_cli("train", "--data", str(data), "--out", str(tmp_path / "b"), "--horizon", "1",
                   "--retrain-every", "252", "--skip-gate", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    gate = json.loads((tmp_path / "b" / MANIFEST).read_text())["gate"]
    assert gate["skipped"] and not gate["passed"] and gate["reasons"]


@pytest.mark.slow
def test_retraining_removes_files_of_learners_no_longer_in_the_bundle(planted, copy):
    cfg = load_config(None, {"data": str(planted), **TRAIN, "models": ("xgb",)})
    train_bundle(cfg, copy, skip_gate=True, progress=False)
    names = {p.name for p in copy.iterdir()}
    assert "lgbm.txt" not in names and "lgbm.params.json" not in names
    model, manifest = load_bundle(copy)
    assert model.models == ("xgb",) and manifest["models"] == ["xgb"]


def test_meta_learner_never_sees_a_prediction_whose_label_ends_after_the_cutoff():
    ohlcv = ar1_returns(n=1400, seed=3)
    cfg = load_config(None, {"data": "x", "horizon": 5, "retrain_every": 200,
                             "stack": {"meta": "xgb"}})
    vintages = train_vintages(ohlcv, Period(600, 1399), cfg, progress=False)
    for v in vintages:
        rows = v.spec.train_rows[v.model.oof_rows_]  # dataset positions the meta saw
        assert rows.max() + cfg.horizon <= v.spec.cutoff - cfg.embargo
        assert set(rows) <= set(v.spec.train_rows)


@pytest.mark.parametrize("scheme", ["anchored", "rolling"])
def test_walk_forward_folds_leave_purge_and_embargo_before_each_test_block(scheme):
    folds = walk_forward_splits(1000, n_folds=4, scheme=scheme, purge=5, embargo=3,
                                rolling_window=300)
    for fold in folds:
        assert fold.train.max() + 5 + 3 < fold.test.min()
    assert folds[-1].test.max() == 999
    if scheme == "rolling":
        assert all(len(f.train) <= 300 for f in folds)
    else:
        assert all(f.train.min() == 0 for f in folds)


@pytest.mark.slow
def test_backtest_of_a_missing_bundle_exits_2_with_the_fix(planted, tmp_path):
    proc = run_cli("backtest", "--data", str(planted), "--bundle", str(tmp_path / "nope"),
                   "--horizon", "1", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert_bad_input(proc, "no manifest.json", "ensemble-bt train", out=tmp_path / "r")


# ---------------------------------------------------------------- manifest and file checks
def _edit_manifest(bundle: Path, edit) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    edit(manifest)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def _rehash(bundle: Path, name: str) -> None:
    digest = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    _edit_manifest(bundle, lambda m: m["files"].__setitem__(name, digest))


def test_the_manifest_lists_exactly_the_files_the_model_reads(planted_bundle):
    manifest = json.loads((planted_bundle / MANIFEST).read_text())
    state = StackedEnsemble.read_state(BundleFiles(planted_bundle))
    assert sorted(StackedEnsemble.files_needed(state)) == sorted(manifest["files"])


@pytest.mark.parametrize(("edit", "needles"), [
    (lambda m: m["files"].__setitem__("xgb.ubj", 12345), ["files['xgb.ubj']", "12345"]),
    (lambda m: m["files"].__setitem__("../stack.json", "0" * 64), ["'../stack.json'"]),
    (lambda m: m.__setitem__("feature_names", "ret_1,ret_2"), ["feature_names", "list"]),
    (lambda m: m["feature_names"].__setitem__(0, 1), ["feature_names[0]", "string"]),
    (lambda m: m.__setitem__("horizon", "1"), ["horizon", "integer"]),
    (lambda m: m.__setitem__("horizon", 1.5), ["horizon", "integer"]),
    (lambda m: m.__setitem__("horizon", True), ["horizon", "integer"]),
    (lambda m: m["training_window"].__setitem__("start", "2007-01-01"), ["after end"]),
    (lambda m: m["training_window"].__setitem__("rows", "1465"), ["training_window.rows"]),
    (lambda m: m["training_window"].__setitem__("end", "x" * 5000), ["not a date"]),
    (lambda m: m.__setitem__("schema_version", 2), ["schema_version", "another version"]),
    (lambda m: m.pop("files"), ["files", "required"]),
])
def test_a_manifest_of_the_wrong_shape_is_refused_naming_the_key(edit, needles, copy):
    _edit_manifest(copy, edit)
    with pytest.raises(BundleError) as info:
        load_bundle(copy)
    message = str(info.value)
    assert message.startswith(f"{copy / MANIFEST}: ") and "retrain" in message
    assert len(message) < 400 and "\n" not in message
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("stack.json", '{"params": {"models": ["xgb", "lgbm"], "meta": "mean"}}', "selected"),
    ("stack.json", '{"params": {"models": ["rnn"], "meta": "mean"}}', "params.models"),
    ("stack.json", "[1, 2]", "not an object"),
    ("xgb.params.json", '{"params": {"depth": 3}, "best_iteration": 3}', "depth"),
    ("xgb.ubj", "", "empty"),  # XGBoost itself aborts the process on an empty model
])
def test_a_rehashed_file_the_loader_cannot_use_is_refused_naming_it(name, content, needle,
                                                                    copy):
    (copy / name).write_text(content)
    _rehash(copy, name)
    with pytest.raises(BundleError, match=f"{name}: .*{needle}"):
        load_bundle(copy)


def test_stack_weights_that_do_not_match_the_learners_are_refused(copy):
    state = json.loads((copy / "stack.json").read_text())
    state["meta"]["weights"] = [1.0]
    (copy / "stack.json").write_text(json.dumps(state))
    _rehash(copy, "stack.json")
    with pytest.raises(BundleError, match="stack.json: .*2 finite numbers"):
        load_bundle(copy)


def test_the_model_is_built_from_the_bytes_that_were_verified(planted_bundle, copy):
    manifest, files = verify_bundle(copy)
    (copy / "stack.json").write_text("changed after the check")
    (copy / "xgb.ubj").unlink()
    model = StackedEnsemble.from_files(files)
    X = build_features(ar1_returns(n=1800, seed=11)).to_numpy()[200:300]
    assert np.array_equal(model.predict(X), load_bundle(planted_bundle)[0].predict(X))
    assert manifest["files"] == json.loads((planted_bundle / MANIFEST).read_text())["files"]


def test_a_nan_the_trainer_could_not_avoid_is_written_as_null_and_read_back_as_nan(copy):
    model, _ = load_bundle(copy)
    save_bundle(copy, model, feature_names=list(FEATURE_NAMES), horizon=1,
                holdout_dir_acc=float("nan"), wfe=float("inf"),
                training_window={"start": "2000-05-19", "end": "2005-12-30", "rows": 10})
    text = (copy / MANIFEST).read_text()
    manifest = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the manifest"))
    assert manifest["holdout_dir_acc"] is None and manifest["wfe"] is None
    _, loaded = load_bundle(copy)
    assert np.isnan(loaded["holdout_dir_acc"])


def test_save_bundle_refuses_to_write_a_manifest_that_loading_would_refuse(copy):
    model, _ = load_bundle(copy)
    before = (copy / MANIFEST).read_bytes()
    with pytest.raises(BundleError, match="horizon"):
        save_bundle(copy, model, feature_names=list(FEATURE_NAMES), horizon="1")
    assert (copy / MANIFEST).read_bytes() == before


def test_train_refuses_an_out_folder_that_holds_other_files_before_training(planted, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="notes.txt.*not a bundle"):
        train_planted(planted, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
