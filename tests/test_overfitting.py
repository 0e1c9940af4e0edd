"""Hand-computed and paper cases for models.overfitting (PSR, DSR, PBO by CSCV)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.metrics import per_period_sharpe
from models.overfitting.dsr import (
    EULER_MASCHERONI,
    deflated_sharpe_ratio,
    dsr_from_trials,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    psr_from_returns,
)
from models.overfitting.pbo import PBOResult, pbo_cscv


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


# --------------------------------------------------------------------------- PBO: hand cases


def blocks_matrix(block_values: list[list[float]], rows_per_block: int = 2) -> np.ndarray:
    """T×N matrix whose rows in block b all equal block_values[b]."""
    return np.repeat(np.asarray(block_values, dtype=float), rows_per_block, axis=0)


def test_pbo_two_blocks_hand_computed():
    # block 0 means (4, 3, 2, 1), block 1 means (1, 4, 3, 2)
    # IS = block 0: winner col 0 (4), OOS value 1 is the worst: rank 1, ω = 1/5, λ = -ln 4
    # IS = block 1: winner col 1 (4), OOS value 3 ranks 3rd: ω = 3/5, λ = ln(3/2)
    perf = blocks_matrix([[4, 3, 2, 1], [1, 4, 3, 2]])

    result = pbo_cscv(perf, n_splits=2, metric="mean")

    assert result.n_combinations == 2
    np.testing.assert_allclose(result.logits, [-math.log(4.0), math.log(1.5)])
    np.testing.assert_array_equal(result.best_index, [0, 1])
    np.testing.assert_allclose(result.is_performance, [4.0, 4.0])
    np.testing.assert_allclose(result.oos_performance, [1.0, 3.0])
    assert result.pbo == 0.5


def test_pbo_counts_a_winner_at_the_oos_median_as_overfit():
    # N = 3. Each IS winner lands second of three OOS: ω = 2/4, λ = 0 exactly.
    perf = blocks_matrix([[3, 2, 1], [2, 3, 1]])

    result = pbo_cscv(perf, n_splits=2, metric="mean")

    np.testing.assert_array_equal(result.logits, [0.0, 0.0])
    assert result.pbo == 1.0  # the convention is λ <= 0; λ < 0 would give 0.0


def test_pbo_of_identical_configurations_is_one():
    col = np.random.default_rng(1).normal(0.0, 0.01, 64)
    perf = np.column_stack([col, col, col, col])

    result = pbo_cscv(perf, n_splits=4)

    np.testing.assert_array_equal(result.logits, np.zeros(6))  # all tied at the median
    assert result.pbo == 1.0


# --------------------------------------------------------------------------- PBO: scenarios


def test_pbo_is_zero_when_one_configuration_dominates_every_block():
    rng = np.random.default_rng(11)
    perf = rng.normal(0.0, 0.01, (1600, 20))
    perf[:, 7] += 0.01  # per-period Sharpe ~1 against ~±0.1 for the noise columns

    result = pbo_cscv(perf, n_splits=16)

    assert result.n_combinations == 12_870
    assert result.pbo == 0.0
    np.testing.assert_array_equal(result.best_index, np.full(12_870, 7))
    np.testing.assert_allclose(result.logits, math.log(20.0))  # rank N: ω = N/(N+1)
    assert result.prob_oos_loss == 0.0


def test_pbo_of_pure_noise_is_about_one_half():
    # Under the null the IS winner's OOS rank is uniform on 1..50, so P(λ <= 0) = 25/50.
    # One matrix scatters widely (CSCV halves share their data: seeds 0..39 give
    # 0.47 ± 0.16), so average 16 seeded matrices.
    pbos = [pbo_cscv(np.random.default_rng(seed).normal(0.0, 0.01, (1000, 50))).pbo
            for seed in range(16)]

    assert np.mean(pbos) == pytest.approx(0.5, abs=0.1)
    assert 0.0 < min(pbos) and max(pbos) < 1.0


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample():
    """A regime bet whose P&L over the whole sample nets to zero.

    Eight blocks carry P&L (1, 2, 4, 8, 16, 32, 64, -127) units: the sum is 0 and no four
    blocks sum to 0 (binary digits are unique), so any half with a gain leaves its exact loss
    to the other half. Five configurations ride the bet and five the opposite side, each with
    its own small noise: whichever side wins in sample loses out of sample.
    """
    rng = np.random.default_rng(2)
    rows_per_block, unit = 26, 1e-3
    pnl = np.array([1, 2, 4, 8, 16, 32, 64, -127]) * unit
    wiggle = np.tile([1.0, -1.0], rows_per_block // 2) * 0.2 * unit  # sums to 0 in a block
    bet = np.concatenate([p / rows_per_block + wiggle for p in pnl])
    sides = np.array([1, -1] * 5, dtype=float)
    perf = bet[:, None] * sides + rng.normal(0.0, 1e-5, (bet.size, sides.size))

    result = pbo_cscv(perf, n_splits=8)

    assert result.n_combinations == 70
    assert result.pbo == 1.0
    assert result.logits.max() < 0.0
    assert result.prob_oos_loss == 1.0
    assert np.all(result.is_performance > 0.0)


def test_pbo_ranks_a_never_traded_configuration_last():
    rng = np.random.default_rng(4)
    perf = rng.normal(0.0, 0.01, (120, 4))
    perf[:, 2] = 0.0  # flat: its Sharpe ratio is NaN in every half

    result = pbo_cscv(perf, n_splits=6)

    assert 2 not in result.best_index
    assert np.all(np.isfinite(result.logits))


def test_pbo_uneven_blocks_keep_every_row():
    # T = 10, S = 4: blocks of 2, 3, 2, 3 rows (starts 0, 2, 5, 7); no row is dropped.
    seen: list[int] = []

    def mean_recording_rows(x: np.ndarray) -> np.ndarray:
        seen.append(x.shape[0])
        return x.mean(axis=0)

    perf = np.random.default_rng(0).normal(0.0, 0.01, (10, 3))

    pbo_cscv(perf, n_splits=4, metric=mean_recording_rows)

    # halves {0,1} {0,2} {0,3} {1,2} {1,3} {2,3} hold 5, 4, 5, 5, 6, 5 rows
    assert sorted(seen) == [4, 5, 5, 5, 5, 6]


@pytest.mark.parametrize("n_splits", [2, 4, 6, 8, 10])
def test_pbo_uses_every_combination(n_splits):
    perf = np.random.default_rng(n_splits).normal(0.0, 0.01, (50, 3))

    result = pbo_cscv(perf, n_splits=n_splits)

    assert isinstance(result, PBOResult)
    assert result.n_combinations == math.comb(n_splits, n_splits // 2)
    for values in (result.logits, result.is_performance, result.oos_performance):
        assert values.shape == (result.n_combinations,)


# --------------------------------------------------------------------------- PBO: cross-checks


def naive_cscv_logits(perf: np.ndarray, n_splits: int) -> np.ndarray:
    """Direct CSCV: one pass over the rows of each half, ranks by sorting."""
    blocks = np.array_split(np.arange(perf.shape[0]), n_splits)
    n = perf.shape[1]
    logits = []
    for combo in itertools.combinations(range(n_splits), n_splits // 2):
        rest = [b for b in range(n_splits) if b not in combo]
        is_rows = perf[np.concatenate([blocks[b] for b in combo])]
        oos_rows = perf[np.concatenate([blocks[b] for b in rest])]
        best = int(np.argmax([per_period_sharpe(is_rows[:, j]) for j in range(n)]))
        oos = [per_period_sharpe(oos_rows[:, j]) for j in range(n)]
        rank = 1 + sorted(oos).index(oos[best])  # continuous data: no ties
        omega = rank / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
    return np.array(logits)


def test_pbo_matches_a_direct_implementation():
    perf = np.random.default_rng(8).normal(0.0005, 0.01, (300, 6))

    result = pbo_cscv(perf, n_splits=6)

    np.testing.assert_allclose(result.logits, naive_cscv_logits(perf, 6), atol=1e-12)


def test_pbo_vectorised_sharpe_matches_a_callable_metric():
    perf = np.random.default_rng(9).normal(0.0003, 0.01, (203, 7))  # 203 rows: uneven blocks

    fast = pbo_cscv(perf, n_splits=8)
    slow = pbo_cscv(perf, n_splits=8,
                    metric=lambda x: x.mean(axis=0) / x.std(axis=0, ddof=1))

    np.testing.assert_array_equal(fast.logits, slow.logits)
    np.testing.assert_allclose(fast.is_performance, slow.is_performance, rtol=1e-9)
    np.testing.assert_allclose(fast.oos_performance, slow.oos_performance, rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_configs=st.integers(2, 9),
       n_splits=st.sampled_from([2, 4, 6, 8]))
def test_pbo_logit_invariants(seed, n_configs, n_splits):
    rng = np.random.default_rng(seed)
    perf = rng.normal(0.0, 0.01, (8 * 12, n_configs))

    result = pbo_cscv(perf, n_splits=n_splits)
    reversed_time = pbo_cscv(perf[::-1], n_splits=n_splits)
    shuffled = pbo_cscv(perf[:, rng.permutation(n_configs)], n_splits=n_splits)

    # λ = ln(r / (N + 1 - r)) for an integer rank r in 1..N, so |λ| <= ln N
    ranks = (n_configs + 1) / (1.0 + np.exp(-result.logits))
    np.testing.assert_allclose(ranks, np.round(ranks), atol=1e-9)
    assert np.all(np.abs(result.logits) <= math.log(n_configs) + 1e-12)
    assert result.pbo == pytest.approx(np.mean(result.logits <= 0))
    # the Sharpe ratio ignores order, and blocks map onto blocks: the same multiset of λ
    np.testing.assert_allclose(np.sort(reversed_time.logits), np.sort(result.logits))
    # column labels carry no information
    np.testing.assert_allclose(shuffled.logits, result.logits)


# --------------------------------------------------------------------------- PBO: validation


@pytest.mark.parametrize("perf, n_splits, match", [
    (np.zeros(40), 4, "2-D"),
    (np.zeros((40, 1)), 4, "at least two configurations"),
    (np.where(np.eye(40, 3) == 1, np.nan, 0.0), 4, "non-finite"),
    (np.zeros((40, 3)), 5, "even"),
    (np.zeros((40, 3)), 0, "even"),
    (np.zeros((40, 3)), 4.0, "integer"),
    (np.zeros((6, 3)), 8, "exceeds"),
    (np.zeros((40, 3)), 24, "combinations"),
])
def test_pbo_rejects_bad_inputs(perf, n_splits, match):
    with pytest.raises(ValueError, match=match):
        pbo_cscv(perf, n_splits=n_splits)


def test_pbo_rejects_unknown_metric_and_misshapen_callable():
    perf = np.random.default_rng(0).normal(0.0, 0.01, (40, 3))

    with pytest.raises(ValueError, match="metric"):
        pbo_cscv(perf, n_splits=4, metric="sortino")
    with pytest.raises(ValueError, match="one score per column"):
        pbo_cscv(perf, n_splits=4, metric=lambda x: x.mean())


def test_euler_mascheroni_constant():
    assert EULER_MASCHERONI == pytest.approx(0.5772156649015329, abs=1e-16)
