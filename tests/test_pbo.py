"""Hand-computed, simulated and property cases for models.overfitting.pbo (PBO by CSCV)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.metrics import per_period_sharpe
from models.overfitting.pbo import PBOResult, pbo_cscv

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
