"""Scenarios for the training targets (``models.targets``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_bt.errors import ConfigurationError
from models.features import build_features
from models.targets import forward_log_return, label_end_index, to_daily_return


def make_close(n: int, seed: int) -> pd.Series:
    """Close prices of a geometric random walk on business days."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.012, n)))
    return pd.Series(
        close, index=pd.bdate_range("2005-01-03", periods=n, name="date"), name="close"
    )


def make_ohlcv_from_close(close: pd.Series) -> pd.DataFrame:
    """Minimal consistent bars around a close series (enough for ``build_features``)."""
    values = close.to_numpy()
    return pd.DataFrame(
        {
            "open": values,
            "high": values * 1.01,
            "low": values * 0.99,
            "close": values,
            "volume": np.full(len(values), 1e6),
        },
        index=close.index,
    )


# ---------------------------------------------------------------------------------------------
# forward_log_return
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 5])
def test_forward_return_at_t_uses_the_close_at_t_plus_h(horizon: int) -> None:
    # Arrange
    close = make_close(200, seed=1)
    c = close.to_numpy()

    # Act
    y = forward_log_return(close, horizon)

    # Assert
    for t in (0, 17, 100, 200 - horizon - 1):
        assert y.iloc[t] == math.log(c[t + horizon] / c[t])


@pytest.mark.parametrize("horizon", [1, 3, 5, 21])
def test_forward_return_is_nan_exactly_for_the_last_h_rows(horizon: int) -> None:
    y = forward_log_return(make_close(100, seed=2), horizon)
    assert y.iloc[-horizon:].isna().all()
    assert y.iloc[:-horizon].notna().all()


def test_forward_return_keeps_the_index_and_is_float64() -> None:
    close = make_close(50, seed=3)
    y = forward_log_return(close, 5)
    assert y.index.equals(close.index)
    assert y.dtype == np.float64
    assert y.name == "fwd_ret_5"


def test_forward_return_of_a_planted_jump_lands_h_bars_earlier() -> None:
    # Arrange: flat prices that double at bar 60.
    close = pd.Series(np.where(np.arange(100) < 60, 10.0, 20.0))

    # Act
    y = forward_log_return(close, 5)

    # Assert: only the labels whose window spans the jump (rows 55..59) see it.
    jumped = np.flatnonzero(y.to_numpy() > 0.0)
    assert jumped.tolist() == [55, 56, 57, 58, 59]
    assert y.iloc[55] == pytest.approx(math.log(2.0))


def test_horizon_longer_than_the_series_gives_all_nan() -> None:
    assert forward_log_return(make_close(4, seed=4), 10).isna().all()


@pytest.mark.parametrize("horizon", [1, 2, 5, 10, 21, 63])
def test_label_of_row_t_equals_feature_ret_h_of_row_t_plus_h(horizon: int) -> None:
    # The target and the features must describe the same return, bit for bit.
    close = make_close(300, seed=5)
    y = forward_log_return(close, horizon).to_numpy()
    ret_h = build_features(make_ohlcv_from_close(close))[f"ret_{horizon}"].to_numpy()
    assert np.array_equal(y[:-horizon], ret_h[horizon:])


def test_h_bar_forward_return_is_the_sum_of_one_bar_forward_returns() -> None:
    close = make_close(120, seed=6)
    one = forward_log_return(close, 1)
    five = forward_log_return(close, 5)
    summed = one.rolling(5).sum().shift(-4)
    np.testing.assert_allclose(five.iloc[:-5], summed.iloc[:-5], rtol=0, atol=1e-12)


@pytest.mark.parametrize("horizon", [0, -1, -5, True, 1.5, 2.0, "5", None])
def test_invalid_horizon_raises_configuration_error(horizon: object) -> None:
    close = make_close(10, seed=7)
    with pytest.raises(ConfigurationError, match="horizon"):
        forward_log_return(close, horizon)  # type: ignore[arg-type]


def test_numpy_integer_horizon_is_accepted() -> None:
    close = make_close(10, seed=8)
    assert forward_log_return(close, np.int64(2)).equals(forward_log_return(close, 2))


# ---------------------------------------------------------------------------------------------
# to_daily_return
# ---------------------------------------------------------------------------------------------


def test_one_bar_horizon_gives_the_arithmetic_return() -> None:
    assert to_daily_return(math.log(1.02), 1) == pytest.approx(0.02, rel=1e-12)


def test_scalar_prediction_gives_a_python_float() -> None:
    daily = to_daily_return(0.01, 5)
    assert type(daily) is float
    assert daily == pytest.approx(math.exp(0.002) - 1.0, rel=1e-15)


def test_array_and_series_predictions_keep_their_type_and_shape() -> None:
    # Arrange
    preds = np.array([-0.05, 0.0, 0.03])
    series = pd.Series(preds, index=pd.bdate_range("2020-01-01", periods=3))

    # Act
    from_array = to_daily_return(preds, 5)
    from_series = to_daily_return(series, 5)

    # Assert
    assert isinstance(from_array, np.ndarray) and from_array.shape == (3,)
    assert isinstance(from_series, pd.Series) and from_series.index.equals(series.index)
    np.testing.assert_array_equal(from_array, np.exp(preds / 5) - 1.0)
    assert from_array[1] == 0.0


@settings(max_examples=200, deadline=None)
@given(
    pred=st.floats(-1.0, 1.0, allow_nan=False),
    horizon=st.integers(1, 30),
)
def test_daily_return_compounded_over_h_bars_recovers_the_log_return(
    pred: float, horizon: int
) -> None:
    # Act
    daily = to_daily_return(pred, horizon)

    # Assert: horizon * log1p(daily) is the inverse, and the sign is kept.
    assert horizon * math.log1p(daily) == pytest.approx(pred, rel=1e-9, abs=1e-12)
    assert math.copysign(1.0, daily) == math.copysign(1.0, pred) or daily == 0.0


@pytest.mark.parametrize("horizon", [0, -3, True, 2.5])
def test_to_daily_return_rejects_an_invalid_horizon(horizon: object) -> None:
    with pytest.raises(ConfigurationError):
        to_daily_return(0.01, horizon)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# label_end_index
# ---------------------------------------------------------------------------------------------


@given(i=st.integers(0, 10_000), horizon=st.integers(1, 100))
def test_label_of_row_i_ends_at_bar_i_plus_h(i: int, horizon: int) -> None:
    assert label_end_index(i, horizon) == i + horizon


def test_label_end_index_matches_the_bar_the_forward_return_reads() -> None:
    # Arrange: a series whose only move happens at one bar.
    close = pd.Series(np.where(np.arange(50) < 30, 1.0, 3.0))
    horizon = 4

    # Act
    rows_seeing_the_move = np.flatnonzero(forward_log_return(close, horizon).to_numpy() > 0)

    # Assert: the first row that sees the move at bar 30 is the one whose label ends there.
    assert label_end_index(int(rows_seeing_the_move[0]), horizon) == 30


def test_label_end_index_rejects_an_invalid_horizon() -> None:
    with pytest.raises(ConfigurationError):
        label_end_index(3, 0)
