"""The crash-safe paper daemon, driven as a subprocess against the local Alpaca-protocol
server running in its own process: kill -9 and restart, flaky streams and REST, SIGTERM,
bad input, secrets, and the read-only HTTP endpoint."""

from __future__ import annotations

import json
import random
import signal
import socket
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from backtests.datasets import load_dataset
from live.session.journal import JOURNAL_FILE, Journal
from tests.badinput import assert_bad_input
from tests.conftest import run_cli
from tests.sessions import (
    KEY,
    KEYS,
    REPLAY_BARS,
    SECRET,
    Outcome,
    Server,
    outcome,
    run_daemon,
    server_positions,
    start_daemon,
    start_server,
    wait_decided,
    write_config,
)

pytestmark = pytest.mark.slow  # every case runs a sim-server and a daemon session


@pytest.fixture(scope="module")
def baseline(daemon_setup, tmp_path_factory) -> Outcome:
    """An uninterrupted, fault-free run."""
    server = start_server(daemon_setup)
    try:
        tmp = tmp_path_factory.mktemp("baseline")
        run_daemon(write_config(daemon_setup, server, tmp / "paper.yaml"), tmp / "state")
        result = outcome(tmp / "state")
        assert server.get("/sim/status")["finished"]
        assert result.positions == server_positions(server)
        return result
    finally:
        server.stop()


def assert_same_run(run: Outcome, baseline: Outcome, server: Server) -> None:
    assert run.orders == baseline.orders
    assert abs(run.equity - baseline.equity) <= 1e-9 * abs(baseline.equity)
    assert set(run.decisions.values()) == {1}
    assert set(run.decisions) == set(baseline.decisions)
    assert server.get("/sim/status")["duplicate_submissions"] == 0
    assert run.positions == server_positions(server)


def test_baseline_decides_every_replayed_bar_once(baseline, daemon_setup):
    days = {d for d, _ in baseline.decisions}
    assert len(days) == REPLAY_BARS + 1
    assert len(baseline.orders) >= 20, "the planted signal should trade"
    truth = load_dataset(str(daemon_setup.csv))
    seen = baseline.bars.set_index(pd.to_datetime(baseline.bars["date"]))
    assert seen.index.is_unique
    expected = truth.loc[seen.index[0]:seen.index[-1], "close"]
    assert seen["close"].tolist() == expected.tolist()


def test_kill_9_at_ten_random_points_changes_nothing(daemon_setup, baseline, server_factory,
                                                    tmp_path):
    server = server_factory()
    config = write_config(daemon_setup, server, tmp_path / "paper.yaml")
    state = tmp_path / "state"
    rng = random.Random(20261126)
    for target in sorted(rng.sample(range(3, REPLAY_BARS - 5), 10)):
        proc = start_daemon(config, state)
        wait_decided(proc, state, target)
        time.sleep(rng.uniform(0.0, 0.03))  # land anywhere inside a bar's work
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    run_daemon(config, state)
    assert_same_run(outcome(state), baseline, server)
    everything = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())
    assert KEY.encode() not in everything and SECRET.encode() not in everything


def test_a_stream_dropped_every_50_bars_misses_and_doubles_nothing(daemon_setup, baseline,
                                                                   server_factory, tmp_path):
    server = server_factory("--drop-stream-every", "50")
    run_daemon(write_config(daemon_setup, server, tmp_path / "paper.yaml"), tmp_path / "state")
    run = outcome(tmp_path / "state")
    assert_same_run(run, baseline, server)
    assert run.bars["close"].tolist() == baseline.bars["close"].tolist()


def test_rest_failing_on_20_percent_of_calls_changes_nothing(daemon_setup, baseline, server_factory,
                                                             tmp_path):
    server = server_factory("--error-rate", "0.2", "--error-status", "429,500")
    run_daemon(write_config(daemon_setup, server, tmp_path / "paper.yaml"), tmp_path / "state")
    assert_same_run(outcome(tmp_path / "state"), baseline, server)


def test_sigterm_exits_0_with_a_consistent_journal_and_resumes(daemon_setup, baseline,
                                                               server_factory, tmp_path):
    server = server_factory()
    config = write_config(daemon_setup, server, tmp_path / "paper.yaml")
    state = tmp_path / "state"
    proc = start_daemon(config, state)
    wait_decided(proc, state, 120)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    stopped = outcome(state)
    assert 120 <= len(stopped.decisions) < REPLAY_BARS
    assert not [o for o in stopped.orders if o[3] == "intent"]
    status = json.loads((state / "status.json").read_text())
    assert status["state"] == "stopped"
    report = run_cli("paper", "status", "--state", str(state), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["last_bar"] == max(d for d, _ in stopped.decisions)
    run_daemon(config, state)
    assert_same_run(outcome(state), baseline, server)


def test_http_endpoint_serves_the_journal_latest_decision(daemon_setup, server_factory, tmp_path):
    server = server_factory()
    config = write_config(daemon_setup, server, tmp_path / "paper.yaml")
    state = tmp_path / "state"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = start_daemon(config, state, "--http", f"127.0.0.1:{port}")
    try:
        wait_decided(proc, state, 20)
        journal = Journal(state / JOURNAL_FILE, readonly=True)
        before = journal.last_decided()
        reply = requests.get(f"http://127.0.0.1:{port}/decision", params={"symbol": "AAA"},
                             timeout=10)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["date"] >= before
        row = journal.decision(body["date"], "AAA")
        journal.close()
        assert body["decision"] == row
        assert requests.post(f"http://127.0.0.1:{port}/decision", timeout=10).status_code == 405
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_daemon_bad_input_exits_2_with_one_line(daemon_setup, server_factory, tmp_path):
    server = server_factory()
    good = write_config(daemon_setup, server, tmp_path / "good.yaml")
    state = tmp_path / "state"

    def bad(config: Path, needle: str, *args: str, **extra_env: str) -> None:
        proc = run_cli("paper", "--config", str(config), "--state", str(state), *args,
                       cwd=tmp_path, env={**KEYS, **extra_env}, timeout=120)
        assert_bad_input(proc, needle, out=state)

    bad(write_config(daemon_setup, server, tmp_path / "k.yaml", leverage=3), "unknown key")
    bad(write_config(daemon_setup, server, tmp_path / "m.yaml", bundle=str(tmp_path / "gone")),
        "gone")
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for f in daemon_setup.bundle.iterdir():
        (tampered / f.name).write_bytes(f.read_bytes())
    victim = next(f for f in tampered.iterdir() if f.name != "manifest.json")
    victim.write_bytes(victim.read_bytes() + b" ")
    bad(write_config(daemon_setup, server, tmp_path / "t.yaml", bundle=str(tampered)),
        "sha256 does not match")
    # The resolved endpoint decides real money, not alpaca.paper (tests/test_paper_safety.py).
    live = yaml.safe_load(good.read_text())
    live["alpaca"]["trading_url"] = "https://api.alpaca.markets"
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(live))
    bad(tmp_path / "live.yaml", "ENSEMBLE_BT_ALLOW_LIVE")
    live["allow_live"] = True
    (tmp_path / "live.yaml").write_text(yaml.safe_dump(live))
    bad(tmp_path / "live.yaml", "ENSEMBLE_BT_ALLOW_LIVE")
    bad(good, "ENSEMBLE_BT_HTTP_TOKEN", "--http", "0.0.0.0:0")
    nokeys = run_cli("paper", "--config", str(good), "--state", str(state), cwd=tmp_path,
                     timeout=120)
    assert_bad_input(nokeys, "APCA_API_KEY_ID", out=state)
