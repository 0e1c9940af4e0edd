"""EnsemblePredictor and EnsembleStrategy inside real backtrader runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtests.config import load_config
from backtests.engine import run_strategy
from backtests.plan import Period, train_vintages
from backtests.synthetic import ar1_returns, random_walk
from models.signal import SeriesSignal, Signal, VintageSignal
from sizing.config import SizingConfig
from tests.capture import capture


@pytest.mark.slow
def test_vectorised_and_bar_by_bar_predictions_are_identical():
    # Arrange: real vintages over 1,000 bars.
    ohlcv = ar1_returns(n=1000, seed=5)
    cfg = load_config(None, {"data": "synthetic", "horizon": 1, "retrain_every": 100})
    vintages = train_vintages(ohlcv, Period(550, 999), cfg, progress=False)
    signal = VintageSignal(vintages)
    # Act
    batch = capture(ohlcv, signal, runonce=True)
    stream = capture(ohlcv, signal, runonce=False)
    # Assert
    assert isinstance(signal, Signal)
    assert np.isfinite(batch[550:, 0]).all() and np.isnan(batch[:550, 0]).all()
    np.testing.assert_allclose(stream, batch, rtol=0, atol=1e-12, equal_nan=True)


def test_a_series_signal_with_a_prior_per_date_streams_what_it_batches():
    # Arrange: predictions and priors per date, as the robustness batch caches them.
    ohlcv = random_walk(n=300, seed=4)
    rng = np.random.default_rng(4)
    pred = pd.Series(rng.normal(0.0, 0.01, len(ohlcv)), index=ohlcv.index)
    pred.iloc[:20] = np.nan
    prior = pd.Series(rng.uniform(0.5, 0.6, len(ohlcv)), index=ohlcv.index)
    signal = SeriesSignal(pred, prior=prior)
    # Act
    batch_pred, batch_prior = signal.predict_batch(ohlcv), signal.prior_batch(ohlcv.index)
    stream_pred = [signal.predict_last(None, d) for d in ohlcv.index]
    stream_prior = [signal.prior_last(d) for d in ohlcv.index]
    # Assert
    assert isinstance(signal, Signal) and isinstance(SeriesSignal(pred, 0.55), Signal)
    np.testing.assert_array_equal(batch_pred, stream_pred)
    np.testing.assert_array_equal(batch_prior, stream_prior)
    np.testing.assert_array_equal(batch_prior, prior.to_numpy())
    assert np.isnan(signal.prior_last(ohlcv.index[-1] + pd.Timedelta(days=1)))
    assert (SeriesSignal(pred, 0.55).prior_batch(ohlcv.index) == 0.55).all()


def _signal_with_one_buy(ohlcv: pd.DataFrame, day: int) -> SeriesSignal:
    pred = pd.Series(np.nan, index=ohlcv.index)
    pred.iloc[day] = 0.05  # one strongly bullish bar, no prediction (flat) everywhere else
    return SeriesSignal(pred)


def test_order_decided_at_close_of_t_fills_at_open_of_t_plus_1_with_costs():
    # Arrange
    ohlcv = random_walk(n=300, seed=1)
    day, commission, slippage = 200, 0.001, 0.002
    # Act
    analysis = run_strategy({"X": ohlcv}, {"X": _signal_with_one_buy(ohlcv, day)}, horizon=5,
                            trade_start=ohlcv.index[150].date(),
                            sizing=SizingConfig(margin_rate=0.0), cash=100_000.0,
                            commission=commission, slippage=slippage)
    # Assert: a buy decided on `day`, filled on the next bar's open plus slippage, then the sell.
    buy, sell = analysis["orders"][:2]
    assert buy["notional"] == pytest.approx(1.3 * 100_000.0, rel=0.02)  # the long bias
    assert buy["decided"] == ohlcv.index[day].date().isoformat()
    assert buy["date"] == ohlcv.index[day + 1].date().isoformat()
    assert buy["price"] == pytest.approx(ohlcv["open"].iloc[day + 1] * (1 + slippage), rel=1e-12)
    assert buy["commission"] == pytest.approx(buy["notional"] * commission, rel=1e-12)
    assert buy["slippage"] == pytest.approx(buy["notional"] * slippage / (1 + slippage))
    assert sell["date"] == ohlcv.index[day + 2].date().isoformat()
    assert sell["price"] == pytest.approx(ohlcv["open"].iloc[day + 2] * (1 - slippage))
    assert len(analysis["orders"]) == 2
    # Equity is exact: cash plus the round trip's P&L less both commissions.
    pnl = (sell["price"] - buy["price"]) * buy["size"] - buy["commission"] - sell["commission"]
    assert analysis["bars"][-1][1] == pytest.approx(100_000.0 + pnl, rel=1e-12)


def test_no_order_is_decided_before_the_trade_start():
    ohlcv = random_walk(n=300, seed=1)
    analysis = run_strategy({"X": ohlcv}, {"X": _signal_with_one_buy(ohlcv, 100)}, horizon=5,
                            trade_start=ohlcv.index[150].date(), sizing=SizingConfig(),
                            cash=100_000.0, commission=0.0, slippage=0.0)
    assert analysis["orders"] == []


def test_held_weight_stays_at_max_long_up_to_one_bar_of_drift():
    ohlcv = random_walk(n=400, seed=2)
    pred = pd.Series(0.05, index=ohlcv.index)  # always very bullish
    sizing = SizingConfig(max_long=0.5, base_long_bias=0.5, bearish_risk_off=0.1)
    analysis = run_strategy({"X": ohlcv}, {"X": SeriesSignal(pred)}, horizon=5,
                            trade_start=ohlcv.index[50].date(), sizing=sizing,
                            cash=100_000.0, commission=0.0, slippage=0.0)
    weights = np.array([b[2] for b in analysis["bars"]])
    assert weights.max() > 0.45
    # Sized at the close of t, held through the next open's gap: allow the one-bar drift.
    assert weights.max() <= 0.5 * 1.05
    assert all(d["target_weight"] <= 0.5 for d in analysis["decisions"])
