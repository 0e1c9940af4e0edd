"""The portfolio fast path against backtrader: one account, several symbols, same numbers.

Backtrader (``backtests.engine.run_strategy`` with ``allocations=`` and ``portfolio=``) is the
reference.  Each case runs both engines on the same bars and predictions and compares what the
results directory records: equity per bar, every order and fill, trades, decisions, costs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.datasets import load_dataset
from backtests.engine import run_strategy
from backtests.fastportfolio import run_fast_portfolio
from backtests.synthetic import noisy_foresight, ohlcv_from_returns, random_walk, write_csv
from backtests.synthetic_panel import reversal_panel
from backtests.universe import slices
from sizing.config import PortfolioConfig, SizingConfig
from tests.conftest import run_cli

BOKEH = ("AAPL", "MSFT", "IBM", "GOOG")  # GOOG starts in August 2004


@dataclass(frozen=True, eq=False)
class Case:
    """A universe, a horizon, sizing and a portfolio block for one agreement check."""

    name: str
    horizon: int
    frames: dict[str, pd.DataFrame] = field(repr=False)
    start: str
    portfolio: PortfolioConfig = PortfolioConfig()
    sizing: SizingConfig = SizingConfig()
    noise: float = 2.0
    cost: float = 0.0005


def bokeh() -> dict[str, pd.DataFrame]:
    return {s: load_dataset(s).loc["2003":"2008"] for s in BOKEH}


def gappy(seed: int = 3) -> dict[str, pd.DataFrame]:
    """Five symbols: one misses scattered sessions, one a block, one starts late."""
    frames = reversal_panel(n_symbols=5, n=700, seed=seed)
    rng = np.random.default_rng(seed)
    index = frames["S00"].index
    frames["S01"] = frames["S01"].drop(index[rng.choice(np.arange(60, 700), 30, replace=False)])
    frames["S03"] = frames["S03"].drop(index[400:406])
    frames["S04"] = frames["S04"].iloc[300:]
    return frames


def crash(n_symbols: int = 3, seed: int = 5) -> dict[str, pd.DataFrame]:
    """A common rally, a 45% fall and a recovery: trips, halts and releases the breaker."""
    rng = np.random.default_rng(seed)
    drift = np.concatenate([np.full(250, 0.002), np.full(60, math.log(0.55) / 60),
                            np.full(250, 0.004)])
    return {f"C{j}": ohlcv_from_returns(drift + rng.normal(0.0, 0.012, len(drift)), seed=j)
            for j in range(n_symbols)}


def rally(n_symbols: int = 3, seed: int = 3) -> dict[str, pd.DataFrame]:
    """1% a day: at 4x, unrealised gains run backtrader's cash below zero."""
    rng = np.random.default_rng(seed)
    return {f"R{j}": ohlcv_from_returns(0.01 + rng.normal(0.0, 0.002, 400), seed=seed + j)
            for j in range(n_symbols)}


TOPK = PortfolioConfig(mode="topk", k=2, dropout=1, max_gross=1.5)
CRASH_SIZING = SizingConfig(drawdown_halt=0.28, vol_target=0.25)
CASES = [
    Case("bokeh-allocations", 5, bokeh(), "2004-06-01",
         PortfolioConfig(allocations={"AAPL": 0.4, "MSFT": 0.3, "IBM": 0.2, "GOOG": 0.1})),
    Case("bokeh-topk", 5, bokeh(), "2004-06-01", TOPK),
    Case("gaps-allocations", 1, gappy(), "2000-08-01", PortfolioConfig(max_gross=2.0)),
    Case("gaps-topk-kelly", 5, gappy(), "2000-08-01",
         PortfolioConfig(mode="topk", k=3, dropout=1, weights="kelly", max_gross=1.2)),
    Case("crash-allocations", 5, crash(), "2000-03-27", sizing=SizingConfig(
        drawdown_circuit_breaker=0.10, drawdown_reset=0.05, drawdown_halt=0.12,
        vol_target=0.25)),
    Case("crash-topk", 5, crash(), "2000-03-27", PortfolioConfig(mode="topk", k=2, dropout=1),
         sizing=CRASH_SIZING, cost=0.0025),
    Case("rally-4x", 1, rally(), "2000-03-01",
         sizing=SizingConfig(max_long=4.0, base_long_bias=4.0, max_short=0.5), noise=0.05,
         cost=0.0),
]


@dataclass(frozen=True)
class Pair:
    """Both engines' analyses of one case."""

    case: Case
    reference: dict
    fast: dict


def run_both(case: Case) -> Pair:
    frames = case.frames
    signals = {s: noisy_foresight(f, case.horizon, case.noise, seed=j)
               for j, (s, f) in enumerate(frames.items())}
    common = dict(horizon=case.horizon, trade_start=pd.Timestamp(case.start).date(),
                  sizing=case.sizing, cash=100_000.0, commission=case.cost,
                  slippage=case.cost, allocations=slices(case.portfolio, list(frames)),
                  portfolio=case.portfolio)
    return Pair(case, run_strategy(frames, signals, **common),
                run_fast_portfolio(frames, signals, **common))


@pytest.fixture(scope="module", ids=lambda c: c.name, params=CASES)
def pair(request) -> Pair:
    return run_both(request.param)


def _column(analysis: dict, k: int) -> np.ndarray:
    return np.array([bar[k] for bar in analysis["bars"]], dtype=np.float64)


def _orders(analysis: dict) -> list[tuple]:
    return [(o["date"], o["decided"], o["symbol"], o["side"], o["size"], o["status"])
            for o in analysis["orders"]]


