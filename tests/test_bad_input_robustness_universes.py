"""``ensemble-bt robustness --universes`` refuses bad input: exit 2, one stderr line, nothing
written (:func:`tests.badinput.assert_refused`).

Each case runs the real console script on a small valid universe grid with flags added (a
flag given twice counts once, the last), or with a config file that adds keys.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backtests.synthetic import ar1_returns, random_walk, write_csv
from tests.badinput import assert_refused, sample

UNIVERSE = "ar1.csv,walk.csv"
# Each case: the flags added to the valid ones, and substrings of the expected line.
FLAGS = {
    "empty_universe": (["--universes", f"{UNIVERSE};"], ["--universes", "universe 2", "empty"]),
    "empty_list": (["--universes", " ; "], ["--universes", "empty"]),
    "empty_name": (["--universes", "ar1.csv,,walk.csv"], ["--universes", "empty name"]),
    "name_twice": (["--universes", "ar1.csv,walk.csv,ar1.csv"],
                   ["--universes", "'ar1.csv' twice"]),
    "one_symbol_twice_by_file": (["--universes", "a/x.csv,b/x.csv"],
                                 ["--universes", "universe 1", "a/x.csv", "b/x.csv", "X"]),
    "unknown_name": (["--universes", f"{UNIVERSE};ar1.csv,nosuch.csv"],
                     ["--universes", "universe 2", "nosuch.csv"]),
    "one_symbol": (["--universes", "ar1.csv"], ["--universes", "one dataset", "--data"]),
    "same_universe_twice": (["--universes", f"{UNIVERSE};walk.csv,ar1.csv"],
                            ["--universes", "universes 1 and 2", "once"]),
    "with_data": (["--universes", UNIVERSE, "--data", "ar1.csv"],
                  ["--universes", "--data", "one of them"]),
    "with_unknown_sim": (["--universes", UNIVERSE, "--sim", "vectorbt"],
                         ["--sim", "vectorbt"]),
    "window_outside_a_symbol": (["--universes", UNIVERSE, "--windows", "2099:2100"],
                                ["2099:2100", "ar1.csv", "fit"]),
}
# Each case: a config file's extra text, the universes flag (or None: --data ar1.csv), and
# substrings of the expected line.
CONFIGS = {
    "model_scope_without_universes": ("model_scope: pooled\n", None,
                                      ["bad.yaml", "model_scope", "universes"]),
    "top_k_above_the_universe": ("portfolio: {mode: topk, k: 3}\n", UNIVERSE,
                                 ["--universes", "universe 1", "portfolio.k"]),
    "universes_and_data": (f"universes: ['{UNIVERSE}']\ndata: [ar1.csv]\n", None,
                           ["bad.yaml", "universes", "data", "one of them"]),
    "universes_mapping": ("universes: {a: 1}\n", "", ["bad.yaml", "universes", "list"]),
    "unknown_sim_in_yaml": ("sim: vectorbt\n", UNIVERSE, ["bad.yaml", "sim"]),
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write_csv(ar1_returns(n=1400), tmp_path / "ar1.csv")
    write_csv(random_walk(n=1400, seed=5), tmp_path / "walk.csv")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_csv(random_walk(n=1400), tmp_path / folder / "x.csv")
    (tmp_path / "grid.yaml").write_text(f"horizon: 1\nretrain_every: 252\n"
                                        f"cache_dir: {tmp_path / 'cache'}\n")
    return tmp_path


def _command(root: Path, config: str = "grid.yaml") -> list[str]:
    return ["robustness", "--config", config, "--windows", "2003:2003", "--costs", "0",
            "--workers", "1", "--out", str(root / "r"), "--no-progress"]


@pytest.mark.parametrize("case", sample(sorted(FLAGS), "one_symbol", "unknown_name"))
def test_bad_universe_flag_is_refused_in_one_line(case, workspace):
    flags, needles = FLAGS[case]

    assert_refused([*_command(workspace), *flags], workspace, *needles)


@pytest.mark.parametrize("case", sample(sorted(CONFIGS), "universes_and_data"))
def test_bad_universe_config_is_refused_in_one_line(case, workspace):
    text, universes, needles = CONFIGS[case]
    (workspace / "bad.yaml").write_text(f"cache_dir: {workspace / 'cache'}\n{text}")
    flags = ["--data", "ar1.csv"] if universes is None else (
        ["--universes", universes] if universes else [])

    assert_refused([*_command(workspace, "bad.yaml"), *flags], workspace, *needles)
