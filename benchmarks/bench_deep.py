"""Deep sequence learners (``lstm``, ``xlstm``): out-of-sample IC, and two CPU speed-ups.

- **IC**: the full walk-forward backtest on the suite's planted-signal data (AR(1), phi = 0.2,
  5,000 bars, horizon 1) with tests/test_deep.py's settings (min_train 2000, retrain_every
  1500: two vintages, 3,000 bars out of sample; mean meta-learner, one fold), for each deep
  learner alone and stacked with xgb,lgbm, against xgb,lgbm in the same run.
- **Trainer reuse**: one fit on a cold trainer cache (the baseline: a new Keras model that
  traces its training step) against the same fit on a warm one (``models.learners.deep._TRAINERS``);
  the two fits' predictions must be identical.
- **Streaming inference**: one bar through the per-model ``tf.function`` against the eager
  Keras call (the baseline), on the same one-row windows.

Requires ensemble-bt[deep]; ``make bench`` installs it.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from backtests.config import load_config
from backtests.runner import run_backtest
from backtests.synthetic import ar1_returns, write_csv
from models.features import build_features

NAME = "deep_learners"
MODEL_SETS = ("xgb,lgbm", "lstm", "xlstm", "xgb,lgbm,lstm", "xgb,lgbm,xlstm")


def _ic_rows(tmp: Path) -> list[dict[str, Any]]:
    data = write_csv(ar1_returns(n=5000, seed=11, phi=0.2), tmp / "planted.csv")
    rows = []
    for models in MODEL_SETS:
        start = time.perf_counter()
        cfg = load_config(None, {"data": str(data), "horizon": 1, "out": str(tmp),
                                 "models": models.split(","), "min_train": 2000,
                                 "retrain_every": 1500, "stack": {"meta": "mean", "n_folds": 1}})
        summary = json.loads((run_backtest(cfg, progress=False) / "summary.json").read_text())
        rows.append({"models": models, "ic": summary["ic"],
                     "direction_accuracy": summary["direction_accuracy"],
                     "seconds": round(time.perf_counter() - start, 1)})
    return rows


def _timings(name: str, rounds: int) -> dict[str, Any]:
    import models.learners.deep as deep
    from models.learners.deep import causal_windows
    from models.learners.registry import make_learner

    ohlcv = ar1_returns(n=2600, seed=11, phi=0.2)
    X = build_features(ohlcv).to_numpy(np.float64)[300:-1]
    y = np.diff(np.log(ohlcv["close"].to_numpy()))[300:]
    cold, warm = [], []
    for _ in range(rounds):
        deep._TRAINERS.clear()
        t = time.perf_counter()
        first = make_learner(name, purge=1, seed=3).fit(X[:2000], y[:2000])
        cold.append(time.perf_counter() - t)
        t = time.perf_counter()
        second = make_learner(name, purge=1, seed=3).fit(X[:2000], y[:2000])
        warm.append(time.perf_counter() - t)
        if not np.array_equal(first.predict(X), second.predict(X)):
            raise AssertionError(f"{name}: a warm-trainer fit differs from a cold one")
    ctx = first.context_rows
    W = causal_windows(first._scale(X[2000 - ctx:2300]), first.seq_len)[ctx:]
    first._raw_predict(W[:1])  # trace once, as the first streamed bar does
    eager, graph = [], []
    for i in range(len(W)):
        t = time.perf_counter()
        first.model_(W[i:i + 1], training=False)
        eager.append(time.perf_counter() - t)
        t = time.perf_counter()
        first._raw_predict(W[i:i + 1])
        graph.append(time.perf_counter() - t)
    cold_s, warm_s = float(np.median(cold)), float(np.median(warm))
    eager_ms, graph_ms = float(np.median(eager)) * 1e3, float(np.median(graph)) * 1e3
    return {"learner": name, "rounds": rounds, "cold_fit_s": round(cold_s, 2),
            "warm_fit_s": round(warm_s, 2), "fit_speedup": round(cold_s / warm_s, 2),
            "eager_bar_ms": round(eager_ms, 2), "graph_bar_ms": round(graph_ms, 2),
            "stream_speedup": round(eager_ms / graph_ms, 1)}


def run(rounds: int | None = None, **_: Any) -> dict:
    logger.remove()  # the pipeline's INFO lines would drown the table
    with tempfile.TemporaryDirectory() as tmp:
        rows = _ic_rows(Path(tmp))
    timings = [_timings(name, rounds or 3) for name in ("lstm", "xlstm")]
    base = rows[0]["ic"]
    lines = [f"== {NAME}: out-of-sample IC, planted AR(1) phi=0.2, 5000 bars, horizon 1, "
             "two vintages", f"{'models':<16} {'IC':>8} {'vs GBMs':>8} {'dir acc':>8} {'s':>6}"]
    for r in rows:
        lines.append(f"{r['models']:<16} {r['ic']:>8.4f} {r['ic'] - base:>+8.4f} "
                     f"{r['direction_accuracy']:>8.4f} {r['seconds']:>6.1f}")
    lines.append(f"{'learner':<8} {'cold fit s':>10} {'warm fit s':>10} {'ratio':>6} "
                 f"{'eager ms/bar':>12} {'graph ms/bar':>12} {'ratio':>6}")
    for t in timings:
        lines.append(f"{t['learner']:<8} {t['cold_fit_s']:>10.2f} {t['warm_fit_s']:>10.2f} "
                     f"{t['fit_speedup']:>6.2f} {t['eager_bar_ms']:>12.2f} "
                     f"{t['graph_bar_ms']:>12.2f} {t['stream_speedup']:>6.1f}")
    return {"name": NAME, "rows": rows, "timings": timings, "text": "\n".join(lines)}
