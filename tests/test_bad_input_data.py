"""Bad input to ``ensemble-bt data``: exit 2, one stderr line, nothing written.

Every case runs the real command in a subprocess against a local server on 127.0.0.1 (or no
server at all) with the store under the test's folder, which must be left exactly as it was.
An unreachable server is not bad input: exit 1, still one line, still nothing written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backtests.store import BarStore
from backtests.synthetic import random_walk
from live.aiothread import RunningServer
from live.sim.server import build_app, serve
from tests.badinput import assert_refused, snapshot
from tests.conftest import run_cli

KEY, SECRET = "bad-input-key-03f1", "bad-input-secret-77aa2c"
KEYS = {"APCA_API_KEY_ID": KEY, "APCA_API_SECRET_KEY": SECRET}
FAST = {"no_keys", "start_after_end", "unknown_symbol"}  # the sample `pytest -m "not slow"` runs


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    bad = random_walk(n=300, seed=2)
    bad.iloc[150, bad.columns.get_loc("high")] = 1.0  # below its low
    app = build_app({"AAA": random_walk(n=300, seed=1), "BAD": bad}, key_id=KEY, secret=SECRET,
                    start=bad.index[-1].date())
    with serve(app) as running:
        yield running


def stored(folder: Path) -> None:
    """A store holding AAA, written as a fetch writes it."""
    bars = random_walk(n=50, seed=1)
    with BarStore(folder).writing() as writer:
        writer.put("AAA", bars, source="alpaca", url="http://127.0.0.1:1", feed="iex",
                   adjustment="all", start=bars.index[0].date(), end=bars.index[-1].date(),
                   fetched_at="2026-01-05T21:00:00Z")


def malformed(folder: Path) -> None:
    folder.mkdir()
    (folder / "index.json").write_text('{"format": "ensemble-bt store", "symbols": NaN}')


#: name -> (arguments after `ensemble-bt`, environment, how to prepare the store, needles)
CASES: dict[str, tuple[tuple[str, ...], dict[str, str], object, tuple[str, ...]]] = {
    "no_keys": (("data", "fetch", "AAA"), {}, None,
                ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")),
    "one_key": (("data", "fetch", "AAA"), {"APCA_API_KEY_ID": KEY}, None,
                ("only one of", "APCA_API_SECRET_KEY")),
    "wrong_keys": (("data", "fetch", "AAA"), {**KEYS, "APCA_API_SECRET_KEY": "wrong"}, None,
                   ("refused the keys", "401")),
    "unknown_symbol": (("data", "fetch", "AAA", "ZZZ"), KEYS, None, ("unknown symbol ZZZ",)),
    "start_after_end": (("data", "fetch", "AAA", "--start", "2010-02-01", "--end",
                         "2010-01-01"), KEYS, None, ("--start 2010-02-01", "--end 2010-01-01")),
    "not_a_ticker": (("data", "fetch", "../etc"), KEYS, None, ("'../etc'", "not a ticker")),
    "bad_date": (("data", "fetch", "AAA", "--start", "2010-13-01"), KEYS, None,
                 ("--start", "2010-13-01")),
    "bad_feed": (("data", "fetch", "AAA", "--feed", "nasdaq"), KEYS, None, ("--feed",)),
    "bad_url": (("data", "fetch", "AAA", "--data-url", "ftp://x"), KEYS, None,
                ("--data-url", "ftp://x")),
    "store_is_a_file": (("data", "fetch", "AAA"), KEYS, "file", ("--store", "not a folder")),
    "invalid_bars": (("data", "fetch", "AAA", "BAD"), KEYS, None,
                     ("alpaca:BAD", "data row 151", "high < low")),
    "no_session_in_range": (("data", "fetch", "AAA", "--start", "1980-01-01", "--end",
                             "1980-12-31"), KEYS, None, ("no complete session", "1980-01-01")),
    "malformed_index": (("data", "fetch", "AAA"), KEYS, malformed, ("index.json", "strict JSON")),
    "update_empty_store": (("data", "update"), KEYS, None, ("holds no symbols",)),
    "update_not_stored": (("data", "update", "BBB"), KEYS, stored,
                          ("store:BBB", "not in the store", "data fetch BBB")),
    "list_malformed_index": (("data", "list"), {}, malformed, ("index.json",)),
    "backtest_not_stored": (("backtest", "--data", "store:ZZZ"), {}, stored,
                            ("store:ZZZ", "not in the store")),
}


def needs_server(args: tuple[str, ...]) -> bool:
    return args[:2] in (("data", "fetch"), ("data", "update"))


@pytest.mark.parametrize("name", [
    name if name in FAST else pytest.param(name, marks=pytest.mark.slow) for name in CASES])
def test_bad_data_input_is_refused_in_one_line_writing_nothing(name, server, tmp_path):
    args, env, prepare, needles = CASES[name]
    folder = tmp_path / "store"
    if prepare == "file":
        folder.write_text("not a folder")
    elif callable(prepare):
        prepare(folder)
    url = ("--data-url", server.url) if needs_server(args) and "--data-url" not in args else ()
    store = ("--store", str(folder)) if args[0] == "data" else ()

    assert_refused([*args, *url, *store], tmp_path, *needles,
                   env={**env, "ENSEMBLE_BT_STORE": str(folder)})


def test_an_unreachable_server_fails_with_exit_1_in_one_line_writing_nothing(tmp_path):
    before = snapshot(tmp_path)

    proc = run_cli("data", "fetch", "AAA", "--data-url", "http://127.0.0.1:9", "--store",
                   str(tmp_path / "store"), cwd=tmp_path, env=KEYS)

    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("ensemble-bt: failed: http://127.0.0.1:9")
    assert "Connection refused" in lines[0] and "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before
