"""The crash-safe paper daemon, driven as a subprocess against the local Alpaca-protocol
server running in its own process: kill -9 and restart, flaky streams and REST, SIGTERM,
bad input, secrets, and the read-only HTTP endpoint."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from backtests.config import load_config
from backtests.datasets import load_dataset
from backtests.synthetic import ar1_returns, write_csv
from backtests.train import train_bundle
from live.session.journal import JOURNAL_FILE, Journal
from tests.test_cli import assert_bad_input, run_cli

KEY, SECRET = "daemon-test-key-5b1f9e", "daemon-test-secret-c84d27aa"
REPLAY_BARS = 300
ROOT = Path(__file__).resolve().parents[1]


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    return {**out, "APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET, **extra}


@dataclass
class Server:
    proc: subprocess.Popen
    url: str

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://")

    def get(self, path: str) -> object:
        reply = requests.get(f"{self.url}{path}", timeout=10, headers={
            "APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
        reply.raise_for_status()
        return reply.json()

    def stop(self) -> None:
        """SIGINT, as a user would; a server still closing sockets after 60 s is killed."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class Setup:
    csv: Path
    start: str
    bundle: Path
    tmp: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    tmp = tmp_path_factory.mktemp("daemon")
    csv = write_csv(ar1_returns(n=1800, seed=11), tmp / "AAA.csv")
    cfg = load_config(None, {"data": str(csv), "horizon": 1, "retrain_every": 252,
                             "end": "2004-12-31"})
    bundle = train_bundle(cfg, tmp / "bundle", progress=False)
    start = load_dataset(str(csv)).index[-REPLAY_BARS - 1].date().isoformat()
    return Setup(csv, start, bundle, tmp)


def start_server(setup: Setup, *faults: str) -> Server:
    log = open(setup.tmp / f"server_{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "ensemble_bt.cli", "--log-level", "WARNING", "sim-server",
         "--data", str(setup.csv), "--from", setup.start, "--port", "0",
         "--commission", "0.0005", "--slippage", "0.0005", *faults],
        stdout=subprocess.PIPE, stderr=log, text=True, env=env(), cwd=ROOT)
    line = proc.stdout.readline()
    assert line.startswith("http://"), f"sim-server did not start: {line!r}"
    return Server(proc, line.split()[0])


@pytest.fixture
def server_factory(setup) -> Iterator:
    servers: list[Server] = []

    def make(*faults: str) -> Server:
        servers.append(start_server(setup, *faults))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def write_config(setup: Setup, server: Server, path: Path, **extra: object) -> Path:
    cfg = {"symbols": ["AAA"], "bundle": str(setup.bundle), "horizon": 1,
           "commission": 0.0005, "slippage": 0.0005,
           "alpaca": {"sim": True, "trading_url": server.url, "data_url": server.url,
                      "data_stream_url": f"{server.ws}/v2/iex",
                      "trading_stream_url": f"{server.ws}/stream", "stream_bars": "bars",
                      "rest_retries": 10, "rest_retry_wait": 0.01},
           "sizing": {"max_long": 0.95, "max_short": 0.0, "base_long_bias": 0.8,
                      "rebalance_band": 0.02, "margin_rate": 0.0, "short_borrow_rate": 0.0},
           **extra}
    path.write_text(yaml.safe_dump(cfg))
    return path


def start_daemon(config: Path, state: Path, *args: str, **extra_env: str) -> subprocess.Popen:
    log = open(state.parent / f"{state.name}_daemon.log", "a")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "ensemble_bt.cli", "paper", "--config", str(config),
         "--state", str(state), *args], stdout=subprocess.DEVNULL, stderr=log,
        env=env(**extra_env), cwd=ROOT)


def run_daemon(config: Path, state: Path, *args: str) -> None:
    proc = start_daemon(config, state, *args)
    assert proc.wait(timeout=300) == 0, (state.parent / f"{state.name}_daemon.log").read_text()


def decided(state: Path) -> int:
    path = state / JOURNAL_FILE
    if not path.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT count(*) FROM equity").fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return 0


