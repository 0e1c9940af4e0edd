"""Scheduled retraining: bar export, the schedule, background training, pruning, stopping."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from backtests.datasets import load_dataset
from backtests.synthetic import ar1_returns, random_walk
from live.session import retrain
from live.session.journal import Journal
from live.session.retrain import (
    LAST_FILE,
    PARTIAL,
    RETRAIN_DIR,
    RetrainConfig,
    Retrainer,
    child_env,
    export_bars,
)
from models.artifacts import load_bundle
from models.features import FEATURE_NAMES

SYMBOL = "AAA"
DAY = pd.Timestamp("2005-12-30")
TRAIN_TIMEOUT_S = 120.0
# A child that records its argv and environment in its log, makes its --out folder, then
# sleeps or exits with the code it is told to.
FAKE_TRAIN = """\
import json, os, signal, sys, time
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out)
print(json.dumps({"argv": sys.argv, "env": dict(os.environ)}), flush=True)
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
sys.exit(int(os.environ.get("FAKE_RC", "3")))
"""


def journal_with(frame: pd.DataFrame, path: Path, symbol: str = SYMBOL) -> Path:
    bars = [(symbol, day.date().isoformat(), *map(float, row))
            for day, row in zip(frame.index, frame.itertuples(index=False), strict=True)]
    journal = Journal(path)
    journal.record_bar_step(bars, [], None)
    journal.close()
    return path


@pytest.fixture(scope="module")
def planted_journal(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("planted")
    return journal_with(ar1_returns(n=1800, seed=11), folder / "journal.sqlite")


@pytest.fixture(scope="module")
def train_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "train.yaml"
    path.write_text("retrain_every: 252\ndevice: cpu\n")
    return path


@pytest.fixture
def fake_python(tmp_path) -> str:
    script = tmp_path / "fake_python"
    script.write_text(f"#!{sys.executable}\n{FAKE_TRAIN}")
    script.chmod(0o755)
    return str(script)


def wait_for(retrainer: Retrainer) -> Path | None:
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        result = retrainer.poll()
        if not retrainer.running:
            return result
        time.sleep(0.2)
    retrainer.stop()
    raise AssertionError("the training child did not finish in time")


@pytest.fixture(scope="module")
def trained(planted_journal, train_yaml, tmp_path_factory) -> dict:
    """One planted-signal and one random-walk retrain, run side by side in the background."""
    noise_journal = journal_with(random_walk(n=1800, seed=7),
                                 tmp_path_factory.mktemp("noise") / "journal.sqlite")
    cfg = RetrainConfig(every_days=30, config=str(train_yaml))
    good = Retrainer(tmp_path_factory.mktemp("good_state"), cfg, horizon=1, symbol=SYMBOL)
    bad = Retrainer(tmp_path_factory.mktemp("bad_state"), cfg, horizon=1, symbol=SYMBOL)
    assert good.start(DAY, planted_journal) and bad.start(DAY, noise_journal)
    return {"good": good, "bundle": wait_for(good), "bad": bad, "refused": wait_for(bad)}


def test_export_bars_round_trips_through_load_dataset(tmp_path):
    frame = ar1_returns(n=400, seed=11)
    journal = journal_with(frame, tmp_path / "journal.sqlite")
    journal_with(random_walk(n=50), journal, symbol="OTHER")
    end = frame.index[299]

    rows = export_bars(journal, SYMBOL, tmp_path / "bars_AAA.csv", end=end)
    loaded = load_dataset(str(tmp_path / "bars_AAA.csv"))

    assert rows == 300
    expected = frame.iloc[:300].set_axis(frame.index[:300].as_unit("ns"))
    pd.testing.assert_frame_equal(loaded, expected, check_freq=False, check_names=False,
                                  check_exact=True)
    assert not list(tmp_path.glob(".*.tmp"))


def test_due_waits_every_days_from_the_first_day_and_survives_a_restart(
        tmp_path, fake_python, monkeypatch):
    monkeypatch.setenv("FAKE_RC", "3")
    journal = journal_with(ar1_returns(n=400, seed=11), tmp_path / "journal.sqlite")
    cfg = RetrainConfig(every_days=7, min_bars=300)
    day0 = pd.Timestamp("2001-03-01")
    retrainer = Retrainer(tmp_path / "state", cfg, horizon=1, symbol=SYMBOL,
                          python=fake_python)

    assert not retrainer.due(day0)
    assert not retrainer.due(day0 + pd.Timedelta(days=6))
    assert retrainer.due(day0 + pd.Timedelta(days=7))
    assert retrainer.start(day0 + pd.Timedelta(days=7), journal)
    assert not retrainer.due(day0 + pd.Timedelta(days=30))  # running
    wait_for(retrainer)

    again = Retrainer(tmp_path / "state", cfg, horizon=1, symbol=SYMBOL, python=fake_python)
    assert not again.due(day0 + pd.Timedelta(days=13))
    assert again.due(day0 + pd.Timedelta(days=14))
    last = json.loads((tmp_path / "state" / RETRAIN_DIR / LAST_FILE).read_text())
    assert last["first_day"] == "2001-03-01" and last["last_start"] == "2001-03-08"


def test_due_is_never_true_when_retraining_is_disabled(tmp_path):
    retrainer = Retrainer(tmp_path, RetrainConfig(), horizon=1, symbol=SYMBOL)

    assert not retrainer.due(pd.Timestamp("2001-01-01"))
    assert not retrainer.due(pd.Timestamp("2031-01-01"))


def test_start_skips_with_fewer_than_min_bars(tmp_path, fake_python):
    journal = journal_with(ar1_returns(n=299, seed=11), tmp_path / "journal.sqlite")
    retrainer = Retrainer(tmp_path / "state", RetrainConfig(every_days=1, min_bars=300),
                          horizon=1, symbol=SYMBOL, python=fake_python)

    started = retrainer.start(pd.Timestamp("2030-01-01"), journal)

    assert not started and not retrainer.running
    assert not retrainer.due(pd.Timestamp("2030-01-01"))  # the attempt counts as a start


@pytest.mark.slow
def test_background_train_produces_a_loadable_bundle_within_the_window(trained):
    bundle = trained["bundle"]

    model, manifest = load_bundle(bundle, feature_names=FEATURE_NAMES, horizon=1)

    assert bundle.parent == trained["good"].bundles_dir
    assert not bundle.name.endswith(PARTIAL)
    assert manifest["training_window"]["end"] <= DAY.date().isoformat()
    assert manifest["gate"]["passed"]
    assert list(trained["good"].bundles_dir.iterdir()) == [bundle]


@pytest.mark.slow
def test_gate_refusal_returns_none_and_leaves_no_partial(trained):
    bad = trained["bad"]

    assert trained["refused"] is None
    assert not list(bad.bundles_dir.iterdir())
    log = next((bad.work_dir).glob("train_*.log")).read_text()
    assert "walk-forward gate refused" in log
    assert json.loads((bad.work_dir / LAST_FILE).read_text())["outcome"] == "refused"


def test_poll_returns_none_at_once_while_the_child_runs(tmp_path, fake_python, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "30")
    journal = journal_with(ar1_returns(n=400, seed=11), tmp_path / "journal.sqlite")
    retrainer = Retrainer(tmp_path / "state", RetrainConfig(every_days=1, min_bars=300),
                          horizon=1, symbol=SYMBOL, python=fake_python)
    retrainer.start(pd.Timestamp("2030-01-01"), journal)

    began = time.monotonic()
    result = retrainer.poll()
    elapsed = time.monotonic() - began

    assert result is None and retrainer.running
    assert elapsed < 1.0
    retrainer.stop()


def test_stop_kills_the_child_and_leaves_no_partial(tmp_path, fake_python, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "60")
    journal = journal_with(ar1_returns(n=400, seed=11), tmp_path / "journal.sqlite")
    retrainer = Retrainer(tmp_path / "state", RetrainConfig(every_days=1, min_bars=300),
                          horizon=1, symbol=SYMBOL, python=fake_python)
    retrainer.start(pd.Timestamp("2030-01-01"), journal)
    proc = retrainer._proc
    deadline = time.monotonic() + 10
    while not list(retrainer.bundles_dir.glob(f"*{PARTIAL}")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(retrainer.bundles_dir.glob(f"*{PARTIAL}"))

    retrainer.stop()

    assert proc is not None and proc.returncode is not None
    assert not retrainer.running
    assert not list(retrainer.bundles_dir.iterdir())


def test_stop_kills_a_child_that_ignores_sigterm(tmp_path, fake_python, monkeypatch):
    monkeypatch.setenv("FAKE_SLEEP", "60")
    monkeypatch.setenv("FAKE_IGNORE_TERM", "1")
    monkeypatch.setattr(retrain, "STOP_WAIT_S", 0.5)
    journal = journal_with(ar1_returns(n=400, seed=11), tmp_path / "journal.sqlite")
    retrainer = Retrainer(tmp_path / "state", RetrainConfig(every_days=1, min_bars=300),
                          horizon=1, symbol=SYMBOL, python=fake_python)
    retrainer.start(pd.Timestamp("2030-01-01"), journal)
    proc = retrainer._proc
    log = next(retrainer.work_dir.glob("train_*.log"))
    deadline = time.monotonic() + 10
    while not log.read_text() and time.monotonic() < deadline:  # SIGTERM is ignored by now
        time.sleep(0.05)

    retrainer.stop()

    assert proc is not None and proc.returncode == -signal.SIGKILL
    assert not list(retrainer.bundles_dir.iterdir())


def test_missing_interpreter_is_logged_not_raised(tmp_path):
    journal = journal_with(ar1_returns(n=400, seed=11), tmp_path / "journal.sqlite")
    retrainer = Retrainer(tmp_path / "state", RetrainConfig(every_days=1, min_bars=300),
                          horizon=1, symbol=SYMBOL, python=str(tmp_path / "no-python"))

    started = retrainer.start(pd.Timestamp("2030-01-01"), journal)

    assert not started and not retrainer.running
    assert json.loads((retrainer.work_dir / LAST_FILE).read_text())["outcome"] == "failed"


def test_child_gets_no_alpaca_credentials(tmp_path, fake_python, monkeypatch, train_yaml):
    monkeypatch.setenv("APCA_API_KEY_ID", "key-must-not-leak")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "secret-must-not-leak")
    monkeypatch.setenv("ENSEMBLE_BT_HTTP_TOKEN", "token-must-not-leak")
    journal = journal_with(ar1_returns(n=400, seed=11), tmp_path / "journal.sqlite")
    cfg = RetrainConfig(every_days=1, min_bars=300, config=str(train_yaml), skip_gate=True)
    retrainer = Retrainer(tmp_path / "state", cfg, horizon=5, symbol=SYMBOL,
                          python=fake_python)
    retrainer.start(pd.Timestamp("2030-01-01"), journal)

    result = wait_for(retrainer)

    log = next(retrainer.work_dir.glob("train_*.log")).read_text()
    seen = json.loads(log.splitlines()[0])
    assert result is None  # exit code 3: a failed run
    assert not [k for k in seen["env"] if k.startswith("APCA_")]
    assert "ENSEMBLE_BT_HTTP_TOKEN" not in seen["env"]
    assert "must-not-leak" not in log
    argv = seen["argv"]
    assert argv[argv.index("--horizon") + 1] == "5"
    assert argv[argv.index("--config") + 1] == str(train_yaml.resolve())
    assert "--skip-gate" in argv and argv[-1] == "--no-progress"
    assert not list(retrainer.bundles_dir.iterdir())


def test_child_env_drops_credentials_and_keeps_the_rest():
    env = child_env({"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s", "PATH": "/bin",
                     "ENSEMBLE_BT_HTTP_TOKEN": "t"})

    assert env == {"PATH": "/bin"}


def make_bundles(retrainer: Retrainer, names: list[str]) -> list[Path]:
    paths = [retrainer.bundles_dir / name for name in names]
    for path in paths:
        path.mkdir(parents=True)
        (path / "manifest.json").write_text("{}")
    return paths


def test_prune_keeps_the_newest_and_never_the_protected_one(tmp_path):
    retrainer = Retrainer(tmp_path, RetrainConfig(every_days=1, keep=2), horizon=1,
                          symbol=SYMBOL)
    oldest, second, third, fourth = make_bundles(retrainer, [
        "20240101T000000Z", "20240201T000000Z", "20240301T000000Z", "20240301T000000Z-2"])

    removed = retrainer.prune(protect={oldest})

    assert removed == [second]
    assert retrainer.bundles() == [oldest, third, fourth]


def test_new_retrainer_sweeps_partials_left_by_a_killed_daemon(tmp_path):
    left = tmp_path / "bundles" / f"20240101T000000Z{PARTIAL}"
    left.mkdir(parents=True)

    retrainer = Retrainer(tmp_path, RetrainConfig(every_days=1), horizon=1, symbol=SYMBOL)

    assert not left.exists()
    assert retrainer.bundles() == []


def test_child_exiting_zero_without_a_valid_bundle_is_not_installed(
        tmp_path, fake_python, monkeypatch):
    monkeypatch.setenv("FAKE_RC", "0")
    journal = journal_with(ar1_returns(n=400, seed=11), tmp_path / "journal.sqlite")
    retrainer = Retrainer(tmp_path / "state", RetrainConfig(every_days=1, min_bars=300),
                          horizon=1, symbol=SYMBOL, python=fake_python)
    retrainer.start(pd.Timestamp("2030-01-01"), journal)

    assert wait_for(retrainer) is None
    assert not list(retrainer.bundles_dir.iterdir())
    assert json.loads((retrainer.work_dir / LAST_FILE).read_text())["outcome"] == "failed"
