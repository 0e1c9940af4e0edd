"""Paper trading a portfolio: the ``portfolio:`` block of a backtest, in the daemon.

Two-symbol sessions replayed on the local Alpaca-protocol server, in allocations mode and in
top-k mode, each replayed by ``parity`` through the backtester with the session's portfolio;
a top-k session stopped and killed midway, then resumed; the session facts, ``weights.csv``
and ``status.json`` weights; and the rules on resuming a session journaled before held
weights were measured over each symbol's slice.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest

from ensemble_bt.errors import ConfigurationError, DataError
from live.session.config import PaperConfig
from live.session.exports import load_session
from live.session.paper import run_paper
from live.session.parity import run_parity
from live.session.portfolio import check_weight_basis, session_portfolio, session_slices
from live.session.startup import check_resume
from tests.sessions import (
    PORTFOLIO_BARS,
    REPLAY_FROM,
    outcome,
    portfolio_config,
    run_daemon,
    server_positions,
    start_daemon,
    start_server,
    wait_decided,
    write_config,
)

#: Top-k with one symbol held: a cash account buys the new pick before the old one's sale
#: has settled, so the book may hold at most k / (k + dropout) of equity (less a gap margin).
TOPK = {"mode": "topk", "k": 1, "max_gross": 0.45}
ALLOCATIONS = {"allocations": {"AAA": 0.6, "BBB": 0.4}}


def replay_two(replay_data, replay_bundle, tmp_path, portfolio: dict, bars: int = 60) -> Path:
    cfg = portfolio_config(replay_bundle, portfolio)
    return run_paper(cfg, replay=[str(replay_data["AAA"]), str(replay_data["BBB"])],
                     replay_from=pd.Timestamp(REPLAY_FROM).date(), max_bars=bars,
                     state=tmp_path / "state")


def filled(folder: Path) -> pd.DataFrame:
    orders = load_session(folder).orders
    return orders[orders["status"] == "filled"]


@pytest.mark.slow
def test_two_symbols_in_allocations_mode_replay_identically(replay_data, replay_bundle,
                                                            tmp_path):
    folder = replay_two(replay_data, replay_bundle, tmp_path, ALLOCATIONS)

    meta = load_session(folder).meta
    assert meta["portfolio"] == ALLOCATIONS and meta["allocations"] == ALLOCATIONS["allocations"]
    assert meta["weight_basis"] == "slice"
    assert session_slices(meta) == {"AAA": 0.6, "BBB": 0.4}
    assert {"AAA", "BBB"} <= set(filled(folder)["symbol"])
    report = run_parity(folder)
    assert report.identical, report.differences
    assert report.paper_orders == report.backtest_orders > 0


@pytest.mark.slow
def test_exports_and_status_show_each_symbols_slice_and_account_weights(replay_data,
                                                                        replay_bundle, tmp_path):
    folder = replay_two(replay_data, replay_bundle, tmp_path, ALLOCATIONS, bars=15)

    decisions = pd.read_csv(folder / "decisions.csv")
    weights = pd.read_csv(folder / "weights.csv")
    share = decisions["symbol"].map({"AAA": 0.6, "BBB": 0.4})
    assert weights[["date", "symbol"]].equals(decisions[["date", "symbol"]])
    assert (weights["held_weight"] == decisions["held_weight"] * share).all()
    assert (weights["target_weight"] == decisions["target_weight"] * share).all()
    status = json.loads((folder / "status.json").read_text())
    last = decisions[decisions["date"] == decisions["date"].max()].set_index("symbol")
    for symbol in ("AAA", "BBB"):
        shown = status["weights"][symbol]
        assert shown["date"] == last.loc[symbol, "date"]
        assert shown["slice"] == share[decisions["symbol"] == symbol].iloc[0]
        assert shown["target_weight"] == last.loc[symbol, "target_weight"]
        assert shown["account_held_weight"] == last.loc[symbol, "held_weight"] * shown["slice"]
    assert json.loads((folder / "session.json").read_text())["slices"] == {"AAA": 0.6,
                                                                          "BBB": 0.4}


@pytest.mark.slow
def test_two_symbols_in_topk_mode_hold_one_at_a_time_and_replay_identically(replay_data,
                                                                           replay_bundle,
                                                                           tmp_path):
    folder = replay_two(replay_data, replay_bundle, tmp_path, TOPK)

    meta = load_session(folder).meta
    assert session_portfolio(meta).model_dump(exclude_defaults=True) == TOPK
    assert session_slices(meta) == {"AAA": 1.0, "BBB": 1.0}
    buys = filled(folder)
    assert {"AAA", "BBB"} <= set(buys[buys["side"] == "buy"]["symbol"]), "the pick should swap"
    decisions = pd.read_csv(folder / "decisions.csv")
    held = decisions[decisions["target_weight"] > 0].groupby("date")["symbol"].nunique()
    assert held.le(1).all()
    report = run_parity(folder)
    assert report.identical, report.differences
    assert report.paper_orders == report.backtest_orders > 0


@pytest.mark.slow
def test_a_topk_session_stopped_and_killed_midway_decides_every_bar_once(portfolio_setup,
                                                                       tmp_path):
    server = start_server(portfolio_setup)
    try:
        config = write_config(portfolio_setup, server, tmp_path / "paper.yaml",
                              symbols=["AAA", "BBB"], portfolio=TOPK)
        state = tmp_path / "state"
        run_daemon(config, state, "--max-bars", "20")
        proc = start_daemon(config, state)
        wait_decided(proc, state, 40)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        run_daemon(config, state)

        run = outcome(state)
        assert server.get("/sim/status")["finished"]
        assert server.get("/sim/status")["duplicate_submissions"] == 0
        assert run.positions == server_positions(server)
    finally:
        server.stop()
    assert set(run.decisions.values()) == {1}
    assert len({day for day, _ in run.decisions}) == PORTFOLIO_BARS + 1
    assert {symbol for _, symbol in run.decisions} == {"AAA", "BBB"}
    report = run_parity(state)
    assert report.identical, report.differences
    assert report.backtest_orders > 0


# ------------------------------------------------------- resuming and held weights
def session_facts(**changes: object) -> dict:
    facts = {"symbols": ["AAA", "BBB"], "strategy_id": "ens", "horizon": 1,
             "allocations": None, "portfolio": {}, "weight_basis": "slice"}
    return {**facts, **changes}


def config(**changes: object) -> PaperConfig:
    return PaperConfig.model_validate({"bundle": "b", "symbols": ["AAA", "BBB"], "horizon": 1,
                                       **changes})


def test_resume_with_the_same_portfolio_passes():
    check_resume(session_facts(portfolio=TOPK), config(portfolio=TOPK), Path("j"))


def test_resume_with_another_portfolio_is_refused():
    with pytest.raises(ConfigurationError, match=r"^the config.s portfolio .* differs from"):
        check_resume(session_facts(portfolio=TOPK), config(), Path("j"))


def test_top_level_allocations_resume_a_session_of_the_same_portfolio_allocations():
    alloc = {"AAA": 0.6, "BBB": 0.4}
    check_resume(session_facts(allocations=alloc, portfolio={"allocations": alloc}),
                 config(allocations=alloc), Path("j"))


def test_an_older_session_of_one_whole_slice_resumes_unchanged():
    older = session_facts(symbols=["AAA"])
    del older["portfolio"], older["weight_basis"]
    check_resume(older, config(symbols=["AAA"]), Path("j"))
    check_weight_basis(older, Path("j"), "replay")


def test_an_older_session_of_several_slices_is_refused():
    older = session_facts()
    del older["portfolio"], older["weight_basis"]
    with pytest.raises(DataError, match="over the whole account.*cannot resume"):
        check_resume(older, config(), Path("j"))
