"""``ensemble-bt data fetch / update / list`` against the local server, as a user runs them.

The server is ``live.sim.server`` on 127.0.0.1 (real aiohttp, real alpaca-py clients in the
command); ``/sim/status`` counts the requests it answered by route.  The command runs
in-process through ``ensemble_bt.cli.main``, except where a process is killed or the whole
command line is the point (a backtest, ``sim-server --data store:...``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import requests
from loguru import logger

from backtests.datasets import load_dataset
from backtests.store import STORE_ENV, BarStore
from backtests.synthetic import random_walk, write_csv
from ensemble_bt import jsonio
from ensemble_bt.cli import main
from live.aiothread import RunningServer
from live.alpaca.history import AlpacaHistory, HistoryUnavailable, Retry, Session
from live.datastore import missing_sessions
from live.sim.appkeys import INJECTOR_KEY
from live.sim.faults import SimFaults
from live.sim.marketdata import SIP_VOLUME_MULTIPLE
from live.sim.server import build_app, serve
from tests.conftest import REPO, popen_cli, run_cli

KEY, SECRET = "store-test-key-91c2", "store-test-secret-4d7a0e"
KEYS = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
HEADERS = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
N, VISIBLE = 5200, 5100  # bars per symbol; bars the replay has shown (two symbols: > 10,000)


@dataclass
class Venue:
    server: RunningServer
    source: dict[str, pd.DataFrame]
    app: object

    def post(self, path: str, body: dict | None = None) -> dict:
        reply = requests.post(f"{self.server.url}{path}", json=body, headers=HEADERS, timeout=10)
        reply.raise_for_status()
        return reply.json()

    def status(self) -> dict:
        return requests.get(f"{self.server.url}/sim/status", headers=HEADERS, timeout=10).json()

    def bar_requests(self) -> int:
        return self.status()["requests"].get("GET /v2/stocks/bars", 0)

    def stop(self) -> None:
        # ensemble_bt.cli.main pointed loguru at this test's captured stderr, which is closed
        # by the time fixtures are torn down; the autouse fixture of conftest.py adds a sink
        # again after this.
        logger.remove()
        self.server.stop()


def start_venue(n: int = N, visible: int = VISIBLE, symbols: tuple[str, ...] = ("AAA", "BBB"),
                faults: SimFaults | None = None) -> Venue:
    source = {s: random_walk(n=n, seed=i + 1) for i, s in enumerate(symbols)}
    app = build_app(source, key_id=KEY, secret=SECRET, faults=faults,
                    start=source[symbols[0]].index[visible - 1].date())
    return Venue(serve(app), source, app)


@pytest.fixture
def venue() -> Iterator[Venue]:
    venue = start_venue()
    try:
        yield venue
    finally:
        venue.stop()


@pytest.fixture
def store(tmp_path, monkeypatch) -> BarStore:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    return BarStore(tmp_path / "store")


@pytest.fixture
def cli(capsys, venue, store) -> Callable[..., list[str]]:
    """Run ``ensemble-bt data ...`` in-process against ``venue``; its stdout lines."""

    def run(*args: str) -> list[str]:
        url = ("--data-url", venue.server.url) if args[0] in ("fetch", "update") else ()
        assert main(["--log-level", "WARNING", "data", *args, *url]) == 0
        return capsys.readouterr().out.splitlines()

    return run


def plain(bars: pd.DataFrame, price: float = 1.0, volume: float = 1.0) -> pd.DataFrame:
    """Bars as the store returns them (float64, ns dates), prices and volume scaled."""
    out = bars.astype("float64")
    out[["open", "high", "low", "close"]] *= price
    out["volume"] *= volume
    out.index = pd.DatetimeIndex(out.index.as_unit("ns"), name="date", freq=None)
    return out


def assert_stored(symbol: str, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(load_dataset(f"store:{symbol}"), expected, check_exact=True)


def index(store: BarStore) -> dict:
    return jsonio.loads(store.index_path.read_text())["symbols"]


# ------------------------------------------------------------------------------ fetch
def test_fetch_pages_two_symbols_then_lists_them(venue, store, cli):
    out = cli("fetch", "AAA", "bbb", "--start", "1999-01-01")

    last = venue.source["AAA"].index[VISIBLE - 1].date()
    assert out == [f"AAA: stored {VISIBLE} sessions 2000-01-03..{last} (iex, all)",
                   f"BBB: stored {VISIBLE} sessions 2000-01-03..{last} (iex, all)",
                   str(store.root)]
    assert venue.bar_requests() == 2  # 10,200 bars: two pages of at most 10,000
    assert venue.status()["bars_served"] == 2 * VISIBLE
    rows = cli("list")
    assert rows[0].split() == ["symbol", "first", "last", "rows", "feed", "adjustment",
                               "fetched", "at", "missing"]
    assert [r.split()[:6] for r in rows[1:]] == [
        [s, "2000-01-03", str(last), str(VISIBLE), "iex", "all"] for s in ("AAA", "BBB")]
    assert [r.split()[-1] for r in rows[1:]] == ["0", "0"]


def test_the_stored_bars_are_the_servers_source_bars_exactly(venue, store, cli):
    cli("fetch", "AAA", "BBB", "--start", "1999-01-01")

    for symbol, bars in venue.source.items():
        assert_stored(symbol, plain(bars.iloc[:VISIBLE]))
    entry = index(store)["AAA"]
    assert {k: entry[k] for k in ("source", "url", "feed", "adjustment", "start", "end")} == {
        "source": "alpaca", "url": venue.server.url, "feed": "iex", "adjustment": "all",
        "start": "1999-01-01", "end": str(venue.source["AAA"].index[VISIBLE - 1].date())}
    assert len(entry["sha256"]) == 64 and entry["updated_at"] is None


def test_a_date_range_and_the_sip_feed_are_what_is_stored(venue, store, cli):
    cli("fetch", "AAA", "--start", "2001-01-01", "--end", "2001-12-31", "--feed", "sip",
        "--adjustment", "raw")

    bars = venue.source["AAA"].loc["2001-01-01":"2001-12-31"]
    assert_stored("AAA", plain(bars, volume=SIP_VOLUME_MULTIPLE))
    assert (index(store)["AAA"]["feed"], index(store)["AAA"]["adjustment"]) == ("sip", "raw")


def test_datasets_lists_the_stored_symbols_under_the_embedded_ones(venue, cli, capsys):
    cli("fetch", "AAA", "--start", "2019-01-01")

    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shown = venue.source["AAA"].iloc[:VISIBLE].loc["2019-01-01":]
    assert lines[-1].split()[:4] == ["store:AAA", str(shown.index[0].date()),
                                     str(shown.index[-1].date()), str(len(shown))]
    assert lines[1].split()[0] == "AAPL"


# ----------------------------------------------------------------------------- update
def test_update_after_advances_asks_only_for_the_new_sessions(venue, store, cli):
    cli("fetch", "AAA", "BBB", "--start", "1999-01-01")
    fetched_at = index(store)["AAA"]["fetched_at"]
    requests_before, served_before = venue.bar_requests(), venue.status()["bars_served"]
    for _ in range(3):
        venue.post("/sim/advance")

    out = cli("update")

    days = venue.source["AAA"].index[VISIBLE:VISIBLE + 3]
    assert out[:2] == [f"{s}: +3 sessions ({days[0].date()}..{days[-1].date()})"
                       for s in ("AAA", "BBB")]
    assert venue.bar_requests() - requests_before == 1  # both symbols, one page
    assert venue.status()["bars_served"] - served_before == 2 * (1 + 3)  # overlap + new
    for symbol, bars in venue.source.items():
        assert_stored(symbol, plain(bars.iloc[:VISIBLE + 3]))
    entry = index(store)["AAA"]
    assert entry["fetched_at"] == fetched_at and entry["updated_at"] is not None
    assert entry["end"] == str(days[-1].date())
    assert cli("update")[:2] == [f"{s}: up to date (last session {days[-1].date()})"
                                 for s in ("AAA", "BBB")]


def test_a_split_makes_update_fetch_the_symbol_whole_again_and_say_so(venue, store, cli):
    cli("fetch", "AAA", "BBB", "--start", "1999-01-01")
    venue.post("/sim/adjust", {"symbol": "AAA", "split": 2})
    venue.post("/sim/advance")
    before = venue.bar_requests()

    out = cli("update", "AAA", "BBB")

    overlap = venue.source["AAA"].index[VISIBLE - 1].date()
    assert out[0] == (f"AAA: the stored bar of {overlap} differs from the source's now (a "
                      "split or dividend re-adjusted the history): fetched AAA whole again")
    assert out[1].startswith("BBB: +1 session ")
    assert venue.bar_requests() - before == 2  # the overlap of both, then AAA whole
    assert_stored("AAA", plain(venue.source["AAA"].iloc[:VISIBLE + 1], price=0.5, volume=2.0))
    assert_stored("BBB", plain(venue.source["BBB"].iloc[:VISIBLE + 1]))


def test_while_the_market_is_open_the_partial_bar_is_never_stored(venue, store, cli):
    venue.post("/sim/open")
    today = venue.source["AAA"].index[VISIBLE].date()

    cli("fetch", "AAA", "--start", "2019-01-01")
    assert index(store)["AAA"]["last"] < str(today)
    assert cli("update")[0].startswith("AAA: up to date")
    assert index(store)["AAA"]["last"] < str(today)

    venue.post("/sim/advance")  # the session closed
    assert cli("update")[0] == f"AAA: +1 session ({today}..{today})"
    assert_stored("AAA", plain(venue.source["AAA"].loc["2019-01-01":str(today)]))


def test_rate_limits_and_server_errors_are_retried_with_backoff(store, capsys):
    venue = start_venue(n=400, visible=300, symbols=("AAA", "BBB", "CCC"),
                        faults=SimFaults(error_rate=0.3, error_status=(429, 503), seed=4))
    try:
        assert main(["data", "fetch", "AAA", "BBB", "CCC", "--data-url", venue.server.url]) == 0
        injected = venue.app[INJECTOR_KEY]
    finally:
        venue.stop()

    assert injected.errors_injected > 0
    for symbol, bars in venue.source.items():
        assert_stored(symbol, plain(bars.iloc[:300]))


@pytest.mark.parametrize("status, waits", [(503, [0.25, 0.5, 1.0, 2.0, 4.0]),
                                           (429, [0.0] * 5)])  # 429 says Retry-After: 0
def test_a_source_that_keeps_failing_is_given_up_after_bounded_backoff(status, waits):
    venue = start_venue(n=50, visible=50, faults=SimFaults(error_rate=1.0, error_status=status))
    slept: list[float] = []
    history = AlpacaHistory(KEY, SECRET, data_url=venue.server.url, sleep=slept.append)
    try:
        with pytest.raises(HistoryUnavailable, match=f"clock: HTTP {status} .after 6 attempts"):
            history.now()
    finally:
        venue.stop()

    assert slept == waits
    assert Retry(max_wait=1.5).wait(5, None) == 1.5 and Retry().wait(1, 99.0) == 8.0


def test_keys_never_reach_the_store_the_index_or_the_logs(venue, store, capsys):
    assert main(["--log-level", "DEBUG", "data", "fetch", "AAA", "--start", "2019-01-01",
                 "--data-url", venue.server.url]) == 0
    venue.post("/sim/advance")
    assert main(["--log-level", "DEBUG", "data", "update", "--data-url", venue.server.url]) == 0
    captured = capsys.readouterr()

    assert "sim request GET /v2/stocks/bars" in captured.err  # the DEBUG log was on
    for text in (captured.out, captured.err):
        assert KEY not in text and SECRET not in text
    for path in store.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and SECRET.encode() not in data, path


def test_missing_sessions_are_reported_never_filled_in(tmp_path, capsys):
    bars = random_walk(n=10, seed=1).drop(index=pd.Timestamp("2000-01-06"))
    sessions = [Session(d.date(), pd.Timestamp(f"{d.date()} 16:00", tz="America/New_York"))
                for d in pd.bdate_range("2000-01-03", periods=12)]
    store = BarStore(tmp_path / "store")

    missing = missing_sessions(bars, sessions)
    with store.writing() as writer:
        writer.put("AAA", bars, source="alpaca", url="http://x", feed="iex", adjustment="all",
                   start=date(2000, 1, 1), end=date(2000, 1, 18), missing=missing,
                   fetched_at=pd.Timestamp("2026-01-05", tz="UTC"))
    assert main(["data", "list", "--store", str(store.root)]) == 0

    assert missing == (date(2000, 1, 6),)  # the sessions after the last bar are not missing
    assert len(load_dataset_from(store, "AAA")) == 9
    assert capsys.readouterr().out.splitlines()[1].split()[-1] == "1"


def load_dataset_from(store: BarStore, symbol: str) -> pd.DataFrame:
    return store.read(symbol)[0]


# ------------------------------------------------------------------ whole command lines
@pytest.mark.slow
def test_kill_9_during_a_fetch_leaves_a_readable_store(tmp_path, monkeypatch):
    symbols = tuple(f"S{i}" for i in range(8))
    venue = start_venue(n=3000, visible=3000, symbols=symbols)
    root = tmp_path / "store"
    args = ["data", "fetch", *symbols, "--data-url", venue.server.url, "--store", str(root)]
    try:
        assert run_cli(*args, cwd=tmp_path, env=KEYS).returncode == 0
        killed_mid_write = 0
        # Each fetch changes every file (the feeds differ in volume); it is killed once its
        # first new file appears, or a little later: somewhere in its write.
        for feed, delay in zip(("sip", "iex") * 3, (0.0, 0.0, 0.002, 0.002, 0.01, 0.01),
                               strict=True):
            before = set(os.listdir(root / "bars"))
            proc = popen_cli([*args, "--feed", feed], env=KEYS, cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while proc.poll() is None and set(os.listdir(root / "bars")) <= before:
                time.sleep(0.0005)
            time.sleep(delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                killed_mid_write += 1
            proc.wait(timeout=60)
            store = BarStore(root)
            feeds = {store.entry(s).feed for s in symbols}
            assert len(feeds) == 1  # one commit: every symbol old, or every one new
            for i, symbol in enumerate(symbols):
                volume = SIP_VOLUME_MULTIPLE if feeds == {"sip"} else 1.0
                pd.testing.assert_frame_equal(store.read(symbol)[0],
                                              plain(venue.source[symbol], volume=volume),
                                              check_exact=True, obj=f"{symbol} ({i})")
    finally:
        venue.stop()
    assert killed_mid_write > 0


@pytest.mark.slow
def test_backtest_on_stored_bars_equals_the_backtest_on_the_same_bars_from_a_csv(tmp_path):
    venue = start_venue(n=1600, visible=1600, symbols=("AAPL",))
    env = {**KEYS, STORE_ENV: str(tmp_path / "store")}
    try:
        fetched = run_cli("data", "fetch", "AAPL", "--data-url", venue.server.url,
                          cwd=tmp_path, env=env)
    finally:
        venue.stop()
    assert fetched.returncode == 0, fetched.stderr
    csv = write_csv(venue.source["AAPL"], tmp_path / "AAPL.csv")
    summaries = []
    for data in ("store:AAPL", str(csv)):
        proc = run_cli("backtest", "--data", data, "--start", "2005-01-03", "--retrain-every",
                       "250", "--models", "xgb", "--sim", "fast", "--out", str(tmp_path / "out"),
                       "--no-progress", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        summaries.append(jsonio.loads((Path(proc.stdout.splitlines()[-1]) /
                                       "summary.json").read_text()))

    stored, from_csv = ({k: v for k, v in s.items() if k != "config_hash"} for s in summaries)
    assert stored == from_csv  # config_hash differs: it hashes the --data text
    assert stored["symbol"] == "AAPL" and stored["n_trades"] > 0


def test_sim_server_replays_stored_symbols(venue, store, cli, tmp_path):
    cli("fetch", "AAA", "BBB", "--start", "2019-01-01")
    proc = popen_cli(["sim-server", "--data", "store:AAA,BBB", "--port", "0"], cwd=REPO,
                     env={**KEYS, STORE_ENV: str(store.root)}, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().split()[0]
        status = requests.get(f"{url}/sim/status", headers=HEADERS, timeout=10).json()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)

    assert status["symbols"] == ["AAA", "BBB"]
    assert status["day"] == "2019-01-01"
