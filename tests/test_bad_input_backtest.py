"""The bad-input corpus of ``backtest``, ``train``, ``datasets`` and the top-level parser.

Every case runs the real command in a subprocess and checks the contract of
:func:`tests.badinput.assert_refused`: exit 2, one short stderr line, no traceback, and
nothing written or changed under the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from backtests.synthetic import random_walk, write_csv
from tests.badinput import assert_refused, sample

Build = Callable[[Path], list[str]]


def _file(name: str, content: str | bytes) -> Callable[[Path], Path]:
    def make(root: Path) -> Path:
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path
    return make


def _config(text: str | bytes) -> Build:
    make = _file("cfg.yaml", text)
    return lambda root: ["backtest", "--config", str(make(root)), "--out", str(root / "r")]


def _backtest(*flags: str) -> Build:
    return lambda root: ["backtest", *flags, "--out", str(root / "r")]


def _bars(edit: Callable[[list[str]], list[str]], n: int = 700) -> Build:
    """A backtest on a CSV of ``n`` good bars that ``edit`` spoils (lines without header)."""
    def build(root: Path) -> list[str]:
        path = write_csv(random_walk(n=n, seed=5), root / "bars.csv")
        lines = path.read_text().splitlines()
        path.write_text("\n".join([lines[0], *edit(lines[1:])]) + "\n")
        return ["backtest", "--data", str(path), "--out", str(root / "r")]
    return build


def _set_row(row: int, column: int, value: str) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        cells = lines[row].split(",")
        cells[column] = value
        lines[row] = ",".join(cells)
        return lines
    return edit


def _all_prices(value: str) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        return [",".join([line.split(",")[0], value, value, value, value, "1000"])
                for line in lines]
    return edit


def _fifo_config(root: Path) -> list[str]:
    os.mkfifo(root / "cfg.yaml")
    return ["backtest", "--config", str(root / "cfg.yaml"), "--out", str(root / "r")]


def _fifo_data(root: Path) -> list[str]:
    os.mkfifo(root / "bars.csv")
    return ["backtest", "--data", str(root / "bars.csv"), "--out", str(root / "r")]


def _loop(flag: str) -> Build:
    def build(root: Path) -> list[str]:
        (root / "a.yaml").symlink_to(root / "b.yaml")
        (root / "b.yaml").symlink_to(root / "a.yaml")
        return ["backtest", flag, str(root / "a.yaml"), "--out", str(root / "r")]
    return build


def _directory(flag: str) -> Build:
    def build(root: Path) -> list[str]:
        (root / "folder.csv").mkdir()
        return ["backtest", flag, str(root / "folder.csv"), "--out", str(root / "r")]
    return build


def _out_is_a_file(root: Path) -> list[str]:
    (root / "taken").write_text("a file")
    return ["backtest", "--data", "AAPL", "--out", str(root / "taken")]


BOMB = """\
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
horizon: [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""

BACKTEST: dict[str, tuple[Build, tuple[str, ...]]] = {
    # --config: what the path is, and what the file holds
    "config_directory": (_directory("--config"), ("folder.csv", "directory")),
    "config_missing": (lambda r: ["backtest", "--config", str(r / "no.yaml")], ("not found",)),
    "config_binary": (_config(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"), ("not UTF-8",)),
    "config_utf16": (_config("horizon: 5\n".encode("utf-16")), ("UTF-16",)),
    "config_fifo": (_fifo_config, ("FIFO",)),
    "config_symlink_loop": (_loop("--config"), ("symlink loop",)),
    "config_too_big": (_config("# " + "x" * (2 << 20) + "\n"), ("too big",)),
    "config_alias_bomb": (_config(BOMB), ("alias",)),
    "config_python_tag": (_config("horizon: !!python/object/apply:os.system ['true']\n"),
                          ("not valid YAML",)),
    "config_deep_nesting": (_config("horizon: " + "[" * 50_000 + "\n"), ("cfg.yaml",)),
    "config_impossible_date": (_config("start: 2011-02-30\n"), ("2011-02-30", "not a valid date")),
    "config_top_level_list": (_config("- horizon\n"), ("mapping",)),
    "config_unknown_long_key": (_config("k" * 5000 + ": 1\n"), ("cfg.yaml",)),
    "config_unknown_key": (_config("retrain_evry: 10\n"), ("unknown key", "retrain_evry")),
    "config_long_bad_value": (_config("horizon: '" + "9" * 5000 + "'\n"), ("horizon",)),
    "config_infinite_cash": (_config("initial_cash: .inf\n"), ("initial_cash", "finite")),
    "config_nan_sizing": (_config("sizing:\n  max_long: .nan\n"), ("sizing.max_long",)),
    # flags
    "seed_23_digits": (_backtest("--seed", "12345678901234567890123"), ("seed",)),
    "commission_nan": (_backtest("--commission", "nan"), ("--commission", "finite")),
    "horizon_zero": (_backtest("--horizon", "0"), ("--horizon",)),
    "start_after_end": (_backtest("--start", "2010-01-04", "--end", "2009-01-02"),
                        ("2010-01-04",)),
    "impossible_date_flag": (_backtest("--start", "2011-02-30"), ("2011-02-30",)),
    "out_is_a_file": (_out_is_a_file, ("--out",)),
    "unknown_dataset_long_name": (_backtest("--data", "X" * 5000), ("unknown dataset",)),
    # flags that a bundle would silently ignore
    "bundle_with_models": (_backtest("--bundle", "b", "--models", "lgbm"), ("--models",)),
    "bundle_with_retrain_every": (_backtest("--bundle", "b", "--retrain-every", "5"),
                                  ("--retrain-every",)),
    "bundle_with_seed": (_backtest("--bundle", "b", "--seed", "3"), ("--seed",)),
    # --data: what the path is, and what the bars hold
    "data_directory": (_directory("--data"), ("directory",)),
    "data_fifo": (_fifo_data, ("FIFO",)),
    "data_symlink_loop": (_loop("--data"), ("symlink loop",)),
    "data_inf_close": (_bars(_set_row(600, 4, "inf")), ("data row 601", "infinite close")),
    "data_nan_open": (_bars(_set_row(600, 1, "nan")), ("data row 601", "NaN")),
    "data_prices_near_1e308": (_bars(_all_prices("1e308")), ("data row 1", "absurd")),
    "data_intraday": (_bars(_set_row(600, 0, "2002-10-04 10:30")), ("intraday",)),
    "data_zoned_intraday": (_bars(_set_row(3, 0, "2000-01-07T11:00:00-05:00")),
                            ("intraday",)),
    "data_too_short": (_bars(lambda lines: lines, n=400), ("min_train",)),
}


@pytest.mark.parametrize("case", sample(sorted(BACKTEST), "config_unknown_key", "data_inf_close"))
def test_backtest_refuses_bad_input_in_one_line_writing_nothing(case, tmp_path):
    build, needles = BACKTEST[case]
    assert_refused(build(tmp_path), tmp_path, *needles)


def _train_nested_out(root: Path) -> list[str]:
    return ["train", "--data", "NOPE", "--out", str(root / "a" / "b" / "bundle")]


TRAIN: dict[str, tuple[Build, tuple[str, ...]]] = {
    "unknown_data_with_nested_out": (_train_nested_out, ("NOPE",)),
    "out_is_a_file": (lambda r: ["train", "--data", "AAPL", "--out",
                                 str(_file("taken", "x")(r))], ("--out",)),
    "config_alias_bomb": (lambda r: ["train", "--data", "AAPL", "--out", str(r / "b"),
                                     "--config", str(_file("c.yaml", BOMB)(r))], ("alias",)),
    "end_impossible": (lambda r: ["train", "--data", "AAPL", "--out", str(r / "b"),
                                  "--end", "2010-13-01"], ("2010-13-01",)),
    "inf_close": (lambda r: ["train", "--out", str(r / "b"), *_bars(_set_row(9, 4, "inf"))(r)[1:3]],
                  ("infinite close",)),
}


@pytest.mark.parametrize("case", sample(sorted(TRAIN), "unknown_data_with_nested_out"))
def test_train_refuses_bad_input_in_one_line_writing_nothing(case, tmp_path):
    build, needles = TRAIN[case]
    assert_refused(build(tmp_path), tmp_path, *needles)


@pytest.mark.parametrize(("args", "needle"), sample([
    (["datasets", "--bogus"], "--bogus"),
    (["--log-level", "LOUD", "datasets"], "LOUD"),
    (["no-such-command"], "no-such-command"),
    ([], "required"),
], 2))
def test_the_parser_refuses_bad_arguments_in_one_line(args, needle, tmp_path):
    assert_refused(args, tmp_path, needle)
