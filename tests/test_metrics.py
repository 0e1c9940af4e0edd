"""Hand-computed cases for models.metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.metrics import (
    annualised_sharpe,
    cagr,
    direction_accuracy,
    drawdown_series,
    information_coefficient,
    max_drawdown,
    per_period_sharpe,
    sortino_ratio,
    total_return,
)

# --------------------------------------------------------------------------- direction_accuracy


def test_direction_accuracy_counts_sign_matches():
    pred = [0.01, -0.02, 0.03, -0.01]
    actual = [0.02, -0.01, -0.01, 0.05]

    assert direction_accuracy(pred, actual) == pytest.approx(0.5)


def test_direction_accuracy_excludes_flat_outcomes_and_nans():
    # pairs 2 (actual 0), 3 (pred NaN) and 4 (actual NaN) are not scorable
    pred = [0.01, -0.02, 0.5, np.nan, 0.2]
    actual = [0.02, 0.03, 0.0, 0.01, np.nan]

    assert direction_accuracy(pred, actual) == pytest.approx(0.5)


def test_direction_accuracy_zero_prediction_is_a_miss():
    assert direction_accuracy([0.0, 0.0, 1.0], [0.01, -0.01, 0.01]) == pytest.approx(1 / 3)


def test_direction_accuracy_with_no_scorable_pair_is_nan():
    assert math.isnan(direction_accuracy([], []))
    assert math.isnan(direction_accuracy([0.1, 0.2], [0.0, np.nan]))


def test_direction_accuracy_accepts_series():
    idx = pd.date_range("2020-01-01", periods=3)
    pred = pd.Series([1.0, -1.0, 1.0], index=idx)
    actual = pd.Series([2.0, -2.0, -2.0], index=idx)

    assert direction_accuracy(pred, actual) == pytest.approx(2 / 3)


def test_direction_accuracy_rejects_length_mismatch():
    with pytest.raises(ValueError, match="length"):
        direction_accuracy([1.0, 2.0], [1.0])


# ------------------------------------------------------------------- information_coefficient


def test_ic_of_monotone_transform_is_one():
    actual = np.array([0.03, -0.01, 0.02, -0.04, 0.05, 0.0])

    assert information_coefficient(np.exp(actual) * 3, actual) == pytest.approx(1.0)


def test_ic_of_reversed_order_is_minus_one():
    actual = np.array([0.03, -0.01, 0.02, -0.04, 0.05])

    assert information_coefficient(-(actual**3), actual) == pytest.approx(-1.0)


def test_ic_matches_hand_computed_rank_correlation():
    # ranks: pred 1 2 3 4, actual 2 1 4 3 -> d^2 = 4, rho = 1 - 6*4 / (4*15) = 0.6
    assert information_coefficient([1, 2, 3, 4], [20, 10, 40, 30]) == pytest.approx(0.6)


def test_ic_drops_non_finite_pairs():
    pred = [1.0, 2.0, np.nan, 3.0, 4.0, np.inf]
    actual = [1.0, 2.0, 3.0, 3.0, 4.0, 0.0]

    assert information_coefficient(pred, actual) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("pred", "actual"),
    [
        ([], []),
        ([1.0, 2.0], [1.0, 2.0]),
        ([1.0, 2.0, np.nan], [1.0, 2.0, 3.0]),
        ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]),
        ([1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]),
    ],
    ids=["empty", "two-pairs", "two-finite-pairs", "constant-pred", "constant-actual"],
)
def test_ic_is_nan_when_undefined(pred, actual):
    assert math.isnan(information_coefficient(pred, actual))


# --------------------------------------------------------------------------- sharpe / sortino


def test_annualised_sharpe_by_hand():
    # mean = 0.02/3; deviations 1/300, -8/300, 7/300 -> var = (1+64+49)/90000/2 = 114/180000
    returns = [0.01, -0.02, 0.03]
    expected = (0.02 / 3) / math.sqrt(114 / 180000) * math.sqrt(252)

    assert annualised_sharpe(returns) == pytest.approx(expected)
    assert annualised_sharpe(returns) == pytest.approx(4.2053, abs=1e-4)


@pytest.mark.parametrize("value", [0.1, 0.013, 1 / 3])
def test_annualised_sharpe_of_constant_returns_is_zero_despite_rounding(value):
    assert annualised_sharpe([value] * 3) == 0.0
    assert annualised_sharpe([value] * 7) == 0.0


def test_annualised_sharpe_uses_periods_per_year():
    returns = [0.01, -0.02, 0.03]

    assert annualised_sharpe(returns, periods_per_year=12) == pytest.approx(
        annualised_sharpe(returns, periods_per_year=1) * math.sqrt(12)
    )


def test_annualised_sharpe_ignores_leading_nan_of_pct_change():
    equity = pd.Series([100.0, 101.0, 98.98, 101.9494])

    assert annualised_sharpe(equity.pct_change()) == pytest.approx(
        annualised_sharpe([0.01, -0.02, 0.03]))


@pytest.mark.parametrize(
    "returns",
    [[], [0.05], [0.01, 0.01, 0.01], [np.nan, np.nan]],
    ids=["empty", "single", "constant", "all-nan"],
)
def test_annualised_sharpe_without_dispersion_is_zero(returns):
    assert annualised_sharpe(returns) == 0.0


# --------------------------------------------------------------------------- per-period Sharpe


def test_per_period_sharpe_is_the_mean_over_the_sample_std():
    # mean 0.02, deviations (-0.01, 0.01, -0.03, 0.03): ss = 0.002, var = 0.002 / 3
    r = [0.01, 0.03, -0.01, 0.05]

    assert per_period_sharpe(r) == pytest.approx(0.02 / math.sqrt(0.002 / 3))


def test_per_period_sharpe_drops_nans():
    assert per_period_sharpe([np.nan, 0.01, 0.03, np.nan, -0.01, 0.05]) == pytest.approx(
        per_period_sharpe([0.01, 0.03, -0.01, 0.05]))


@pytest.mark.parametrize("returns", [[], [0.01], [0.1, 0.1, 0.1], [np.nan, np.nan, 0.2]])
def test_per_period_sharpe_is_nan_when_undefined(returns):
    assert math.isnan(per_period_sharpe(returns))


def test_the_two_sharpe_ratios_differ_by_the_annualisation_and_on_a_flat_series():
    returns = [0.01, -0.02, 0.03]

    assert annualised_sharpe(returns) == pytest.approx(
        per_period_sharpe(returns) * math.sqrt(252))
    assert annualised_sharpe([0.01] * 5) == 0.0
    assert math.isnan(per_period_sharpe([0.01] * 5))


def test_sortino_ratio_by_hand():
    # downside: min(r, 0) = [0, -0.02, 0] -> sqrt(0.0004 / 3)
    returns = [0.01, -0.02, 0.03]
    expected = (0.02 / 3) / math.sqrt(0.0004 / 3) * math.sqrt(252)

    assert sortino_ratio(returns) == pytest.approx(expected)
    assert sortino_ratio(returns) == pytest.approx(9.1652, abs=1e-4)


@pytest.mark.parametrize(
    "returns",
    [[], [-0.05], [0.01, 0.02, 0.03], [0.0, 0.0]],
    ids=["empty", "single", "no-losses", "flat"],
)
def test_sortino_ratio_without_downside_is_zero(returns):
    assert sortino_ratio(returns) == 0.0


def test_sortino_ratio_is_negative_for_losing_returns():
    assert sortino_ratio([-0.01, -0.02, 0.005]) < 0


# --------------------------------------------------------------------------- equity curve


def test_max_drawdown_by_hand():
    # peak 120 -> trough 90 is -25 %
    assert max_drawdown([100, 120, 90, 130]) == pytest.approx(-0.25)


def test_drawdown_series_by_hand():
    dd = drawdown_series([100, 120, 90, 130, 117])

    np.testing.assert_allclose(dd, [0.0, 0.0, -0.25, 0.0, -0.1])


@pytest.mark.parametrize(
    "equity",
    [[100, 101, 105, 200], [100, 100, 100], [100], []],
    ids=["rising", "constant", "single", "empty"],
)
def test_max_drawdown_of_never_falling_curve_is_zero(equity):
    assert max_drawdown(equity) == 0.0


def test_drawdown_series_of_empty_curve_is_empty():
    assert drawdown_series([]).shape == (0,)


def test_drawdown_series_keeps_length_of_series_input():
    equity = pd.Series([100.0, 90.0, 95.0], index=pd.date_range("2021-01-01", periods=3))

    np.testing.assert_allclose(drawdown_series(equity), [0.0, -0.1, -0.05])


def test_drawdown_series_rejects_non_positive_start_and_nan():
    with pytest.raises(ValueError, match="positive"):
        drawdown_series([0.0, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        drawdown_series([100.0, np.nan])


@given(st.lists(st.floats(min_value=1e-3, max_value=1e6), min_size=1, max_size=50))
def test_drawdown_is_never_positive_and_max_drawdown_is_its_minimum(equity):
    dd = drawdown_series(equity)

    assert (dd <= 0).all()
    assert dd[0] == 0.0
    assert max_drawdown(equity) == pytest.approx(dd.min())
    assert max_drawdown(equity) > -1.0


def test_total_return_by_hand():
    assert total_return([100, 120, 90, 130]) == pytest.approx(0.30)
    assert total_return(pd.Series([200.0, 150.0])) == pytest.approx(-0.25)


@pytest.mark.parametrize("equity", [[], [100.0]], ids=["empty", "single"])
def test_total_return_without_elapsed_time_is_zero(equity):
    assert total_return(equity) == 0.0


def test_total_return_rejects_non_positive_start():
    with pytest.raises(ValueError, match="positive"):
        total_return([0.0, 10.0])


# --------------------------------------------------------------------------- cagr


def test_cagr_of_21_percent_over_two_years_is_ten_percent():
    start = pd.Timestamp("2020-01-01")
    end = start + pd.Timedelta(days=2 * 365.25)

    assert cagr(0.21, start, end) == pytest.approx(0.10)


def test_cagr_accepts_strings_and_dates():
    # 2019-01-01 .. 2020-01-01 is 365 days, a hair under one calendar year
    years = 365 / 365.25

    assert cagr(0.5, "2019-01-01", "2020-01-01") == pytest.approx(1.5 ** (1 / years) - 1)


def test_cagr_of_loss_is_negative():
    start = pd.Timestamp("2000-01-01")

    assert cagr(-0.19, start, start + pd.Timedelta(days=2 * 365.25)) == pytest.approx(-0.10)


def test_cagr_of_wiped_out_capital_is_minus_one():
    assert cagr(-1.0, "2000-01-01", "2005-01-01") == -1.0
    assert cagr(-1.3, "2000-01-01", "2005-01-01") == -1.0


def test_cagr_over_zero_length_period_is_nan():
    assert math.isnan(cagr(0.1, "2020-01-01", "2020-01-01"))


def test_cagr_rejects_reversed_period():
    with pytest.raises(ValueError, match="before"):
        cagr(0.1, "2021-01-01", "2020-01-01")


def test_wfe_is_baseline_adjusted_and_undefined_near_chance():
    from models.metrics import walk_forward_efficiency

    assert walk_forward_efficiency(0.53, 0.55) == pytest.approx(60.0)
    assert walk_forward_efficiency(0.45, 0.55) == pytest.approx(-100.0)
    assert np.isnan(walk_forward_efficiency(0.60, 0.5005))
    assert np.isnan(walk_forward_efficiency(0.60, 0.48))


def test_sign_imbalance_fires_above_the_threshold():
    from models.metrics import sign_imbalance

    assert sign_imbalance([1.0] * 86 + [-1.0] * 14)["fired"]
    assert not sign_imbalance([1.0] * 85 + [-1.0] * 15)["fired"]
    assert sign_imbalance([-1.0] * 90 + [1.0] * 10)["positive_share"] == pytest.approx(0.1)
    assert sign_imbalance([0.0, 0.0])["fired"]


def test_variance_collapse_compares_prediction_and_target_spread():
    from models.metrics import variance_collapse

    target = np.linspace(-1, 1, 100)
    assert variance_collapse(target * 1e-3, target)["fired"]
    assert not variance_collapse(target * 0.1, target)["fired"]
    assert variance_collapse(np.zeros(100), target)["std_ratio"] == 0.0


def test_device_resolution_forced_cpu_and_auto_choices():
    from models.devices import resolve_devices

    assert resolve_devices("cpu") == {"xgb": "cpu", "lgbm": "cpu"}
    auto = resolve_devices("auto")
    assert auto["xgb"] in {"cpu", "cuda"} and auto["lgbm"] in {"cpu", "gpu"}
