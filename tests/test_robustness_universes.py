"""``ensemble-bt robustness --universes``: each cell a portfolio backtest of a universe.

Two universes (two and three synthetic symbols), one one-year window, horizon 1 and one refit
a year keep a run to seconds; the three-symbol universe has a rank IC (it needs three symbols
on a date).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from backtests.robustness.config import load_robustness_config
from backtests.robustness.universe_tasks import UNIVERSE_COLUMNS
from backtests.robustness.universes import parse_universes
from backtests.synthetic import ar1_returns, random_walk, write_csv
from tests.conftest import run_cli

UNIVERSES = "ar1.csv,walk.csv;ar1.csv,w7.csv,a3.csv"
LABELS = {"AR1+WALK", "AR1+W7+A3"}
WINDOW = "2004:2004"  # the data runs 2000-01-03..2005-05-13 (business days)
# The portfolio figures a cell carries, compared with a direct `backtest --data A,B,C`.
FIGURES = ("strategy_return", "benchmark_return", "alpha", "sharpe", "max_drawdown",
           "n_trades", "costs_paid", "ic", "direction_accuracy", "rank_ic", "rank_ic_ir",
           "n_vintages", "leakage_audit", "config_hash")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("universes")
    write_csv(ar1_returns(n=1400), root / "ar1.csv")
    write_csv(random_walk(n=1400, seed=5), root / "walk.csv")
    write_csv(random_walk(n=1400, seed=7), root / "w7.csv")
    write_csv(ar1_returns(n=1400, seed=3), root / "a3.csv")
    (root / "grid.yaml").write_text(f"horizon: 1\nretrain_every: 252\n"
                                    f"cache_dir: {root / 'cache'}\n")
    return root


def run_grid(root: Path, costs: str, out: str = "results") -> subprocess.CompletedProcess:
    return run_cli("robustness", "--config", "grid.yaml", "--universes", UNIVERSES,
                   "--windows", WINDOW, "--costs", costs, "--workers", "2", "--out", out,
                   "--no-progress", cwd=root, timeout=300)


def folder_of(proc: subprocess.CompletedProcess, root: Path) -> Path:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def first_run(workspace) -> tuple[subprocess.CompletedProcess, Path]:
    proc = run_grid(workspace, "0,0.0005")
    return proc, folder_of(proc, workspace)


@pytest.mark.slow
def test_cells_are_named_by_universe_and_carry_the_portfolio_figures(first_run):
    proc, folder = first_run

    runs = pd.read_csv(folder / "runs.csv")
    summary = json.loads((folder / "summary.json").read_text())

    assert len(runs) == 2 * 2  # universes x costs
    assert set(runs["symbol"]) == LABELS
    assert set(UNIVERSE_COLUMNS) <= set(runs.columns)
    assert (runs["leakage_audit"] == "pass").all()
    assert runs["alpha"].to_numpy() == pytest.approx(
        (runs["strategy_return"] - runs["benchmark_return"]).to_numpy())
    three = runs[runs["symbol"] == "AR1+W7+A3"]
    assert three["rank_ic"].notna().all() and three["rank_ic_ir"].notna().all()
    assert set(summary["by_symbol"]) == LABELS
    assert summary["grid"]["universes"] == {"AR1+WALK": ["ar1.csv", "walk.csv"],
                                            "AR1+W7+A3": ["ar1.csv", "w7.csv", "a3.csv"]}
    assert summary["grid"]["sim"] == "fast"
    assert summary["cache"]["trained"] == 2
    assert "AR1+W7+A3" in (folder / "report.html").read_text()
    assert "2 universes (portfolios)" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["fast", "backtrader"])
def test_a_cell_equals_a_direct_portfolio_backtest_of_it(workspace, first_run, sim):
    _, folder = first_run
    cell = pd.read_csv(folder / "runs.csv").query("symbol == 'AR1+W7+A3' and cost == 0.0005")
    row = cell.iloc[0]

    proc = run_cli("backtest", "--data", "ar1.csv,w7.csv,a3.csv", "--start", row["start"],
                   "--end", row["end"], "--commission", "0.0005", "--slippage", "0",
                   "--horizon", "1", "--retrain-every", "252", "--sim", sim,
                   "--out", f"direct-{sim}",
                   "--no-progress", cwd=workspace, timeout=300)

    # The batch's cells run on the fast path; backtrader gives the same figures (not hash).
    direct = json.loads((folder_of(proc, workspace) / "summary.json").read_text())
    for key in FIGURES:
        expected = direct[key]
        if key == "config_hash" and sim == "backtrader":
            assert row[key] != expected
        elif isinstance(expected, float):
            assert row[key] == pytest.approx(expected, rel=1e-9), key
        else:
            assert row[key] == expected, key
    assert direct["symbols"] == ["AR1", "W7", "A3"]
    assert math.isfinite(direct["rank_ic"])


@pytest.mark.slow
def test_second_run_with_more_costs_skips_the_trained_universes(workspace, first_run):
    _, first = first_run
    cached = sorted((workspace / "cache").glob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cached]

    proc = run_grid(workspace, "0,0.0005,0.001")

    again = pd.read_csv(folder_of(proc, workspace) / "runs.csv")
    summary = json.loads((folder_of(proc, workspace) / "summary.json").read_text())
    assert sorted(p.name.split("_")[0] for p in cached) == ["U-AR1-W7-A3", "U-AR1-WALK"]
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert summary["cache"]["hits"] == 2 and summary["cache"]["trained"] == 0
    assert "training 0" in proc.stderr
    assert len(again) == 6
    shared = again[again["cost"] < 0.001].reset_index(drop=True)
    pd.testing.assert_frame_equal(shared, pd.read_csv(first / "runs.csv"))


# ------------------------------------------------------------------------- configuration


def test_universes_parse_from_the_command_line_and_from_yaml_alike():
    from_cli = parse_universes(" AAPL, MSFT ;SP500,NASDAQ")
    from_yaml = parse_universes(["AAPL,MSFT", ["SP500", "NASDAQ"]])

    assert from_cli == from_yaml == (("AAPL", "MSFT"), ("SP500", "NASDAQ"))


@pytest.mark.parametrize(("value", "needle"), [
    ("AAPL,MSFT;", "universe 2 is empty"), ("AAPL,MSFT,aapl", "twice"),
    ("AAPL", "one dataset"), ("AAPL,,MSFT", "empty name"), ("", "list is empty"),
    ("AAPL,MSFT;MSFT,AAPL", "universes 1 and 2"), ({"a": 1}, "list of universes")])
def test_bad_universes_are_one_line_value_errors(value, needle):
    with pytest.raises(ValueError, match=needle):
        parse_universes(value)


def test_universes_default_to_the_fast_path_and_reload_from_their_config_yaml(tmp_path):
    cfg = load_robustness_config(None, {"universes": "AAPL,MSFT;SP500,NASDAQ"})
    (tmp_path / "config.yaml").write_text(json.dumps(cfg.flat()))

    reloaded = load_robustness_config(tmp_path / "config.yaml")

    assert cfg.sim == "fast" and "data" not in cfg.flat()
    assert reloaded == cfg and reloaded.config_hash() == cfg.config_hash()


def test_a_symbol_grid_writes_no_universe_keys():
    cfg = load_robustness_config()

    assert "universes" not in cfg.flat() and "model_scope" not in cfg.flat()
    assert cfg.universes is None and cfg.sim == "fast"
