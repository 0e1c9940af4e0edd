"""The scripts in examples/ run as a user runs them, on small synthetic inputs.

Each example is a subprocess (``python examples/NAME.py ...``), so it runs exactly as
documented: its ``__main__`` guard, its own loguru sink, its stdout.  ``--synthetic 1200``
and one learner refitted once a year keep each run to seconds.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backtests.results import SUMMARY_KEYS

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SMALL = ("--synthetic", "1200", "--models", "xgb", "--retrain-every", "252")
#: What an example may import besides the standard library: the public API, the libraries a
#: user already has, and the synthetic data built in code (behind --synthetic).
ALLOWED = {"ensemble_bt", "backtrader", "pandas", "numpy", "loguru", "backtests.synthetic"}
#: Each example and the test that runs it.
COVERED = {"sma_gated.py", "two_symbols.py", "research_ic.py"}


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python examples/<name> *args`` in ``cwd``, without a developer's own settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APCA_", "ENSEMBLE_BT_")) and k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow  # a fresh interpreter that trains vintages: 3-6 s
def test_sma_gated_writes_the_results_directory_of_a_users_own_strategy(tmp_path):
    proc = run_example("sma_gated.py", *SMALL, "--out", str(tmp_path / "results"),
                       cwd=tmp_path)
    folder = Path(proc.stdout.strip().splitlines()[-1])
    summary = json.loads((folder / "summary.json").read_text())
    assert folder.parent == tmp_path / "results" and folder.name.startswith("backtest_AR1_")
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["leakage_audit"] == "pass" and summary["n_vintages"] == 3
    assert summary["n_trades"] > 0 and summary["exposure"] < 1.0  # in and out on crosses
    orders = pd.read_csv(folder / "orders.csv")
    assert (orders["date"] > orders["decided"]).all()  # decided at t, filled at t+1
    assert {"equity.csv", "trades.csv", "vintages.json", "config.yaml", "report.html",
            "report.png"} <= {p.name for p in folder.iterdir()}
    assert "SmaCrossGated" in (folder / "config.yaml").read_text()


@pytest.mark.slow  # a fresh interpreter that trains vintages: 3-6 s
def test_sma_gated_trades_a_bundle_only_after_its_training_window(planted, planted_bundle,
                                                                   tmp_path):
    proc = run_example("sma_gated.py", "--data", str(planted), "--bundle", str(planted_bundle),
                       "--horizon", "1", "--out", str(tmp_path), cwd=tmp_path)
    folder = Path(proc.stdout.strip().splitlines()[-1])
    summary = json.loads((folder / "summary.json").read_text())
    vintage = json.loads((folder / "vintages.json").read_text())["vintages"][0]
    assert summary["leakage_audit"] == "pass" and summary["n_vintages"] == 1
    assert summary["start"] > vintage["train_end"] and vintage["source"] == str(planted_bundle)
    assert summary["n_trades"] > 0


@pytest.mark.slow  # a fresh interpreter that trains vintages: 3-6 s
def test_two_symbols_trades_both_feeds_from_one_account(tmp_path):
    proc = run_example("two_symbols.py", *SMALL, cwd=tmp_path)
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
            if line.startswith(("AR1 ", "AR2 "))}
    assert set(rows) == {"AR1", "AR2"}
    assert all(int(row[1]) > 0 for row in rows.values())  # fills of each symbol
    assert "equal-weight buy-and-hold" in proc.stdout.splitlines()[-1]


@pytest.mark.slow  # a fresh interpreter that trains vintages: 3-6 s
def test_research_ic_prints_the_ic_of_each_vintage_without_a_cerebro(tmp_path):
    proc = run_example("research_ic.py", *SMALL, cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert "test_ic" in lines[0]
    assert [line.split()[0] for line in lines[2:5]] == ["0", "1", "2"]
    assert lines[-1].startswith("3 vintages, 696 predictions, IC ")
    assert lines[-1].endswith("leakage audit pass")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_each_example_says_how_to_run_it_guards_main_and_uses_the_public_api(path):
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree) or ""
    assert "What it shows" in doc and "How to run" in doc
    assert any(isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
               for node in tree.body)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 if node.module and node.module != "__future__"}
    outside = {m for m in imported if m not in ALLOWED and m.split(".")[0] not in
               sys.stdlib_module_names}
    assert outside == set()
    assert path.name in COVERED, "add a test that runs it"


# --- the snippets of docs/plugin.md -------------------------------------------------------

PLUGIN_DOC = REPO / "docs" / "plugin.md"


def doc_blocks(language: str) -> list[str]:
    """The fenced ``language`` blocks of docs/plugin.md, in order."""
    text = PLUGIN_DOC.read_text()
    return [block.split("\n```", 1)[0] for block in text.split(f"```{language}\n")[1:]]


@pytest.mark.slow  # about a minute on two cores: a bundle, then seven fresh interpreters
def test_every_python_snippet_of_the_plugin_doc_runs_as_it_stands(tmp_path):
    # Arrange: the bundle the doc's `ensemble-bt train` command writes, where it writes it.
    script = Path(sys.executable).with_name("ensemble-bt")
    commands = [line.split() for block in doc_blocks("bash") for line in block.splitlines()
                if line.startswith("ensemble-bt train ")]
    assert len(commands) == 1
    subprocess.run([str(script), *commands[0][1:], "--no-progress"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=300)
    snippets = doc_blocks("python")
    assert len(snippets) >= 6
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for snippet in snippets[1:]:  # the first is the import line of the introduction
        # Act
        proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        # Assert
        assert proc.returncode == 0, f"{snippet}\n{proc.stderr[-3000:]}"
    assert len(list((tmp_path / "results").glob("backtest_AAPL_*/summary.json"))) == 1
