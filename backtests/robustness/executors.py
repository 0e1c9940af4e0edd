"""Executors for the robustness grid: a local process pool, or Ray.

Both expose the same three calls, so the batch code never branches on the engine:

- ``share(obj)``: a handle to pass to many tasks (Ray puts it in the object store once);
- ``map(fn, arg_tuples, desc, unit)``: run ``fn(*args)`` for each tuple in parallel, with a
  tqdm bar on stderr, and return the results in submission order (so outputs never depend on
  which worker finished first);
- use as a context manager: workers start on entry and stop on exit.

Local workers come from a fork server, never from a fork of the calling process, so a script
may train models in-process before it runs a batch.  Like any spawn-style pool, the workers
import the main script again: a script that runs a batch needs an
``if __name__ == "__main__":`` guard.

A batch never waits forever.  A task that runs longer than ``task_timeout`` seconds, or a
worker that dies (the out-of-memory killer, a crash in native code), ends the batch with a
one-line :class:`WorkerError` that names the task; the remaining workers are killed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from loguru import logger
from tqdm import tqdm

from backtests.robustness.config import DEFAULT_TASK_TIMEOUT
from backtests.robustness.tasks import describe_task
from ensemble_bt.errors import ConfigurationError, EnsembleBTError, WorkerError

RAY_MISSING = "ray is not installed: pip install ensemble-bt[distributed]"
#: Imported once by the fork server, so that every worker it forks starts warm.
PRELOAD = ("backtests.robustness.executors", "backtests.robustness.tasks", "backtests.engine")
# How often the parent looks for finished, started, stuck and dead tasks.
_POLL_S = 0.25
# Seconds to wait for a killed worker to be reaped.
_REAP_S = 5.0
# Characters of a worker's log message relayed to the parent.
_LOG_CHARS = 2000
# Least seconds without any task starting or finishing before the batch counts as stuck: a
# pool's first workers wait for the fork server to import the learners, which on a loaded
# machine can take longer than a short task_timeout.
_QUIET_S = 120.0


def default_workers() -> int:
    return os.cpu_count() or 1


def start_method() -> str:
    """``forkserver`` where the platform has it, else ``spawn``; never ``fork``.

    A forked worker inherits the parent's OpenMP runtime in whatever state the parent left
    it: after the parent has trained XGBoost, the child blocks forever in its first
    ``DMatrix``.  The fork server is a fresh interpreter that only imports :data:`PRELOAD`.
    """
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def pool_context(method: str | None = None) -> multiprocessing.context.BaseContext:
    """The multiprocessing context of the local pool (``method`` None: :func:`start_method`).

    With ``forkserver`` the fork server imports :data:`PRELOAD` once, when it starts (the
    first pool of the process); the workers it forks have the learners, backtrader and numba
    already imported.
    """
    ctx = multiprocessing.get_context(method or start_method())
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


# --------------------------------------------------------------------------- worker side

_channel: Any = None  # this worker's end of the queue to the parent (set by _init_worker)


def _forward(message: Any) -> None:
    """A loguru sink: the record goes to the parent, which logs it through its own sinks."""
    record = message.record
    # Cut so that each put is one write under PIPE_BUF (4 KiB), which a pipe keeps whole: a
    # worker killed mid-put can then never leave half a message for the parent to wait on.
    _channel.put(("log", record["level"].name, record["message"][:_LOG_CHARS],
                  record["name"], record["function"], record["line"]))


def _init_worker(channel: Any) -> None:
    """Each worker's start: keep the channel, and send log records through it.

    A forked worker used to inherit the parent's loguru sinks; a worker from the fork server
    has loguru's default sink instead (DEBUG, its own format), so the parent relays them.
    """
    global _channel
    _channel = channel
    logger.remove()
    logger.add(_forward, level="DEBUG", format="{message}")


def _run_task(task_id: int, fn: Callable[..., Any], args: tuple) -> tuple[Any, float]:
    """``fn(*args)`` and the CPU seconds it took; announces the start to the parent first."""
    _channel.put(("start", task_id, os.getpid()))
    cpu = time.process_time()
    result = fn(*args)
    return result, time.process_time() - cpu


# --------------------------------------------------------------------------- parent side


@dataclass
class _Batch:
    """The tasks of one ``map`` call: their futures, and when and where each one started."""

    fn: Callable[..., Any]
    args: Sequence[tuple]
    desc: str
    futures: dict[Future, int]  # future -> position in args
    first_id: int
    started: dict[int, tuple[int, float]] = field(default_factory=dict)  # pos -> (pid, t)
    last_event: float = field(default_factory=time.monotonic)

    def name(self, pos: int) -> str:
        return (f"{self.desc} task {pos + 1} of {len(self.args)} "
                f"({describe_task(self.fn, self.args[pos])})")

    def record(self, task_id: int, pid: int, now: float) -> None:
        if 0 <= task_id - self.first_id < len(self.args):
            self.started[task_id - self.first_id] = (pid, now)
            self.last_event = now

    def stuck(self, pending: set[Future], now: float, timeout: float) -> str | None:
        """What is stuck, when a pending task has run longer than ``timeout`` seconds."""
        fix = "the workers were stopped: raise task_timeout in the robustness config if the " \
              "tasks are only slow"
        for future in pending:
            pos = self.futures[future]
            if pos in self.started and now - self.started[pos][1] > timeout:
                return f"{self.name(pos)} ran for more than task_timeout={timeout:g} s; {fix}"
        # Should a start record never come, nothing at all happens: that is stuck too.
        quiet = max(timeout, _QUIET_S)
        if now - self.last_event > quiet:
            return f"{self.desc}: no task started or finished in {quiet:g} s; {fix}"
        return None


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "died"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        oom = ", as the out-of-memory killer does" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{oom}"
    return f"exited with code {code}"


class LocalExecutor:
    """``concurrent.futures.ProcessPoolExecutor`` with ``workers`` processes.

    Workers are forked by a fork server (:func:`pool_context`), never from the parent: a
    script may train models in-process before it runs a batch.  Each task must finish within
    ``task_timeout`` seconds; a stuck task or a dead worker raises :class:`WorkerError`.
    """

    def __init__(self, workers: int, progress: bool = True,
                 task_timeout: float = DEFAULT_TASK_TIMEOUT, method: str | None = None) -> None:
        self.workers = workers
        self.progress = progress
        self.task_timeout = task_timeout
        self.method = method
        self.cpu_s = 0.0  # CPU seconds the workers spent inside tasks
        self._pool: ProcessPoolExecutor | None = None
        self._channel: Any = None
        self._next_id = 0

    def __enter__(self) -> LocalExecutor:
        ctx = pool_context(self.method)
        self._channel = ctx.SimpleQueue()
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                         initializer=_init_worker, initargs=(self._channel,))
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._pool is None:
            return
        if exc_type is None:
            self._pool.shutdown(wait=True)
        else:  # the batch failed: running tasks' results are of no use, do not wait for them
            self._kill()
        self._drain(None)
        self._channel.close()
        self._pool = None

    def _kill(self) -> None:
        """Kill every worker, then stop the pool without waiting on its queues."""
        assert self._pool is not None
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + _REAP_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))

    def share(self, obj: Any) -> Any:
        return obj

    def map(self, fn: Callable[..., Any], args: Sequence[tuple], desc: str,
            unit: str) -> list[Any]:
        assert self._pool is not None, "use the executor as a context manager"
        if not args:
            return []
        first_id, self._next_id = self._next_id, self._next_id + len(args)
        try:
            futures = {self._pool.submit(_run_task, first_id + i, fn, a): i
                       for i, a in enumerate(args)}
        except BrokenProcessPool:
            raise WorkerError(f"{desc}: the worker pool broke before its first task; a worker "
                              "died while starting (out of memory?)") from None
        batch = _Batch(fn, args, desc, futures, first_id)
        with tqdm(total=len(futures), desc=desc, unit=unit, disable=not self.progress) as bar:
            pending: set[Future] = set(futures)
            while pending:
                done, pending = wait(pending, timeout=_POLL_S, return_when=FIRST_EXCEPTION)
                bar.update(len(done))
                self._watch(batch, done, pending)
        results = [f.result() for f in futures]
        self.cpu_s += sum(cpu for _, cpu in results)
        return [result for result, _ in results]

    def _drain(self, batch: _Batch | None) -> None:
        """Log what the workers logged, and note which task started in which worker."""
        now = time.monotonic()
        while not self._channel.empty():
            kind, *item = self._channel.get()
            if kind == "start" and batch is not None:
                batch.record(*item, now)
            elif kind == "log":
                level, message, name, function, line = item
                logger.patch(lambda r, n=name, f=function, li=line: r.update(
                    name=n, function=f, line=li)).log(level, message)

    def _watch(self, batch: _Batch, done: set[Future], pending: set[Future]) -> None:
        """Relay the workers' news; raise on a failed task, a dead worker or a stuck task."""
        now = time.monotonic()
        self._drain(batch)
        if done:
            batch.last_event = now
        for future in done:
            error = future.exception()
            if isinstance(error, BrokenProcessPool):
                raise WorkerError(self._death(batch)) from None
            if error is not None:
                raise error
        stuck = batch.stuck(pending, now, self.task_timeout)
        if stuck is not None:
            raise WorkerError(stuck)

    def _death(self, batch: _Batch) -> str:
        """Which worker died, how, and while running which task."""
        # The pool's own thread terminates the other workers and reaps them all; wait for it
        # so that every exit code is known (only it reads them: two readers would race).
        manager = getattr(self._pool, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(_REAP_S)
        processes = getattr(self._pool, "_processes", None) or {}
        # SIGTERM is how the pool stops the survivors; the dead worker exited otherwise.
        dead = {pid: p.exitcode for pid, p in processes.items()
                if p.exitcode is not None and p.exitcode != -signal.SIGTERM}
        latest = {pid: pos for pos, (pid, _) in batch.started.items()}  # last start per worker
        pid = next((pid for pid in dead if pid in latest), next(iter(dead), None))
        who = f"worker process {pid} {_exit_reason(dead[pid])}" if pid is not None \
            else "a worker process died"
        if pid is not None and pid not in latest and dead[pid] == 1:
            # A Python error before any task: a worker imports the main script again (spawn
            # semantics), so a script's unguarded top-level code runs there too.
            return (f"{who} before its first {batch.desc} task (its error is above); a script "
                    "that runs a batch needs an `if __name__ == \"__main__\":` guard")
        task = batch.name(latest[pid]) if pid in latest else f"a {batch.desc} task"
        return (f"{who} while running {task}; the batch stopped: if memory ran out, lower "
                "--workers or split the grid")


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
    functions by module name).  Ray reports when a task started only through its state API,
    so the timeout here bounds the wait for the *next* finished task: a stuck task ends the
    batch at most ``task_timeout`` seconds after the other tasks ran out.
    """

    def __init__(self, workers: int, progress: bool = True,
                 task_timeout: float = DEFAULT_TASK_TIMEOUT) -> None:
        self.workers = workers
        self.progress = progress
        self.task_timeout = task_timeout
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
            self._wait_all(refs, desc, unit)
            return ray.get(refs)
        except ray.exceptions.RayTaskError as exc:
            self._cancel(refs)
            cause = getattr(exc, "cause", None)
            # A stop error (bad data, ...) keeps its one-line message and exit code.
            if isinstance(cause, EnsembleBTError):
                raise cause from None
            raise
        except ray.exceptions.RayError as exc:  # a worker died: crashed, or out of memory
            self._cancel(refs)
            raise WorkerError(f"{desc}: a Ray worker died ({type(exc).__name__}); the batch "
                              "stopped: if memory ran out, lower --workers or split the grid"
                              ) from None

    def _wait_all(self, refs: list, desc: str, unit: str) -> None:
        ray = self.ray
        with tqdm(total=len(refs), desc=desc, unit=unit, disable=not self.progress) as bar:
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=self.task_timeout)
                if not done:
                    self._cancel(refs)
                    raise WorkerError(
                        f"{desc}: no task finished within task_timeout={self.task_timeout:g} "
                        f"s ({len(pending)} of {len(refs)} left); the batch stopped: raise "
                        "task_timeout in the robustness config if the tasks are only slow")
                ray.get(done)  # raise the first failure now, not after the last task
                bar.update(len(done))

    def _cancel(self, refs: list) -> None:
        for ref in refs:
            self.ray.cancel(ref, force=True)


def make_executor(engine: str, workers: int | None, progress: bool = True,
                  task_timeout: float = DEFAULT_TASK_TIMEOUT) -> LocalExecutor | RayExecutor:
    """The executor for ``--engine``; raises at once when ray is asked for but missing."""
    n = workers or default_workers()
    if engine == "local":
        return LocalExecutor(n, progress, task_timeout)
    if engine == "ray":
        return RayExecutor(n, progress, task_timeout)
    raise ConfigurationError(f"--engine {engine}: unknown engine; choose local or ray")
