"""Pooled rows: cross-sectional features, the panel's calendar, targets and label ends, and
the rank IC that scores a panel of predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from backtests.synthetic_panel import random_walk_panel, reversal_panel, symbol_names
from ensemble_bt.errors import ConfigurationError, DataError
from models.crosssection import rank_ic, rank_ic_summary
from models.features import FEATURE_NAMES, LOOKBACK
from models.panel_data import build_panel
from models.panel_features import (
    CALENDAR_FEATURES,
    CS_SOURCE_NAMES,
    LONE_RANK,
    LONE_Z,
    PANEL_FEATURE_NAMES,
    panel_rows,
)

N_FEAT = len(FEATURE_NAMES)


def _cube(values_by_symbol: list[list[float]]) -> np.ndarray:
    """A cube with one date per position, each symbol's every feature set to its value."""
    grid = np.array(values_by_symbol, dtype=np.float64).T  # (dates, symbols)
    return np.repeat(grid[:, :, None], N_FEAT, axis=2)


def _cs(X: np.ndarray, prefix: str, name: str = "ret_1") -> np.ndarray:
    return X[:, PANEL_FEATURE_NAMES.index(f"{prefix}_{name}")]


# ------------------------------------------------------------------------------ names


def test_panel_feature_names_are_the_features_then_every_rank_then_every_z():
    assert PANEL_FEATURE_NAMES[:N_FEAT] == FEATURE_NAMES
    assert len(PANEL_FEATURE_NAMES) == N_FEAT + 2 * len(CS_SOURCE_NAMES)
    assert len(set(PANEL_FEATURE_NAMES)) == len(PANEL_FEATURE_NAMES)
    assert not set(CALENDAR_FEATURES) & set(CS_SOURCE_NAMES)
    assert "cs_rank_ret_5" in PANEL_FEATURE_NAMES and "cs_z_vol_21" in PANEL_FEATURE_NAMES


# ------------------------------------------------------------------------------ cross-section


def test_rank_is_scaled_to_zero_one_and_ties_share_their_mean_rank():
    _, _, X = panel_rows(_cube([[3.0], [1.0], [2.0], [2.0], [5.0]]))
    assert _cs(X, "cs_rank").tolist() == [0.75, 0.0, 0.375, 0.375, 1.0]


def test_z_score_uses_the_population_std_of_the_cross_section():
    values = np.array([1.0, 2.0, 4.0, 9.0])
    _, _, X = panel_rows(_cube([[v] for v in values]))
    np.testing.assert_allclose(_cs(X, "cs_z"), (values - values.mean()) / values.std(ddof=0))


def test_a_symbol_alone_on_a_date_gets_the_middle_rank_and_a_zero_z():
    _, _, X = panel_rows(_cube([[0.3]]))
    assert _cs(X, "cs_rank").tolist() == [LONE_RANK]
    assert _cs(X, "cs_z").tolist() == [LONE_Z]


def test_a_flat_cross_section_has_zero_z_scores():
    _, _, X = panel_rows(_cube([[0.1], [0.1], [0.1]]))
    assert _cs(X, "cs_z").tolist() == [0.0, 0.0, 0.0]
    assert _cs(X, "cs_rank").tolist() == [0.5, 0.5, 0.5]


