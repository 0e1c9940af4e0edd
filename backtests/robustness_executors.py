"""Executors for the robustness grid: a local process pool, or Ray.

Both expose the same three calls, so the batch code never branches on the engine:

- ``share(obj)``: a handle to pass to many tasks (Ray puts it in the object store once);
- ``map(fn, arg_tuples, desc, unit)``: run ``fn(*args)`` for each tuple in parallel, with a
  tqdm bar on stderr, and return the results in submission order (so outputs never depend on
  which worker finished first);
- use as a context manager: workers start on entry and stop on exit.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from types import ModuleType
from typing import Any

from loguru import logger
from tqdm import tqdm

from models.errors import ConfigurationError, EnsembleBTError

RAY_MISSING = "ray is not installed: pip install ensemble-bt[distributed]"


def default_workers() -> int:
    return os.cpu_count() or 1


class LocalExecutor:
    """``concurrent.futures.ProcessPoolExecutor`` with ``workers`` processes.

    On Linux the workers are forked: they inherit the already imported learners instead of
    paying seconds of imports each, and the parent starts no thread of its own before the
    pool (Python forks every worker at the first submit).  Elsewhere they are spawned.
    """

    def __init__(self, workers: int, progress: bool = True) -> None:
        self.workers = workers
        self.progress = progress
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalExecutor:
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        self._pool = ProcessPoolExecutor(self.workers,
                                         mp_context=multiprocessing.get_context(method))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def share(self, obj: Any) -> Any:
        return obj

    def map(self, fn: Callable[..., Any], args: Sequence[tuple], desc: str,
            unit: str) -> list[Any]:
        assert self._pool is not None, "use the executor as a context manager"
        if not args:
            return []
        futures = [self._pool.submit(fn, *a) for a in args]
        with tqdm(total=len(futures), desc=desc, unit=unit, disable=not self.progress) as bar:
            pending: set[Future] = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                bar.update(len(done))
                for future in done:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
        return [f.result() for f in futures]


def import_ray() -> ModuleType:
    """``ray``, or a one-line :class:`ConfigurationError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError(RAY_MISSING) from None
    return ray


class RayExecutor:
    """Ray tasks: the cluster at ``$RAY_ADDRESS`` when set, else a local instance.

    A local instance gets ``num_cpus=workers`` and no dashboard, and is shut down on exit.
    On a remote cluster the workers must have ensemble-bt installed (they import the task
    functions by module name).
    """

    def __init__(self, workers: int, progress: bool = True) -> None:
        self.workers = workers
        self.progress = progress
        self.ray = import_ray()

    def __enter__(self) -> RayExecutor:
        address = os.environ.get("RAY_ADDRESS")
        if address:
            logger.info("connecting to the Ray cluster at {}", address)
            self.ray.init(address=address, log_to_driver=False)
        else:
            # address="local": start our own instance even if `ray start` left one running.
            self.ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                          log_to_driver=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ray.shutdown()

    def share(self, obj: Any) -> Any:
        return self.ray.put(obj)

    def map(self, fn: Callable[..., Any], args: Sequence[tuple], desc: str,
            unit: str) -> list[Any]:
        if not args:
            return []
        ray = self.ray
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = [remote.remote(*a) for a in args]
        try:
            with tqdm(total=len(refs), desc=desc, unit=unit, disable=not self.progress) as bar:
                pending = list(refs)
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    ray.get(done)  # raise the first failure now, not after the last task
                    bar.update(len(done))
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            for ref in refs:
                ray.cancel(ref)
            cause = getattr(exc, "cause", None)
            # A stop error (bad data, ...) keeps its one-line message and exit code.
            if isinstance(cause, EnsembleBTError):
                raise cause from None
            raise


def make_executor(engine: str, workers: int | None,
                  progress: bool = True) -> LocalExecutor | RayExecutor:
    """The executor for ``--engine``; raises at once when ray is asked for but missing."""
    n = workers or default_workers()
    if engine == "local":
        return LocalExecutor(n, progress)
    if engine == "ray":
        return RayExecutor(n, progress)
    raise ConfigurationError(f"--engine {engine}: unknown engine; choose local or ray")
