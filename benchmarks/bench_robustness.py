"""The numba fast path and the robustness batch: four throughput ratios from one run.

Every figure is a ratio against a baseline timed in the same process and the same run, after
warm-up calls (numba compilation, imports and caches are never timed).  Nothing fails on a
number; the equity checks are asserted, so that every ratio compares runs that agree.

1. **Fast path vs backtrader, same cells.**  AAPL, IBM and SP500 (embedded, 2003-2012,
   2,517 bars each) x costs 0, 5 and 25 bps (commission and slippage each), default sizing,
   precomputed predictions (the forward return plus noise, as ``tests/test_fastpath.py``
   builds them), so no model is trained.  Each cell runs :func:`backtests.engine.run_strategy`
   (backtrader, ``runonce``), :func:`backtests.fastpath.simulate` (arrays) and
   :func:`backtests.fastpath.run_fast` (the full result dicts); all three equity curves must
   agree to 1e-6.
2. **Fast path vs vectorbt, same 40-cost target-weight sweep.**  SP500 2003-2012 and costs
   0..39 bps (commission only).  The target weights ``EnsembleStrategy`` decided in the
   zero-cost run, placed on the bars whose open filled them, are fed to vectorbt's
   ``Portfolio.from_orders(size_type="targetpercent", price=open, fees=costs)``, all 40 costs
   as columns of one call; the fast path runs 40 times, once per cost.  The fast path does
   more work: it re-derives the weights each bar from predictions, lagged hit rate and payoff,
   Kelly sizing, the rebalance band and the drawdown breaker, and charges financing, where
   vectorbt replays a fixed weight path.  The sizing is unlevered (``max_long=1``) because
   vectorbt's cash accounting has no margin.
3-4. **The robustness batch, 2 workers vs 1, and Ray vs the local pool**
   (:mod:`benchmarks.robustness_grid`).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger

from backtests.datasets import load_dataset
from backtests.engine import run_strategy
from backtests.fastkernel import D_WEIGHT
from backtests.fastpath import FastRun, fast_inputs, run_fast, simulate
from backtests.synthetic import noisy_foresight
from benchmarks.robustness_grid import bench_grid, grid_text
from benchmarks.timing import goal_text, ratios, timed
from models.signal import SeriesSignal
from sizing.config import SizingConfig

NAME = "robustness_fastpath"
DATASETS = ("AAPL", "IBM", "SP500")
PERIOD = ("2003", "2012")  # 2,517 trading days in each dataset
CELL_COSTS = (0.0, 0.0005, 0.0025)
CASH = 100_000.0
HORIZON = 1
WARM_BARS = 60  # no decision before this bar: the lagged statistics have a record by then
CELL_ROUNDS = 3
SIM_REPEATS = 20  # simulate() calls per cell and round: one call is about a millisecond
DICT_REPEATS = 3
SWEEP_DATA = "SP500"
SWEEP_COSTS = tuple(round(k * 1e-4, 6) for k in range(40))  # 0 to 39 bps
SWEEP_SIZING = SizingConfig(max_long=1.0, base_long_bias=1.0, max_short=0.1)
SWEEP_ROUNDS = 5
GOALS = {"fast simulate": 300.0, "fast simulate x 40": 1.0}


# --------------------------------------------------------------------------- shared


@dataclass(frozen=True, eq=False)
class Cell:
    """One backtest: bars, their precomputed predictions, sizing and a cost."""

    name: str
    ohlcv: pd.DataFrame = field(repr=False)
    signal: SeriesSignal = field(repr=False)
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False)  # pred, vol, prior
    sizing: SizingConfig
    commission: float
    slippage: float

    @classmethod
    def build(cls, name: str, sizing: SizingConfig, commission: float,
              slippage: float) -> Cell:
        ohlcv = load_dataset(name).loc[PERIOD[0]:PERIOD[1]]
        signal = noisy_foresight(ohlcv, HORIZON, noise=3.0)
        return cls(name, ohlcv, signal, fast_inputs(ohlcv, signal, sizing.vol_window), sizing,
                   commission, slippage)

    def at(self, commission: float) -> Cell:
        return Cell(self.name, self.ohlcv, self.signal, self.arrays, self.sizing, commission,
                    self.slippage)

    def common(self) -> dict:
        return {"horizon": HORIZON, "trade_start": self.ohlcv.index[WARM_BARS].date(),
                "sizing": self.sizing, "cash": CASH, "commission": self.commission,
                "slippage": self.slippage}


def backtrader_equity(cell: Cell) -> np.ndarray:
    analysis = run_strategy({"X": cell.ohlcv}, {"X": cell.signal}, **cell.common())
    return np.array([bar[1] for bar in analysis["bars"]])


def fast_run(cell: Cell) -> FastRun:
    pred, vol, prior = cell.arrays
    return simulate(cell.ohlcv, pred, prior, volatility=vol, **cell.common())


def simulate_equity(cell: Cell) -> np.ndarray:
    return fast_run(cell).equity


def run_fast_equity(cell: Cell) -> np.ndarray:
    pred, vol, prior = cell.arrays
    analysis = run_fast(cell.ohlcv, pred, prior, volatility=vol, symbol="X", **cell.common())
    return np.array([bar[1] for bar in analysis["bars"]])


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a/b - 1|``; asserts both curves agree to 1e-6 first."""
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=0.0)
    return float(np.max(np.abs(a / b - 1.0)))


