"""Hand-computed and paper cases for models.overfitting.dsr (PSR, expected maximum Sharpe, DSR)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.metrics import per_period_sharpe
from models.overfitting.dsr import (
    EULER_MASCHERONI,
    deflated_sharpe_ratio,
    dsr_from_trials,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    psr_from_returns,
)


def phi(z: float) -> float:
    """Standard normal CDF from math.erf, independent of scipy."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def plug_in_moments(r: np.ndarray) -> tuple[float, float]:
    """Skewness m3/m2**1.5 and non-excess kurtosis m4/m2**2, written out by hand."""
    d = r - r.mean()
    m2, m3, m4 = (d**2).mean(), (d**3).mean(), (d**4).mean()
    return m3 / m2**1.5, m4 / m2**2


# --------------------------------------------------------------------------- PSR


def test_psr_normal_returns_uses_lo_standard_error():
    # skew 0, kurtosis 3: z = SR*sqrt(n-1)/sqrt(1 + SR^2/2) = 0.1*10/sqrt(1.005) = 0.997509
    psr = probabilistic_sharpe_ratio(0.1, 0.0, 101, 0.0, 3.0)

    assert psr == pytest.approx(phi(1.0 / math.sqrt(1.005)), abs=1e-12)
    assert psr == pytest.approx(0.840741, abs=1e-6)


def test_psr_hand_computed_with_skew_and_fat_tails():
    # 1 - (-1)(0.2) + (6 - 1)/4 * 0.04 = 1.25;  z = 0.15 * sqrt(60 / 1.25) = 0.15 * sqrt(48)
    psr = probabilistic_sharpe_ratio(0.2, 0.05, 61, -1.0, 6.0)

    assert psr == pytest.approx(phi(0.15 * math.sqrt(48.0)), abs=1e-12)
    assert psr == pytest.approx(0.850651, abs=1e-6)


def test_psr_is_one_half_at_the_benchmark():
    assert probabilistic_sharpe_ratio(0.12, 0.12, 500, -0.5, 5.0) == pytest.approx(0.5)


def test_psr_increases_with_track_length():
    psrs = [probabilistic_sharpe_ratio(0.05, 0.0, n, -0.3, 4.0) for n in (10, 50, 250, 1250)]

    assert all(a < b for a, b in zip(psrs, psrs[1:], strict=False))


def test_psr_falls_with_negative_skew_and_fat_tails():
    normal = probabilistic_sharpe_ratio(0.2, 0.0, 100, 0.0, 3.0)
    crash_prone = probabilistic_sharpe_ratio(0.2, 0.0, 100, -2.0, 12.0)

    assert crash_prone < normal


def test_psr_from_returns_matches_hand_moments_and_excess_kurtosis_trap():
    # 120 fat-tailed (Student t, 3 dof) monthly-like returns with a large per-period Sharpe
    # ratio, where the kurtosis term (γ4 - 1)/4 * SR^2 of the standard error matters.
    r = 0.03 + 0.05 * np.random.default_rng(4).standard_t(3, size=120)
    sr = r.mean() / r.std(ddof=1)
    skew, kurt = plug_in_moments(r)
    excess = float(pd.Series(r).kurt())
    assert kurt > 6.0 and excess > 1.0 + skew**2  # the wrong input is not caught as impossible

    right = psr_from_returns(r, sr_benchmark=0.3)
    wrong = probabilistic_sharpe_ratio(sr, 0.3, r.size, skew, excess)

    assert right == pytest.approx(probabilistic_sharpe_ratio(sr, 0.3, 120, skew, kurt),
                                  rel=1e-12)
    # Excess kurtosis understates the tails, so the PSR of a winner comes out too high.
    assert wrong > right + 5e-3


def test_psr_rejects_excess_kurtosis_of_normal_returns():
    # pandas' kurt() of normal returns is ~0, below the bound 1 + skew^2 of any distribution
    with pytest.raises(ValueError, match="excess kurtosis"):
        probabilistic_sharpe_ratio(0.1, 0.0, 250, 0.0, 0.05)


def test_psr_accepts_kurtosis_on_the_two_point_bound():
    # skew -3, kurtosis 10 = 1 + 9 (the DSR paper's example) is a two-valued distribution
    assert 0.0 < probabilistic_sharpe_ratio(0.1, 0.0, 100, -3.0, 10.0) < 1.0


@pytest.mark.parametrize("args", [
    (math.nan, 0.0, 100, 0.0, 3.0),
    (0.1, 0.0, 100, math.nan, 3.0),
    (0.1, 0.0, 100, 0.0, math.nan),
    (0.1, math.nan, 100, 0.0, 3.0),
    (0.1, 0.0, 2, 0.0, 3.0),
])
def test_psr_is_nan_for_nan_inputs_or_short_series(args):
    assert math.isnan(probabilistic_sharpe_ratio(*args))


@pytest.mark.parametrize("returns", [[0.01, 0.02], [0.0] * 50, [np.nan] * 10, [0.01, np.nan, 0.03]])
def test_psr_from_returns_is_nan_for_flat_or_short_series(returns):
    assert math.isnan(psr_from_returns(returns))


# --------------------------------------------------------------------------- expected_max_sharpe


def test_expected_max_sharpe_of_one_trial_is_zero():
    assert expected_max_sharpe(1, 0.7) == 0.0
    assert expected_max_sharpe(1, math.nan) == 0.0


