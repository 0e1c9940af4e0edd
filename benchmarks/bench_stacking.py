"""Stacking quality: out-of-sample IC of each meta-learner on the planted-signal data.

Not a timing: every meta-learner runs the full walk-forward backtest on the same generated
AR(1) series (phi = 0.2, 5,000 bars, horizon 1, the suite's planted-signal data) in the same
run, and the table compares their out-of-sample IC and direction accuracy with ``mean``.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from loguru import logger

from backtests.config import load_config
from backtests.runner import run_backtest
from backtests.synthetic import ar1_returns, write_csv

NAME = "stacking_ic"
METAS = ("mean", "elasticnet", "xgb")


def run(**_: Any) -> dict:
    logger.remove()  # the pipeline's INFO lines would drown the table
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_csv(ar1_returns(n=5000, seed=11, phi=0.2), Path(tmp) / "planted.csv")
        for meta in METAS:
            start = time.perf_counter()
            cfg = load_config(None, {"data": str(data), "horizon": 1, "out": tmp,
                                     "stack": {"meta": meta}})
            summary = json.loads((run_backtest(cfg, progress=False) / "summary.json").read_text())
            rows.append({"meta": meta, "ic": summary["ic"],
                         "direction_accuracy": summary["direction_accuracy"],
                         "seconds": round(time.perf_counter() - start, 1)})
    base = rows[0]["ic"]
    lines = [f"== {NAME}: out-of-sample IC by meta-learner, planted AR(1) phi=0.2, 5000 bars, "
             "horizon 1", f"{'meta':<12} {'IC':>8} {'vs mean':>8} {'dir acc':>8} {'s':>6}"]
    for r in rows:
        lines.append(f"{r['meta']:<12} {r['ic']:>8.4f} {r['ic'] - base:>+8.4f} "
                     f"{r['direction_accuracy']:>8.4f} {r['seconds']:>6.1f}")
    return {"name": NAME, "rows": rows, "text": "\n".join(lines)}
