"""The portfolio rules of sizing/portfolio.py as pure functions: no cerebro, no data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sizing.breaker import BreakerParams, BreakerState, cap_weight
from sizing.config import PortfolioConfig
from sizing.portfolio import (
    Book,
    gross_cap,
    gross_scale,
    over_gross,
    target_weights,
    topk_dropout,
    topk_weights,
)

NAN = float("nan")
CALM = BreakerState()
TRIPPED = BreakerState(high_water=100.0, drawdown=0.3, tripped=True, trips=1)
PARAMS = BreakerParams()  # max_position 0.60


def _names(mask: np.ndarray, names: str = "ABCDEFGH") -> str:
    return "".join(n for n, m in zip(names, mask, strict=False) if m)


# ------------------------------------------------------------------------------ top-k
def test_topk_without_dropout_holds_the_k_best_predictions():
    selected = topk_dropout([0.1, 0.4, -0.2, 0.3], held=[0, 0, 0, 0], tradable=[1, 1, 1, 1],
                            k=2)
    assert _names(selected) == "BD"


def test_topk_ranks_only_symbols_with_a_bar_and_a_finite_prediction():
    selected = topk_dropout([0.9, NAN, 0.1, 0.5], held=[0, 0, 0, 0], tradable=[0, 1, 1, 1],
                            k=2)
    assert _names(selected) == "CD"  # A has no bar today, B no prediction


def test_topk_replaces_held_names_that_fall_out_of_the_top_k():
    selected = topk_dropout([0.3, 0.1, 0.4, 0.2], held=[1, 1, 0, 0], tradable=[1, 1, 1, 1],
                            k=2)
    assert _names(selected) == "AC"


def test_topk_dropout_replaces_at_most_n_names_a_day_as_qlib_does():
    # Held A, B; today C > D > A > B.  Qlib with n_drop=1 sells only B (the worst) for C.
    scores, held = [0.2, 0.1, 0.4, 0.3], [1, 1, 0, 0]
    assert _names(topk_dropout(scores, held, [1, 1, 1, 1], k=2, dropout=1)) == "AC"
    assert _names(topk_dropout(scores, held, [1, 1, 1, 1], k=2, dropout=2)) == "CD"


def test_a_held_symbol_without_a_bar_stays_held_and_takes_a_place():
    selected = topk_dropout([NAN, 0.1, 0.4, 0.3], held=[1, 1, 0, 0], tradable=[0, 1, 1, 1],
                            k=2)
    assert _names(selected) == "AC"  # A cannot be sold; one place left: C beats B


def test_a_held_symbol_with_a_bar_but_no_prediction_is_sold():
    selected = topk_dropout([NAN, 0.1, 0.4, 0.3], held=[1, 0, 0, 0], tradable=[1, 1, 1, 1],
                            k=2, dropout=1)
    assert _names(selected) == "CD"


def test_a_universe_of_k_symbols_keeps_them_all():
    # Qlib's rule would sell the bottom n_drop of a two-name comb and buy nothing back.
    assert topk_dropout([0.1, 0.2], held=[1, 1], tradable=[1, 1], k=2).all()


def test_topk_ties_keep_the_listing_order():
    assert _names(topk_dropout([0.1, 0.1, 0.1], [0, 0, 0], [1, 1, 1], k=2)) == "AB"


scores_st = st.lists(st.one_of(st.floats(-1, 1), st.just(NAN)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(scores=scores_st, data=st.data())
def test_topk_dropout_invariants(scores, data):
    n = len(scores)
    k = data.draw(st.integers(1, n))
    dropout = data.draw(st.one_of(st.none(), st.integers(1, k)))
    tradable = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    held_idx = data.draw(st.sets(st.integers(0, n - 1), max_size=k))
    held = np.isin(np.arange(n), list(held_idx))
    # Act
    selected = topk_dropout(scores, held, tradable, k, dropout)
    # Assert: at most k names; only held or rankable names; untradable held names stay;
    # untradable unheld names are never bought; at most `dropout` ranked names sold.
    rankable = tradable & np.isfinite(scores)
    assert selected.sum() <= k
    assert not (selected & ~held & ~rankable).any()
    assert (selected[held & ~tradable]).all()
    sold = held & rankable & ~selected
    assert sold.sum() <= (k if dropout is None else dropout)


@settings(max_examples=200, deadline=None)
@given(scores=st.lists(st.floats(-1, 1), min_size=1, max_size=8, unique=True), data=st.data())
def test_topk_without_dropout_is_plain_top_k(scores, data):
    n = len(scores)
    k = data.draw(st.integers(1, n))
    held = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if held.sum() > k:
        held[np.flatnonzero(held)[k:]] = False
    selected = topk_dropout(scores, held, np.ones(n, bool), k)
    best = np.argsort(scores)[::-1][:k]
    assert set(np.flatnonzero(selected)) == set(best)


def test_topk_weights_equal_holds_whole_slices_and_kelly_floors_at_zero():
    selected = np.array([True, True, False])
    assert topk_weights(selected, [1.4, -0.05, 1.8], "equal").tolist() == [1.0, 1.0, 0.0]
    assert topk_weights(selected, [1.4, -0.05, 1.8], "kelly").tolist() == [1.4, 0.0, 0.0]


# ----------------------------------------------------------------------------- gross cap
def test_gross_scale_fits_the_traded_weights_under_the_cap_around_the_fixed_ones():
    weights, slices = np.array([1.0, 1.0]), np.array([0.5, 0.5])  # gross 1.0
    assert gross_scale(weights, slices, fixed=0.0, cap=None) == 1.0
    assert gross_scale(weights, slices, fixed=0.0, cap=2.0) == 1.0
    assert gross_scale(weights, slices, fixed=0.0, cap=0.8) == pytest.approx(0.8)
    assert gross_scale(weights, slices, fixed=0.3, cap=0.8) == pytest.approx(0.5)
    assert gross_scale(weights, slices, fixed=0.9, cap=0.8) == 0.0


def test_gross_cap_is_max_gross_and_the_breaker_cap_while_tripped():
    assert gross_cap(None, CALM, PARAMS) is None
    assert gross_cap(1.5, CALM, PARAMS) == 1.5
    assert gross_cap(None, TRIPPED, PARAMS) == 0.6
    assert gross_cap(0.5, TRIPPED, PARAMS) == 0.5


def test_over_gross_allows_the_trim_tolerance():
    assert not over_gross(1.02, 1.0, band=0.05)  # within half the band
    assert over_gross(1.03, 1.0, band=0.05)
    assert not over_gross(9.0, None, band=0.05)


# --------------------------------------------------------------------------- target weights
def _book(kelly, scores, held, slices, live) -> Book:
    return Book(kelly=np.array(kelly, float), scores=np.array(scores, float),
                held=np.array(held, float), slices=np.array(slices, float),
                live=np.array(live, bool))


@pytest.mark.parametrize("state", [CALM, TRIPPED])
@pytest.mark.parametrize(("kelly", "held"), [(1.7, 0.0), (-0.08, 0.9), (1.3, 1.29)])
def test_one_symbol_with_the_default_portfolio_is_the_breaker_capped_hybrid(kelly, held, state):
    book = _book([kelly], [0.01], [held], [1.0], [True])
    got = target_weights(book, PortfolioConfig(), state, PARAMS)
    assert got[0] == cap_weight(kelly, held, state, PARAMS)


def test_allocations_scale_every_traded_symbol_by_one_factor_under_max_gross():
    book = _book([1.6, 1.2, 0.4], [0.0] * 3, [0.0] * 3, [1 / 3] * 3, [True] * 3)
    got = target_weights(book, PortfolioConfig(max_gross=1.0), CALM, PARAMS)
    assert np.sum(np.abs(got) / 3) == pytest.approx(1.0)
    np.testing.assert_allclose(got / np.array([1.6, 1.2, 0.4]), 1.0 / 1.0666666666666667)


def test_a_symbol_without_a_bar_keeps_its_held_weight_and_counts_in_the_gross():
    book = _book([1.8, 1.8], [0.1, NAN], [0.0, 1.2], [0.5, 0.5], [True, False])
    got = target_weights(book, PortfolioConfig(max_gross=1.0), CALM, PARAMS)
    assert got[1] == 1.2
    assert got[0] * 0.5 == pytest.approx(1.0 - 0.6)


def test_topk_equal_weights_hold_slices_of_one_over_k():
    cfg = PortfolioConfig(mode="topk", k=2)
    book = _book([1.3] * 4, [0.1, 0.4, -0.2, 0.3], [0.0] * 4, [0.5] * 4, [True] * 4)
    assert target_weights(book, cfg, CALM, PARAMS).tolist() == [0.0, 1.0, 0.0, 1.0]


def test_topk_kelly_weights_multiply_each_slice_by_its_kelly_weight():
    cfg = PortfolioConfig(mode="topk", k=2, weights="kelly")
    book = _book([1.3, 1.7, 0.05, 1.5], [0.1, 0.4, -0.2, 0.3], [0.0] * 4, [0.5] * 4, [True] * 4)
    assert target_weights(book, cfg, CALM, PARAMS).tolist() == [0.0, 1.7, 0.0, 1.5]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_tripped_breaker_caps_the_gross_of_the_traded_symbols(data):
    n = data.draw(st.integers(1, 6))
    k = data.draw(st.integers(1, n))
    topk = data.draw(st.booleans())
    weights = data.draw(st.sampled_from(["equal", "kelly"]))
    max_gross = data.draw(st.one_of(st.none(), st.floats(0.1, 3.0)))
    cfg = (PortfolioConfig(mode="topk", k=k, weights=weights, max_gross=max_gross) if topk
           else PortfolioConfig(max_gross=max_gross))
    slices = np.full(n, 1.0 / k if topk else 1.0 / n)
    floats = st.lists(st.floats(-0.1, 1.8), min_size=n, max_size=n)
    book = _book(data.draw(floats), data.draw(floats), np.zeros(n), slices, np.ones(n, bool))
    # Act
    got = target_weights(book, cfg, TRIPPED, PARAMS)
    # Assert
    cap = min(0.6, max_gross or np.inf)
    assert np.sum(np.abs(got) * slices) <= cap + 1e-12
    assert (np.abs(got) <= 0.6 + 1e-12).all()


# ----------------------------------------------------------------------------- the config
@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"k": 2}, "applies to mode topk"),
    ({"mode": "topk"}, "k is required"),
    ({"mode": "topk", "k": 2, "dropout": 3}, "dropout must be <= k"),
    ({"mode": "topk", "k": 2, "allocations": {"A": 1.0}}, "applies to mode allocations"),
    ({"allocations": {"A": 0.7, "B": 0.5}}, "sum to at most 1"),
    ({"allocations": {"A": -0.1}}, ">= 0"),
    ({"max_gross": 0.0}, "greater than 0"),
    ({"mode": "topk", "k": 2, "dropout": 0}, "greater than or equal to 1"),
])
def test_portfolio_config_refuses_inconsistent_keys(kwargs, needle):
    with pytest.raises(ValidationError, match=needle):
        PortfolioConfig(**kwargs)


def test_portfolio_allocations_are_keyed_by_upper_case_symbol():
    assert PortfolioConfig(allocations={"aapl": 0.5}).allocations == {"AAPL": 0.5}