def test_equity_matches_backtrader_on_every_bar_within_a_millionth(pair):
    reference, fast = _column(pair.reference, 1), _column(pair.fast, 1)
    assert [b[0] for b in pair.fast["bars"]] == [b[0] for b in pair.reference["bars"]]
    np.testing.assert_allclose(fast, reference, rtol=1e-6, atol=0.0)


def test_the_same_orders_fill_in_the_same_order_dates_sides_and_sizes(pair):
    assert len(pair.reference["orders"]) > 50, "the case should trade"
    assert _orders(pair.fast) == _orders(pair.reference)


def test_weights_predictions_fills_trades_decisions_and_costs_match(pair):
    reference, fast = pair.reference, pair.fast
    np.testing.assert_allclose(_column(fast, 2), _column(reference, 2), rtol=0.0, atol=1e-9)
    np.testing.assert_array_equal(_column(fast, 3), _column(reference, 3))
    for key in ("orders", "trades"):
        pd.testing.assert_frame_equal(pd.DataFrame(fast[key]), pd.DataFrame(reference[key]),
                                      check_exact=False, rtol=1e-9, atol=1e-6)
    assert pd.DataFrame(fast["decisions"]).equals(pd.DataFrame(reference["decisions"]))
    assert fast["breaker_trips"] == reference["breaker_trips"]
    assert fast["financing_costs"] == pytest.approx(reference["financing_costs"], rel=1e-9)
    assert fast["max_gross_leverage"] == pytest.approx(reference["max_gross_leverage"],
                                                       rel=1e-9)


def _first_decision(analysis: dict) -> dict[str, pd.Timestamp]:
    frame = pd.DataFrame(analysis["decisions"])
    return frame.groupby("symbol")["date"].min().map(pd.Timestamp).to_dict()


def test_each_case_exercises_what_it_is_there_for(pair):
    case, reference = pair.case, pair.reference
    decisions = pd.DataFrame(reference["decisions"])
    symbols = set(pd.DataFrame(reference["orders"])["symbol"])
    assert symbols == set(case.frames), "every symbol should trade"
    if case.name.startswith("bokeh"):  # GOOG joins after the trade start
        assert _first_decision(reference)["GOOG"] == pd.Timestamp("2004-08-19")
    if case.name.startswith("gaps"):  # an order waits over the missing sessions
        union = sorted(set().union(*(f.index for f in case.frames.values())))
        position = {d.date().isoformat(): i for i, d in enumerate(union)}
        waited = [o for o in reference["orders"]
                  if position[o["date"]] - position[o["decided"]] > 1]
        assert "S01" in {o["symbol"] for o in waited}
        assert _first_decision(reference)["S04"] == case.frames["S04"].index[0]
    if case.name.startswith("crash"):
        assert reference["breaker_trips"] >= 1
        halt = case.sizing.drawdown_halt
        assert (decisions["drawdown"] >= halt).any(), "the halt threshold should be crossed"
    if case.portfolio.mode == "topk":
        held = decisions.pivot(index="date", columns="symbol", values="target_weight") > 0
        assert held.sum(axis=1).max() == case.portfolio.k
    if case.name == "rally-4x":
        assert sum(o["status"] == "rejected" for o in reference["orders"]) > 10


def test_a_symbol_listed_with_no_allocation_never_trades_on_either_engine():
    frames = crash()
    case = Case("zero-slice", 5, frames, "2000-03-27",
                PortfolioConfig(allocations={"C0": 0.7, "C1": 0.3, "C2": 0.0}))
    both = run_both(case)
    assert "C2" not in {o["symbol"] for o in both.reference["orders"]}
    assert _orders(both.fast) == _orders(both.reference)
    np.testing.assert_allclose(_column(both.fast, 1), _column(both.reference, 1), rtol=1e-6)


@pytest.mark.slow
def test_backtest_sim_fast_of_a_portfolio_writes_what_backtrader_writes(tmp_path):
    a, b, c = (random_walk(n=n, seed=s) for n, s in ((1000, 31), (1000, 32), (860, 33)))
    c.index = a.index[140:]
    b = b.drop(a.index[[700, 701]])
    csvs = [str(write_csv(f, tmp_path / f"{name}.csv")) for name, f in zip("ABC", (a, b, c),
                                                                           strict=True)]
    (tmp_path / "cfg.yaml").write_text("portfolio: {mode: topk, k: 2, dropout: 1, "
                                       "max_gross: 1.5}\n")
    folders = {}
    for sim in ("backtrader", "fast"):
        out = tmp_path / sim
        proc = run_cli("backtest", "--config", str(tmp_path / "cfg.yaml"), "--data",
                       ",".join(csvs), "--models", "xgb", "--retrain-every", "252", "--horizon",
                       "1", "--sim", sim, "--out", str(out), "--no-progress", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        folders[sim] = Path(proc.stdout.strip().splitlines()[-1])
        assert folders[sim].parent == out
    reference, fast = (json.loads((folders[s] / "summary.json").read_text())
                       for s in ("backtrader", "fast"))
    assert list(fast) == list(reference)
    assert fast["n_trades"] > 20
    for key, want in reference.items():
        if key == "config_hash":  # the engine is part of the configuration
            continue
        if isinstance(want, float):
            assert fast[key] == pytest.approx(want, rel=1e-6, abs=1e-12), key
        else:
            assert fast[key] == want, key
    for name in ("equity.csv", "orders.csv", "trades.csv", "decisions.csv", "weights.csv",
                 "symbols.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(folders["fast"] / name),
                                      pd.read_csv(folders["backtrader"] / name),
                                      check_exact=False, rtol=1e-6, atol=1e-9, obj=name)
