"""The numba fast path against backtrader: same strategy, same bars, same numbers.

Backtrader (``backtests.engine.run_strategy``) is the reference.  Each case runs both engines
on the same bars and predictions and compares what the results directory records.
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
from backtests.fastpath import fast_inputs, run_fast
from backtests.synthetic import ar1_returns, noisy_foresight, ohlcv_from_returns, write_csv
from sizing.config import SizingConfig
from tests.conftest import run_cli

COSTS = (0.0, 0.0005, 0.0025)  # per side, as commission and as slippage each


@dataclass(frozen=True, eq=False)
class Case:
    """Bars, a horizon and sizing for one agreement check."""

    name: str
    horizon: int
    bars: pd.DataFrame = field(repr=False)
    sizing: SizingConfig = SizingConfig()
    noise: float = 3.0  # prediction noise in units of daily volatility


def crash_and_recovery(seed: int = 5) -> pd.DataFrame:
    """A rally, a 45% fall and a recovery: trips, halts and releases the breaker."""
    rng = np.random.default_rng(seed)
    drift = np.concatenate([np.full(250, 0.002), np.full(60, math.log(0.55) / 60),
                            np.full(250, 0.004)])
    return ohlcv_from_returns(drift + rng.normal(0.0, 0.01, len(drift)), seed=seed)


def steady_rally(seed: int = 3) -> pd.DataFrame:
    """1% a day: at 4x, unrealised gains run backtrader's cash below zero."""
    rng = np.random.default_rng(seed)
    return ohlcv_from_returns(0.01 + rng.normal(0.0, 0.002, 600), seed=seed)


DATASET_CASES = [
    Case("AAPL", 1, load_dataset("AAPL").loc["2000":"2004"]),
    Case("IBM", 5, load_dataset("IBM").loc["2004":"2008"]),
    Case("SP500", 1, load_dataset("SP500").loc["2006":"2010"]),
]
BREAKER_CASE = Case("crash", 5, crash_and_recovery(),
                    SizingConfig(drawdown_halt=0.28, vol_target=0.25), noise=2.0)
MARGIN_CASE = Case("rally-4x", 1, steady_rally(),
                   SizingConfig(max_long=4.0, base_long_bias=4.0, max_short=0.5), noise=0.05)


@dataclass(frozen=True)
class Pair:
    """Both engines' analyses of one case at one cost."""

    case: Case
    cost: float
    reference: dict
    fast: dict


def run_both(case: Case, cost: float) -> Pair:
    ohlcv, sizing = case.bars, case.sizing
    signal = noisy_foresight(ohlcv, case.horizon, case.noise)
    common = dict(horizon=case.horizon, trade_start=ohlcv.index[60].date(), sizing=sizing,
                  cash=100_000.0, commission=cost, slippage=cost)
    reference = run_strategy({"X": ohlcv}, {"X": signal}, **common)
    predictions, volatility, prior = fast_inputs(ohlcv, signal, sizing.vol_window)
    fast = run_fast(ohlcv, predictions, prior, volatility=volatility, symbol="X", **common)
    return Pair(case, cost, reference, fast)


def _id(param: tuple[Case, float]) -> str:
    return f"{param[0].name}-{param[1] * 1e4:g}bps"


@pytest.fixture(scope="module", ids=_id, params=[
    *[(case, cost) for case in DATASET_CASES for cost in COSTS],
    (BREAKER_CASE, 0.0005), (MARGIN_CASE, 0.0005)])
def pair(request) -> Pair:
    return run_both(*request.param)


def _column(analysis: dict, k: int) -> np.ndarray:
    return np.array([bar[k] for bar in analysis["bars"]])


def _orders(analysis: dict) -> list[tuple]:
    return [(o["date"], o["decided"], o["side"], o["size"], o["status"])
            for o in analysis["orders"]]