def test_symbols_without_complete_features_are_left_out_of_the_cross_section():
    cube = _cube([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    cube[1, 2, 4] = np.nan  # symbol 2 lacks one feature on date 1
    t, j, X = panel_rows(cube)
    assert list(zip(t.tolist(), j.tolist(), strict=True)) == [(0, 0), (0, 1), (0, 2),
                                                               (1, 0), (1, 1)]
    assert _cs(X, "cs_rank")[3:].tolist() == [0.0, 1.0]
    assert np.isfinite(X).all()


def test_one_date_alone_gives_the_same_rows_bit_for_bit_as_the_whole_history():
    rng = np.random.default_rng(5)
    cube = rng.normal(size=(300, 12, N_FEAT)) * rng.lognormal(size=N_FEAT)
    cube[:40, 3] = np.nan
    cube[rng.random((300, 12)) < 0.1] = np.nan
    t, _, X = panel_rows(cube)
    for d in (0, 39, 40, 150, 299):
        _, _, alone = panel_rows(cube[d:d + 1])
        assert np.array_equal(alone, X[t == d])


# ------------------------------------------------------------------------------ panel data


@pytest.fixture(scope="module")
def ragged():
    """Four symbols: one starts late, one skips sessions, one stops early."""
    frames = random_walk_panel(n_symbols=4, n=400, seed=3)
    names = symbol_names(4)
    frames[names[1]] = frames[names[1]].iloc[150:]
    frames[names[2]] = frames[names[2]].drop(frames[names[2]].index[200:300:7])
    frames[names[3]] = frames[names[3]].iloc[:350]
    return frames


def test_the_calendar_is_the_union_of_the_sessions(ragged):
    panel = build_panel(ragged, horizon=1)
    union = sorted(set().union(*(f.index for f in ragged.values())))
    assert list(panel.calendar) == union
    assert panel.symbols == tuple(sorted(ragged))


def test_rows_exist_only_where_a_symbol_has_a_bar_and_complete_features(ragged):
    panel = build_panel(ragged, horizon=1)
    for j, symbol in enumerate(panel.symbols):
        dates = panel.calendar[panel.date_pos[panel.symbol_idx == j]]
        assert list(dates) == list(ragged[symbol].index[LOOKBACK - 1:])
    assert np.all(np.diff(panel.date_pos) >= 0)  # date-major


def test_a_label_ends_at_the_symbols_own_bar_horizon_bars_later(ragged):
    panel = build_panel(ragged, horizon=5)
    j = panel.symbols.index("S02")  # the symbol with gaps
    frame = ragged["S02"]
    rows = np.flatnonzero(panel.symbol_idx == j)
    for row in rows[::17]:
        i = frame.index.get_loc(panel.calendar[panel.date_pos[row]])
        if i + 5 < len(frame):
            assert panel.calendar[panel.label_end[row]] == frame.index[i + 5]
            expected = np.log(frame["close"].iloc[i + 5] / frame["close"].iloc[i])
            assert panel.y[row] == pytest.approx(expected, abs=1e-15)
        else:
            assert panel.label_end[row] == -1 and np.isnan(panel.y[row])


def test_demeaned_labels_sum_to_zero_and_end_when_the_last_of_the_day_ends(ragged):
    raw = build_panel(ragged, horizon=5, target="raw")
    demeaned = build_panel(ragged, horizon=5, target="demeaned")
    unlabeled = 0
    for d in np.unique(demeaned.date_pos):
        rows = demeaned.date_pos == d
        if np.isfinite(raw.y[rows]).all():
            assert abs(demeaned.y[rows].sum()) < 1e-12
            np.testing.assert_allclose(demeaned.y[rows], raw.y[rows] - raw.y[rows].mean())
            assert (demeaned.label_end[rows] == raw.label_end[rows].max()).all()
        else:  # a symbol's label is not known (it stops): nobody's demeaned one is
            assert np.isnan(demeaned.y[rows]).all() and (demeaned.label_end[rows] == -1).all()
            unlabeled += 1
    assert unlabeled == 5 + 5  # S03's last five bars, and everyone's last five


def test_build_panel_refuses_what_it_cannot_stack():
    frames = random_walk_panel(n_symbols=2, n=200)
    with pytest.raises(DataError, match="mapping"):
        build_panel({}, horizon=1)
    with pytest.raises(DataError, match="S00: the dates must be sorted"):
        build_panel({"S00": frames["S00"].iloc[::-1]}, horizon=1)
    with pytest.raises(ConfigurationError, match="target must be one of raw, demeaned"):
        build_panel(frames, horizon=1, target="excess")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="horizon"):
        build_panel(frames, horizon=0)


# ------------------------------------------------------------------------------ rank IC


def _frames(pred: list[list[float]], real: list[list[float]]) -> tuple[pd.DataFrame, ...]:
    dates = pd.bdate_range("2020-01-01", periods=len(pred))
    cols = symbol_names(len(pred[0]))
    return pd.DataFrame(pred, dates, cols), pd.DataFrame(real, dates, cols)


def test_rank_ic_is_one_for_a_perfect_ranking_and_minus_one_for_its_reverse():
    pred, real = _frames([[1, 2, 3, 4], [4, 3, 2, 1]], [[0.1, 0.2, 0.3, 0.9], [1, 2, 3, 4]])
    assert rank_ic(pred, real).tolist() == pytest.approx([1.0, -1.0])


def test_rank_ic_needs_three_symbols_with_both_values_and_drops_the_others():
    nan = float("nan")
    pred, real = _frames([[1, 2, nan, 4], [1, 2, 3, 4], [1, 1, 1, 1]],
                         [[1, 2, 3, nan], [3, 1, 2, 4], [1, 2, 3, 4]])
    ic = rank_ic(pred, real)
    assert np.isnan(ic.iloc[0])  # two pairs left
    assert ic.iloc[1] == pytest.approx(stats.spearmanr([1, 2, 3, 4], [3, 1, 2, 4]).statistic)
    assert np.isnan(ic.iloc[2])  # a constant prediction ranks nothing


def test_rank_ic_ignores_a_common_shift_of_the_day():
    rng = np.random.default_rng(1)
    pred, real = _frames(rng.normal(size=(30, 8)).tolist(), rng.normal(size=(30, 8)).tolist())
    shifted = real.add(rng.normal(size=30), axis=0)
    pd.testing.assert_series_equal(rank_ic(pred, real), rank_ic(pred, shifted))


def test_rank_ic_summary_is_the_mean_and_the_mean_over_the_std():
    mean, ir = rank_ic_summary(pd.Series([0.1, float("nan"), 0.3, 0.2]))
    assert mean == pytest.approx(0.2)
    assert ir == pytest.approx(0.2 / 0.1)
    assert all(np.isnan(rank_ic_summary(pd.Series([float("nan")]))))


def test_the_planted_panel_holds_its_reversal_and_the_canary_none():
    """The generators themselves: the best possible predictor of the planted panel (minus
    each symbol's 5-day return) ranks tomorrow; on the random walks it does not."""
    for frames, low, high in ((reversal_panel(n=1500), 0.05, 0.2),
                              (random_walk_panel(n=1500), -0.02, 0.02)):
        close = pd.DataFrame({s: f["close"] for s, f in frames.items()})
        signal = -np.log(close / close.shift(5))
        realised = np.log(close.shift(-1) / close)
        mean, _ = rank_ic_summary(rank_ic(signal, realised))
        assert low <= mean <= high
