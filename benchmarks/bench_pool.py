"""Start-up of the robustness batch's local pool: fork against the fork server.

The pool used to fork the parent: free, but a parent that had trained XGBoost (OpenMP) left
the workers blocked forever in their first ``DMatrix``.  Workers now come from a fork server
(:func:`backtests.robustness.executors.pool_context`) that imports the learners, backtrader
and numba once (``set_forkserver_preload``).  This measures what that costs.

Each case runs in a fresh interpreter (the fork server is one per process), which imports
the batch's modules the way ``ensemble-bt robustness`` does and then times, twice, a new
2-worker pool running 4 real one-cell ``simulate_cells`` tasks (``--sim fast``), from entering
the pool to leaving it:

- ``fork``: the old way, the baseline;
- ``forkserver, preload``: the first pool starts the server; the second reuses it;
- ``forkserver, no preload``: each worker imports the modules itself;
- ``spawn``: a fresh interpreter per worker.

Every figure is a ratio against ``fork`` timed in the same round; nothing fails on a number.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NAME = "pool_startup"
ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
TASKS = 4
ROUNDS = 3
# case -> (start method, preload the batch's modules in the fork server)
CASES = {"fork": ("fork", True), "forkserver, preload": ("forkserver", True),
         "forkserver, no preload": ("forkserver", False), "spawn": ("spawn", True)}


def _tasks() -> list[tuple]:
    """``TASKS`` one-cell batches of a 600-bar random walk, as the batch builds them."""
    from backtests.robustness.cache import Predictions
    from backtests.robustness.tasks import Cell, Group
    from backtests.synthetic import noisy_foresight, random_walk
    from sizing.config import SizingConfig

    ohlcv = random_walk(n=600, seed=3)
    signal = noisy_foresight(ohlcv, 1, noise=3.0)
    predictions = Predictions(ohlcv.index, signal.predict_batch(ohlcv),
                              signal.prior_batch(ohlcv.index), 1, "pass")
    group = Group("WALK", "2001:2001", ohlcv, 260, predictions, 1, 100_000.0)
    cells = [Cell(0.0005, "default", SizingConfig(), "bench")]
    return [(group, cells, "fast")] * TASKS


def measure(case: str) -> dict[str, float]:
    """In this (fresh) interpreter: seconds of a first and a second pool of ``case``."""
    from backtests.robustness import executors as robustness_executors
    from backtests.robustness.tasks import simulate_cells

    method, preload = CASES[case]
    if not preload:
        robustness_executors.PRELOAD = ()
    tasks = _tasks()
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        with robustness_executors.LocalExecutor(WORKERS, progress=False, method=method) as pool:
            rows = pool.map(simulate_cells, tasks, desc="cells", unit="batch")
        seconds.append(time.perf_counter() - start)
        assert len(rows) == TASKS
    return {"first": seconds[0], "second": seconds[1]}


def _run_case(case: str) -> dict[str, float]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_pool", case], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(**_: Any) -> dict:
    samples: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    for rnd in range(ROUNDS):
        # A B C D, then D C B A: a drift in the machine's load hits every case alike.
        for case in CASES if rnd % 2 == 0 else list(CASES)[::-1]:
            samples[case].append(_run_case(case))
    rows = []
    for case, runs in samples.items():
        row = {"case": case}
        for pool in ("first", "second"):
            ratios = [r[pool] / f[pool] for r, f in zip(runs, samples["fork"], strict=True)]
            row |= {pool: statistics.median(r[pool] for r in runs),
                    f"{pool}_vs_fork": statistics.median(ratios)}
        rows.append(row)
    lines = [f"== {NAME}: a new {WORKERS}-worker pool running {TASKS} one-cell tasks "
             f"(--sim fast), fresh interpreter per case, {ROUNDS} rounds, medians",
             f"{'case':<24} {'1st pool s':>10} {'x fork':>7} {'2nd pool s':>10} {'x fork':>7}"]
    for r in rows:
        lines.append(f"{r['case']:<24} {r['first']:>10.2f} {r['first_vs_fork']:>7.2f} "
                     f"{r['second']:>10.2f} {r['second_vs_fork']:>7.2f}")
    return {"name": NAME, "rows": rows, "text": "\n".join(lines),
            "samples": samples}


if __name__ == "__main__":
    from loguru import logger

    logger.remove()
    print(json.dumps(measure(sys.argv[1])))
