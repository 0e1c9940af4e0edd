"""Money and state: the endpoint decides real money, one daemon per state directory, and a
failed start changes nothing.

Pure parts (endpoint resolution, the lock, the journal's refusal of foreign files, the session
check) are tested in process; the lock and the real-money refusal also through the real
``ensemble-bt`` console script, against a real ``ensemble-bt sim-server`` subprocess.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from ensemble_bt.errors import ConfigurationError, DataError
from live.alpaca.endpoints import AlpacaEndpoints, endpoint_kind, shown_url
from live.session.config import LIVE_ENV, PaperConfig, check_live
from live.session.exports import check_session
from live.session.journal import JOURNAL_FILE, SCHEMA_VERSION, Journal
from live.session.lock import LOCK_FILE, claim_state, probe_lock
from live.session.startup import state_session
from tests.badinput import assert_refused
from tests.sessions import (
    KEYS,
    decided,
    outcome,
    run_daemon,
    server_positions,
    start_daemon,
    wait_decided,
    write_config,
)


# ------------------------------------------------------------------ endpoint rule
@pytest.mark.parametrize(("url", "sim", "kind"), [
    ("https://paper-api.alpaca.markets", False, "paper"),
    ("https://paper-api.alpaca.markets/", False, "paper"),
    ("HTTPS://PAPER-API.ALPACA.MARKETS", False, "paper"),
    ("https://paper-api.alpaca.markets:443", False, "paper"),
    ("https://paper-api.alpaca.markets.", False, "paper"),  # the same host, fully qualified
    ("http://paper-api.alpaca.markets", False, "live"),  # paper counts over https only
    ("https://api.alpaca.markets", False, "live"),
    ("https://api.alpaca.markets/", False, "live"),
    ("https://API.ALPACA.MARKETS", False, "live"),
    ("https://api.alpaca.markets:443/", False, "live"),
    ("https://user@api.alpaca.markets", False, "live"),
    ("https://paper-api.alpaca.markets@api.alpaca.markets", False, "live"),
    ("https://api.alpaca.markets?@paper-api.alpaca.markets", False, "live"),
    ("https://api.alpaca.markets\\@paper-api.alpaca.markets", False, "live"),
    ("https://paper-api.alpaca.markets.evil.com", False, "live"),
    ("https://paper-api.alpaca.markets.evil.com", True, "sim"),
    ("https://p\u0430per-api.alpaca.markets", False, "live"),  # a Cyrillic "a"
    (" https://paper-api.alpaca.markets", False, "live"),
    ("https://x:99999", True, "live"),  # a port parsers cannot agree on
    ("https://broker-api.alpaca.markets", False, "live"),
    ("https://alpaca.markets", False, "live"),
    ("http://127.0.0.1:8765", False, "loopback"),
    ("http://127.3.2.1", False, "loopback"),
    ("http://localhost:8765/", False, "loopback"),
    ("http://LOCALHOST:8765", False, "loopback"),
    ("http://[::1]:8765", False, "loopback"),
    ("http://[::ffff:127.0.0.1]:8765", False, "loopback"),
    ("http://10.0.0.5:8765", False, "live"),
    ("http://10.0.0.5:8765", True, "sim"),
    ("http://sim.lan:8765", True, "sim"),
    ("https://api.alpaca.markets", True, "live"),  # sim: true cannot make Alpaca's live API sim
    ("https://data.sandbox.alpaca.markets", True, "live"),
    ("https://api.alpaca.markets.", True, "live"),
])
def test_endpoint_kind_decides_by_the_resolved_host(url, sim, kind):
    assert endpoint_kind(url, sim=sim) == kind


@pytest.mark.parametrize(("url", "kind"), [
    ("wss://paper-api.alpaca.markets/stream", "paper"),
    ("ws://paper-api.alpaca.markets/stream", "live"),
    ("wss://api.alpaca.markets/stream", "live"),
    ("ws://127.0.0.1:8765/stream", "loopback"),
])
def test_a_stream_is_paper_only_over_wss(url, kind):
    assert endpoint_kind(url, secure_scheme="wss") == kind


def endpoints(**alpaca) -> AlpacaEndpoints:
    return AlpacaEndpoints.model_validate(alpaca)


def test_null_urls_resolve_as_alpaca_py_does():
    paper_rest, paper_stream = endpoints().trading_endpoints()
    live_rest, live_stream = endpoints(paper=False).trading_endpoints()

    assert (paper_rest.url, paper_rest.kind) == ("https://paper-api.alpaca.markets", "paper")
    assert (paper_stream.url, paper_stream.kind) == ("wss://paper-api.alpaca.markets/stream",
                                                     "paper")
    assert (live_rest.url, live_rest.kind) == ("https://api.alpaca.markets", "live")
    assert (live_stream.url, live_stream.kind) == ("wss://api.alpaca.markets/stream", "live")


def test_an_empty_url_means_null_as_in_alpaca_py():
    rest, _ = endpoints(trading_url="").trading_endpoints()
    assert rest.url == "https://paper-api.alpaca.markets"


def test_a_url_with_the_wrong_scheme_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="alpaca.trading_stream_url"):
        endpoints(trading_stream_url="https://paper-api.alpaca.markets/stream"
                  ).trading_endpoints()


def paper_cfg(allow_live: bool = False, **alpaca) -> PaperConfig:
    return PaperConfig.model_validate({"bundle": "b", "allow_live": allow_live,
                                       "alpaca": alpaca})


def test_paper_true_with_the_live_url_is_refused_naming_it():
    cfg = paper_cfg(paper=True, trading_url="https://api.alpaca.markets")
    with pytest.raises(ConfigurationError, match=r"https://api\.alpaca\.markets.*live-money"):
        check_live(cfg, environ={})


@pytest.mark.parametrize(("allow_live", "environ", "refused"), [
    (False, {}, True),
    (True, {}, True),
    (False, {LIVE_ENV: "1"}, True),
    (True, {LIVE_ENV: "true"}, True),
    (True, {LIVE_ENV: "1"}, False),
])
def test_live_needs_both_opt_ins(allow_live, environ, refused):
    cfg = paper_cfg(allow_live, paper=False)
    if refused:
        with pytest.raises(ConfigurationError, match=LIVE_ENV):
            check_live(cfg, environ=environ)
    else:
        check_live(cfg, environ=environ)


def test_paper_false_on_loopback_urls_is_not_live():
    cfg = paper_cfg(paper=False, trading_url="http://127.0.0.1:8765",
                    trading_stream_url="ws://127.0.0.1:8765/stream")
    check_live(cfg, environ={})


def test_a_live_trading_stream_alone_makes_the_session_live():
    cfg = paper_cfg(paper=False, trading_url="http://127.0.0.1:8765")
    with pytest.raises(ConfigurationError, match="alpaca.trading_stream_url"):
        check_live(cfg, environ={})


def test_sim_true_on_alpacas_live_host_is_still_live():
    cfg = paper_cfg(sim=True, trading_url="https://api.alpaca.markets",
                    trading_stream_url="ws://127.0.0.1:1/stream")
    with pytest.raises(ConfigurationError, match="live-money"):
        check_live(cfg, environ={})


def test_credentials_in_a_url_are_masked_in_messages():
    cfg = paper_cfg(trading_url="https://me:hunter2@api.alpaca.markets")
    with pytest.raises(ConfigurationError) as refusal:
        check_live(cfg, environ={})
    assert "hunter2" not in str(refusal.value)
    assert shown_url("https://me:pw@h.example/x") == "https://***@h.example/x"


def live_config(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "live.yaml"
    lines = [f"bundle: {tmp_path / 'no-bundle'}",
             "alpaca: {paper: true, trading_url: 'https://api.alpaca.markets'}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("allow_live", "environ"), [
    (False, {}), (True, {}), (False, {LIVE_ENV: "1"})])
def test_real_money_is_refused_before_any_connection(tmp_path, allow_live, environ):
    config = live_config(tmp_path, allow_live=str(allow_live).lower())
    line = assert_refused(["paper", "--config", str(config), "--state", "s"], tmp_path,
                          "alpaca.trading_url", "https://api.alpaca.markets", LIVE_ENV,
                          env={**KEYS, **environ})
    assert "live-money" in line


@pytest.mark.slow
def test_both_opt_ins_pass_the_live_check(tmp_path):
    config = live_config(tmp_path, allow_live="true")
    # The next check (the bundle) refuses: the live check passed without any connection.
    line = assert_refused(["paper", "--config", str(config), "--state", "s"], tmp_path,
                          "no-bundle", env={**KEYS, LIVE_ENV: "1"})
    assert "live-money" not in line


# ------------------------------------------------------------------------ the lock
def test_a_claim_writes_its_pid_and_a_second_claim_is_refused(tmp_path):
    folder = tmp_path / "state"
    with claim_state(folder) as claim:
        claim.commit()
        assert (folder / LOCK_FILE).read_text() == f"{os.getpid()}\n"
        with pytest.raises(ConfigurationError, match=f"in use by pid {os.getpid()}"):
            probe_lock(folder)
        with pytest.raises(ConfigurationError, match=f"in use by pid {os.getpid()}"), \
                claim_state(folder):
            pass
    probe_lock(folder)  # released with the claim
    with claim_state(folder) as again:
        again.commit()


def test_a_failed_claim_removes_the_directories_it_created(tmp_path):
    with pytest.raises(RuntimeError), claim_state(tmp_path / "a" / "b" / "state"):
        raise RuntimeError("keys refused")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_claim_gives_an_existing_lock_file_its_bytes_back(tmp_path):
    (tmp_path / LOCK_FILE).write_bytes(b"12345\n")
    with pytest.raises(RuntimeError), claim_state(tmp_path):
        raise RuntimeError("keys refused")
    assert (tmp_path / LOCK_FILE).read_bytes() == b"12345\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]


def test_a_directory_holding_only_a_stale_lock_starts_a_new_session(tmp_path):
    (tmp_path / LOCK_FILE).write_text("999999\n")
    probe_lock(tmp_path)
    assert state_session(tmp_path) is None


# --------------------------------------------------------------------- the journal
def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_sqlite(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.commit()
    db.close()
    return path


@pytest.mark.parametrize("readonly", [False, True])
def test_a_foreign_sqlite_file_is_refused_unmodified(tmp_path, readonly):
    path = foreign_sqlite(tmp_path / JOURNAL_FILE)
    before = sha(path)
    with pytest.raises(DataError, match="not an ensemble-bt journal"):
        Journal(path, readonly=readonly)
    assert sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_FILE]


@pytest.mark.parametrize("readonly", [False, True])
def test_random_bytes_are_refused_unmodified(tmp_path, readonly):
    path = tmp_path / JOURNAL_FILE
    path.write_bytes(os.urandom(8192))
    before = sha(path)
    with pytest.raises(DataError, match="not a SQLite database"):
        Journal(path, readonly=readonly)
    assert sha(path) == before


def test_another_schema_version_is_refused_read_only(tmp_path):
    path = tmp_path / JOURNAL_FILE
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    before = sha(path)
    for readonly in (True, False):
        with pytest.raises(DataError, match=f"schema 99, this version reads {SCHEMA_VERSION}"):
            Journal(path, readonly=readonly)
    assert sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_FILE]


def test_reading_a_stopped_journal_leaves_no_wal_files(tmp_path):
    path = tmp_path / JOURNAL_FILE
    journal = Journal(path)
    journal.set_meta("probe", 1)
    journal.close()
    reader = Journal(path, readonly=True)
    assert reader.get_meta("probe") == 1
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [JOURNAL_FILE]


def test_a_journal_without_a_session_starts_a_new_session(tmp_path):
    Journal(tmp_path / JOURNAL_FILE).close()  # a start killed before writing its session
    assert state_session(tmp_path) is None


def session_meta(**changes) -> dict:
    meta = {"symbols": ["AAA"], "strategy_id": "ens", "horizon": 1,
            "trade_start": "2005-06-01", "history_start": "2004-04-27", "commission": 0.0,
            "slippage": 0.0, "allocations": None, "sizing": {"max_long": 1.5},
            "initial_cash": 100000.0, "initial_positions": {}, "replay": True}
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not ...}


def test_a_complete_session_passes_the_check():
    meta = session_meta()
    assert check_session(meta, Path("j")) is meta


@pytest.mark.parametrize(("changes", "needle"), [
    ({"trade_start": ...}, "'trade_start' is missing"),
    ({"sizing": {"max_long": 1.5, "bogus": 1}}, "'sizing.bogus' is invalid"),
    ({"horizon": 0}, "'horizon' is invalid"),
    ({"initial_cash": float("nan")}, "'initial_cash' is invalid"),
])
def test_an_incomplete_session_is_a_data_error_naming_the_key(changes, needle):
    with pytest.raises(DataError, match=needle):
        check_session(session_meta(**changes), Path("j"))


def test_no_session_at_all_is_a_data_error():
    with pytest.raises(DataError, match="holds no session"):
        check_session(None, Path("j"))


# ------------------------------------------------------- one daemon per directory
@pytest.mark.slow
def test_a_second_daemon_is_refused_and_a_restart_after_kill_9_resumes(
        daemon_setup, server_factory, tmp_path):
    server = server_factory()
    config = write_config(daemon_setup, server, tmp_path / "paper.yaml")
    state = tmp_path / "state"
    first = start_daemon(config, state)
    try:
        wait_decided(first, state, 5)
        first.send_signal(signal.SIGSTOP)  # frozen holding the lock: nothing moves meanwhile
        (tmp_path / "elsewhere").mkdir()
        assert_refused(["paper", "--config", str(config), "--state", str(state)],
                       tmp_path / "elsewhere", "state directory in use by pid",
                       f"pid {first.pid}", env=KEYS, watch=state)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = decided(state)
    run_daemon(config, state, "--max-bars", "5")
    run = outcome(state)
    assert decided(state) > killed_at
    assert set(run.decisions.values()) == {1}
    assert server.get("/sim/status")["duplicate_submissions"] == 0
    assert run.positions == server_positions(server)
