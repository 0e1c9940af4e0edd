"""The bad-input corpus of a portfolio backtest (``backtest --data A,B,...``).

Every case runs the real command in a subprocess and checks the contract of
:func:`tests.badinput.assert_refused`: exit 2, one short stderr line, no traceback, and
nothing written or changed under the working directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backtests.synthetic import random_walk, write_csv
from tests.badinput import assert_refused, sample

Build = Callable[[Path], list[str]]


def _with_config(text: str, data: str = "AAPL,MSFT", *flags: str) -> Build:
    def build(root: Path) -> list[str]:
        (root / "cfg.yaml").write_text(text)
        return ["backtest", "--config", str(root / "cfg.yaml"), "--data", data, *flags,
                "--out", str(root / "r")]
    return build


def _flags(*flags: str) -> Build:
    return lambda root: ["backtest", *flags, "--out", str(root / "r")]


def _short_symbol(root: Path) -> list[str]:
    path = write_csv(random_walk(n=300, seed=3), root / "short.csv")
    return ["backtest", "--data", f"AAPL,{path}", "--out", str(root / "r")]


PORTFOLIO: dict[str, tuple[Build, tuple[str, ...]]] = {
    "unknown_portfolio_key": (_with_config("portfolio:\n  mode: topk\n  k: 2\n  kk: 1\n"),
                              ("unknown key", "portfolio.kk")),
    "k_above_symbols": (_with_config("portfolio: {mode: topk, k: 3}\n"),
                        ("portfolio.k 3", "2 symbols")),
    "k_missing": (_with_config("portfolio: {mode: topk}\n"), ("portfolio.k", "required")),
    "dropout_above_k": (_with_config("portfolio: {mode: topk, k: 2, dropout: 3}\n"),
                        ("portfolio.dropout", "<= k")),
    "max_gross_zero": (_with_config("portfolio: {max_gross: 0}\n"),
                       ("portfolio.max_gross", "greater than 0")),
    "max_gross_negative": (_with_config("portfolio: {max_gross: -1.5}\n"),
                           ("portfolio.max_gross",)),
    "topk_key_in_allocations_mode": (_with_config("portfolio: {k: 2}\n"),
                                     ("portfolio.k", "mode topk")),
    "allocations_wrong_names": (_with_config("portfolio: {allocations: {AAPL: 0.5, IBM: 0.5}}\n"),
                                ("allocations", "AAPL, MSFT")),
    "allocations_over_one": (_with_config("portfolio: {allocations: {AAPL: 0.8, MSFT: 0.8}}\n"),
                             ("allocations", "at most 1")),
    "unknown_model_scope": (_with_config("model_scope: global\n"), ("model_scope",)),
    "unknown_target": (_with_config("target: excess\n"), ("target",)),
    "pooled_for_one_symbol": (_with_config("model_scope: pooled\n", "AAPL"),
                              ("model_scope", "several symbols")),
    "workers_zero": (_flags("--data", "AAPL,MSFT", "--workers", "0"), ("--workers", "at least 1")),
    "portfolio_for_one_symbol": (_with_config("portfolio: {max_gross: 1.0}\n", "AAPL"),
                                 ("portfolio", "several symbols")),
    "demeaned_target_for_one_symbol": (_with_config("target: demeaned\n", "AAPL"),
                                       ("target", "several symbols")),
    "duplicate_symbols": (_flags("--data", "AAPL,MSFT,aapl"), ("AAPL", "once")),
    "one_bad_symbol": (_flags("--data", "AAPL,NOPE,MSFT"), ("NOPE", "unknown dataset")),
    "bundle": (_flags("--data", "AAPL,MSFT", "--bundle", "b"), ("--bundle",)),
    "symbol_too_short_to_join": (_short_symbol, ("SHORT", "min_train")),
    "start_before_any_history": (_flags("--data", "AAPL,GOOG", "--start", "2001-01-02"),
                                 ("earliest valid start", "2002-03-07")),
}


@pytest.mark.parametrize("case", sample(sorted(PORTFOLIO), "unknown_portfolio_key",
                                        "one_bad_symbol"))
def test_a_portfolio_backtest_refuses_bad_input_in_one_line_writing_nothing(case, tmp_path):
    build, needles = PORTFOLIO[case]
    assert_refused(build(tmp_path), tmp_path, *needles)