def wait_decided(proc: subprocess.Popen, state: Path, target: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while decided(state) < target:
        assert proc.poll() is None, "the daemon exited early"
        assert time.monotonic() < deadline, f"stuck below {target} decided bars"
        time.sleep(0.005)


@dataclass
class Outcome:
    orders: list[tuple]
    equity: float
    decisions: dict
    positions: dict
    bars: pd.DataFrame


def outcome(state: Path) -> Outcome:
    journal = Journal(state / JOURNAL_FILE, readonly=True)
    try:
        orders = [(o["client_order_id"], o["side"], o["qty"], o["status"], o["filled_qty"])
                  for o in journal.orders()]
        equity = journal.last_equity()["equity"]
        bars = journal.bars_frame()
        return Outcome(orders, equity, journal.decision_counts(), journal.positions(), bars)
    finally:
        journal.close()


def server_positions(server: Server) -> dict[str, float]:
    return {p["symbol"]: float(p["qty"]) for p in server.get("/v2/positions")}


@pytest.fixture(scope="module")
def baseline(setup, tmp_path_factory) -> Outcome:
    """An uninterrupted, fault-free run."""
    server = start_server(setup)
    try:
        tmp = tmp_path_factory.mktemp("baseline")
        run_daemon(write_config(setup, server, tmp / "paper.yaml"), tmp / "state")
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


def test_baseline_decides_every_replayed_bar_once(baseline, setup):
    days = {d for d, _ in baseline.decisions}
    assert len(days) == REPLAY_BARS + 1
    assert len(baseline.orders) >= 20, "the planted signal should trade"
    truth = load_dataset(str(setup.csv))
    seen = baseline.bars.set_index(pd.to_datetime(baseline.bars["date"]))
    assert seen.index.is_unique
    expected = truth.loc[seen.index[0]:seen.index[-1], "close"]
    assert seen["close"].tolist() == expected.tolist()


def test_kill_9_at_ten_random_points_changes_nothing(setup, baseline, server_factory,
                                                    tmp_path):
    server = server_factory()
    config = write_config(setup, server, tmp_path / "paper.yaml")
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


def test_a_stream_dropped_every_50_bars_misses_and_doubles_nothing(setup, baseline,
                                                                   server_factory, tmp_path):
    server = server_factory("--drop-stream-every", "50")
    run_daemon(write_config(setup, server, tmp_path / "paper.yaml"), tmp_path / "state")
    run = outcome(tmp_path / "state")
    assert_same_run(run, baseline, server)
    assert run.bars["close"].tolist() == baseline.bars["close"].tolist()


def test_rest_failing_on_20_percent_of_calls_changes_nothing(setup, baseline, server_factory,
                                                             tmp_path):
    server = server_factory("--error-rate", "0.2", "--error-status", "429,500")
    run_daemon(write_config(setup, server, tmp_path / "paper.yaml"), tmp_path / "state")
    assert_same_run(outcome(tmp_path / "state"), baseline, server)


def test_sigterm_exits_0_with_a_consistent_journal_and_resumes(setup, baseline,
                                                               server_factory, tmp_path):
    server = server_factory()
    config = write_config(setup, server, tmp_path / "paper.yaml")
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


def test_http_endpoint_serves_the_journal_latest_decision(setup, server_factory, tmp_path):
    server = server_factory()
    config = write_config(setup, server, tmp_path / "paper.yaml")
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


def test_daemon_bad_input_exits_2_with_one_line(setup, server_factory, tmp_path):
    server = server_factory()
    good = write_config(setup, server, tmp_path / "good.yaml")
    state = tmp_path / "state"

    def bad(config: Path, needle: str, *args: str, **extra_env: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "ensemble_bt.cli", "paper", "--config", str(config),
             "--state", str(state), *args], capture_output=True, text=True, timeout=120,
            env=env(**extra_env), cwd=tmp_path)
        assert_bad_input(proc, needle, out=state)

    bad(write_config(setup, server, tmp_path / "k.yaml", leverage=3), "unknown key")
    bad(write_config(setup, server, tmp_path / "m.yaml", bundle=str(tmp_path / "gone")),
        "gone")
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for f in setup.bundle.iterdir():
        (tampered / f.name).write_bytes(f.read_bytes())
    victim = next(f for f in tampered.iterdir() if f.name != "manifest.json")
    victim.write_bytes(victim.read_bytes() + b" ")
    bad(write_config(setup, server, tmp_path / "t.yaml", bundle=str(tampered)),
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
    nokeys = subprocess.run(
        [sys.executable, "-m", "ensemble_bt.cli", "paper", "--config", str(good), "--state",
         str(state)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("APCA_")})
    assert_bad_input(nokeys, "APCA_API_KEY_ID", out=state)
