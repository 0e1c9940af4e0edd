"""Bad input to ``ensemble-bt sim-server``: exit 2 at once, one stderr line, nothing written.

The server runs until SIGINT once it starts, so a refusal that did not happen would show as
a timeout (:data:`TIMEOUT`).  The saved-state corpus corrupts one valid ``sim_state.json``
(an order filled, one open, a position) a field at a time; the file must be left as it was.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backtests.datasets import load_dataset
from backtests.synthetic import random_walk, write_csv
from live.sim.snapshot import STATE_FILE, restore_state, state_snapshot
from live.sim.state import SimState
from tests.badinput import assert_refused, sample

#: Seconds a refused start may take: imports, loading 30 bars, the refusal.
TIMEOUT = 120


@pytest.fixture(scope="module")
def walk_csv(tmp_path_factory) -> Path:
    return write_csv(random_walk(n=30, seed=5), tmp_path_factory.mktemp("data") / "walk.csv")


def replay(walk_csv: Path) -> SimState:
    return SimState({"WALK": load_dataset(str(walk_csv))})


@pytest.fixture(scope="module")
def snapshot(walk_csv) -> dict[str, Any]:
    """A valid saved replay of ``walk_csv``: one filled buy, one open buy, a position."""
    state = replay(walk_csv)
    state.submit("WALK", "buy", qty=3.0, notional=None, client_order_id="first")
    state.advance()
    state.submit("WALK", "buy", qty=1.0, notional=None, client_order_id="second")
    return state_snapshot(state, None)


def test_the_uncorrupted_snapshot_resumes(walk_csv, snapshot, tmp_path):
    state = replay(walk_csv)

    restore_state(state, copy.deepcopy(snapshot), None, tmp_path / STATE_FILE)

    assert state_snapshot(state, None) == snapshot


def cli(csv: Path, *args: str) -> list[str]:
    return ["sim-server", "--data", str(csv), "--port", "0", *args]


# ---------------------------------------------------------------------- command line
@pytest.mark.parametrize("args, needles", sample([
    (("--data", "{dir}"), ("a directory",)),
    (("--port", "70000"), ("--port", "70000")),
    (("--cash", "inf"), ("--cash", "inf")),
    (("--cash", "nan"), ("--cash", "nan")),
    (("--error-rate", "2"), ("--error-rate",)),
    (("--error-status", "200"), ("--error-status", "200")),
    (("--host", "not an address"), ("--host", "not an address")),
    (("--host", "http://127.0.0.1"), ("--host",)),
    (("--state", "{csv}"), ("--state", "not a directory")),
], 1))
def test_bad_arguments_are_refused(walk_csv, tmp_path, args, needles):
    (tmp_path / "folder").mkdir()
    filled = [a.format(dir=tmp_path / "folder", csv=walk_csv) for a in args]

    assert_refused(cli(walk_csv, *filled), tmp_path, *needles, timeout=TIMEOUT)


@pytest.mark.slow
def test_a_non_loopback_host_without_keys_is_refused_before_binding(walk_csv, tmp_path):
    assert_refused(cli(walk_csv, "--host", "0.0.0.0"), tmp_path, "--host 0.0.0.0",
                   "APCA_API_KEY_ID", "APCA_API_SECRET_KEY", timeout=TIMEOUT)


@pytest.mark.slow
def test_a_refusal_after_the_state_check_creates_no_state_directory(tmp_path):
    """The state directory is created only once the server listens."""
    args = ["sim-server", "--data", str(tmp_path / "missing.csv"), "--port", "0",
            "--state", str(tmp_path / "new" / "state")]

    assert_refused(args, tmp_path, "missing.csv", timeout=TIMEOUT)


# ----------------------------------------------------------------------- saved state
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A corruption: set the dotted ``path`` (list indexes as numbers) to ``value``."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def corrupt(snapshot: dict[str, Any]) -> None:
        target = snapshot
        for part in parents:
            target = target[part]
        target[last] = value

    return corrupt


@pytest.mark.parametrize("corrupt, needles", sample([
    (_set("positions", [{"qty": 3.0, "cost_basis": 30.0}]), ("positions", "dictionary")),
    (_set("orders", {"first": {}}), ("orders", "list")),
    (_set("orders.0", "an order"), ("orders.0",)),
    (_set("positions.WALK.qty", "3"), ("positions.WALK.qty", "'3'")),
    (_set("orders.1.qty", "1"), ("orders.1.qty",)),
    (_set("orders.0.client_order_id", 12345), ("orders.0.client_order_id", "12345")),
    (_set("cash", 1e999), ("cash", "finite")),
    (_set("cash", None), ("cash",)),
    (_set("index", -1), ("index", "-1")),
    (_set("index", 10_000), ("index 10000",)),
    (_set("positions.ZZZ", {"qty": 1.0, "cost_basis": 1.0}), ("ZZZ", "not replayed")),
], 6), ids=["positions-list", "orders-not-list", "order-not-object", "qty-text",
        "order-qty-text", "client-order-id-number", "cash-inf", "cash-null", "index-negative",
        "index-past-the-data", "unknown-symbol"])
def test_a_malformed_saved_state_is_refused_and_left_untouched(walk_csv, snapshot, tmp_path,
                                                               corrupt, needles):
    state = tmp_path / "state"
    state.mkdir()
    broken = copy.deepcopy(snapshot)
    corrupt(broken)
    # json writes 1e999 as Infinity; the file must hold a number that only overflows on load.
    (state / STATE_FILE).write_text(json.dumps(broken).replace("Infinity", "1e999"))

    assert_refused(cli(walk_csv, "--state", str(state)), tmp_path, STATE_FILE,
                   "malformed replay state", *needles, timeout=TIMEOUT)


@pytest.mark.slow
@pytest.mark.parametrize("text, needles", [
    ('{"cash": NaN}', ("unreadable", "NaN")),
    ("[1, 2]", ("not a JSON object",)),
])
def test_a_saved_state_that_is_not_strict_json_or_an_object_is_refused(walk_csv, tmp_path,
                                                                       text, needles):
    state = tmp_path / "state"
    state.mkdir()
    (state / STATE_FILE).write_text(text)

    assert_refused(cli(walk_csv, "--state", str(state)), tmp_path, STATE_FILE, *needles,
                   timeout=TIMEOUT)