def test_final_equity_matches_within_a_millionth(pair):
    reference, fast = _column(pair.reference, 1), _column(pair.fast, 1)
    assert len(fast) == len(reference) == len(pair.case.bars)
    assert fast[-1] == pytest.approx(reference[-1], rel=1e-6, abs=0.0)
    np.testing.assert_allclose(fast, reference, rtol=1e-9, atol=0.0)


def test_the_same_orders_fill_on_the_same_dates_sides_and_sizes(pair):
    assert len(pair.reference["orders"]) > 50, "the case should trade"
    assert _orders(pair.fast) == _orders(pair.reference)


def test_daily_position_weights_match(pair):
    np.testing.assert_allclose(_column(pair.fast, 2), _column(pair.reference, 2),
                               rtol=0.0, atol=1e-9)


def test_fills_trades_decisions_and_costs_match(pair):
    reference, fast = pair.reference, pair.fast
    for key in ("orders", "trades"):
        pd.testing.assert_frame_equal(pd.DataFrame(fast[key]), pd.DataFrame(reference[key]),
                                      check_exact=False, rtol=1e-9, atol=1e-6)
    assert pd.DataFrame(fast["decisions"]).equals(pd.DataFrame(reference["decisions"]))
    assert fast["breaker_trips"] == reference["breaker_trips"]
    assert fast["financing_costs"] == pytest.approx(reference["financing_costs"], rel=1e-9)
    assert fast["max_gross_leverage"] == pytest.approx(reference["max_gross_leverage"],
                                                       rel=1e-9)


def test_each_case_exercises_what_it_is_there_for(pair):
    reference = pair.reference
    if pair.case is BREAKER_CASE:  # tripping at 25 bps is tested below
        assert pd.DataFrame(reference["decisions"])["drawdown"].max() > 0.2
    elif pair.case is MARGIN_CASE:
        assert any(o["status"] == "rejected" for o in reference["orders"])
    else:  # the dataset cases hold shorts and leverage, and pay financing
        weights = _column(reference, 2)
        assert (weights < 0).any() and (weights > 1).any()
        assert reference["financing_costs"] > 0


def test_the_crash_trips_and_halts_the_breaker_identically():
    pair = run_both(BREAKER_CASE, 0.0025)
    decisions = pd.DataFrame(pair.reference["decisions"])
    assert pair.reference["breaker_trips"] >= 1
    assert (decisions["drawdown"] >= 0.28).sum() > 20, "the halt threshold should be crossed"
    assert pd.DataFrame(pair.fast["decisions"]).equals(decisions)
    assert _orders(pair.fast) == _orders(pair.reference)


def test_buys_rejected_for_margin_are_rejected_identically():
    pair = run_both(MARGIN_CASE, 0.0)
    rejected = [o for o in _orders(pair.reference) if o[-1] == "rejected"]
    assert len(rejected) > 10
    assert _orders(pair.fast) == _orders(pair.reference)
    np.testing.assert_array_equal(_column(pair.fast, 1), _column(pair.reference, 1))


@pytest.mark.slow
def test_backtest_sim_fast_writes_the_summary_backtrader_writes(tmp_path):
    csv = write_csv(ar1_returns(n=1200), tmp_path / "ar1.csv")
    summaries = {}
    for sim in ("backtrader", "fast"):
        out = tmp_path / sim
        proc = run_cli("backtest", "--data", str(csv), "--horizon", "1", "--retrain-every",
                       "252", "--sim", sim, "--out", str(out), "--no-progress", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        folder = Path(proc.stdout.strip().splitlines()[-1])
        assert folder.parent == out
        summaries[sim] = json.loads((folder / "summary.json").read_text())
    reference, fast = summaries["backtrader"], summaries["fast"]
    assert list(fast) == list(reference)
    assert fast["n_trades"] > 50
    for key, want in reference.items():
        if key == "config_hash":  # the engine is part of the configuration
            continue
        if isinstance(want, float):
            assert fast[key] == pytest.approx(want, rel=1e-6, abs=1e-12), key
        else:
            assert fast[key] == want, key
