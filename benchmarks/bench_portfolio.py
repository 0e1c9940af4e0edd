"""A 4-symbol portfolio backtest: backtrader against the portfolio fast path.

The embedded bokeh stocks AAPL, MSFT, IBM and GOOG over 2004-2013 (GOOG joins in August 2004;
the union calendar has about 2,200 sessions) trade in one account, on precomputed noisy
foresight predictions (:func:`backtests.synthetic.noisy_foresight`, horizon 5, so the
lagged track record, the Kelly tilt and the rebalance band do real work), with 5 bps
commission and 5 bps slippage.  Two portfolio blocks: equal ``allocations``, and ``topk`` (k
2, dropout 1, ``max_gross`` 1.5).

Cases, each a whole run from the feeds and signals to the recorder's records:

- ``backtrader <mode>``: :func:`backtests.engine.run_strategy` (the baseline);
- ``fast <mode>``: :func:`backtests.fastportfolio.run_fast_portfolio` on the same inputs
  (its predictor lines computed from the signals in the call, as backtrader's predictor does).

After one untimed warm-up of every case (numba JIT, imports), the cases run in interleaved
rounds; the figure is ``t_backtrader / t_fast`` per mode (:func:`benchmarks.timing.ratios`).
Each round also checks that both engines' equity agree (the largest relative difference is
recorded), so a ratio never comes from a run that diverged.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

NAME = "portfolio_fast_vs_backtrader"
SYMBOLS = ("AAPL", "MSFT", "IBM", "GOOG")
ROUNDS = 5
HORIZON = 5
COST = 0.0005


def _setup() -> tuple[dict, dict, dict]:
    from backtests.datasets import load_dataset
    from backtests.synthetic import noisy_foresight
    from sizing.config import PortfolioConfig

    feeds = {s: load_dataset(s).loc["2004":"2013"] for s in SYMBOLS}
    signals = {s: noisy_foresight(f, HORIZON, 2.0, seed=j)
               for j, (s, f) in enumerate(feeds.items())}
    modes = {"allocations": PortfolioConfig(),
             "topk": PortfolioConfig(mode="topk", k=2, dropout=1, max_gross=1.5)}
    return feeds, signals, modes


def _equity(analysis: dict) -> np.ndarray:
    return np.array([bar[1] for bar in analysis["bars"]])


def run(rounds: int = ROUNDS, **_: Any) -> dict:
    from loguru import logger

    from backtests.engine import run_strategy
    from backtests.fastportfolio import run_fast_portfolio
    from backtests.universe import slices
    from benchmarks.timing import ratios, timed
    from sizing.config import SizingConfig

    logger.remove()
    feeds, signals, modes = _setup()
    start = feeds["AAPL"].index[60].date()
    engines = {"backtrader": run_strategy, "fast": run_fast_portfolio}
    calls = {}
    for mode, portfolio in modes.items():
        kwargs = dict(horizon=HORIZON, trade_start=start, sizing=SizingConfig(), cash=100_000.0,
                      commission=COST, slippage=COST, portfolio=portfolio,
                      allocations=slices(portfolio, list(feeds)))
        for engine, fn in engines.items():
            calls[f"{engine} {mode}"] = (lambda fn=fn, kw=kwargs: fn(feeds, signals, **kw))
    walls: dict[str, list[float]] = {name: [] for name in calls}
    last = {name: call() for name, call in calls.items()}  # warm-up
    worst = 0.0
    for _ in range(rounds):
        for name, call in calls.items():
            wall, last[name] = timed(call)
            walls[name].append(wall)
        for mode in modes:
            ref, fast = _equity(last[f"backtrader {mode}"]), _equity(last[f"fast {mode}"])
            worst = max(worst, float(np.max(np.abs(fast / ref - 1.0))))
    n_bars = len(last["fast allocations"]["bars"])
    cases = [{"name": name, "median_wall_s": statistics.median(w), "min_wall_s": min(w),
              "spread": (max(w) - min(w)) / statistics.median(w),
              "bars_per_s": n_bars / statistics.median(w), "fills": len(last[name]["orders"])}
             for name, w in walls.items()]
    figures = []
    for mode in modes:
        r = ratios(walls[f"backtrader {mode}"], walls[f"fast {mode}"])
        figures.append({"name": f"backtrader / fast ({mode})", "throughput_ratio": r["medians"],
                        "paired_ratio": r["paired"], "best_ratio": r["best"], "goal": None})
    return {"name": NAME, "title": f"{len(SYMBOLS)}-symbol portfolio, bokeh 2004-2013, "
            f"equity max rel diff {worst:.1e}", "n_bars": n_bars, "rounds": rounds,
            "stream_rounds": 0, "cases": cases, "ratios": figures,
            "equity_max_rel_diff": worst, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


if __name__ == "__main__":
    from benchmarks.run import format_table

    print(format_table(run()))
