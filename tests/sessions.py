"""Paper sessions as a user runs them: a ``sim-server`` subprocess, a ``paper`` daemon
subprocess against it, and what the session's journal holds afterwards.

Shared by tests/test_daemon.py, tests/test_paper_safety.py, tests/test_bad_input_paper.py and
tests/test_paper_portfolio.py, and, for :func:`paper_config` and :data:`REPLAY_FROM`, by the
in-process paper tests.  A pytest plugin of tests/conftest.py: its fixtures
(``daemon_setup``, ``portfolio_setup``, ``server_factory``) reach every test module without
an import.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml

from backtests.datasets import load_dataset
from backtests.synthetic import write_csv
from live.session.config import PaperConfig
from live.session.journal import JOURNAL_FILE, Journal
from tests.conftest import REPO, popen_cli

KEY, SECRET = "daemon-test-key-5b1f9e", "daemon-test-secret-c84d27aa"
KEYS = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
#: The first day a replay session trades, months after the replay bundle's training window.
REPLAY_FROM = "2005-06-01"
#: How many bars a daemon session replays after its start bar.
REPLAY_BARS = 300
#: How many bars a two-symbol daemon session (``portfolio_setup``) replays after its start.
PORTFOLIO_BARS = 70


def paper_config(bundle: Path, **alpaca) -> PaperConfig:
    """The in-process session config: long-only sizing, costs on, quick REST retries."""
    return PaperConfig.model_validate({
        "bundle": str(bundle), "horizon": 1, "commission": 0.0005, "slippage": 0.0005,
        "alpaca": {"rest_retry_wait": 0.01, **alpaca},
        "sizing": {"max_long": 0.95, "max_short": 0.0, "base_long_bias": 0.8,
                   "rebalance_band": 0.02, "margin_rate": 0.0, "short_borrow_rate": 0.0}})


def portfolio_config(bundle: Path, portfolio: dict, **alpaca) -> PaperConfig:
    """:func:`paper_config` with a ``portfolio:`` block."""
    raw = paper_config(bundle, **alpaca).model_dump(mode="json", exclude_unset=True)
    return PaperConfig.model_validate({**raw, "portfolio": portfolio})


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
    """The replay data, the day a daemon session starts, the bundle it trades, a scratch
    folder for server logs; ``more``: the other symbols' data, served beside ``csv``."""

    csv: Path
    start: str
    bundle: Path
    tmp: Path
    more: tuple[Path, ...] = ()


@pytest.fixture(scope="session")
def daemon_setup(replay_data, replay_bundle, tmp_path_factory) -> Setup:
    """The replay bundle, and a session start :data:`REPLAY_BARS` bars before the data ends."""
    start = load_dataset(str(replay_data["AAA"])).index[-REPLAY_BARS - 1].date().isoformat()
    return Setup(replay_data["AAA"], start, replay_bundle, tmp_path_factory.mktemp("daemon"))


@pytest.fixture(scope="session")
def portfolio_setup(replay_data, replay_bundle, tmp_path_factory) -> Setup:
    """``AAA`` and ``BBB`` cut :data:`PORTFOLIO_BARS` bars after :data:`REPLAY_FROM`: a
    two-symbol session of that many bars after its start bar, with the replay bundle."""
    folder = tmp_path_factory.mktemp("portfolio-daemon")
    cut = {}
    for symbol in ("AAA", "BBB"):
        bars = load_dataset(str(replay_data[symbol]))
        last = bars.index.searchsorted(pd.Timestamp(REPLAY_FROM)) + PORTFOLIO_BARS
        cut[symbol] = write_csv(bars.iloc[:last + 1], folder / f"{symbol}.csv")
    return Setup(cut["AAA"], REPLAY_FROM, replay_bundle, folder, more=(cut["BBB"],))


def start_server(setup: Setup, *faults: str) -> Server:
    log = open(setup.tmp / f"server_{time.monotonic_ns()}.log", "w")
    data = [arg for path in (setup.csv, *setup.more) for arg in ("--data", str(path))]
    proc = popen_cli(
        ["--log-level", "WARNING", "sim-server",
         *data, "--from", setup.start, "--port", "0",
         "--commission", "0.0005", "--slippage", "0.0005", *faults],
        stdout=subprocess.PIPE, stderr=log, text=True, env=KEYS, cwd=REPO)
    line = proc.stdout.readline()
    assert line.startswith("http://"), f"sim-server did not start: {line!r}"
    return Server(proc, line.split()[0])


@pytest.fixture
def server_factory(daemon_setup) -> Iterator[Callable[..., Server]]:
    """Start sim-servers with the given fault flags; each is stopped after the test."""
    servers: list[Server] = []

    def make(*faults: str) -> Server:
        servers.append(start_server(daemon_setup, *faults))
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
    log = open(state.parent / f"{state.name}_daemon.log", "a")
    return popen_cli(["paper", "--config", str(config), "--state", str(state), *args],
                     stdout=subprocess.DEVNULL, stderr=log, env={**KEYS, **extra_env},
                     cwd=REPO)


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