# --------------------------------------------------------------------------- 1. cells


CELL_ENGINES: dict[str, tuple[Callable[[Cell], np.ndarray], int]] = {
    "backtrader run_strategy": (backtrader_equity, 1),
    "fast simulate": (simulate_equity, SIM_REPEATS),
    "fast run_fast": (run_fast_equity, DICT_REPEATS),
}


def bench_cells() -> dict:
    """Section 1: per-cell seconds of each engine on the same 9 cells, interleaved rounds."""
    cells = [Cell.build(name, SizingConfig(), cost, cost)
             for name in DATASETS for cost in CELL_COSTS]
    for fn, _ in CELL_ENGINES.values():  # warm-up: numba (cache load), imports, feeds
        fn(cells[0])
    totals: dict[str, list[float]] = {engine: [] for engine in CELL_ENGINES}
    worst, fills = 0.0, 0
    for rnd in range(CELL_ROUNDS):
        spent = dict.fromkeys(CELL_ENGINES, 0.0)
        for cell in cells:
            curves = {}
            for engine, (fn, repeats) in CELL_ENGINES.items():
                seconds, curves[engine] = timed(lambda f=fn, c=cell: f(c), repeats)
                spent[engine] += seconds
            if rnd == 0:
                reference = curves.pop("backtrader run_strategy")
                worst = max(worst, *(max_rel_diff(eq, reference) for eq in curves.values()))
                fills += int(np.count_nonzero(fast_run(cell).orders))
        for engine, seconds in spent.items():
            totals[engine].append(seconds / len(cells))
    base = totals["backtrader run_strategy"]
    rows = []
    for engine, per_cell in totals.items():
        rows.append({"section": "cells", "case": engine, "s_per_cell": statistics.median(per_cell),
                     "min_s_per_cell": min(per_cell),
                     "cells_per_s": 1.0 / statistics.median(per_cell),
                     **ratios(base, per_cell), "goal": GOALS.get(engine)})
    return {"rows": rows, "n_cells": len(cells), "n_bars": len(cells[0].ohlcv),
            "orders": fills, "max_rel_diff": worst}


# --------------------------------------------------------------------------- 2. sweep


def target_path(run: FastRun) -> np.ndarray:
    """The strategy's target weights on the bars whose open filled them, NaN elsewhere."""
    size = np.full(len(run.equity), np.nan)
    decided = np.flatnonzero(run.orders[:-1])  # an order decided at the last close never fills
    size[decided + 1] = run.decisions[decided, D_WEIGHT]  # after the breaker cap
    return size


