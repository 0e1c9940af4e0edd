"""Sections 3 and 4 of ``benchmarks.bench_robustness``: the robustness batch itself.

3. **Robustness batch, 2 workers vs 1.**  :func:`backtests.robustness.batch.run_robustness` on
   a grid whose walk-forward predictions are already cached (one untimed run fills a
   temporary cache), ``--sim backtrader``: about half a second of work per cell, so there is
   something to parallelise (the fast simulator's cells take milliseconds and the serial
   summary and report dominate; they are timed once for information).
4. **Ray vs the local pool.**  The same grid on a local Ray instance (``num_cpus=2``) against
   the local pool with 2 workers, end to end (with Ray's start-up and shutdown) and without.

Phases of each batch run are read by wrapping the executor and the cells phase of the real
``run_robustness`` call; the wrappers only read the clock.
"""

from __future__ import annotations

import gc
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from backtests.robustness import batch as robustness
from backtests.robustness.config import RobustnessConfig, load_robustness_config
from benchmarks.timing import goal_text, ratios, timed

# 4 x 1 x 4 x 2 = 32 cells: with 2 workers the batch cuts them into 8 tasks of 4 cells, 4 each.
GRID = {"data": "AAPL,IBM,MSFT,SP500", "windows": "2010:2011", "costs": "0,0.0005,0.001,0.0025",
        "sizing_grid": "max_long=1.3,1.8", "horizon": 1, "retrain_every": 252}
GRID_CASES = (("local", 1), ("local", 2), ("ray", 2))  # --sim backtrader, GRID_ROUNDS rounds
FAST_CASES = (("local", 1), ("local", 2))  # --sim fast, once each, for information
GRID_ROUNDS = 2
GOAL_WORKERS = 1.7  # speed-up of 2 workers over 1


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
    ratio("speed-up 2 workers / 1", one, two, total, GOAL_WORKERS)
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


def grid_text(res: dict) -> list[str]:
    """The lines of sections 3 and 4 in the benchmark's table."""
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
                     f"{r['best']:>6.2f}  {goal_text(r['goal'])}")
    if not res["ray"]:
        lines.append("ray: not installed (pip install -e '.[distributed]'), section 4 skipped")
    return lines
