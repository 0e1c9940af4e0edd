"""The two guards of honest numbers, through the full pipeline and a real backtrader run.

- Canary: on a driftless random walk no edge may appear out of sample.
- Planted signal: on AR(1) returns with phi = 0.2 the pipeline must find the edge.

Both hold together; neither threshold may be relaxed to get a green run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backtests.config import load_config
from backtests.runner import run_backtest
from backtests.synthetic import ar1_returns, random_walk, write_csv


def _summary(frame, name: str, tmp: Path, horizon: int, meta: str = "mean") -> dict:
    csv = write_csv(frame, tmp / f"{name}.csv")
    cfg = load_config(None, {"data": str(csv), "horizon": horizon, "out": str(tmp / "out"),
                             "stack": {"meta": meta}})
    folder = run_backtest(cfg, progress=False)
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(("horizon", "meta"), [(1, "mean"), (5, "mean"), (1, "elasticnet"),
                                               (1, "xgb")])
def test_canary_random_walk_shows_no_out_of_sample_edge(horizon, meta, tmp_path):
    summary = _summary(random_walk(n=5000, seed=7), "canary", tmp_path, horizon, meta)
    assert summary["leakage_audit"] == "pass"
    assert summary["bars"] == 5000 - 504
    assert 0.48 <= summary["direction_accuracy"] <= 0.52
    assert abs(summary["ic"]) <= 0.04


@pytest.mark.slow
def test_planted_ar1_signal_is_found_out_of_sample(tmp_path):
    summary = _summary(ar1_returns(n=5000, seed=11, phi=0.2), "planted", tmp_path, horizon=1)
    assert summary["leakage_audit"] == "pass"
    assert summary["ic"] >= 0.07
    assert summary["direction_accuracy"] >= 0.525
