"""Walk-forward schedule, leakage audit, and the end-to-end causality of predictions."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from backtests.config import load_config
from backtests.plan import Period, train_vintages
from backtests.synthetic import ar1_returns
from ensemble_bt.errors import ConfigurationError, DataError
from models.signal import VintageSignal
from models.vintages import build_schedule, leakage_audit


def test_schedule_trains_only_on_labels_ending_an_embargo_before_the_cutoff():
    valid = np.ones(2000, dtype=bool)
    valid[:100] = False
    specs = build_schedule(valid, 600, 1999, horizon=5, retrain_every=63, embargo=5)
    for spec in specs:
        assert spec.train_rows.min() >= 100
        assert spec.train_rows.max() + 5 + 5 == spec.cutoff


def test_schedule_windows_tile_the_evaluation_period_without_gaps():
    specs = build_schedule(np.ones(2000, dtype=bool), 600, 1999, horizon=1, retrain_every=100)
    assert specs[0].cutoff == 600 and specs[-1].predict_last == 1999
    for a, b in zip(specs, specs[1:], strict=False):
        assert a.predict_last + 1 == b.cutoff


def test_schedule_with_short_history_raises_configuration_error():
    with pytest.raises(ConfigurationError, match="504 bars of history"):
        build_schedule(np.ones(2000, dtype=bool), 300, 1999, horizon=5)


def test_schedule_with_too_few_complete_rows_raises_data_error():
    valid = np.zeros(2000, dtype=bool)
    valid[450:] = True
    with pytest.raises(DataError, match="training rows"):
        build_schedule(valid, 504, 1999, horizon=5)


@pytest.fixture(scope="module")
def trained():
    ohlcv = ar1_returns(n=1400, seed=3)
    cfg = load_config(None, {"data": "synthetic", "horizon": 5, "retrain_every": 150})
    period = Period(600, 1399)
    return ohlcv, cfg, period, train_vintages(ohlcv, period, cfg, progress=False)


def test_audit_passes_for_the_vintages_the_pipeline_trains(trained):
    ohlcv, _, period, vintages = trained
    predicted = ohlcv.index[period.start:period.end + 1]
    audit = leakage_audit(vintages, predicted, ohlcv.index)
    assert audit["verdict"] == "pass"
    assert audit["bars_checked"] == len(predicted)


def test_audit_fails_when_a_vintage_trained_on_a_label_ending_after_a_bar(trained):
    ohlcv, _, period, vintages = trained
    leaky = vintages[1]
    leaky.train_label_end, saved = leaky.spec.cutoff + 3, leaky.train_label_end
    try:
        audit = leakage_audit(vintages, ohlcv.index[period.start:period.end + 1], ohlcv.index)
    finally:
        leaky.train_label_end = saved
    assert audit["verdict"] == "fail"
    # Three predicted bars before the label ends, and the vintage's embargo itself.
    assert audit["n_violations"] == 3 + 1


def test_audit_fails_for_a_bar_that_no_vintage_covers(trained):
    ohlcv, _, period, vintages = trained
    audit = leakage_audit(vintages, ohlcv.index[period.start - 1:period.start + 5], ohlcv.index)
    assert audit["verdict"] == "fail"


@pytest.mark.slow
def test_changing_the_future_never_changes_a_past_prediction(trained):
    # Arrange: the same bars up to T, then a different future after T.
    ohlcv, cfg, period, vintages = trained
    cut = 1000
    altered = ohlcv.copy()
    altered.iloc[cut + 1:, :4] *= np.linspace(1.5, 0.5, len(ohlcv) - cut - 1)[:, None]
    altered["high"] = altered[["open", "high", "close"]].max(axis=1)
    altered["low"] = altered[["open", "low", "close"]].min(axis=1)
    # Act
    original = VintageSignal(vintages).predict_batch(ohlcv)
    retrained = VintageSignal(train_vintages(altered, period, cfg, progress=False))
    changed = retrained.predict_batch(altered)
    # Assert: every bar up to T is predicted identically; later bars do move.
    np.testing.assert_array_equal(original[period.start:cut + 1], changed[period.start:cut + 1])
    assert not np.allclose(original[cut + 20:], changed[cut + 20:])


def test_vintage_records_hold_the_dates_of_their_windows(trained):
    ohlcv, _, _, vintages = trained
    rec = vintages[0].record()
    assert pd.Timestamp(rec["train_end"]) < pd.Timestamp(rec["predict_start"])
    assert set(rec["models"]["learners"]) == {"xgb", "lgbm"}
    assert set(rec["models"]["meta_weights"]) == {"xgb", "lgbm"}
    assert 0.0 <= rec["models"]["validation"]["dir_acc"] <= 1.0
    assert rec["holdout_dir_acc"] == rec["models"]["validation"]["dir_acc"]


def test_audit_checks_the_embargo_between_the_last_label_and_the_first_prediction(trained):
    ohlcv, cfg, period, vintages = trained
    predicted = ohlcv.index[period.start:period.end + 1]
    # Arrange: the pipeline's vintages keep exactly the configured embargo...
    gaps = [v.spec.cutoff - (int(v.spec.train_rows[-1]) + cfg.horizon) for v in vintages]
    assert min(gaps) >= cfg.embargo
    # ...so an audit that asks for a longer one fails each vintage whose gap is shorter.
    audit = leakage_audit(vintages, predicted, ohlcv.index, embargo=min(gaps) + 1)
    assert audit["verdict"] == "fail"
    assert "the embargo is" in audit["violations"][0]
    assert leakage_audit(vintages, predicted, ohlcv.index, embargo=cfg.embargo)["verdict"] == \
        "pass"


def test_audit_fails_a_vintage_whose_training_rows_reach_into_the_embargo(trained):
    ohlcv, cfg, period, vintages = trained
    predicted = ohlcv.index[period.start:period.end + 1]
    leaky = vintages[2]
    saved = leaky.spec
    # One extra training row right before the cutoff: its label ends inside the embargo but
    # still before the first predicted bar, which the per-bar check alone would miss.
    extra = np.r_[saved.train_rows, saved.cutoff - cfg.horizon - 1]
    leaky.spec = dataclasses.replace(saved, train_rows=extra)
    try:
        audit = leakage_audit(vintages, predicted, ohlcv.index)
    finally:
        leaky.spec = saved
    assert audit["verdict"] == "fail"
    assert audit["violations"][0].startswith("vintage 2:")
