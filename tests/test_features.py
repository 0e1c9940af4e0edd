"""Scenarios for the causal feature pipeline (``models.features``).

The central contract: the features of bar t come out bit for bit the same whether the
pipeline sees all the bars, a prefix ending at t, or only the last LOOKBACK bars.  The
streaming predictor and the batch path both depend on it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_bt.errors import DataError
from models.features import FEATURE_NAMES, LOOKBACK, build_features

N_BARS = 1_500


def make_ohlcv(
    n: int,
    seed: int,
    start_price: float = 100.0,
    daily_vol: float = 0.01,
    start: str = "2001-01-02",
) -> pd.DataFrame:
    """A geometric random walk with consistent OHLC bars and log-normal volume.

    Each bar opens at the previous close, and high/low bracket open and close, so the frame
    passes the project's validation rules (positive, high >= low, no NaN).
    """
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0.0002, daily_vol, n)))
    open_ = np.concatenate(([start_price], close[:-1]))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, daily_vol / 2, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, daily_vol / 2, n)))
    volume = rng.lognormal(13.0, 0.5, n)
    index = pd.bdate_range(start, periods=n, name="date")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=index,
    )


@pytest.fixture(scope="module")
def ohlcv() -> pd.DataFrame:
    return make_ohlcv(N_BARS, seed=7)


@pytest.fixture(scope="module")
def features(ohlcv: pd.DataFrame) -> pd.DataFrame:
    return build_features(ohlcv)


@pytest.fixture(scope="module")
def random_bars() -> list[int]:
    """50 bar indices where the features are complete, drawn with a fixed seed."""
    rng = np.random.default_rng(2024)
    picks = rng.choice(np.arange(LOOKBACK - 1, N_BARS), size=48, replace=False)
    # Always include both edges: the first complete row and the last row.
    return sorted({LOOKBACK - 1, N_BARS - 1, *picks.tolist()})


# ---------------------------------------------------------------------------------------------
# Names and shape
# ---------------------------------------------------------------------------------------------


def test_feature_names_are_unique_strings_in_a_fixed_tuple() -> None:
    # Arrange / Act
    names = FEATURE_NAMES

    # Assert
    assert isinstance(names, tuple)
    assert all(isinstance(name, str) and name for name in names)
    assert len(set(names)) == len(names)


def test_feature_names_include_the_columns_other_code_relies_on() -> None:
    # ret_1 carries an AR(1) signal; vol_21 feeds the sizing code.
    assert FEATURE_NAMES[0] == "ret_1"
    for name in ("ret_1", "vol_21", "day_of_week", "month"):
        assert name in FEATURE_NAMES


def test_lookback_is_an_int_that_burns_little_history() -> None:
    assert isinstance(LOOKBACK, int)
    assert 64 <= LOOKBACK <= 130  # at least the 63-bar return needs 64 closes


def test_build_features_returns_float64_columns_in_order_on_the_same_index(
    ohlcv: pd.DataFrame, features: pd.DataFrame
) -> None:
    assert list(features.columns) == list(FEATURE_NAMES)
    assert features.index.equals(ohlcv.index)
    assert features.index.name == "date"
    assert (features.dtypes == np.float64).all()


# ---------------------------------------------------------------------------------------------
# Batch equals streaming (the bit-for-bit contract)
# ---------------------------------------------------------------------------------------------


def test_lookback_window_reproduces_full_history_row_exactly(
    ohlcv: pd.DataFrame, features: pd.DataFrame, random_bars: list[int]
) -> None:
    for t in random_bars:
        # Arrange
        window = ohlcv.iloc[t - LOOKBACK + 1 : t + 1]

        # Act
        streamed = build_features(window).iloc[-1].to_numpy()

        # Assert
        assert np.array_equal(streamed, features.iloc[t].to_numpy()), f"bar {t}"


def test_prefix_reproduces_full_history_row_exactly(
    ohlcv: pd.DataFrame, features: pd.DataFrame, random_bars: list[int]
) -> None:
    for t in random_bars:
        prefix_row = build_features(ohlcv.iloc[: t + 1]).iloc[-1].to_numpy()
        assert np.array_equal(prefix_row, features.iloc[t].to_numpy()), f"bar {t}"


def test_every_bar_of_a_sliding_window_replay_matches_the_batch_path(
    ohlcv: pd.DataFrame, features: pd.DataFrame
) -> None:
    # Arrange: replay the last 300 bars the way the live predictor does, one window per bar.
    last = range(N_BARS - 300, N_BARS)

    # Act
    streamed = np.vstack(
        [build_features(ohlcv.iloc[t - LOOKBACK + 1 : t + 1]).to_numpy()[-1] for t in last]
    )

    # Assert
    assert np.array_equal(streamed, features.iloc[N_BARS - 300 :].to_numpy())


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    start_price=st.floats(0.05, 50_000.0),
    daily_vol=st.floats(0.0005, 0.08),
    offset=st.integers(0, 150),
)
def test_window_equality_holds_for_any_price_level_and_volatility(
    seed: int, start_price: float, daily_vol: float, offset: int
) -> None:
    # Arrange
    bars = make_ohlcv(LOOKBACK + 160, seed, start_price, daily_vol)
    t = LOOKBACK - 1 + offset

    # Act
    full = build_features(bars).iloc[t].to_numpy()
    window = build_features(bars.iloc[t - LOOKBACK + 1 : t + 1]).iloc[-1].to_numpy()

    # Assert
    assert np.all(np.isfinite(window))
    assert np.array_equal(window, full)


@settings(max_examples=25, deadline=None)
@given(
    t=st.integers(0, 399),
    seed=st.integers(0, 2**32 - 1),
    shock=st.floats(0.2, 5.0),
)
def test_changing_bars_after_t_never_changes_features_at_or_before_t(
    t: int, seed: int, shock: float
) -> None:
    # Arrange: rescale every bar after t (prices and volume), keeping OHLC consistent.
    bars = make_ohlcv(400, seed=11)
    altered = bars.copy()
    factor = np.random.default_rng(seed).uniform(1.0, 1.0 + shock, len(bars) - t - 1)
    for column in ("open", "high", "low", "close", "volume"):
        altered.iloc[t + 1 :, altered.columns.get_loc(column)] *= factor

    # Act
    before = build_features(bars).iloc[: t + 1].to_numpy()
    after = build_features(altered).iloc[: t + 1].to_numpy()

    # Assert
    assert np.array_equal(before, after, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# Completeness and guards
# ---------------------------------------------------------------------------------------------


def test_rows_from_lookback_minus_one_on_are_all_finite(features: pd.DataFrame) -> None:
    assert np.all(np.isfinite(features.iloc[LOOKBACK - 1 :].to_numpy()))


def test_lookback_is_tight_the_row_before_it_is_incomplete(features: pd.DataFrame) -> None:
    # A LOOKBACK larger than needed would burn history for nothing.
    assert np.isnan(features.iloc[LOOKBACK - 2].to_numpy()).any()


def test_history_shorter_than_a_window_gives_nan_not_an_error() -> None:
    # Arrange
    bars = make_ohlcv(30, seed=3)

    # Act
    feats = build_features(bars)

    # Assert
    assert feats.shape == (30, len(FEATURE_NAMES))
    assert feats["ma_dist_100"].isna().all()
    assert np.isnan(feats["ret_1"].iloc[0])
    assert np.isfinite(feats["ret_1"].iloc[1:]).all()
    assert np.isfinite(feats["vol_21"].iloc[21:]).all() and feats["vol_21"].iloc[:21].isna().all()


def test_empty_frame_gives_an_empty_feature_frame() -> None:
    feats = build_features(make_ohlcv(5, seed=1).iloc[:0])
    assert feats.shape == (0, len(FEATURE_NAMES))
    assert list(feats.columns) == list(FEATURE_NAMES)


def test_flat_market_gives_zero_scale_features_not_nan_or_inf() -> None:
    # Arrange: identical bars, so every std and every range is zero.
    n = LOOKBACK + 20
    flat = pd.DataFrame(
        {
            "open": np.full(n, 50.0),
            "high": np.full(n, 50.0),
            "low": np.full(n, 50.0),
            "close": np.full(n, 50.0),
            "volume": np.full(n, 1.2e6),
        },
        index=pd.bdate_range("2010-01-04", periods=n, name="date"),
    )

    # Act
    feats = build_features(flat).iloc[LOOKBACK - 1 :]

    # Assert
    assert np.all(np.isfinite(feats.to_numpy()))
    for name in ("vol_5", "vol_21", "vol_63", "volume_z_21", "volume_z_63", "clv", "rsi_14"):
        assert (feats[name] == 0.0).all(), name


def test_zero_volume_bars_keep_the_volume_features_finite() -> None:
    # Arrange
    bars = make_ohlcv(LOOKBACK + 50, seed=5)
    bars.iloc[::7, bars.columns.get_loc("volume")] = 0.0

    # Act
    feats = build_features(bars).iloc[LOOKBACK - 1 :]

    # Assert
    assert np.all(np.isfinite(feats[["volume_z_21", "volume_z_63"]].to_numpy()))


# ---------------------------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------------------------


def test_ret_1_is_the_plain_one_bar_log_return(ohlcv: pd.DataFrame, features: pd.DataFrame) -> None:
    expected = np.log(ohlcv["close"] / ohlcv["close"].shift(1))
    assert np.array_equal(features["ret_1"].to_numpy(), expected.to_numpy(), equal_nan=True)


@pytest.mark.parametrize("horizon", [1, 2, 5, 10, 21, 63])
def test_ret_h_is_the_log_return_over_h_bars(
    ohlcv: pd.DataFrame, features: pd.DataFrame, horizon: int
) -> None:
    expected = np.log(ohlcv["close"] / ohlcv["close"].shift(horizon)).to_numpy()
    assert np.array_equal(features[f"ret_{horizon}"].to_numpy(), expected, equal_nan=True)


@pytest.mark.parametrize("window", [5, 21, 63])
def test_vol_is_the_daily_sample_std_of_one_bar_log_returns(
    ohlcv: pd.DataFrame, features: pd.DataFrame, window: int
) -> None:
    # Arrange
    one_bar = np.log(ohlcv["close"]).diff()

    # Act
    expected = one_bar.rolling(window).std().to_numpy()

    # Assert: same NaN pattern and values to rounding; not annualised (daily ~ 1%).
    got = features[f"vol_{window}"].to_numpy()
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-14)
    assert 0.005 < np.nanmean(got) < 0.02


@pytest.mark.parametrize("window", [10, 50, 100])
def test_ma_dist_is_the_log_ratio_of_close_to_its_moving_average(
    ohlcv: pd.DataFrame, features: pd.DataFrame, window: int
) -> None:
    close = ohlcv["close"]
    expected = np.log(close / close.rolling(window).mean()).to_numpy()
    np.testing.assert_allclose(features[f"ma_dist_{window}"].to_numpy(), expected, atol=1e-12)


def test_bounded_oscillators_stay_in_their_ranges(features: pd.DataFrame) -> None:
    done = features.iloc[LOOKBACK - 1 :]
    assert done["clv"].between(-1.0, 1.0).all()
    assert done["rsi_14"].between(-1.0, 1.0).all()
    assert (done["hl_range_1"] >= 0.0).all()
    np.testing.assert_allclose(
        done["macd_hist"], done["macd"] - done["macd_signal"], rtol=0.0, atol=1e-15
    )


def test_calendar_features_match_the_index_dates(
    ohlcv: pd.DataFrame, features: pd.DataFrame
) -> None:
    assert np.array_equal(features["day_of_week"], ohlcv.index.day_of_week.astype(float))
    assert np.array_equal(features["month"], ohlcv.index.month.astype(float))
    radius = np.hypot(features["month_sin"], features["month_cos"])
    np.testing.assert_allclose(radius, 1.0, atol=1e-12)


def test_ar1_returns_show_up_as_correlation_between_ret_1_and_the_next_return() -> None:
    # Arrange: one-bar log returns with an AR(1) coefficient of 0.3.
    rng = np.random.default_rng(99)
    n, phi = 3_000, 0.3
    ret = np.zeros(n)
    shocks = rng.normal(0.0, 0.01, n)
    for i in range(1, n):
        ret[i] = phi * ret[i - 1] + shocks[i]
    close = 100.0 * np.exp(np.cumsum(ret))
    bars = pd.DataFrame(
        {
            "open": close,
            "high": close * 1.002,
            "low": close * 0.998,
            "close": close,
            "volume": np.full(n, 1e6),
        },
        index=pd.bdate_range("2000-01-03", periods=n, name="date"),
    )

    # Act
    feats = build_features(bars)
    next_return = feats["ret_1"].shift(-1)
    corr = feats["ret_1"].corr(next_return)

    # Assert
    assert corr == pytest.approx(phi, abs=0.06)


# ---------------------------------------------------------------------------------------------
# Input errors and module boundaries
# ---------------------------------------------------------------------------------------------


def test_missing_column_raises_data_error_naming_it(ohlcv: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="volume"):
        build_features(ohlcv.drop(columns="volume"))


def test_non_datetime_index_raises_data_error(ohlcv: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="DatetimeIndex"):
        build_features(ohlcv.reset_index(drop=True))


def test_features_module_never_imports_backtrader() -> None:
    # A fresh interpreter: other tests in this process may have imported backtrader already.
    code = "import sys, models.features, models.targets; sys.exit('backtrader' in sys.modules)"
    repo_root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, check=False, cwd=repo_root
    )
    assert result.returncode == 0, result.stderr.decode()
