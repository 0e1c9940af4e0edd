"""`ensemble-bt sim-server` as a command: serving the real client, resuming, bad input and
fault switches out of range."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from backtests.synthetic import random_walk, write_csv
from live.sim.faults import SimFaults
from tests.conftest import REPO, popen_cli, run_cli

KEY, SECRET = "cli-key", "cli-secret"
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory) -> Path:
    return write_csv(random_walk(n=30, seed=5), tmp_path_factory.mktemp("sim") / "walk.csv")


@contextmanager
def cli_server(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    proc = popen_cli(["sim-server", *args, "--port", "0"], cwd=REPO,
                     env={"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET},
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("http://127.0.0.1:"), proc.stderr.read()
        yield proc, line.split()[0]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_cli_sim_server_serves_the_real_client_and_exits_0_on_sigint(walk_csv):
    with cli_server("--data", str(walk_csv)) as (proc, url):
        account = TradingClient(KEY, SECRET, paper=True, url_override=url).get_account()

    assert float(account.cash) == 100_000.0
    assert proc.returncode == 0, proc.stderr.read()


@pytest.mark.slow
def test_cli_sim_server_resumes_from_its_state_directory(walk_csv, tmp_path):
    state = tmp_path / "state"
    with cli_server("--data", str(walk_csv), "--state", str(state)) as (_, url):
        requests.post(f"{url}/sim/advance", headers=HEADERS, timeout=5).raise_for_status()
        TradingClient(KEY, SECRET, paper=True, url_override=url).submit_order(
            MarketOrderRequest(symbol="WALK", qty=2, side=OrderSide.BUY,
                               time_in_force=TimeInForce.DAY))
    with cli_server("--data", str(walk_csv), "--state", str(state)) as (_, url):
        status = requests.get(f"{url}/sim/status", headers=HEADERS, timeout=5).json()
        orders = requests.get(f"{url}/v2/orders", headers=HEADERS, timeout=5).json()

    saved = json.loads((state / "sim_state.json").read_text())
    assert status["index"] == saved["index"] == 1
    assert [o["qty"] for o in orders] == ["2"]
    assert saved["orders"][0]["symbol"] == "WALK"


@pytest.mark.parametrize("args, needle", [
    (("--data", "NOPE"), "unknown dataset"),
    (("--data", "{csv}", "--from", "2030-01-01"), "--from"),
    (("--data", "{csv}", "--commission", "-0.1"), "--commission"),
    (("--data", "{csv}", "--error-rate", "2"), "--error-rate"),
    (("--data", "{csv}", "--error-status", "404"), "--error-status"),
    (("--data", "{csv}", "--drop-stream-after", "-1"), "--drop-stream-after"),
])
def test_cli_sim_server_bad_input_exits_2_with_one_line(walk_csv, args, needle):
    proc = run_cli("sim-server", *(a.format(csv=walk_csv) for a in args), "--port", "0",
                   cwd=REPO, timeout=60)

    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("ensemble-bt: error:"), proc.stderr
    assert needle in lines[0]


def test_cli_sim_server_refuses_a_port_in_use(walk_csv):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        proc = run_cli("sim-server", "--data", str(walk_csv), "--port",
                       str(taken.getsockname()[1]), cwd=REPO, timeout=60)

    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "--port" in lines[0]


def test_cli_sim_server_refuses_state_saved_with_other_data(walk_csv, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "sim_state.json").write_text(json.dumps({"version": 1, "symbols": ["WALK"],
                                                      "start": None, "data_sha256": "0" * 64}))

    proc = run_cli("sim-server", "--data", str(walk_csv), "--state", str(state), "--port", "0",
                   cwd=REPO, timeout=60)

    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "data_sha256" in lines[0] and "sim_state.json" in lines[0]


@pytest.mark.parametrize("field, value", [("drop_stream_after", -1), ("auth_delay", -0.5),
                                          ("error_rate", 1.5), ("error_status", 404),
                                          ("reject_every", 0)])
def test_fault_switches_refuse_values_out_of_range(field, value):
    with pytest.raises(ValueError, match=field):
        SimFaults(**{field: value})