def vectorbt_sweep(cell: Cell, size: np.ndarray) -> np.ndarray:
    """All 40 costs as columns of one ``from_orders`` call; equity per bar and cost."""
    import vectorbt as vbt

    ohlcv = cell.ohlcv
    portfolio = vbt.Portfolio.from_orders(
        ohlcv["close"], size=pd.Series(size, index=ohlcv.index), size_type="targetpercent",
        price=ohlcv["open"], fees=np.asarray(SWEEP_COSTS)[None, :], init_cash=CASH,
        size_granularity=1.0)
    return portfolio.value().to_numpy()


def fast_sweep(cell: Cell) -> np.ndarray:
    return np.column_stack([simulate_equity(cell.at(cost)) for cost in SWEEP_COSTS])


def run_fast_sweep(cell: Cell) -> np.ndarray:
    return np.column_stack([run_fast_equity(cell.at(cost)) for cost in SWEEP_COSTS])


def _sweep_rows(seconds: dict[str, list[float]], bt_cell: float) -> list[dict]:
    base = seconds["vectorbt from_orders, 40 columns"]
    rows = []
    for case, sweep in seconds.items():
        rows.append({"section": "sweep", "case": case, "s_per_sweep": statistics.median(sweep),
                     "min_s_per_sweep": min(sweep), **ratios(base, sweep),
                     "x_backtrader": len(SWEEP_COSTS) * bt_cell / statistics.median(sweep),
                     "goal": GOALS.get(case)})
    rows.append({"section": "sweep", "case": "backtrader x 40 (2 cells timed)",
                 "s_per_sweep": len(SWEEP_COSTS) * bt_cell,
                 "medians": statistics.median(base) / (len(SWEEP_COSTS) * bt_cell),
                 "x_backtrader": 1.0, "goal": None})
    return rows


def bench_sweep() -> dict:
    """Section 2: one 40-cost sweep on vectorbt (one call) and on the fast path (40 calls)."""
    try:
        import vectorbt  # noqa: F401
    except ImportError:
        return {"rows": [], "skipped": "vectorbt is not installed: pip install -e '.[bench]'"}
    cell = Cell.build(SWEEP_DATA, SWEEP_SIZING, 0.0, 0.0)
    size = target_path(fast_run(cell))
    # Warm-up: vectorbt compiles its kernels on the first call (or loads numba's disk cache).
    first_s, vbt_eq = timed(lambda: vectorbt_sweep(cell, size))
    ours = fast_sweep(cell)
    run_fast_sweep(cell)
    # Same decisions as backtrader, and vectorbt really replays that trading at zero cost.
    bt_times, bt_eq = zip(*(timed(lambda c=c: backtrader_equity(cell.at(c)))
                            for c in (SWEEP_COSTS[0], SWEEP_COSTS[20])), strict=True)
    worst = max_rel_diff(ours[:, 0], bt_eq[0])
    corr = float(np.corrcoef(np.diff(np.log(ours[:, 0])), np.diff(np.log(vbt_eq[:, 0])))[0, 1])
    assert corr > 0.99, f"vectorbt does not replay the strategy's trading (corr {corr:.4f})"
    cases = {"vectorbt from_orders, 40 columns": lambda: vectorbt_sweep(cell, size),
             "fast simulate x 40": lambda: fast_sweep(cell),
             "fast run_fast x 40": lambda: run_fast_sweep(cell)}
    seconds: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(SWEEP_ROUNDS):
        for case, fn in cases.items():
            seconds[case].append(timed(fn)[0])
    return {"rows": _sweep_rows(seconds, statistics.mean(bt_times)), "n_bars": len(cell.ohlcv),
            "orders": int(np.count_nonzero(~np.isnan(size))), "vectorbt_first_call_s": first_s,
            "bt_equity_max_rel_diff": worst, "vectorbt_return_corr": corr,
            "final_equity_cost0": {"fast": float(ours[-1, 0]),
                                   "vectorbt": float(vbt_eq[-1, 0])}}


