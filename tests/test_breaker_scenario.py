"""The drawdown circuit breaker and the lag rule inside real backtrader runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtests.engine import run_strategy
from backtests.synthetic import ohlcv_from_returns
from models.signal import SeriesSignal
from sizing.config import SizingConfig
from sizing.rebalance import trim_tolerance


def rally_crash_recovery(seed: int = 0) -> pd.DataFrame:
    """300 bars of rally, a 45% crash over 40 bars, then a steep recovery."""
    rng = np.random.default_rng(seed)
    drift = np.concatenate([np.full(300, 0.002), np.full(40, math.log(0.55) / 40),
                            np.full(160, 0.01)])
    return ohlcv_from_returns(drift + rng.normal(0.0, 0.002, len(drift)), seed=seed)


@pytest.fixture(scope="module")
def crash_run():
    ohlcv = rally_crash_recovery()
    always_bullish = SeriesSignal(pd.Series(0.02, index=ohlcv.index), prior=0.55)
    analysis = run_strategy({"X": ohlcv}, {"X": always_bullish}, horizon=5,
                            trade_start=ohlcv.index[30].date(), sizing=SizingConfig(),
                            cash=100_000.0, commission=0.0005, slippage=0.0005)
    bars = pd.DataFrame(analysis["bars"], columns=["date", "equity", "weight", "prediction"])
    bars["drawdown"] = 1.0 - bars["equity"] / bars["equity"].cummax()
    decisions = pd.DataFrame(analysis["decisions"])
    bars = bars.iloc[30:].reset_index(drop=True)  # decisions start at the trade start
    return ohlcv.iloc[30:].reset_index(drop=True), bars, decisions, analysis


def test_breaker_trips_at_the_first_close_with_a_25_percent_drawdown(crash_run):
    _, bars, decisions, analysis = crash_run
    first_trip = int(np.argmax(bars["drawdown"].to_numpy() >= 0.25))
    assert bars["drawdown"].iloc[first_trip] >= 0.25 > bars["drawdown"].iloc[first_trip - 1]
    assert not decisions["breaker"].iloc[:first_trip].any()
    assert decisions["breaker"].iloc[first_trip]
    assert analysis["breaker_trips"] >= 1


def test_held_weight_stays_capped_from_the_next_bar_until_the_reset(crash_run):
    ohlcv, bars, decisions, _ = crash_run
    tripped = decisions["breaker"].to_numpy()
    first = int(np.argmax(tripped))
    reset = first + int(np.argmin(tripped[first:]))
    assert reset > first, "the recovery should release the breaker"
    assert bars["drawdown"].iloc[reset] <= 0.10 < bars["drawdown"].iloc[reset - 1]
    # Targets decided while tripped respect the cap exactly.
    assert (decisions["target_weight"].iloc[first:reset].abs() <= 0.60).all()
    # Held weights at each close from the next bar: the cap and its trim tolerance, plus one
    # bar's price drift between the decision close and this close, plus whole-share rounding.
    drift = (ohlcv["close"] / ohlcv["close"].shift(1)).clip(lower=1.0)
    held = bars["weight"].abs()
    window = slice(first + 1, reset + 1)
    ceiling = 0.60 + trim_tolerance(SizingConfig().rebalance_band, 0.60)
    assert (held.iloc[window] <= ceiling * drift.iloc[window] + 1e-3).all()
    # Before the crash the strategy was leveraged long, so the cap really bit.
    assert bars["weight"].iloc[first - 1] > 1.0


def test_exposure_returns_after_the_reset(crash_run):
    _, bars, decisions, _ = crash_run
    tripped = decisions["breaker"].to_numpy()
    reset = int(np.argmax(tripped)) + int(np.argmin(tripped[int(np.argmax(tripped)):]))
    assert bars["weight"].iloc[reset + 2:].max() > 1.0


def test_leverage_is_financed_at_the_margin_rate(crash_run):
    _, _, _, analysis = crash_run
    assert analysis["financing_costs"] > 0.0
    assert 1.3 <= analysis["max_gross_leverage"] <= 1.8 * 1.05


def _decisions(ohlcv: pd.DataFrame, pred: pd.Series) -> pd.DataFrame:
    analysis = run_strategy({"X": ohlcv}, {"X": SeriesSignal(pred, prior=0.55)}, horizon=5,
                            trade_start=ohlcv.index[30].date(), sizing=SizingConfig(),
                            cash=100_000.0, commission=0.0, slippage=0.0)
    return pd.DataFrame(analysis["decisions"]).set_index("date")


def test_changing_the_last_outcomes_never_changes_an_earlier_weight():
    # Arrange: predictions that mostly agree with the next returns, then rewrite the
    # outcomes of the last h = 5 bars (their closes) in a second copy of the data.
    rng = np.random.default_rng(9)
    returns = rng.normal(0.0, 0.01, 400)
    ohlcv = ohlcv_from_returns(returns, seed=9)
    pred = pd.Series(np.convolve(np.r_[returns, np.zeros(5)], np.ones(5), "valid")[1:],
                     index=ohlcv.index)
    altered = ohlcv.copy()
    altered.iloc[-5:, :4] *= 0.7
    # Act
    before, after = _decisions(ohlcv, pred), _decisions(altered, pred)
    # Assert: every weight decided before bar n-5 is identical; the altered closes did
    # change the track record once they resolved.
    cols = ["target_weight", "p_win", "payoff", "n_resolved"]
    pd.testing.assert_frame_equal(before.iloc[:-5][cols], after.iloc[:-5][cols])
    assert before["p_win"].iloc[-1] != after["p_win"].iloc[-1]