def test_expected_max_sharpe_hand_computed_for_ten_trials():
    # Φ^-1(0.9) = 1.2815515655446004 and Φ^-1(1 - 1/(10e)) = 1.7892417645816283,
    # both checked through the forward CDF below.
    q1, q2 = 1.2815515655446004, 1.7892417645816283
    assert phi(q1) == pytest.approx(0.9, abs=1e-12)
    assert phi(q2) == pytest.approx(1.0 - 1.0 / (10.0 * math.e), abs=1e-12)
    g = 0.5772156649
    hand = (1.0 - g) * q1 + g * q2  # = 0.541820 + 1.032779 = 1.574598

    assert expected_max_sharpe(10, 1.0) == pytest.approx(hand, abs=1e-9)
    assert expected_max_sharpe(10, 1.0) == pytest.approx(1.574598, abs=1e-6)
    assert expected_max_sharpe(10, 4.0) == pytest.approx(2.0 * hand, abs=1e-9)


def test_expected_max_sharpe_grows_with_the_number_of_trials():
    values = [expected_max_sharpe(n, 1.0) for n in (1, 2, 5, 10, 100, 1000, 10_000)]

    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_expected_max_sharpe_approximates_the_simulated_maximum():
    # The approximation is within a few per cent of E[max of N standard normals].
    rng = np.random.default_rng(0)
    simulated = rng.standard_normal((20_000, 100)).max(axis=1).mean()

    assert expected_max_sharpe(100, 1.0) == pytest.approx(simulated, rel=0.03)


@pytest.mark.parametrize("n_trials, variance", [(0, 1.0), (-3, 1.0), (math.nan, 1.0),
                                                (10, -0.1), (10, math.inf)])
def test_expected_max_sharpe_rejects_bad_inputs(n_trials, variance):
    with pytest.raises(ValueError):
        expected_max_sharpe(n_trials, variance)


# --------------------------------------------------------------------------- DSR


def test_dsr_reproduces_the_paper_example():
    """Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example.

    The best of N = 100 independent trials has an annualised SR of 2.5 over T = 1250 daily
    observations (5 years of 250 days), skewness -3 and kurtosis 10; the annualised
    variance of the trial Sharpe ratios is 1/2. The paper finds SR_0 ≈ 0.1132 (per period)
    and DSR ≈ 0.9004. Hand arithmetic:
    SR = 2.5 / sqrt(250) = 0.158114; V = 0.5 / 250 = 0.002;
    SR_0 = sqrt(0.002) * (0.42278 * 2.326348 + 0.57722 * 2.680210) = 0.113172;
    z = (0.158114 - 0.113172) * sqrt(1249) / sqrt(1 + 3 * 0.158114 + 9/4 * 0.025) = 1.28382.
    """
    sr = 2.5 / math.sqrt(250)
    variance = 0.5 / 250

    sr0 = expected_max_sharpe(100, variance)
    dsr = deflated_sharpe_ratio(sr, 1250, -3.0, 10.0, 100, variance)

    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=1e-4)
    z = (sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + 9 / 4 * sr**2)
    assert z == pytest.approx(1.28382, abs=1e-5)
    assert dsr == pytest.approx(phi(z), abs=1e-12)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_dsr_of_one_trial_equals_psr_against_zero():
    dsr = deflated_sharpe_ratio(0.08, 500, -0.4, 4.5, 1, math.nan)

    assert dsr == probabilistic_sharpe_ratio(0.08, 0.0, 500, -0.4, 4.5)


def test_dsr_falls_as_more_trials_are_tried():
    dsrs = [deflated_sharpe_ratio(0.1, 1000, 0.0, 3.0, n, 0.001) for n in (1, 10, 100, 1000)]

    assert all(a > b for a, b in zip(dsrs, dsrs[1:], strict=False))


def test_dsr_from_trials_uses_count_and_sample_variance_of_trial_sharpes():
    rng = np.random.default_rng(5)
    best = rng.normal(0.001, 0.01, 750)
    trial_sharpes = np.array([0.01, -0.02, 0.03, 0.0, 0.05, np.nan, per_period_sharpe(best)])
    finite = trial_sharpes[np.isfinite(trial_sharpes)]
    mean = finite.mean()
    variance = ((finite - mean) ** 2).sum() / (finite.size - 1)
    skew, kurt = plug_in_moments(best)

    dsr = dsr_from_trials(best, trial_sharpes)

    # the never-traded trial (NaN) counts towards N = 7 but not towards the variance
    expected = deflated_sharpe_ratio(per_period_sharpe(best), 750, skew, kurt, 7, variance)
    assert dsr == pytest.approx(expected, rel=1e-12)


def test_dsr_from_trials_with_one_trial_is_psr():
    r = np.random.default_rng(6).normal(0.0005, 0.01, 300)

    assert dsr_from_trials(r, [per_period_sharpe(r)]) == pytest.approx(psr_from_returns(r))


def test_dsr_from_trials_edge_cases():
    r = np.random.default_rng(6).normal(0.0005, 0.01, 300)

    assert math.isnan(dsr_from_trials([0.0] * 100, [0.1, 0.2]))
    assert math.isnan(dsr_from_trials(r, [0.1, np.nan]))  # N = 2 but V undefined
    with pytest.raises(ValueError, match="empty"):
        dsr_from_trials(r, [])




def test_euler_mascheroni_constant():
    assert EULER_MASCHERONI == pytest.approx(0.5772156649015329, abs=1e-16)