# --------------------------------------------------------------------------- report


def _cells_text(res: dict) -> list[str]:
    lines = [f"-- 1. fast path vs backtrader: {res['n_cells']} cells ({', '.join(DATASETS)} "
             f"{PERIOD[0]}-{PERIOD[1]}, {res['n_bars']} bars; costs "
             f"{'/'.join(f'{c * 1e4:g}' for c in CELL_COSTS)} bps; default sizing), "
             f"{CELL_ROUNDS} rounds",
             f"{'engine':<26} {'s/cell':>9} {'cells/s':>9} {'medians':>9} {'paired':>9} "
             f"{'best':>9}  goal"]
    for r in res["rows"]:
        lines.append(f"{r['case']:<26} {r['s_per_cell']:>9.4f} {r['cells_per_s']:>9.1f} "
                     f"{r['medians']:>8.0f}x {r['paired']:>8.0f}x {r['best']:>8.0f}x  "
                     f"{goal_text(r['goal'])}")
    lines.append(f"equity curves: max |fast/backtrader - 1| = {res['max_rel_diff']:.1e} "
                 f"(asserted <= 1e-6); {res['orders']} orders over the 9 cells")
    return lines


def _sweep_text(res: dict) -> list[str]:
    if "skipped" in res:
        return [f"-- 2. fast path vs vectorbt: skipped ({res['skipped']})"]
    lines = [f"-- 2. fast path vs vectorbt: {len(SWEEP_COSTS)}-cost sweep, {SWEEP_DATA} "
             f"{PERIOD[0]}-{PERIOD[1]}, {res['n_bars']} bars, {res['orders']} target changes, "
             f"{SWEEP_ROUNDS} rounds",
             f"{'case':<32} {'s/sweep':>9} {'vs vbt':>8} {'paired':>8} {'best':>8} "
             f"{'x bt':>8}  goal"]
    for r in res["rows"]:
        paired = f"{r['paired']:>8.2f} {r['best']:>8.2f}" if "paired" in r else " " * 17
        lines.append(f"{r['case']:<32} {r['s_per_sweep']:>9.3f} {r['medians']:>8.2f} {paired} "
                     f"{r['x_backtrader']:>7.0f}x  {goal_text(r['goal'])}")
    final = res["final_equity_cost0"]
    lines.append(f"zero cost: fast = backtrader to {res['bt_equity_max_rel_diff']:.1e}; "
                 f"vectorbt final equity {final['vectorbt']:,.0f} vs {final['fast']:,.0f}, "
                 f"daily-return corr {res['vectorbt_return_corr']:.6f}; vectorbt's first call "
                 f"{res['vectorbt_first_call_s']:.1f} s (untimed)")
    return lines


def run(**_: Any) -> dict:
    logger.remove()  # the batch's INFO lines would drown the table
    started = time.perf_counter()
    parts, load = {}, {}
    for name, bench in (("cells", bench_cells), ("sweep", bench_sweep), ("grid", bench_grid)):
        before = os.getloadavg()[0]
        parts[name] = bench()
        load[name] = (before, os.getloadavg()[0])
    elapsed = time.perf_counter() - started
    lines = [f"== {NAME}: fast path, vectorbt and the robustness batch ({elapsed:.0f} s; "
             "numba compilation and imports excluded by warm-up calls)",
             *_cells_text(parts["cells"]), *_sweep_text(parts["sweep"]),
             *grid_text(parts["grid"]),
             f"load average (1 min) before -> after, on {os.cpu_count()} CPUs: "
             + ", ".join(f"{k} {a:.1f} -> {b:.1f}" for k, (a, b) in load.items())]
    return {"name": NAME, "rows": [row for part in parts.values() for row in part["rows"]],
            "text": "\n".join(lines), "load_average": load, "elapsed_s": round(elapsed, 1),
            "checks": {name: {k: v for k, v in part.items() if k != "rows"}
                       for name, part in parts.items()}}
