"""The full live path, offline: AlpacaStore/AlpacaData/AlpacaBroker with the unchanged
EnsembleStrategy against the local Alpaca-protocol server, and parity with the backtester."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from aiohttp import web

from backtests.datasets import load_dataset
from live.session.exports import load_session
from live.session.journal import JOURNAL_FILE, Journal
from live.session.paper import run_paper
from live.session.parity import run_parity
from live.session.retrain import RetrainConfig
from live.sim import server as sim_server
from live.sim.faults import SimFaults
from tests.badinput import assert_bad_input
from tests.conftest import run_cli
from tests.sessions import REPLAY_FROM, paper_config

pytestmark = pytest.mark.slow  # every case replays a session, or runs the command, for seconds


def replay(replay_data, replay_bundle, tmp_path, symbols=("AAA",), bars=40, **server) -> Path:
    cfg = paper_config(replay_bundle)
    return run_paper(cfg, replay=[str(replay_data[s]) for s in symbols],
                     replay_from=pd.Timestamp(REPLAY_FROM).date(), max_bars=bars,
                     state=tmp_path / "state", **server)


def assert_bars_exact(folder: Path, source: Path, symbol: str) -> pd.DataFrame:
    """The session saw every source bar from its history start on, once, unchanged."""
    session = load_session(folder)
    seen = session.bars[symbol]
    truth = load_dataset(str(source))[seen.columns]
    truth = truth.loc[seen.index[0]:seen.index[-1]]
    assert seen.index.is_unique and seen.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(seen, truth, check_exact=True, check_names=False,
                                  check_index_type=False,
                                  check_freq=False)
    return seen


def test_parity_over_250_replayed_bars(replay_data, replay_bundle, tmp_path):
    folder = replay(replay_data, replay_bundle, tmp_path, bars=260)
    session = load_session(folder)
    assert len(session.equity) == 261  # decided: the start bar plus 260 new ones
    assert session.meta["trade_start"] == REPLAY_FROM
    seen = assert_bars_exact(folder, replay_data["AAA"], "AAA")
    assert seen.index[-1] > pd.Timestamp(REPLAY_FROM) + pd.Timedelta(days=360)
    assert len(session.orders) >= 10, "the planted signal should trade"
    decided_last = session.orders["decided"] == seen.index[-1].date().isoformat()
    assert set(session.orders["status"][~decided_last]) == {"filled"}
    assert set(session.orders["status"][decided_last]) <= {"new"}  # the replay ended first
    report = run_parity(folder)
    assert report.identical, report.differences
    filled = int((session.orders["status"] == "filled").sum())
    assert report.paper_orders == report.backtest_orders == filled
    assert report.equity_rel_diff <= 1e-6
    assert session.orders["client_order_id"].str.match(r"^ens-AAA-\d{8}-1$").all()
    latency = pd.read_csv(folder / "latency.csv")
    assert len(latency) == 261 and (latency["latency_ms"] >= 0).all()


def test_two_symbols_with_partial_fills_count_each_fill_once(replay_data, replay_bundle,
                                                             tmp_path):
    folder = replay(replay_data, replay_bundle, tmp_path, symbols=("AAA", "BBB"), bars=60,
                    partial_fills=True)
    session = load_session(folder)
    assert set(session.bars) == {"AAA", "BBB"}
    assert_bars_exact(folder, replay_data["BBB"], "BBB")
    decisions = pd.read_csv(folder / "decisions.csv")
    assert decisions.groupby("date")["symbol"].nunique().eq(2).all()
    assert {"AAA", "BBB"} <= set(session.orders["symbol"])
    report = run_parity(folder)
    assert report.identical, report.differences


def test_a_dropped_stream_is_backfilled_with_no_missed_or_repeated_bar(replay_data,
                                                                       replay_bundle, tmp_path):
    folder = replay(replay_data, replay_bundle, tmp_path, bars=30,
                    faults=SimFaults(drop_stream_after=10))
    assert_bars_exact(folder, replay_data["AAA"], "AAA")
    assert len(load_session(folder).equity) == 31
    assert run_parity(folder).identical


def test_rate_limited_rest_is_retried_and_changes_nothing(replay_data, replay_bundle, tmp_path):
    folder = replay(replay_data, replay_bundle, tmp_path, bars=30,
                    faults=SimFaults(error_rate=0.3, error_status=429, seed=3))
    assert run_parity(folder).identical


def test_rejected_orders_break_parity_and_the_command_says_where(replay_data, replay_bundle,
                                                                 tmp_path):
    folder = replay(replay_data, replay_bundle, tmp_path, bars=60,
                    faults=SimFaults(reject_every=2))
    orders = load_session(folder).orders
    assert "rejected" in set(orders["status"])
    result = run_cli("parity", str(folder), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "parity: MISMATCH" in result.stdout
    assert "order " in result.stdout and "paper" in result.stdout


def test_paper_and_parity_commands_end_to_end(replay_data, replay_bundle, tmp_path):
    config = tmp_path / "paper.yaml"
    config.write_text(f"bundle: {replay_bundle}\nhorizon: 1\nalpaca:\n  rest_retry_wait: 0.01\n")
    result = run_cli("paper", "--config", str(config), "--replay", str(replay_data["AAA"]),
                     "--from", REPLAY_FROM, "--max-bars", "20", "--state", str(tmp_path / "s"),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert (folder / "session.json").is_file()
    parity = run_cli("parity", str(folder), cwd=tmp_path)
    assert parity.returncode == 0, parity.stdout + parity.stderr
    assert "parity: identical" in parity.stdout


def test_paper_bad_input_exits_2_with_one_line(replay_data, replay_bundle, tmp_path,
                                               monkeypatch):
    config = tmp_path / "paper.yaml"
    config.write_text(f"bundle: {replay_bundle}\nhorizon: 1\n")
    state = tmp_path / "s"
    replay_args = ["--replay", str(replay_data["AAA"]), "--state", str(state)]

    def bad(*args: str, needle: str) -> None:
        assert_bad_input(run_cli("paper", *args, cwd=tmp_path), needle, out=state)

    bad("--config", str(config), *replay_args, "--from", "2004-06-01", needle="training window")
    bad("--config", str(config), *replay_args, "--from", "2030-01-01", needle="2030-01-01")
    bad("--config", str(tmp_path / "nope.yaml"), *replay_args, needle="not found")
    (tmp_path / "bad.yaml").write_text(f"bundle: {replay_bundle}\nleverage: 3\n")
    bad("--config", str(tmp_path / "bad.yaml"), *replay_args, needle="unknown key")
    bad("--config", str(config), "--bundle", str(tmp_path / "missing"), *replay_args,
        needle="missing")
    bad("--config", str(config), "--replay", "NOSUCHDATA", needle="NOSUCHDATA")
    used = tmp_path / "used"
    used.mkdir()
    (used / "session.json").write_text("{}")
    assert_bad_input(run_cli("paper", "--config", str(config), "--replay",
                             str(replay_data["AAA"]), "--from", REPLAY_FROM, "--state",
                             str(used), cwd=tmp_path),
                     "holds no journal", out=state)
    bad("--config", str(config), "--max-bars", "0", *replay_args, needle="--max-bars")
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    bad("--config", str(config), needle="APCA_API_KEY_ID")
    assert_bad_input(run_cli("parity", str(tmp_path), cwd=tmp_path),
                     "not a paper-session directory", out=state)


def test_no_rest_call_per_bar_except_order_submission(replay_data, replay_bundle, tmp_path,
                                                      monkeypatch):
    calls: list[tuple[str, str]] = []

    @web.middleware
    async def count(request, handler):
        calls.append((request.method, request.path))
        return await handler(request)

    real_build = sim_server.build_app

    def counting_build(*args, **kwargs):
        app = real_build(*args, **kwargs)
        app.middlewares.insert(0, count)
        return app

    monkeypatch.setattr(sim_server, "build_app", counting_build)
    folder = replay(replay_data, replay_bundle, tmp_path, bars=40)
    rest = [c for c in calls if not c[1].startswith(("/sim/", "/stream", "/v2/iex"))]
    orders = [c for c in rest if c == ("POST", "/v2/orders")]
    assert len(orders) == len(load_session(folder).orders) > 0
    others = [c for c in rest if c not in orders]
    # clock, account, positions and open orders once; one history backfill per connection
    assert sorted({c[1] for c in others}) == ["/v2/account", "/v2/clock", "/v2/orders",
                                             "/v2/positions", "/v2/stocks/bars"]
    assert len(others) <= 10, others
    assert sum(1 for c in calls if c[1] == "/sim/advance") == 40


def test_scheduled_retraining_swaps_a_gated_bundle_in_and_parity_follows(replay_data,
                                                                        replay_bundle, tmp_path):
    train = tmp_path / "train.yaml"
    train.write_text("min_train: 400\nretrain_every: 100\n")
    cfg = paper_config(replay_bundle).model_copy(update={
        "history_days": 1000,
        "retrain": RetrainConfig(every_days=30, min_bars=300, config=str(train))})
    folder = run_paper(cfg, replay=[str(replay_data["AAA"])],
                       replay_from=pd.Timestamp(REPLAY_FROM).date(), max_bars=60,
                       state=tmp_path / "state")
    journal = Journal(folder / JOURNAL_FILE, readonly=True)
    try:
        bundles = journal.bundles()
        decisions = journal.decisions_frame()
    finally:
        journal.close()
    assert len(bundles) >= 2, "a retrain every 30 days, each swapped in for the next decision"
    starts = [b["predict_start"] for b in bundles]
    assert starts == sorted(starts)
    for b in bundles[1:]:
        assert Path(b["path"]).parent == folder.resolve() / "bundles"
    owner = [max(b["id"] for b in bundles if b["predict_start"] <= day)
             for day in decisions["date"]]
    assert decisions["bundle"].tolist() == owner
    assert (decisions["date"] >= starts[1]).sum() > 10
    report = run_parity(folder)
    assert report.identical, report.differences
