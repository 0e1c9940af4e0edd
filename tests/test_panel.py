"""The pooled model: fit_panel's schedule and audit, its refusals, and its per-symbol signals,
batch and streaming.

Most scenarios use a least-squares probe instead of the GBM stack, so they run in a fraction
of a second; the GBM ones (bit-for-bit streaming, any worker count) are marked slow.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest

from backtests.synthetic_panel import random_walk_panel, reversal_panel, symbol_names
from ensemble_bt.errors import ConfigurationError, DataError
from models.features import FEATURE_NAMES, LOOKBACK
from models.panel import PANEL_FEATURE_NAMES, PanelFit, fit_panel
from models.panel_data import build_panel
from models.panel_signal import PanelSignal
from models.panel_vintages import adapt_model, panel_audit
from models.signal import Signal
from models.stacking import StackedEnsemble

EMBARGO = 5


class LinearProbe:
    """Least squares on a few pooled columns; each row predicted on its own, elementwise."""

    COLUMNS = tuple(PANEL_FEATURE_NAMES.index(n) for n in ("cs_z_ret_5", "ret_5", "cs_rank_ret_1"))

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearProbe:
        A = np.column_stack([X[:, self.COLUMNS], np.ones(len(X))])
        self.coef_ = np.linalg.lstsq(A, y, rcond=None)[0]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        total = np.full(len(X), self.coef_[-1])
        for k, col in enumerate(self.COLUMNS):
            total = total + X[:, col] * self.coef_[k]
        return total


def _fit(frames: dict[str, pd.DataFrame], make_model=LinearProbe, start: int = 600,
         **overrides) -> PanelFit:
    calendar = build_panel(frames, 1).calendar
    settings = {"horizon": 1, "retrain_every": 100, "min_train": 500, "embargo": EMBARGO,
                "target": "raw", "make_model": make_model, "progress": False, **overrides}
    return fit_panel(frames, calendar[start], calendar[-1], **settings)


def _ragged(n: int = 900) -> dict[str, pd.DataFrame]:
    """Five symbols: S01 starts late, S02 skips sessions, S03 stops early, and S04 joins
    during the evaluation period (its first LOOKBACK bars there have no complete features)."""
    frames = random_walk_panel(n_symbols=5, n=n, seed=21)
    frames["S01"] = frames["S01"].iloc[450:]
    frames["S02"] = frames["S02"].drop(frames["S02"].index[610:n:9])
    frames["S03"] = frames["S03"].iloc[:n - 50]
    frames["S04"] = frames["S04"].iloc[560:]
    return frames


@pytest.fixture(scope="module")
def planted() -> tuple[dict[str, pd.DataFrame], PanelFit]:
    frames = reversal_panel(n_symbols=6, n=900, seed=4)
    return frames, _fit(frames)


# ------------------------------------------------------------------------------ fit_panel


def test_fit_panel_predicts_every_symbol_on_the_evaluation_calendar(planted):
    frames, fit = planted
    calendar = frames["S00"].index
    assert list(fit.predictions.index) == list(calendar[600:])
    assert list(fit.predictions.columns) == symbol_names(6)
    assert np.isfinite(fit.predictions.to_numpy()).all()
    assert fit.realised.shape == fit.predictions.shape
    assert np.isnan(fit.realised.iloc[-1]).all()  # tomorrow is not known yet


def test_fit_panel_audit_passes_and_covers_every_date_symbol_prediction(planted):
    _, fit = planted
    assert fit.audit["verdict"] == "pass"
    assert fit.audit["bars_checked"] == int(fit.predictions.notna().sum().sum())
    assert fit.audit["vintages_checked"] == 3 and fit.audit["embargo"] == EMBARGO


def test_vintage_records_count_pooled_rows_across_symbols(planted):
    _, fit = planted
    assert [r["index"] for r in fit.vintages] == [0, 1, 2]
    assert all(r["scope"] == "pooled" and r["n_symbols"] == 6 for r in fit.vintages)
    counts = [r["n_train"] for r in fit.vintages]
    assert counts == sorted(counts) and counts[1] - counts[0] == 100 * 6
    first = fit.vintages[0]
    assert pd.Timestamp(first["predict_start"]) == fit.predictions.index[0]


def test_every_training_label_ends_an_embargo_before_its_vintage_predicts(planted):
    frames, fit = planted
    panel = build_panel(frames, 1)
    for v in fit.signal.vintages:
        ends = panel.label_end[v.spec.train_rows]
        assert (ends >= 0).all()
        assert ends.max() + EMBARGO == v.spec.cutoff  # the last rows allowed, and no later
        assert v.train_end == panel.calendar[ends.max()]


def test_the_audit_fails_a_vintage_that_trained_on_labels_inside_its_embargo(planted):
    frames, fit = planted
    panel = build_panel(frames, 1)
    late = fit.signal.vintages[1]
    rows = np.flatnonzero((panel.label_end >= 0) & (panel.label_end <= late.spec.cutoff))
    leaky = dataclasses.replace(late, spec=dataclasses.replace(late.spec, train_rows=rows))
    vintages = [fit.signal.vintages[0], leaky, fit.signal.vintages[2]]
    audit = panel_audit(vintages, fit.predictions, panel, EMBARGO)
    assert audit["verdict"] == "fail"
    assert "vintage 1: a training label ends" in audit["violations"][0]


def test_the_audit_fails_a_prediction_its_vintage_trained_past(planted):
    frames, fit = planted
    panel = build_panel(frames, 1)
    first = fit.signal.vintages[0]
    rows = np.flatnonzero((panel.label_end >= 0) & (panel.label_end <= first.spec.cutoff + 40))
    leaky = dataclasses.replace(first, spec=dataclasses.replace(first.spec, train_rows=rows))
    audit = panel_audit([leaky, *fit.signal.vintages[1:]], fit.predictions, panel, 0)
    assert audit["verdict"] == "fail"
    assert any("made by vintage 0" in v for v in audit["violations"])
    assert audit["n_violations"] == 1 + 40  # the vintage itself, and its first 40 dates


def test_a_symbol_without_a_bar_or_complete_features_predicts_nan():
    frames = _ragged()
    fit = _fit(frames)
    pred = fit.predictions
    assert fit.audit["verdict"] == "pass"
    assert pred["S02"].isna().sum() == len(pred.index.difference(frames["S02"].index))
    assert pred["S03"].loc[frames["S03"].index[-1]:].iloc[1:].isna().all()
    joined = frames["S04"].index
    assert pred["S04"].loc[:joined[LOOKBACK - 2]].isna().all()
    assert pred["S04"].loc[joined[LOOKBACK - 1]:].notna().all()


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("start", "end", "message"), [
    (100, -1, "fewer than min_train=500; the earliest valid start is"),
    (700, 650, "is before start"),
])
def test_fit_panel_refuses_a_period_without_enough_history(start, end, message):
    frames = random_walk_panel(n_symbols=3, n=900)
    calendar = frames["S00"].index
    with pytest.raises(ConfigurationError, match=message):
        fit_panel(frames, calendar[start], calendar[end], horizon=1, retrain_every=100,
                  min_train=500, embargo=5, target="raw", make_model=LinearProbe,
                  progress=False)


def test_fit_panel_refuses_a_start_after_the_last_session():
    frames = random_walk_panel(n_symbols=3, n=900)
    with pytest.raises(ConfigurationError, match="after the panel's last session"):
        fit_panel(frames, pd.Timestamp("2030-01-01"), pd.Timestamp("2031-01-01"), horizon=1,
                  retrain_every=100, min_train=500, embargo=5, target="raw",
                  make_model=LinearProbe, progress=False)


@pytest.mark.parametrize(("override", "message"), [
    ({"workers": 0}, "workers must be an integer >= 1"),
    ({"retrain_every": 0}, "retrain_every must be an integer >= 1"),
    ({"embargo": -1}, "embargo must be an integer >= 0"),
    ({"target": "excess"}, "target must be one of raw, demeaned"),
    ({"horizon": 0}, "horizon must be an integer"),
])
def test_fit_panel_refuses_invalid_settings_in_one_line(override, message):
    frames = random_walk_panel(n_symbols=3, n=900)
    with pytest.raises(ConfigurationError, match=message) as err:
        _fit(frames, **override)
    assert "\n" not in str(err.value)


def test_fit_panel_refuses_too_few_training_rows():
    frames = random_walk_panel(n_symbols=2, n=700)
    frames = {s: f.iloc[:170] if s == "S00" else f.iloc[540:] for s, f in frames.items()}
    with pytest.raises(DataError, match="complete training rows"):
        _fit(frames, start=200, min_train=100)


def test_a_pooled_model_refuses_sequence_learners():
    with pytest.raises(ConfigurationError, match="sequence learners"):
        adapt_model(StackedEnsemble(models=("xgb", "lstm")), 20)


def test_adapting_a_stack_scales_its_row_gaps_by_the_panel_width():
    stack = adapt_model(StackedEnsemble(purge=5, embargo=3, feature_names=FEATURE_NAMES), 20)
    assert (stack.purge, stack.embargo) == (100, 60)
    assert stack.feature_names == PANEL_FEATURE_NAMES


# ------------------------------------------------------------------------------ signals


def test_a_view_is_a_signal_and_the_same_object_every_time(planted):
    _, fit = planted
    view = fit.signal.view("S03")
    assert isinstance(view, Signal)
    assert fit.signal.view("S03") is view
    assert view.lookback == LOOKBACK
    with pytest.raises(ConfigurationError, match="'XYZ' is not in the pooled panel"):
        fit.signal.view("XYZ")


def test_a_view_predicts_its_own_column_aligned_to_the_bars_it_gets(planted):
    frames, fit = planted
    got = fit.signal.view("S02").predict_batch(frames["S02"])
    expected = fit.predictions["S02"].reindex(frames["S02"].index).to_numpy()
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.isnan(got[:600]).all() and np.isfinite(got[600:]).all()


def test_the_prior_is_the_better_of_holdout_accuracy_and_the_positive_share(planted):
    frames, fit = planted
    view = fit.signal.view("S00")
    dates = frames["S00"].index
    priors = view.prior_batch(dates)
    assert np.isnan(priors[:600]).all()
    for v in fit.signal.vintages:
        expected = max(v.holdout_dir_acc, v.train_positive_pct)
        assert view.prior_last(v.predict_start) == expected == view.prior_last(v.predict_end)


def test_batch_predictions_refuse_bars_the_panel_was_not_built_from(planted):
    frames, fit = planted
    changed = frames["S01"].copy()
    changed.iloc[700, changed.columns.get_loc("close")] *= 1.01
    with pytest.raises(DataError, match="S01: the bars given to predict_batch differ"):
        fit.signal.view("S01").predict_batch(changed)


def test_streaming_needs_every_symbol_registered(planted):
    frames, fit = planted
    signal = PanelSignal(fit.signal.vintages, fit.signal.symbols)
    signal.view("S00").register(lambda: frames["S00"].iloc[-LOOKBACK:])
    date = frames["S01"].index[700]
    with pytest.raises(ConfigurationError, match="4 are not registered"):
        signal.view("S01").predict_last(frames["S01"].loc[:date].iloc[-LOOKBACK:], date)


def stream(signal: PanelSignal, frames: dict[str, pd.DataFrame],
           dates: pd.DatetimeIndex) -> dict[str, dict[pd.Timestamp, float]]:
    """Every symbol's ``predict_last`` on every date it has a bar, as backtrader calls them:
    windows of the last LOOKBACK bars, the asking order varying, and a symbol without a bar
    asked again for its last date (which must repeat what it got that date)."""
    current: dict[str, pd.DataFrame | None] = {}
    for s in signal.symbols:
        signal.view(s).register(functools.partial(current.get, s))
    out: dict[str, dict[pd.Timestamp, float]] = {s: {} for s in signal.symbols}
    for i, date in enumerate(dates):
        for s, frame in frames.items():
            n = int(frame.index.searchsorted(date, side="right"))
            current[s] = frame.iloc[max(n - LOOKBACK, 0):n] if n else None
        order = signal.symbols if i % 2 else signal.symbols[::-1]
        for s in order:
            window = current[s]
            if window is None:
                continue
            last = window.index[-1]
            value = signal.view(s).predict_last(window, last)
            if last == date:
                out[s][date] = value
            elif last in out[s]:
                assert np.array_equal(value, out[s][last], equal_nan=True)
    return out


def _assert_stream_equals_batch(fit: PanelFit, frames: dict[str, pd.DataFrame]) -> None:
    streamed = stream(fit.signal, frames, fit.predictions.index)
    for s, values in streamed.items():
        batch = pd.Series(fit.signal.view(s).predict_batch(frames[s]), index=frames[s].index)
        dates = pd.DatetimeIndex(list(values))
        assert list(dates) == list(frames[s].index.intersection(fit.predictions.index))
        assert np.array_equal(np.array(list(values.values())), batch.loc[dates].to_numpy(),
                              equal_nan=True), s
        assert np.isfinite(list(values.values())).sum() > 100


def test_streaming_over_a_ragged_panel_gives_the_batch_predictions_exactly():
    frames = _ragged()
    _assert_stream_equals_batch(_fit(frames), frames)


def _stack(**overrides) -> functools.partial:
    params = {"models": ("xgb", "lgbm"), "meta": "mean", "feature_names": FEATURE_NAMES,
              "purge": 1, "embargo": EMBARGO, "seed": 42, **overrides}
    return functools.partial(StackedEnsemble, **params)


@pytest.mark.slow
def test_streaming_a_gbm_stack_over_a_ragged_panel_matches_batch_bit_for_bit():
    frames = _ragged()
    fit = _fit(frames, make_model=_stack(), start=650, retrain_every=120)
    assert fit.audit["verdict"] == "pass"
    _assert_stream_equals_batch(fit, frames)


@pytest.mark.slow
def test_two_workers_fit_the_same_vintages_as_one():
    frames = reversal_panel(n_symbols=6, n=900, seed=4)
    one = _fit(frames, make_model=_stack(meta="xgb"), target="demeaned", workers=1)
    two = _fit(frames, make_model=_stack(meta="xgb"), target="demeaned", workers=2)
    assert np.array_equal(one.predictions.to_numpy(), two.predictions.to_numpy())
    assert one.vintages == two.vintages
