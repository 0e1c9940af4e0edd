"""``ensemble-bt robustness`` refuses bad input: exit 2, one stderr line, nothing written.

Each case runs the real console script (:func:`tests.badinput.assert_refused`) on a small
valid command line with one flag replaced, or with a config file whose key has a wrong type.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backtests.synthetic import ar1_returns, random_walk, write_csv
from tests.badinput import assert_refused, sample

# Each case: the flags that replace the valid ones, and substrings of the expected line.
FLAGS = {
    "grid_unclosed_bracket": (["--sizing-grid", "max_long=[1"],
                              ["--sizing-grid", "'[1'", "max_long", "not a number"]),
    "grid_python_tag": (["--sizing-grid", "max_long=!!python/object:os.system 1"],
                        ["--sizing-grid", "!!python/object:os.system", "not a number"]),
    "grid_binary_tag": (["--sizing-grid", "max_long=!!binary AAAA"],
                        ["--sizing-grid", "!!binary", "not a number"]),
    "grid_unknown_key": (["--sizing-grid", "nokey=1"], ["--sizing-grid", "'nokey'"]),
    "grid_no_values": (["--sizing-grid", "max_long="], ["--sizing-grid", "no values"]),
    "grid_too_many_combinations": (
        ["--sizing-grid", ";".join(f"{key}={','.join(str(v) for v in values)}" for key, values in
                                   (("max_long", (1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1)),
                                    ("rebalance_band", (0.01, 0.02, 0.03, 0.04, 0.05, 0.06)),
                                    ("kelly_scale", tuple(k / 40 for k in range(1, 40)))))],
        ["--sizing-grid", "combinations", "split"]),
    "window_year_zero": (["--windows", "0000:0001"], ["--windows", "0000:0001", "years"]),
    "window_without_data": (["--windows", "2099:2100"], ["2099:2100", "ar1.csv", "fit"]),
    "cost_nan": (["--costs", "nan"], ["--costs", "nan", "[0, 0.1)"]),
    "cost_inf": (["--costs", "inf"], ["--costs", "inf", "[0, 0.1)"]),
    "cost_negative": (["--costs", "-1"], ["--costs", "-1", "[0, 0.1)"]),
    "cost_empty": (["--costs", ""], ["--costs", "empty"]),
    "workers_zero": (["--workers", "0"], ["--workers", "at least 1"]),
    "data_empty": (["--data", ""], ["--data", "empty"]),
    "data_same_symbol_twice": (["--data", "a/x.csv,b/x.csv"], ["a/x.csv", "b/x.csv", "X"]),
}
# Each case: a config file's text, and substrings of the expected line (no flag sets its key).
CONFIGS = {
    "costs_mapping": ("costs: {a: 1}\n", ["bad.yaml", "costs", "list"]),
    "workers_bool": ("workers: true\n", ["bad.yaml", "workers", "integer"]),
    "sizing_grid_list": ("sizing_grid: [1, 2]\n", ["bad.yaml", "sizing_grid", "map"]),
    "grid_value_nested": ("sizing_grid: {max_long: [[1.5]]}\n",
                          ["bad.yaml", "sizing_grid", "[1.5]", "not a finite number"]),
    "task_timeout_zero": ("task_timeout: 0\n", ["bad.yaml", "task_timeout", "greater than 0"]),
}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write_csv(ar1_returns(n=1400), tmp_path / "ar1.csv")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_csv(random_walk(n=1400), tmp_path / folder / "x.csv")
    (tmp_path / "grid.yaml").write_text(f"horizon: 1\nretrain_every: 252\n"
                                        f"cache_dir: {tmp_path / 'cache'}\n")
    return tmp_path


def _command(root: Path, config: str = "grid.yaml") -> list[str]:
    return ["robustness", "--config", config, "--data", "ar1.csv", "--windows", "2003:2003",
            "--out", str(root / "r"), "--no-progress"]


@pytest.mark.parametrize("case", sample(sorted(FLAGS), "cost_negative"))
def test_bad_flag_is_refused_in_one_line(case, workspace):
    flags, needles = FLAGS[case]

    assert_refused([*_command(workspace), "--costs", "0", "--workers", "1", *flags], workspace,
                   *needles)


@pytest.mark.parametrize("case", sample(sorted(CONFIGS), "workers_bool"))
def test_config_key_of_the_wrong_type_is_refused_in_one_line(case, workspace):
    text, needles = CONFIGS[case]
    (workspace / "bad.yaml").write_text(f"cache_dir: {workspace / 'cache'}\n{text}")

    assert_refused(_command(workspace, "bad.yaml"), workspace, *needles)
