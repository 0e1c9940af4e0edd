"""A portfolio's scores as pure functions, on constructed data with known answers: rank IC
and its baselines, the benchmark, demeaned labels, the audit of every (date, symbol), and the
report's additions."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from backtests.crossmetrics import demeaned_targets, momentum, reversal
from backtests.plan import Period
from backtests.portfolio_results import (
    SYMBOL_COLUMNS,
    audit_symbols,
    baseline_panels,
    benchmark_curve,
    cross_section,
    momentum_verdict,
)
from backtests.report import write_report
from backtests.synthetic import ohlcv_from_returns, random_walk
from backtests.universe import PortfolioPeriod


# ------------------------------------------------------------------ scores, known answers
def test_rank_ic_and_its_ir_on_a_constructed_panel():
    # Arrange: per date, the right order, the reverse, a constant prediction, one of three
    # names missing (too few), and a tie.
    pred = pd.DataFrame([[1, 2, 3, 4], [4, 3, 2, 1], [1, 1, 1, 1], [1, np.nan, 2, np.nan],
                         [1, 2, 2, 3]], columns=list("ABCD"), dtype=float)
    actual = pd.DataFrame([[10, 20, 30, 40]] * 3 + [[5, 7, 9, 11], [1, 2, 3, 4]],
                          columns=list("ABCD"), dtype=float)
    # Act
    cross = cross_section(pred, actual, {})
    # Assert
    tied = 4.5 / math.sqrt(4.5 * 5.0)  # ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4)
    np.testing.assert_allclose(cross["series"].to_numpy(), [1.0, -1.0, np.nan, np.nan, tied])
    values = np.array([1.0, -1.0, tied])
    assert cross["rank_ic"] == pytest.approx(values.mean())
    assert cross["rank_ic_ir"] == pytest.approx(values.mean() / values.std(ddof=1))


def test_momentum_and_reversal_are_trailing_log_returns():
    close = pd.Series(np.exp(0.01 * np.arange(100)))
    assert momentum(close, 63).iloc[63:].to_numpy() == pytest.approx(0.63)
    assert reversal(close, 5).iloc[5:].to_numpy() == pytest.approx(-0.05)
    assert momentum(close, 63).iloc[:63].isna().all()


def _trends(growth: dict[str, float], n: int = 200) -> dict[str, pd.DataFrame]:
    return {s: ohlcv_from_returns(np.full(n, g), seed=i) for i, (s, g) in enumerate(growth.items())}


def test_baselines_on_steady_trends_momentum_ranks_perfectly_and_reversal_inversely():
    # Arrange: three steady trends; the fastest keeps rising fastest.
    frames = _trends({"A": 0.001, "B": 0.002, "C": 0.003, "D": 0.004})
    closes = {s: f["close"] for s, f in frames.items()}
    actual = pd.DataFrame({s: np.log(c.shift(-5) / c) for s, c in closes.items()})
    pred = -actual.iloc[70:150]  # a model that ranks them backwards
    # Act
    cross = cross_section(pred, actual, baseline_panels(frames, pred))
    # Assert
    assert cross["rank_ic"] == pytest.approx(-1.0) and np.isnan(cross["rank_ic_ir"])
    assert cross["baseline_rank_ic"] == {"momentum_63": pytest.approx(1.0),
                                         "reversal_5": pytest.approx(-1.0)}
    assert "does not beat momentum" in momentum_verdict(cross["rank_ic"],
                                                        cross["baseline_rank_ic"])


def test_baselines_are_scored_only_where_the_model_predicts():
    frames = _trends({"A": 0.001, "B": 0.002})
    pred = pd.DataFrame({"A": 1.0, "B": np.nan}, index=frames["A"].index[70:80])
    panels = baseline_panels(frames, pred)
    assert panels["momentum_63"]["B"].isna().all() and panels["momentum_63"]["A"].notna().all()


def test_benchmark_buys_each_symbol_at_its_first_evaluated_open_and_holds_it():
    idx = pd.bdate_range("2020-01-01", periods=4)
    a = pd.DataFrame({"open": [10.0, 11, 12, 13], "close": [10.5, 11.5, 12.5, 14]}, index=idx)
    b = pd.DataFrame({"open": [20.0, 40.0], "close": [21.0, 42.0]}, index=idx[[0, 2]])
    period = PortfolioPeriod(idx[1:], {"A": Period(1, 3), "B": Period(1, 1)})
    curve = benchmark_curve({"A": a, "B": b}, period, cash=1000.0)
    # A: 500 buys at 11 (its first evaluated open); B: 500 waits for its bar 1 (open 40).
    expected = [500 * 11.5 / 11 + 500, 500 * 12.5 / 11 + 500 * 42 / 40,
                500 * 14 / 11 + 500 * 42 / 40]
    np.testing.assert_allclose(curve.to_numpy(), expected)


def test_demeaned_targets_sum_to_zero_across_a_full_calendar():
    frames = {s: random_walk(n=100, seed=i) for i, s in enumerate("ABC")}
    targets = pd.DataFrame(demeaned_targets({s: f["close"] for s, f in frames.items()}, 5))
    np.testing.assert_allclose(targets.iloc[:-5].sum(axis=1), 0.0, atol=1e-12)
    assert targets.iloc[-5:].isna().all().all()


def test_a_demeaned_label_ends_no_later_than_the_raw_one():
    # Arrange: B misses sessions; perturb every close after A's label end at bar t.
    a, b = random_walk(n=120, seed=1), random_walk(n=120, seed=2)
    b = b.drop(a.index[[52, 53, 54]])
    closes = {"A": a["close"], "B": b["close"]}
    t, h = 50, 5
    end = a.index[t + h]
    shocked = {s: c.where(c.index <= end, c * 3.0) for s, c in closes.items()}
    # Act
    before = demeaned_targets(closes, h)
    after = demeaned_targets(shocked, h)
    # Assert: every target whose own label ends by `end` is unchanged, for both symbols.
    for s, c in closes.items():
        known = c.index[:int(c.index.searchsorted(end, "right")) - h]
        pd.testing.assert_series_equal(before[s].loc[known], after[s].loc[known])


# --------------------------------------------------------------------------- the audit
def _vintage(cutoff: int, last: int, label_end: int) -> SimpleNamespace:
    spec = SimpleNamespace(index=0, cutoff=cutoff, predict_last=last, embargo=0,
                           train_rows=np.arange(0, label_end - 4))
    return SimpleNamespace(spec=spec, train_label_end=label_end, horizon=5,
                           train_end=pd.Timestamp("2000-01-01"))


def test_the_leakage_audit_covers_every_date_and_symbol_prediction():
    frames = {s: random_walk(n=60, seed=i) for i, s in enumerate("AB")}
    dates = frames["A"].index
    pred = pd.DataFrame({"A": 0.01, "B": 0.01}, index=dates[40:])
    pred.iloc[:3, 1] = np.nan  # B joins three sessions later
    signals = {"A": SimpleNamespace(vintages=[_vintage(40, 59, 35)]),
               "B": SimpleNamespace(vintages=[_vintage(40, 59, 35)])}
    audit = audit_symbols(signals, pred, frames, embargo=0)
    assert audit["verdict"] == "pass"
    assert audit["bars_checked"] == int(pred.notna().sum().sum()) == 37
    assert audit["symbols"]["B"]["bars_checked"] == 17
    # A vintage trained on a label that ends after a bar it predicts fails that symbol.
    signals["B"] = SimpleNamespace(vintages=[_vintage(40, 59, 45)])
    audit = audit_symbols(signals, pred, frames, embargo=0)
    assert audit["verdict"] == "fail" and audit["violations"][0].startswith("B: ")
    # A signal without vintages cannot be audited, so it fails.
    signals["B"] = SimpleNamespace()
    assert audit_symbols(signals, pred, frames, embargo=0)["verdict"] == "fail"


def test_the_portfolio_report_adds_stacked_weights_the_per_symbol_table_and_the_verdict(
        tmp_path):
    idx = pd.bdate_range("2020-01-01", periods=50, name="date")
    equity = pd.DataFrame({"equity": np.linspace(1e5, 1.1e5, 50), "drawdown": 0.0,
                           "position_weight": 0.9, "benchmark": 1e5}, index=idx)
    weights = pd.DataFrame({"A": 0.5, "B": np.r_[np.zeros(10), np.full(40, 0.4)]}, index=idx)
    table = pd.DataFrame([{c: 0.1 for c in SYMBOL_COLUMNS} | {"symbol": "A<1>"}])
    write_report(tmp_path, equity, {"symbol": "A-B", "rank_ic": 0.01}, weights=weights,
                 symbols=table, note="the model does not beat momentum")
    png = (tmp_path / "report.png").read_bytes()
    page = (tmp_path / "report.html").read_text()
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1200, 800)
    assert "<h2>Per symbol</h2>" in page and "A&lt;1&gt;" in page
    assert "<th>return_contribution</th>" in page and "+10.00%" in page
    assert page.index("does not beat momentum") < page.index("rank_ic")
