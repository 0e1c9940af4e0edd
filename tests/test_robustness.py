"""``ensemble-bt robustness`` as a user runs it: real (small) grids, files on disk, exit codes.

Two synthetic datasets (an AR(1) series with a weak edge and a random walk without one), two
one-year windows, horizon 1 and one refit a year keep each run to seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.results import SUMMARY_KEYS
from backtests.robustness.batch import load_robustness_config
from backtests.robustness.cache import PredictionCache, Predictions, cache_key
from backtests.robustness.config import (
    DEFAULT_COSTS,
    DEFAULT_DATA,
    DEFAULT_TASK_TIMEOUT,
    Window,
    parse_sizing_grid,
)
from backtests.synthetic import ar1_returns, random_walk, write_csv
from ensemble_bt import cli
from tests.conftest import run_cli

GRID_COLUMNS = ["symbol", "window", "cost", "sizing"]
CHARTS = {"sharpe_heatmap.png", "equity_curves.png", "sharpe_histogram.png", "pbo_logits.png"}
SUMMARY_REQUIRED = {"n_cells", "by_symbol", "by_cost", "share_beating_buy_hold_sharpe", "dsr",
                    "n_trials", "best_cell", "pbo", "cache"}
WINDOWS = "2003:2003,2004:2004"  # the data runs 2000-01-03..2005-05-13 (business days)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("robustness")
    write_csv(ar1_returns(n=1400), root / "ar1.csv")
    write_csv(random_walk(n=1400, seed=5), root / "walk.csv")
    (root / "grid.yaml").write_text(f"horizon: 1\nretrain_every: 252\n"
                                    f"cache_dir: {root / 'cache'}\n")
    return root


def run_grid(root: Path, *args: str, out: str = "results", config: str = "grid.yaml",
             ) -> subprocess.CompletedProcess:
    """``ensemble-bt robustness`` on both datasets and both windows, in ``root``."""
    return run_cli("robustness", "--config", config, "--data", "ar1.csv,walk.csv",
                   "--windows", WINDOWS, "--workers", "2", "--out", out, *args,
                   cwd=root, timeout=300)


def folder_of(proc: subprocess.CompletedProcess) -> Path:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def first_run(workspace) -> tuple[subprocess.CompletedProcess, Path]:
    proc = run_grid(workspace, "--costs", "0,0.0005", "--sim", "fast")
    return proc, workspace / folder_of(proc)


@pytest.mark.slow
def test_grid_writes_one_row_per_cell_summary_and_report(first_run):
    proc, folder = first_run

    runs = pd.read_csv(folder / "runs.csv")
    summary = json.loads((folder / "summary.json").read_text())

    assert folder.name.startswith("robustness_") and folder.parent.name == "results"
    assert list(runs.columns[:4]) == GRID_COLUMNS
    assert set(SUMMARY_KEYS) <= set(runs.columns)
    assert len(runs) == 2 * 2 * 2  # datasets x windows x costs
    assert set(runs["symbol"]) == {"AR1", "WALK"}
    assert set(runs["window"]) == {"2003:2003", "2004:2004"}
    assert set(runs["sizing"]) == {"default"}
    assert (runs["leakage_audit"] == "pass").all()
    assert runs["alpha"].to_numpy() == pytest.approx(
        (runs["strategy_return"] - runs["buy_hold_return"]).to_numpy())
    assert (runs.loc[runs["cost"] > 0, "costs_paid"] > 0).all()
    assert SUMMARY_REQUIRED <= set(summary)
    assert set(summary["by_symbol"]) == {"AR1", "WALK"}
    assert set(summary["by_cost"]) == {"0.0", "0.0005"}
    assert summary["n_trials"] == summary["n_cells"] == 8
    assert 0.0 <= summary["share_beating_buy_hold_sharpe"] <= 1.0
    assert 0.0 <= summary["dsr"] <= 1.0
    assert set(summary["pbo"]["by_window"]) == {"2003:2003", "2004:2004"}
    assert all(0.0 <= w["pbo"] <= 1.0 and w["n_strategies"] == 4
               for w in summary["pbo"]["by_window"].values())
    assert summary["pbo"]["mean"] == pytest.approx(
        np.mean([w["pbo"] for w in summary["pbo"]["by_window"].values()]))
    assert summary["cache"]["trained"] == 4
    assert CHARTS | {"report.html", "config.yaml"} <= {p.name for p in folder.iterdir()}
    assert all((folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in CHARTS)
    assert "cells" in proc.stderr and "100%" in proc.stderr  # tqdm progress on stderr


@pytest.mark.slow
def test_second_run_with_more_costs_reuses_cached_predictions(workspace, first_run):
    _, first = first_run
    cached = sorted((workspace / "cache").glob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cached]

    proc = run_grid(workspace, "--costs", "0,0.0005,0.001", "--sim", "fast", "--no-progress")

    again = pd.read_csv(workspace / folder_of(proc) / "runs.csv")
    summary = json.loads((workspace / folder_of(proc) / "summary.json").read_text())
    assert len(cached) == 4 and [p.stat().st_mtime_ns for p in cached] == stamps
    assert summary["cache"] == {"hits": 4, "trained": 0, "dir": str(workspace / "cache")}
    assert "training 0" in proc.stderr
    assert len(again) == 12
    shared = again[again["cost"] < 0.001].drop(columns="config_hash").reset_index(drop=True)
    before = pd.read_csv(first / "runs.csv").drop(columns="config_hash")
    pd.testing.assert_frame_equal(shared, before)


@pytest.mark.slow
def test_ray_engine_writes_the_same_runs_as_the_local_pool(workspace, first_run):
    _, first = first_run
    # Its own cache, so that Ray workers train too.
    (workspace / "ray.yaml").write_text(f"horizon: 1\nretrain_every: 252\n"
                                        f"cache_dir: {workspace / 'ray-cache'}\n")

    proc = run_grid(workspace, "--costs", "0,0.0005", "--sim", "fast", "--engine", "ray",
                   "--no-progress", config="ray.yaml", out="ray-results")

    ray_runs = (workspace / folder_of(proc) / "runs.csv").read_bytes()
    assert ray_runs == (first / "runs.csv").read_bytes()
    assert len(list((workspace / "ray-cache").glob("*.npz"))) == 4


@pytest.mark.slow
def test_sizing_grid_under_backtrader_matches_the_fast_simulator(workspace, first_run):
    _, first = first_run

    proc = run_grid(workspace, "--costs", "0.0005", "--sim", "backtrader", "--no-progress",
                   "--sizing-grid", "max_long=1.3,1.8")

    runs = pd.read_csv(workspace / folder_of(proc) / "runs.csv")
    assert len(runs) == 2 * 2 * 2  # datasets x windows x sizings
    assert list(runs["sizing"].unique()) == ["max_long=1.3", "max_long=1.8"]
    assert runs["max_gross_leverage"].max() <= 1.8 * 1.05
    default = runs[runs["sizing"] == "max_long=1.8"].reset_index(drop=True)
    fast = pd.read_csv(first / "runs.csv")
    fast = fast[fast["cost"] == 0.0005].reset_index(drop=True)
    numbers = ["strategy_return", "sharpe", "max_drawdown", "n_trades", "costs_paid",
               "financing_costs", "max_gross_leverage"]
    np.testing.assert_allclose(default[numbers].to_numpy(float), fast[numbers].to_numpy(float),
                               rtol=1e-9, atol=1e-9)


def test_corrupt_or_stale_cache_file_is_recomputed_not_trusted(tmp_path):
    cache = PredictionCache(tmp_path)
    dates = pd.bdate_range("2020-01-01", periods=5)
    preds = Predictions(dates, np.arange(5.0), np.full(5, 0.55), 1, "pass")
    key = cache_key("data", dates[2], "model")
    path = cache.path("X", "2020:2020", key)
    cache.save(path, key, preds)

    assert cache.load(path, key, dates).prediction.tolist() == [0, 1, 2, 3, 4]
    assert cache.load(path, cache_key("other data", dates[2], "model"), dates) is None
    assert cache.load(path, key, dates[:4]) is None
    path.write_bytes(b"not an npz file")
    assert cache.load(path, key, dates) is None


def test_example_config_holds_the_documented_defaults():
    example = load_robustness_config(Path(__file__).parents[1] / "configs/robustness.yaml")

    assert example == load_robustness_config()
    assert example.data == DEFAULT_DATA and example.costs == DEFAULT_COSTS
    assert example.windows == (Window(2007, 2009), Window(2010, 2012))
    assert example.sim == "fast" and example.engine == "local"


def test_sizing_grid_values_are_plain_numbers_deduplicated_in_order():
    grid = parse_sizing_grid("max_long=1.8, 1.3,1.8; stats_window=126 ;vol_target=null,0.15")

    assert grid == {"max_long": (1.8, 1.3), "stats_window": (126,), "vol_target": (None, 0.15)}
    assert isinstance(grid["stats_window"][0], int)


def test_task_timeout_is_not_part_of_the_config_hash():
    default = load_robustness_config()

    patient = load_robustness_config(None, {"task_timeout": 86_400})

    assert default.task_timeout == DEFAULT_TASK_TIMEOUT and patient.task_timeout == 86_400
    assert patient.config_hash() == default.config_hash()


@pytest.mark.slow
def test_results_config_yaml_reloads_to_the_same_grid(first_run):
    _, folder = first_run

    reloaded = load_robustness_config(folder / "config.yaml")

    assert reloaded.config_hash() == json.loads(
        (folder / "summary.json").read_text())["config_hash"]


# ------------------------------------------------------------------------------ bad input


@pytest.fixture
def in_process(workspace, tmp_path, capsys, monkeypatch):
    """Run ``cli.main`` here (seconds cheaper than a subprocess); returns (code, stderr)."""
    monkeypatch.chdir(workspace)
    (tmp_path / "cfg.yaml").write_text(f"horizon: 1\nretrain_every: 252\n"
                                       f"cache_dir: {tmp_path / 'cache'}\n")

    def run(*args: str) -> tuple[int, list[str]]:
        base = ["robustness", "--config", str(tmp_path / "cfg.yaml"), "--data",
                "ar1.csv,walk.csv", "--windows", WINDOWS, "--costs", "0", "--workers", "2",
                "--out", str(tmp_path / "out")]
        try:
            code = cli.main([*base, *args])
        except SystemExit as exc:  # argparse
            code = exc.code
        return code, capsys.readouterr().err.strip().splitlines()

    yield run
    assert not (tmp_path / "out").exists(), "bad input left a results directory"
    assert not (tmp_path / "cache").exists(), "bad input wrote to the cache"


BAD_INPUT = {
    "empty_costs": (["--costs", ""], ["--costs", "empty"]),
    "negative_cost": (["--costs", "0,-0.0005"], ["--costs", "-0.0005"]),
    "empty_data": (["--data", ""], ["--data", "empty"]),
    "empty_windows": (["--windows", " "], ["--windows", "empty"]),
    "window_before_min_train": (["--windows", "2001:2001"],
                                ["2001:2001", "ar1.csv", "2000-01-03..2005-05-13",
                                 "min_train=504", "2002:2004"]),
    "window_after_data": (["--windows", "2004:2005"], ["2004:2005", "2005-05-13"]),
    "unknown_engine": (["--engine", "spark"], ["--engine", "spark", "local", "ray"]),
    "inconsistent_sizing": (["--sizing-grid", "max_long=1.0"],
                            ["--sizing-grid", "max_long=1.0", "base_long_bias"]),
    "unknown_sizing_key": (["--sizing-grid", "max_lung=1.0"], ["--sizing-grid", "max_lung"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, in_process):
    args, needles = BAD_INPUT[case]

    code, lines = in_process(*args)

    assert code == 2 and len(lines) == 1, lines
    assert all(needle in lines[0] for needle in needles), lines[0]


def test_ray_engine_without_ray_exits_2_naming_the_extra(in_process, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError

    code, lines = in_process("--engine", "ray")

    assert code == 2 and lines == [
        "ensemble-bt: error: ray is not installed: pip install ensemble-bt[distributed]"]
