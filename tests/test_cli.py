"""The ``ensemble-bt`` command as a user runs it: a subprocess, exit codes, files on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backtests.results import SUMMARY_KEYS
from backtests.synthetic import random_walk, write_csv
from tests.badinput import assert_bad_input
from tests.conftest import run_cli

RESULT_FILES = {"summary.json", "equity.csv", "orders.csv", "trades.csv", "vintages.json",
                "decisions.csv",
                "config.yaml", "report.png", "report.html", "leakage_audit.json"}


@pytest.fixture(scope="module")
def good_csv(tmp_path_factory) -> Path:
    return write_csv(random_walk(n=1200, seed=21), tmp_path_factory.mktemp("data") / "walk.csv")


@pytest.mark.slow
def test_backtest_writes_the_contract_results_directory(good_csv, tmp_path):
    out = tmp_path / "results"
    proc = run_cli("backtest", "--data", str(good_csv), "--retrain-every", "252",
                   "--out", str(out), "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = Path(proc.stdout.strip().splitlines()[-1])
    assert folder.parent == out and folder.name.startswith("backtest_WALK_")
    assert RESULT_FILES <= {p.name for p in folder.iterdir()}
    summary = json.loads((folder / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["leakage_audit"] == "pass"
    expected_alpha = summary["strategy_return"] - summary["buy_hold_return"]
    assert summary["alpha"] == pytest.approx(expected_alpha)
    equity = pd.read_csv(folder / "equity.csv")
    assert list(equity.columns) == ["date", "equity", "position_weight", "drawdown", "prediction"]
    assert len(equity) == summary["bars"] == 1200 - 504
    assert (equity["drawdown"] <= 0).all()
    vintages = json.loads((folder / "vintages.json").read_text())["vintages"]
    assert len(vintages) == summary["n_vintages"] == 3
    assert all(v["train_end"] < v["predict_start"] for v in vintages)


def test_datasets_lists_every_embedded_dataset(tmp_path):
    proc = run_cli("datasets", cwd=tmp_path)
    assert proc.returncode == 0
    for name in ("AAPL", "IBM", "MSFT", "GOOG", "SP500", "NASDAQ"):
        assert name in proc.stdout


@pytest.mark.slow
def test_unknown_dataset_exits_2_naming_the_choices(tmp_path):
    proc = run_cli("backtest", "--data", "NOPE", "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert_bad_input(proc, "NOPE", "AAPL", out=tmp_path / "r")


def _bars(tmp_path: Path, name: str, edit) -> Path:
    frame = random_walk(n=700, seed=3).rename(columns=str.capitalize).rename_axis("Date")
    frame = edit(frame.reset_index())
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _set(frame: pd.DataFrame, row: int, col: str, value) -> pd.DataFrame:
    frame.loc[row, col] = value
    return frame


BAD_CSVS = {
    "empty": (lambda f: f.iloc[0:0], "empty"),
    "no_close": (lambda f: f.drop(columns=["Close"]), "close"),
    "nan": (lambda f: _set(f, 600, "Close", float("nan")), "NaN"),
    "duplicate": (lambda f: _set(f, 600, "Date", f.loc[599, "Date"]), "duplicate"),
    "unsorted": (lambda f: pd.concat([f.iloc[:600], f.iloc[[601, 600]], f.iloc[602:]]), "sorted"),
    "negative": (lambda f: _set(f, 600, "Low", -1.0), "positive"),
    "high_below_low": (lambda f: _set(f, 600, "High", f.loc[600, "Low"] * 0.5), "high"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_csv_exits_2_with_one_line_naming_the_file(case, tmp_path):
    edit, needle = BAD_CSVS[case]
    path = _bars(tmp_path, f"{case}.csv", edit)
    proc = run_cli("backtest", "--data", str(path), "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert_bad_input(proc, f"{case}.csv", out=tmp_path / "r")
    assert needle.lower() in proc.stderr.lower()


def test_unknown_config_key_exits_2_naming_the_key(good_csv, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(f"data: {good_csv}\nretrain_evry: 10\n")
    proc = run_cli("backtest", "--config", str(config), "--out", str(tmp_path / "r"),
                   cwd=tmp_path)
    assert_bad_input(proc, "bad.yaml", "retrain_evry", out=tmp_path / "r")


def test_negative_cost_in_config_exits_2_naming_the_key(good_csv, tmp_path):
    config = tmp_path / "neg.yaml"
    config.write_text(f"data: {good_csv}\nslippage: -0.001\n")
    proc = run_cli("backtest", "--config", str(config), "--out", str(tmp_path / "r"),
                   cwd=tmp_path)
    assert_bad_input(proc, "neg.yaml", "slippage", out=tmp_path / "r")


def test_negative_commission_flag_exits_2_naming_the_flag(good_csv, tmp_path):
    proc = run_cli("backtest", "--data", str(good_csv), "--commission", "-0.01",
                   "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert_bad_input(proc, "--commission", out=tmp_path / "r")


@pytest.mark.slow
def test_start_after_end_exits_2(tmp_path):
    proc = run_cli("backtest", "--data", "AAPL", "--start", "2010-01-04", "--end", "2009-01-02",
                   "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert_bad_input(proc, "2010-01-04", "2009-01-02", out=tmp_path / "r")


@pytest.mark.slow
def test_start_without_min_train_history_names_the_earliest_valid_start(tmp_path):
    proc = run_cli("backtest", "--data", "AAPL", "--start", "2001-01-02",
                   "--out", str(tmp_path / "r"), cwd=tmp_path)
    assert_bad_input(proc, "min_train=504", "earliest valid start is 2002-03-07",
                     out=tmp_path / "r")


def test_malformed_date_flag_exits_2_in_one_line(tmp_path):
    proc = run_cli("backtest", "--start", "yesterday", cwd=tmp_path)
    assert_bad_input(proc, "YYYY-MM-DD", out=tmp_path / "r")


@pytest.mark.parametrize(("yaml_text", "needles"), [
    ("sizing:\n  max_long: 6\n", ("sizing.max_long", "less than or equal to 4")),
    ("sizing:\n  drawdown_circuit_breaker: 0\n", ("sizing.drawdown_circuit_breaker",
                                                  "greater than 0")),
    ("sizing:\n  drawdown_reset: 0.5\n", ("sizing.drawdown_reset", "< drawdown_circuit_breaker")),
    ("sizing:\n  kelly: 0.5\n", ("sizing.kelly", "unknown key")),
])
def test_invalid_sizing_parameter_exits_2_naming_key_and_range(yaml_text, needles, good_csv,
                                                              tmp_path):
    config = tmp_path / "sizing.yaml"
    config.write_text(f"data: {good_csv}\n{yaml_text}")
    proc = run_cli("backtest", "--config", str(config), "--out", str(tmp_path / "r"),
                   cwd=tmp_path)
    assert_bad_input(proc, "sizing.yaml", *needles, out=tmp_path / "r")


@pytest.mark.slow
def test_unwritable_out_folder_exits_2_naming_it(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    proc = run_cli("backtest", "--data", "AAPL", "--out", str(blocker / "results"), cwd=tmp_path)
    assert_bad_input(proc, "--out", "a_file", out=tmp_path / "r")
