"""``ensemble-bt report RESULTS_DIR``: the results index, read by Chromium.

The runs are written by hand in the layout the project writes them (``summary.json``,
``equity.csv``, ``report.html``; ``runs.csv`` for a robustness batch; a paper session's
exports), so the index is checked against files whose every figure the test knows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.badinput import assert_refused, sample
from tests.browser import distinct_colours, dump_dom, rows, screenshot
from tests.conftest import run_cli

BACKTESTS = {"backtest_AAA_1": ("AAA", 0.25, 1.1), "backtest_AAA_2": ("AAA", -0.05, -0.2),
             "backtest_BBB_1": ("BBB", 0.6, 1.9)}


def equity_csv(folder: Path, growth: float, start: str = "2020-01-01", n: int = 120) -> None:
    dates = pd.bdate_range(start, periods=n)
    equity = 100_000 * np.linspace(1.0, 1.0 + growth, n)
    pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "equity": equity,
                  "drawdown": 0.0}).to_csv(folder / "equity.csv", index=False)


def build_results(root: Path) -> Path:
    """Three backtests, a robustness batch and a paper session under ``root``."""
    for name, (symbol, ret, sharpe) in BACKTESTS.items():
        folder = root / name
        folder.mkdir(parents=True)
        summary = {"symbol": symbol, "start": "2020-01-01", "end": "2020-06-12", "bars": 120,
                   "strategy_return": ret, "buy_hold_return": 0.1, "alpha": ret - 0.1,
                   "sharpe": sharpe, "max_drawdown": -0.12, "n_trades": 7,
                   "leakage_audit": "pass"}
        (folder / "summary.json").write_text(json.dumps(summary))
        (folder / "report.html").write_text("<html>report</html>")
        equity_csv(folder, ret)
    batch = root / "batches" / "robustness_1"
    batch.mkdir(parents=True)
    (batch / "summary.json").write_text(json.dumps({
        "n_cells": 8, "grid": {"data": ["AAA", "BBB"]}, "dsr": 0.4,
        "pbo": {"mean": 0.3}}))
    (batch / "runs.csv").write_text("symbol,sharpe\nAAA,1.0\n")
    paper = root / "paper_AAA"
    paper.mkdir()
    (paper / "session.json").write_text(json.dumps({"symbols": ["AAA"]}))
    equity_csv(paper, 0.1, start="2021-01-01", n=30)
    (paper / "orders.csv").write_text("decided,symbol,side,size\n2021-01-01,AAA,buy,5\n")
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = build_results(tmp_path_factory.mktemp("index") / "results")
    proc = run_cli("report", str(root), cwd=root.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(root / "index.html")
    return root


def test_the_index_lists_every_run_with_a_link_to_its_report(results):
    html = (results / "index.html").read_text()

    listed = [run for run, _ in rows(html, "data-run")]
    assert listed == sorted([*BACKTESTS, "batches/robustness_1", "paper_AAA"])
    for name in BACKTESTS:
        assert f'href="{name}/report.html"' in html
    assert "<svg" in html and 'src="http' not in html and "<link" not in html


@pytest.mark.slow
def test_the_rows_in_a_browser_match_each_summary_json(results):
    dom = dump_dom((results / "index.html").as_uri())

    shown = {run: row for run, row in rows(dom, "data-run")}
    for name in BACKTESTS:
        summary = json.loads((results / name / "summary.json").read_text())
        cells = _sort_keys(shown[name])
        assert float(cells["strategy_return"]) == summary["strategy_return"]
        assert float(cells["sharpe"]) == summary["sharpe"]
        assert cells["kind"] == "backtest" and cells["symbols"] == summary["symbol"]
    batch = _sort_keys(shown["batches/robustness_1"])
    assert batch["kind"] == "robustness" and float(batch["pbo"]) == 0.3
    assert float(batch["n_cells"]) == 8
    paper = _sort_keys(shown["paper_AAA"])
    assert paper["kind"] == "paper" and float(paper["strategy_return"]) == pytest.approx(0.1)
    assert float(paper["n_trades"]) == 1
    charts = dict(_charts(dom))
    assert charts == {"AAA": "3", "BBB": "1"}  # two backtests and the session trade AAA


@pytest.mark.slow
def test_a_screenshot_of_the_index_is_not_blank(results, tmp_path):
    png = screenshot((results / "index.html").as_uri(), tmp_path / "index.png", "1400,900")

    assert distinct_colours(png) > 50


def _sort_keys(row: str) -> dict[str, str]:
    return dict(re.findall(r'data-field="([^"]*)" data-sort="([^"]*)"', row))


def _charts(dom: str) -> list[tuple[str, str]]:
    return re.findall(r'data-symbols="([^"]*)" data-curves="(\d+)"', dom)


@pytest.mark.parametrize("case", sample(["missing", "empty", "corrupt", "not-an-object"],
                                         "corrupt"))
def test_bad_input_is_refused_with_one_line_and_nothing_written(tmp_path, case):
    root = tmp_path / "results"
    if case != "missing":
        root.mkdir()
    if case in ("corrupt", "not-an-object"):
        build_results(root)
        bad = root / "backtest_AAA_2" / "summary.json"
        bad.write_text('{"symbol": "AAA", "sharpe": ' if case == "corrupt" else "[1, 2]")
    needle = {"missing": "no such results directory", "empty": "no run inside",
              "corrupt": "corrupt JSON", "not-an-object": "an object was expected"}[case]

    assert_refused(["report", str(root)], tmp_path, needle)
