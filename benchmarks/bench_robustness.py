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
3. **Robustness batch, 2 workers vs 1.**  :func:`backtests.robustness.batch.run_robustness` on a
   grid whose walk-forward predictions are already cached (one untimed run fills a temporary
   cache), ``--sim backtrader``: about half a second of work per cell, so there is something
   to parallelise (the fast simulator's cells take milliseconds and the serial summary and
   report dominate; they are timed once for information).
4. **Ray vs the local pool.**  The same grid on a local Ray instance (``num_cpus=2``) against
   the local pool with 2 workers, end to end (with Ray's start-up and shutdown) and without.

Phases of each batch run are read by wrapping the executor and the cells phase of the real
``run_robustness`` call; the wrappers only read the clock.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
from loguru import logger

from backtests.datasets import load_dataset
from backtests.engine import run_strategy
from backtests.fastpath import _D_WEIGHT, FastRun, fast_inputs, run_fast, simulate
from backtests.robustness import batch as robustness
from backtests.robustness.config import RobustnessConfig, load_robustness_config
from backtests.synthetic import noisy_foresight
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
# 4 x 1 x 4 x 2 = 32 cells: with 2 workers the batch cuts them into 8 tasks of 4 cells, 4 each.
GRID = {"data": "AAPL,IBM,MSFT,SP500", "windows": "2010:2011", "costs": "0,0.0005,0.001,0.0025",
        "sizing_grid": "max_long=1.3,1.8", "horizon": 1, "retrain_every": 252}
GRID_CASES = (("local", 1), ("local", 2), ("ray", 2))  # --sim backtrader, GRID_ROUNDS rounds
FAST_CASES = (("local", 1), ("local", 2))  # --sim fast, once each, for information
GRID_ROUNDS = 2
GOALS = {"fast simulate": 300.0, "fast simulate x 40": 1.0, "2 workers / 1": 1.7}


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


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Mean wall seconds of ``repeats`` calls (after a ``gc.collect``) and the last result."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    return (time.perf_counter() - start) / repeats, result


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a/b - 1|``; asserts both curves agree to 1e-6 first."""
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=0.0)
    return float(np.max(np.abs(a / b - 1.0)))


def ratios(base: list[float], case: list[float]) -> dict:
    """Throughput ratio ``t_base / t_case``: of medians, paired per round, of the best.

    ``paired`` is NaN unless both were timed in the same rounds.
    """
    paired = (statistics.median(b / c for b, c in zip(base, case, strict=True))
              if len(base) == len(case) else math.nan)
    return {"medians": statistics.median(base) / statistics.median(case), "paired": paired,
            "best": min(base) / min(case)}


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
    size[decided + 1] = run.decisions[decided, _D_WEIGHT]  # after the breaker cap
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


# --------------------------------------------------------------------------- 3-4. grid


class ClockedExecutor:
    """The real executor, with the time its start and stop took written to ``phases``."""

    def __init__(self, inner: Any, phases: dict[str, float]) -> None:
        self.inner, self.phases = inner, phases

    def __enter__(self) -> ClockedExecutor:
        start = time.perf_counter()
        self.inner.__enter__()
        self.phases["start"] = time.perf_counter() - start
        return self

    def __exit__(self, *exc: object) -> None:
        start = time.perf_counter()
        self.inner.__exit__(*exc)
        self.phases["stop"] = time.perf_counter() - start
        # The local pool adds up its tasks' CPU seconds.  Ray's workers report none: NaN.
        self.phases["worker_cpu"] = getattr(self.inner, "cpu_s", math.nan)

    def share(self, obj: Any) -> Any:
        return self.inner.share(obj)

    def map(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self.inner.map(*args, **kwargs)


@contextmanager
def phase_clock(phases: dict[str, float]) -> Iterator[None]:
    """Time the executor's start and stop and the cells phase of ``run_robustness``."""
    make, cells = robustness.make_executor, robustness._simulate

    def clocked_make(*args: Any, **kwargs: Any) -> ClockedExecutor:
        return ClockedExecutor(make(*args, **kwargs), phases)

    def clocked_cells(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = cells(*args, **kwargs)
        phases["cells"] = time.perf_counter() - start
        return result

    with mock.patch.object(robustness, "make_executor", clocked_make), \
            mock.patch.object(robustness, "_simulate", clocked_cells):
        yield


def grid_config(tmp: Path, engine: str, workers: int, sim: str) -> RobustnessConfig:
    return load_robustness_config(None, {**GRID, "engine": engine, "workers": workers,
                                         "sim": sim, "cache_dir": str(tmp / "cache"),
                                         "out": str(tmp / "out")})


def run_grid(tmp: Path, engine: str, workers: int, sim: str) -> tuple[dict[str, float], bytes]:
    """One timed ``run_robustness``: its phases and the ``runs.csv`` it wrote."""
    cfg = grid_config(tmp, engine, workers, sim)
    phases: dict[str, float] = {}
    gc.collect()
    with phase_clock(phases):
        start = time.perf_counter()
        folder = robustness.run_robustness(cfg, progress=False)
        phases["total"] = time.perf_counter() - start
    phases["rest"] = phases["total"] - phases["start"] - phases["cells"] - phases["stop"]
    return phases, (folder / "runs.csv").read_bytes()


def _grid_cases() -> list[tuple[str, int]]:
    try:
        import ray  # noqa: F401
    except ImportError:
        return [case for case in GRID_CASES if case[0] != "ray"]
    return list(GRID_CASES)


def _median_phases(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def _grid_rows(samples: dict[str, list[dict[str, float]]]) -> list[dict]:
    rows = [{"section": "grid", "case": case, **_median_phases(runs),
             "min_total": min(r["total"] for r in runs), "rounds": len(runs)}
            for case, runs in samples.items()]

    def ratio(name: str, num: str, den: str, key: Callable[[dict], float],
              goal: float | None = None) -> None:
        """``t_num / t_den``: a speed-up of ``den`` over ``num``, or ``num``'s overhead."""
        if num in samples and den in samples:
            rows.append({"section": "grid-ratio", "case": name, "goal": goal,
                         **ratios([key(r) for r in samples[num]],
                                  [key(r) for r in samples[den]])})

    def total(r: dict) -> float:
        return r["total"]

    def cells(r: dict) -> float:
        return r["cells"]

    def warm(r: dict) -> float:
        return r["total"] - r["start"] - r["stop"]

    one, two, ray = "local 1w backtrader", "local 2w backtrader", "ray 2w backtrader"
    ratio("speed-up 2 workers / 1", one, two, total, GOALS["2 workers / 1"])
    ratio("speed-up 2 workers / 1, cells phase", one, two, cells)
    ratio("overhead ray / local 2w, end to end", ray, two, total)
    ratio("overhead ray / local 2w, w/o start+stop", ray, two, warm)
    ratio("overhead ray / local 2w, cells phase", ray, two, cells)
    ratio("speed-up sim fast / backtrader, 1w", one, "local 1w fast", total)
    ratio("speed-up sim fast, 2 workers / 1", "local 1w fast", "local 2w fast", total)
    return rows


def bench_grid() -> dict:
    """Sections 3 and 4: the cached grid under 1 and 2 local workers and under Ray."""
    cases = _grid_cases()
    samples: dict[str, list[dict[str, float]]] = {}
    outputs: set[bytes] = set()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        fill_s, _ = timed(lambda: robustness.run_robustness(
            grid_config(tmp, "local", 2, "fast"), progress=False))
        for sim, rounds, grid in (("backtrader", GRID_ROUNDS, cases), ("fast", 1, FAST_CASES)):
            for rnd in range(rounds):
                # A B C, then C B A: a drift in the machine's load hits every case alike.
                for engine, workers in grid if rnd % 2 == 0 else grid[::-1]:
                    phases, runs_csv = run_grid(tmp, engine, workers, sim)
                    samples.setdefault(f"{engine} {workers}w {sim}", []).append(phases)
                    if sim == "backtrader":
                        outputs.add(runs_csv)
        cfg = grid_config(tmp, "local", 1, "fast")
    shape = (len(cfg.data), len(cfg.windows), len(cfg.costs), len(cfg.sizing_cells()))
    assert len(outputs) == 1, "engines or worker counts wrote different runs.csv"
    return {"rows": _grid_rows(samples), "fill_s": fill_s, "n_cells": math.prod(shape),
            "grid": f"{shape[0]} datasets ({GRID['data']}) x {GRID['windows']} x {shape[2]} "
                    f"costs x {shape[3]} sizings",
            "ray": any(engine == "ray" for engine, _ in cases)}


# --------------------------------------------------------------------------- report


def _goal(goal: float | None) -> str:
    return f">= {goal:g}" if goal is not None else ""


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
                     f"{_goal(r['goal'])}")
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
                     f"{r['x_backtrader']:>7.0f}x  {_goal(r['goal'])}")
    final = res["final_equity_cost0"]
    lines.append(f"zero cost: fast = backtrader to {res['bt_equity_max_rel_diff']:.1e}; "
                 f"vectorbt final equity {final['vectorbt']:,.0f} vs {final['fast']:,.0f}, "
                 f"daily-return corr {res['vectorbt_return_corr']:.6f}; vectorbt's first call "
                 f"{res['vectorbt_first_call_s']:.1f} s (untimed)")
    return lines


def _grid_text(res: dict) -> list[str]:
    lines = [f"-- 3/4. robustness batch, --sim backtrader: {res['grid']} = {res['n_cells']} "
             f"cells, predictions cached (fill {res['fill_s']:.1f} s, untimed), {GRID_ROUNDS} "
             "rounds (--sim fast: 1)",
             f"{'case':<22} {'total s':>8} {'min s':>7} {'start':>7} {'cells':>7} "
             f"{'stop':>7} {'rest':>7} {'worker cpu':>11} {'cpus':>5}"]
    for r in (r for r in res["rows"] if r["section"] == "grid"):
        # cpus: worker CPU seconds per wall second of the cells phase, i.e. the cores the
        # workers actually got (2 at best on this machine).
        lines.append(f"{r['case']:<22} {r['total']:>8.2f} {r['min_total']:>7.2f} "
                     f"{r['start']:>7.2f} {r['cells']:>7.2f} {r['stop']:>7.2f} {r['rest']:>7.2f} "
                     f"{r['worker_cpu']:>11.2f} {r['worker_cpu'] / r['cells']:>5.2f}")
    lines.append(f"{'ratio of wall times':<40} {'medians':>8} {'paired':>7} "
                 f"{'best':>6}  goal")
    for r in (r for r in res["rows"] if r["section"] == "grid-ratio"):
        lines.append(f"{r['case']:<40} {r['medians']:>8.2f} {r['paired']:>7.2f} "
                     f"{r['best']:>6.2f}  {_goal(r['goal'])}")
    if not res["ray"]:
        lines.append("ray: not installed (pip install -e '.[distributed]'), section 4 skipped")
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
             *_grid_text(parts["grid"]),
             f"load average (1 min) before -> after, on {os.cpu_count()} CPUs: "
             + ", ".join(f"{k} {a:.1f} -> {b:.1f}" for k, (a, b) in load.items())]
    return {"name": NAME, "rows": [row for part in parts.values() for row in part["rows"]],
            "text": "\n".join(lines), "load_average": load, "elapsed_s": round(elapsed, 1),
            "checks": {name: {k: v for k, v in part.items() if k != "rows"}
                       for name, part in parts.items()}}
