"""Bar-to-order latency of the live path over 1,000 replayed bars.

A bundle is trained on AAPL through 2004, then ``run_paper`` replays AAPL from 2005 on the
local Alpaca-protocol server: real alpaca-py streams and REST, the unchanged
``EnsembleStrategy``, the stacked ensemble predicting bar by bar.  Latency is the time from a
bar's arrival on the market-data websocket to the end of the strategy's ``next`` for it
(features, inference, sizing and any order submission).

The baseline, timed in the same run, is the ensemble's inference alone on the same windows
(``predict_last``): the ratio says how much the plumbing adds to the model.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from backtests.config import load_config
from backtests.datasets import load_dataset
from backtests.train import train_bundle
from live.session.bundles import bundle_signal
from live.session.config import PaperConfig
from live.session.exports import load_session
from live.session.paper import run_paper

NAME = "live_latency"
GOAL_P99_MS = 50.0


def _inference_ms(bundle: Path, bars: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    signal, _ = bundle_signal(bundle, 5, days[0])
    out = []
    for day in days:
        window = bars.loc[:day].iloc[-signal.lookback:]
        start = time.perf_counter()
        signal.predict_last(window, day)
        out.append((time.perf_counter() - start) * 1000.0)
    return np.array(out)


def run(n_bars: int = 1000, **_: Any) -> dict:
    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, {"data": "AAPL", "end": "2004-12-31"})
        bundle = train_bundle(cfg, Path(tmp) / "bundle", skip_gate=True, progress=False)
        paper = PaperConfig.model_validate({"bundle": str(bundle), "horizon": 5})
        started = time.perf_counter()
        folder = run_paper(paper, replay=["AAPL"], replay_from=pd.Timestamp("2005-01-03").date(),
                           max_bars=n_bars - 1, state=Path(tmp) / "state")
        wall = time.perf_counter() - started
        session = load_session(folder)
        latency = pd.read_csv(folder / "latency.csv", parse_dates=["date"])
        orders = len(session.orders)
        inference = _inference_ms(bundle, load_dataset("AAPL"), pd.DatetimeIndex(latency["date"]))
    ms = latency["latency_ms"].to_numpy()
    p50, p99 = np.percentile(ms, [50, 99])
    i50, i99 = np.percentile(inference, [50, 99])
    row = {"bars": int(len(ms)), "orders": orders, "p50_ms": round(float(p50), 2),
           "p99_ms": round(float(p99), 2), "max_ms": round(float(ms.max()), 2),
           "inference_p50_ms": round(float(i50), 2), "inference_p99_ms": round(float(i99), 2),
           "p50_ratio_to_inference": round(float(p50 / i50), 2), "wall_s": round(wall, 1),
           "goal_p99_ms": GOAL_P99_MS}
    text = "\n".join([
        f"== {NAME}: bar-to-order latency, AAPL replay from 2005-01-03, {row['bars']} bars, "
        f"{orders} fills, {row['wall_s']} s wall",
        f"{'':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        f"{'bar -> order':<22} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['max_ms']:>8.2f}"
        f"  goal p99 <= {GOAL_P99_MS:.0f}",
        f"{'inference alone':<22} {row['inference_p50_ms']:>8.2f} "
        f"{row['inference_p99_ms']:>8.2f}",
        f"{'p50 ratio to inference':<22} {row['p50_ratio_to_inference']:>8.2f}"])
    return {"name": NAME, "rows": [row], "text": text}
