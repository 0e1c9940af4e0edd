"""The local process pool of the robustness batch: safe after training, never waits forever.

- A script that trains XGBoost in-process (so OpenMP has run) and then runs a 2-worker grid
  completes: workers come from a fork server, not from a fork of that script.
- A task that runs past ``task_timeout`` and a worker that dies each end the batch with one
  :class:`~backtests.robustness.executors.WorkerError` naming the task, and no worker is
  left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from loguru import logger

from backtests.robustness.executors import LocalExecutor
from backtests.synthetic import ar1_returns, write_csv
from ensemble_bt.errors import DataError, WorkerError
from tests.conftest import cli_env

# Trains XGBoost on 2 threads in this very process, then runs the CLI in it.
TRAIN_THEN_GRID = """
import sys
import numpy as np
import xgboost as xgb
rng = np.random.default_rng(0)
x, y = rng.normal(size=(4000, 8)), rng.normal(size=4000)
xgb.train({"nthread": 2}, xgb.DMatrix(x, label=y), num_boost_round=20)
from ensemble_bt import cli
sys.exit(cli.main(sys.argv[1:]))
"""
# A hang guard for the subprocess, far above its normal run time; not a timing threshold.
HANG_S = 300


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _die(how: str) -> None:
    if how == "SIGKILL":
        os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer sends
    os._exit(3)


def _refuse_or_sleep(name: str, seconds: float) -> None:
    if not seconds:
        raise DataError(f"{name}: bad data")
    time.sleep(seconds)


def _log(text: str) -> None:
    logger.debug("worker says {}", text)


def _workers(pool: LocalExecutor) -> list:
    return list(pool._pool._processes.values())


@pytest.mark.slow
def test_grid_runs_after_the_parent_trained_xgboost(tmp_path):
    write_csv(ar1_returns(n=1400), tmp_path / "ar1.csv")
    (tmp_path / "grid.yaml").write_text(f"horizon: 1\nretrain_every: 252\n"
                                        f"cache_dir: {tmp_path / 'cache'}\n")
    args = ["robustness", "--config", "grid.yaml", "--data", "ar1.csv", "--windows",
            "2003:2003", "--costs", "0,0.0005", "--sim", "fast", "--workers", "2",
            "--out", "out", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-c", TRAIN_THEN_GRID, *args], cwd=tmp_path,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and any worker it left behind
        stdout, stderr = proc.communicate()
        pytest.fail(f"the grid hung for {HANG_S} s after training in the parent\n{stderr}")

    assert proc.returncode == 0, stderr[-3000:]
    runs = pd.read_csv(tmp_path / stdout.strip().splitlines()[-1] / "runs.csv")
    assert runs[["symbol", "window", "cost"]].values.tolist() == [
        ["AR1", "2003:2003", 0.0], ["AR1", "2003:2003", 0.0005]]
    assert (runs["leakage_audit"] == "pass").all() and (runs["n_vintages"] >= 1).all()


def test_map_returns_results_in_submission_order_and_counts_worker_cpu():
    with LocalExecutor(2, progress=False) as pool:
        results = pool.map(_sleep, [(0.3,), (0.0,), (0.1,)], desc="sleep", unit="task")

    assert results == [0.3, 0.0, 0.1]
    assert pool.cpu_s >= 0.0


def test_worker_log_records_reach_the_parent_sinks():
    records: list[dict] = []
    sink = logger.add(lambda message: records.append(message.record), level="DEBUG")
    try:
        with LocalExecutor(2, progress=False) as pool:
            pool.map(_log, [("{braces} stay",)], desc="log", unit="task")
    finally:
        logger.remove(sink)

    said = [r for r in records if r["message"].startswith("worker says")]
    assert [(r["message"], r["name"].rpartition(".")[2], r["function"]) for r in said] == [
        ("worker says {braces} stay", "test_robustness_pool", "_log")]


def test_stuck_task_ends_the_batch_naming_it_and_kills_the_workers():
    with pytest.raises(WorkerError) as caught, \
            LocalExecutor(2, progress=False, task_timeout=1.0) as pool:
        try:
            pool.map(_sleep, [(0.0,), (600.0,)], desc="sleep", unit="task")
        finally:
            workers = _workers(pool)

    message = str(caught.value)
    assert "sleep task 2 of 2 (_sleep) ran for more than task_timeout=1 s" in message, message
    assert "\n" not in message
    assert workers and not any(w.is_alive() for w in workers)


@pytest.mark.parametrize(("how", "reason"), [("SIGKILL", "was killed by SIGKILL"),
                                              ("exit", "exited with code 3")])
def test_dead_worker_ends_the_batch_naming_the_task(how, reason):
    with pytest.raises(WorkerError) as caught, LocalExecutor(2, progress=False) as pool:
        try:
            pool.map(_die, [(how,)], desc="cells", unit="batch")
        finally:
            workers = _workers(pool)

    message = str(caught.value)
    assert reason in message and "cells task 1 of 1 (_die)" in message, message
    assert "\n" not in message
    assert not any(w.is_alive() for w in workers)


def test_stop_error_in_a_task_keeps_its_type_and_kills_the_running_tasks():
    with pytest.raises(DataError, match="x.csv: bad data"), \
            LocalExecutor(2, progress=False) as pool:
        try:
            # The batch does not wait for the long task beside the failed one: it is killed.
            pool.map(_refuse_or_sleep, [("y.csv", 60.0), ("x.csv", 0.0)], desc="training",
                     unit="window")
        finally:
            workers = _workers(pool)

    assert not any(w.is_alive() for w in workers)
