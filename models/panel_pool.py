"""Fitting a panel's vintages, in this process or in a pool of worker processes.

Vintages are independent once the panel is built: each one fits a fresh model on its own
training rows.  With ``workers > 1`` they are fitted in a :class:`ProcessPoolExecutor` whose
workers come from a fork server, never from a fork of the caller: a caller that has already
trained XGBoost holds an OpenMP runtime a forked child would deadlock in.  Like any
spawn-style pool, a script that calls this needs an ``if __name__ == "__main__":`` guard.

Results do not depend on the worker count: every model is built (with its seed) in the
parent, fitted single-threaded on the same rows, and the results come back in vintage order,
whichever worker finished first.  The panel's arrays reach each worker once, through the pool
initialiser; a task carries its row positions and its unfitted model.

This module never imports backtrader.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import numpy as np
from loguru import logger
from tqdm import tqdm

from ensemble_bt.errors import ConfigurationError, WorkerError
from models.vintages import Regressor, holdout_accuracy

#: Imported once by the fork server, so every worker starts with the learners loaded.
PRELOAD = ("models.panel_pool", "models.stacking", "models.learners.gbm")


@dataclass(frozen=True)
class FitTask:
    """One vintage's fit: its training rows and its unfitted model."""

    rows: np.ndarray
    model: Regressor
    purge_rows: int  # rows the holdout tail leaves out (a model without its own validation)
    val_fraction: float = 0.2


@dataclass(frozen=True)
class FitResult:
    """A fitted model and the statistics of its training rows that the sizing prior uses."""

    model: Regressor
    holdout_dir_acc: float
    train_positive_pct: float


def fit_task(X: np.ndarray, y: np.ndarray, task: FitTask) -> FitResult:
    """Fit ``task.model`` on ``X[task.rows], y[task.rows]``."""
    Xr, yr = X[task.rows], y[task.rows]
    model = task.model.fit(Xr, yr)
    if int(getattr(model, "context_rows", 0)):
        # Pooled rows are date-major across symbols: the rows before a row are other
        # symbols', not its own history, so a sequence learner would read the wrong bars.
        raise ConfigurationError("a pooled model cannot use a sequence learner (lstm, xlstm): "
                                 "drop it from models, or use model_scope per_symbol")
    return FitResult(model, holdout_accuracy(model, Xr, yr, task.purge_rows, task.val_fraction),
                     float(np.mean(yr > 0.0)))


def fit_tasks(X: np.ndarray, y: np.ndarray, tasks: Sequence[FitTask], *, workers: int = 1,
              progress: bool = True) -> list[FitResult]:
    """Fit every task, in order; in this process when ``workers`` is 1.

    Raises
    ------
    ConfigurationError
        ``workers`` is not a positive integer (or a fit refused its input).
    WorkerError
        A worker process died (the out-of-memory killer, a crash in native code).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigurationError(f"workers must be an integer >= 1, got {workers!r}")
    bar = tqdm(total=len(tasks), desc="training pooled vintages", unit="vintage",
               disable=not progress, leave=False)
    with bar:
        if workers == 1 or len(tasks) < 2:
            results = []
            for task in tasks:
                results.append(fit_task(X, y, task))
                bar.update()
            return results
        return _fit_in_pool(X, y, tasks, min(workers, len(tasks)), bar)


def pool_context() -> multiprocessing.context.BaseContext:
    """``forkserver`` (with :data:`PRELOAD`) where the platform has it, else ``spawn``."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def _fit_in_pool(X: np.ndarray, y: np.ndarray, tasks: Sequence[FitTask], workers: int,
                 bar: tqdm) -> list[FitResult]:
    # Largest first: the last vintages train on the most rows, and starting them early keeps
    # every worker busy until the end.
    order = sorted(range(len(tasks)), key=lambda k: -len(tasks[k].rows))
    results: list[FitResult | None] = [None] * len(tasks)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(),
                                 initializer=_init_worker, initargs=(X, y)) as pool:
            futures: dict[Future, int] = {pool.submit(_run, tasks[k]): k for k in order}
            try:
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)  # the fits not yet started
                raise
    except BrokenProcessPool:
        raise WorkerError("a worker fitting pooled vintages died (out of memory, or a crash in "
                          "a learner's native code); rerun with fewer --workers") from None
    return [r for r in results if r is not None]


# --------------------------------------------------------------------------- worker side

_panel: tuple[np.ndarray, np.ndarray] | None = None


def _init_worker(X: np.ndarray, y: np.ndarray) -> None:
    """Keep the panel's arrays; log warnings and worse to this worker's stderr only."""
    global _panel
    _panel = (X, y)
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="{level: <7} {message}")


def _run(task: FitTask) -> Any:
    assert _panel is not None, "the pool initialiser did not run"
    return fit_task(*_panel, task)
