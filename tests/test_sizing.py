"""Pure sizing math: Kelly hybrid, lagged statistics and the drawdown circuit breaker."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sizing.breaker import (
    BreakerParams,
    BreakerState,
    breaker_cap,
    breaker_limits,
    breaker_step,
    cap_weight,
    position_limits,
    step,
)
from sizing.config import SizingConfig
from sizing.kelly import (
    blend,
    hybrid_weight,
    lagged_inputs,
    target_weight,
    win_rate_prior,
)
from sizing.lagged import LaggedStats
from sizing.rebalance import needs_rebalance, trim_tolerance

CFG = SizingConfig()
mus = st.floats(-0.05, 0.05, allow_nan=False)
sigmas = st.floats(1e-4, 0.1)
probs = st.floats(0.0, 1.0)
payoffs = st.floats(0.05, 20.0)
configs = st.builds(
    lambda ml, ms, bias, off, vt: SizingConfig(max_long=ml, max_short=ms,
                                               base_long_bias=min(bias, ml),
                                               bearish_risk_off=min(off, bias, ml),
                                               vol_target=vt),
    st.floats(0.1, 4.0), st.floats(0.0, 4.0), st.floats(0.0, 4.0), st.floats(0.0, 4.0),
    st.one_of(st.none(), st.floats(0.01, 2.0)))


def test_a_coin_with_even_payoff_has_no_edge_so_the_weight_is_the_anchor():
    # Kelly's fraction at p=0.5, b=1 is 0: no confidence, so no tilt away from the bias.
    assert hybrid_weight(0.01, 0.01, 0.5, 1.0, 1.8, 0.1, 1.3, 0.1, 0.5, 0.05, 0.6, 0.0) == 1.3


def test_win_rate_prior_takes_the_larger_statistic_clipped_to_its_band():
    assert win_rate_prior(0.53, 0.56) == pytest.approx(0.56)
    assert win_rate_prior(0.70, 0.52) == pytest.approx(0.60)
    assert win_rate_prior(0.40, 0.45) == pytest.approx(0.50)
    assert win_rate_prior(math.nan, math.nan) == pytest.approx(0.50)


def test_blend_moves_from_prior_to_observed_with_the_count():
    assert blend(0.55, 0.70, 0.0, 50.0) == 0.55
    assert blend(0.55, 0.70, 50.0, 50.0) == pytest.approx(0.625)
    assert blend(0.55, 0.70, 1e9, 50.0) == pytest.approx(0.70)


@settings(max_examples=300, deadline=None)
@given(mus, sigmas, probs, payoffs, configs)
def test_weight_always_lies_within_the_short_and_long_limits(mu, sigma, p, b, cfg):
    w = target_weight(mu, sigma, p, b, cfg)
    assert -cfg.max_short - 1e-12 <= w <= cfg.max_long + 1e-12


@settings(max_examples=300, deadline=None)
@given(mus, mus, sigmas, probs, payoffs, configs)
def test_weight_is_monotone_non_decreasing_in_the_prediction(mu1, mu2, sigma, p, b, cfg):
    lo, hi = sorted((mu1, mu2))
    assert target_weight(lo, sigma, p, b, cfg) <= target_weight(hi, sigma, p, b, cfg) + 1e-12


@settings(max_examples=300, deadline=None)
@given(mus, sigmas, probs, payoffs, st.floats(-2.0, 2.0), st.floats(0.26, 0.99))
def test_while_tripped_the_weight_never_exceeds_the_drawdown_cap(mu, sigma, p, b, held, dd):
    params = BreakerParams()
    state = step(BreakerState(high_water=100.0), 100.0 * (1.0 - dd), params)
    assert state.tripped
    w = cap_weight(target_weight(mu, sigma, p, b, CFG), held, state, params)
    assert abs(w) <= params.max_position


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1e9), st.floats(0.0, 1.0), st.booleans(), st.booleans(),
       st.integers(0, 10_000))
def test_breaker_state_round_trips_through_json_exactly(high, dd, tripped, halted, trips):
    state = BreakerState(high, dd, tripped, halted, trips)
    assert BreakerState.from_json(state.to_json()) == state


def test_breaker_trips_at_the_threshold_and_resets_on_recovery():
    params = BreakerParams(trigger=0.25, max_position=0.6, reset=0.10)
    s = step(BreakerState(), 100.0, params)
    s = step(s, 75.01, params)
    assert not s.tripped
    s = step(s, 75.0, params)
    assert s.tripped and s.trips == 1 and s.drawdown == pytest.approx(0.25)
    s = step(s, 85.0, params)
    assert s.tripped  # drawdown 15% > reset 10%
    s = step(s, 90.0, params)
    assert not s.tripped and s.trips == 1


def test_halt_allows_reducing_exposure_but_never_adding_to_it():
    params = BreakerParams(trigger=0.25, max_position=0.6, reset=0.10, halt=0.40)
    s = step(step(BreakerState(), 100.0, params), 55.0, params)
    assert s.halted
    assert cap_weight(1.8, 0.3, s, params) == pytest.approx(0.3)
    assert cap_weight(0.1, 0.3, s, params) == pytest.approx(0.1)
    assert cap_weight(-0.1, 0.3, s, params) == 0.0
    assert cap_weight(1.8, 0.0, s, params) == 0.0


def test_position_limit_is_the_drawdown_cap_only_while_tripped():
    params = BreakerParams()
    assert position_limits(BreakerState(), params, 1.8, 0.1) == (1.8, 0.1)
    assert position_limits(BreakerState(tripped=True), params, 1.8, 0.1) == (0.6, 0.1)


def test_bullish_forecast_without_track_record_takes_the_long_bias():
    w = hybrid_weight(0.001, 0.01, 0.5, 1.0, 1.8, 0.1, 1.3, 0.1, 0.5, 0.05, 0.6, 0.0)
    assert w == pytest.approx(1.3)


def test_strong_track_record_tilts_toward_the_limits():
    p_win, payoff = 0.6, 1.0  # exactly the prior cap: full confidence
    bull = hybrid_weight(0.01, 0.01, p_win, payoff, 1.8, 0.1, 1.3, 0.1, 0.5, 0.05, 0.6, 0.0)
    bear = hybrid_weight(-0.01, 0.01, p_win, payoff, 1.8, 0.1, 1.3, 0.1, 0.5, 0.05, 0.6, 0.0)
    assert bull == pytest.approx(1.3 + 0.5 * math.tanh(20.0))
    assert bear == pytest.approx(-0.1, abs=1e-6)


def test_volatility_target_scales_the_weight_down_in_turbulence():
    calm = SizingConfig(vol_target=0.15)
    w = target_weight(0.001, 0.03, 0.5, 1.0, calm)  # 0.03 daily = 48% annualised
    assert w == pytest.approx(1.3 * 0.15 / (0.03 * math.sqrt(252)))


def test_missing_prediction_or_volatility_gives_a_flat_weight():
    assert target_weight(math.nan, 0.01, 0.55, 1.0, CFG) == 0.0
    assert target_weight(0.001, math.nan, 0.55, 1.0, CFG) == 0.0


def test_lagged_stats_count_only_predictions_whose_outcome_is_known():
    stats = LaggedStats(horizon=5, window=100)
    closes = [100.0 * (1.01 ** i) for i in range(20)]
    for t, close in enumerate(closes):
        stats.observe(+1.0, close)
        # Predictions made at bars 0..t-5 have resolved by the close of bar t.
        assert stats.n == max(t - 4, 0)
    assert stats.hit_rate == 1.0


def test_lagged_stats_window_forgets_the_oldest_outcomes():
    stats = LaggedStats(horizon=1, window=3)
    for close, pred in [(100, 1), (101, 1), (100, 1), (101, 1), (102, 1), (103, 1)]:
        stats.observe(float(pred), float(close))
    assert stats.n == 3 and stats.hit_rate == 1.0


def test_payoff_ratio_compares_mean_win_to_mean_loss():
    stats = LaggedStats(horizon=1, window=10)
    for close in (100.0, 110.0, 104.5):  # +9.5% hit, then -5.1% miss
        stats.observe(1.0, close)
    assert stats.payoff == pytest.approx(math.log(1.1) / -math.log(0.95))


def test_lagged_inputs_start_at_the_prior_and_follow_the_record():
    assert lagged_inputs(0.57, math.nan, math.nan, 0, CFG) == (pytest.approx(0.57), 1.0)
    p, b = lagged_inputs(0.57, 0.40, 0.8, 10_000, CFG)
    assert p == pytest.approx(0.40, abs=0.01) and b == pytest.approx(0.8, abs=0.01)


@pytest.mark.parametrize("bad", [
    {"max_long": 5}, {"max_short": -0.1}, {"drawdown_circuit_breaker": 1.2},
    {"drawdown_reset": 0.3}, {"base_long_bias": 2.0}, {"drawdown_halt": 0.2},
    {"kelly_scale": 0}, {"unknown": 1},
])
def test_invalid_sizing_parameters_are_refused_naming_the_key(bad):
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match=next(iter(bad))):
        SizingConfig(**bad)


@settings(max_examples=100, deadline=None)
@given(mus, sigmas, probs, payoffs)
def test_numba_compiles_the_weight_math_to_the_same_numbers(mu, sigma, p, b):
    args = (mu, sigma, p, b, 1.8, 0.1, 1.3, 0.1, 0.5, 0.05, 0.6, 0.15)
    assert _compiled_weight()(*args) == pytest.approx(hybrid_weight(*args), rel=1e-12, abs=1e-15)


_COMPILED = []


def _compiled_weight():
    import numba

    if not _COMPILED:
        _COMPILED.append(numba.njit(hybrid_weight))
    return _COMPILED[0]


_COMPILED_BREAKER = {}


def _compiled(fn):
    import numba

    if fn.__name__ not in _COMPILED_BREAKER:
        _COMPILED_BREAKER[fn.__name__] = numba.njit(fn)
    return _COMPILED_BREAKER[fn.__name__]


@settings(max_examples=100, deadline=None)
@given(st.floats(1.0, 200.0), st.booleans(), st.integers(0, 50), st.floats(1.0, 200.0),
       st.one_of(st.just(math.nan), st.floats(0.3, 0.9)))
def test_numba_compiles_the_breaker_step_to_the_same_state(high, tripped, trips, equity, halt):
    args = (high, tripped, trips, equity, 0.25, 0.10, halt)
    assert _compiled(breaker_step)(*args) == breaker_step(*args)


@settings(max_examples=100, deadline=None)
@given(st.floats(-2.0, 2.0), st.floats(-2.0, 2.0), st.booleans(), st.booleans())
def test_numba_compiles_the_breaker_cap_and_limits_to_the_same_numbers(weight, held, tripped,
                                                                       halted):
    assert _compiled(breaker_cap)(weight, held, tripped, halted, 0.6) == breaker_cap(
        weight, held, tripped, halted, 0.6)
    assert _compiled(breaker_limits)(tripped, 0.6, 1.8, 0.1) == breaker_limits(
        tripped, 0.6, 1.8, 0.1)


def test_breaker_state_step_is_the_scalar_step():
    params = BreakerParams(trigger=0.25, max_position=0.6, reset=0.10, halt=0.40)
    state = step(BreakerState(high_water=100.0, tripped=True, trips=2), 55.0, params)
    assert state == BreakerState(*breaker_step(100.0, True, 2, 55.0, 0.25, 0.10, 0.40))


# --- rebalancing: the band, and limits enforced on both sides --------------------------------


def test_a_long_a_hair_above_the_breaker_cap_is_not_trimmed():
    # 0.605 held against a 0.60 cap: within half the 0.05 band, so no trade for a few shares.
    assert not needs_rebalance(0.60, 0.605, 0.05, 0.60, 0.1)


def test_a_long_clearly_above_the_cap_is_trimmed_whatever_the_band():
    assert needs_rebalance(0.60, 0.63, 0.05, 0.60, 0.1)
    assert needs_rebalance(0.60, 1.30, 0.90, 0.60, 0.1)


def test_a_short_beyond_max_short_is_trimmed_like_a_long():
    # The independent ledger's case: a short drifted to -0.1187 with max_short 0.1.
    assert needs_rebalance(-0.10, -0.1187, 0.05, 1.8, 0.1)
    assert not needs_rebalance(-0.10, -0.1049, 0.05, 1.8, 0.1)


def test_the_tolerance_is_half_the_band_but_at_most_a_tenth_of_the_limit():
    assert trim_tolerance(0.05, 0.60) == pytest.approx(0.025)
    assert trim_tolerance(0.05, 0.10) == pytest.approx(0.01)
    assert trim_tolerance(0.0, 0.60) > 0.0


def test_without_a_limit_problem_only_the_band_or_going_flat_trades():
    assert not needs_rebalance(1.30, 1.28, 0.05, 1.8, 0.1)
    assert needs_rebalance(1.30, 1.20, 0.05, 1.8, 0.1)
    assert needs_rebalance(0.0, 0.01, 0.05, 1.8, 0.1)
    assert not needs_rebalance(0.0, 0.0, 0.05, 1.8, 0.1)


def test_while_tripped_the_short_limit_is_the_smaller_of_max_short_and_the_cap():
    params = BreakerParams(max_position=0.05)
    assert position_limits(BreakerState(tripped=True), params, 1.8, 0.1) == (0.05, 0.05)


@given(target=st.floats(-2, 2), held=st.floats(-2, 2), band=st.floats(0, 0.5),
       long_limit=st.floats(0.01, 4), short_limit=st.floats(0.01, 4))
def test_the_rule_is_symmetric_between_longs_and_shorts(target, held, band, long_limit,
                                                         short_limit):
    mirrored = needs_rebalance(-target, -held, band, short_limit, long_limit)
    assert needs_rebalance(target, held, band, long_limit, short_limit) == mirrored
