"""The bad-input corpus of ``paper``, ``paper status`` and ``parity``.

Each case builds its input under ``tmp_path`` and runs the real ``ensemble-bt`` console script
there (:func:`tests.badinput.assert_refused`): exit 2, one stderr line naming the problem, no
traceback, and nothing under ``tmp_path`` changed, byte for byte, with no file left behind.
Keys are checked against a real ``ensemble-bt sim-server`` subprocess on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from live.session.journal import JOURNAL_FILE
from tests.badinput import assert_refused, sample
from tests.sessions import KEYS as GOOD_KEYS
from tests.sessions import Server, Setup, run_daemon, start_server, write_config

WRONG_KEYS = {"APCA_API_KEY_ID": "wrong-key", "APCA_API_SECRET_KEY": "wrong-secret"}


@dataclass
class World:
    setup: Setup
    server: Server
    config: Path  # the sim-server config of `session`
    session: Path  # a stopped, resumable session of 3 bars


@pytest.fixture(scope="module")
def world(daemon_setup, tmp_path_factory) -> Iterator[World]:
    server = start_server(daemon_setup)
    try:
        tmp = tmp_path_factory.mktemp("bad-paper")
        config = write_config(daemon_setup, server, tmp / "paper.yaml")
        run_daemon(config, tmp / "session", "--max-bars", "3")
        yield World(daemon_setup, server, config, tmp / "session")
    finally:
        server.stop()


@dataclass
class Case:
    args: list[str]
    needles: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def config_here(world: World, tmp: Path, **changes: object) -> Path:
    """The session's config, changed, as ``tmp/paper.yaml``."""
    cfg = yaml.safe_load(world.config.read_text())
    cfg.update(changes)
    path = tmp / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def journal_copy(world: World, tmp: Path, sql: str | None = None,
                 args: tuple = ()) -> Path:
    """``tmp/state`` holding a copy of the session's journal, edited by ``sql``."""
    state = tmp / "state"
    state.mkdir()
    shutil.copyfile(world.session / JOURNAL_FILE, state / JOURNAL_FILE)
    if sql is not None:
        db = sqlite3.connect(state / JOURNAL_FILE)
        db.execute(sql, args)
        db.commit()
        db.close()
    return state


def session_edit(world: World, tmp: Path, edit: Callable[[dict], None]) -> Path:
    """``tmp/state`` holding a copy of the session's journal whose session ``edit`` changed."""
    db = sqlite3.connect(world.session / JOURNAL_FILE)
    meta = json.loads(db.execute("SELECT value FROM meta WHERE key = 'session'").fetchone()[0])
    db.close()
    edit(meta)
    return journal_copy(world, tmp, "UPDATE meta SET value = ? WHERE key = 'session'",
                        (json.dumps(meta),))


def foreign_state(tmp: Path) -> Path:
    state = tmp / "state"
    state.mkdir()
    db = sqlite3.connect(state / JOURNAL_FILE)
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO notes (body) VALUES ('not a journal')")
    db.commit()
    db.close()
    return state


def random_state(tmp: Path) -> Path:
    state = tmp / "state"
    state.mkdir()
    (state / JOURNAL_FILE).write_bytes(os.urandom(16384))
    return state


def versioned_state(world: World, tmp: Path) -> Path:
    return journal_copy(world, tmp, "UPDATE meta SET value = '99' WHERE key = "
                        "'schema_version'")


def paper(world: World, tmp: Path, state: Path, *extra: str, **changes: object) -> list[str]:
    return ["paper", "--config", str(config_here(world, tmp, **changes)), "--state", str(state),
            *extra]


def bound_port() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


# ------------------------------------------------------------------------ the cases
def wrong_keys_new(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, tmp / "new" / "state"),
                ("refused the keys", "HTTP 401", "APCA_API_KEY_ID"), WRONG_KEYS)


def wrong_keys_resume(world: World, tmp: Path) -> Case:
    state = tmp / "state"
    shutil.copytree(world.session, state)
    return Case(paper(world, tmp, state), ("refused the keys", "HTTP 401"), WRONG_KEYS)


def missing_bundle(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, tmp / "state", bundle=str(tmp / "gone")), ("gone",),
                GOOD_KEYS)


def invalid_bundle(world: World, tmp: Path) -> Case:
    (tmp / "empty-bundle").mkdir()
    return Case(paper(world, tmp, tmp / "state", bundle=str(tmp / "empty-bundle")),
                ("empty-bundle",), GOOD_KEYS)


def other_allocations(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, tmp / "state", allocations={"ZZZ": 1.0}),
                ("allocations", "ZZZ"), GOOD_KEYS)


def pooled_paper(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, tmp / "state", model_scope="pooled"),
                ("model_scope: pooled", "per_symbol"), GOOD_KEYS)


def k_above_symbols_paper(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, tmp / "state", portfolio={"mode": "topk", "k": 2}),
                ("portfolio.k 2", "1 traded symbols"), GOOD_KEYS)


def two_allocations_paper(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, tmp / "state", allocations={"AAA": 1.0},
                      portfolio={"allocations": {"AAA": 0.5}}),
                ("allocations and portfolio.allocations differ",), GOOD_KEYS)


def other_portfolio_resume(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, journal_copy(world, tmp), portfolio={"max_gross": 0.5}),
                ("portfolio", "differs from the session"), GOOD_KEYS)


def foreign_paper(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, foreign_state(tmp)),
                ("not an ensemble-bt journal", "journal.sqlite"))


def random_paper(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, random_state(tmp)), ("not a SQLite database",))


def version_paper(world: World, tmp: Path) -> Case:
    return Case(paper(world, tmp, versioned_state(world, tmp)), ("journal schema 99",))


def sizing_key_paper(world: World, tmp: Path) -> Case:
    state = session_edit(world, tmp, lambda m: m["sizing"].update(bogus=1))
    return Case(paper(world, tmp, state), ("sizing.bogus",), GOOD_KEYS)


def foreign_status(tmp: Path) -> Case:
    return Case(["paper", "status", "--state", str(foreign_state(tmp))],
                ("not an ensemble-bt journal",))


def random_status(tmp: Path) -> Case:
    return Case(["paper", "status", "--state", str(random_state(tmp))],
                ("not a SQLite database",))


def version_status(world: World, tmp: Path) -> Case:
    return Case(["paper", "status", "--state", str(versioned_state(world, tmp))],
                ("journal schema 99",))


def foreign_parity(tmp: Path) -> Case:
    return Case(["parity", str(foreign_state(tmp))], ("not an ensemble-bt journal",))


def random_parity(tmp: Path) -> Case:
    return Case(["parity", str(random_state(tmp))], ("not a SQLite database",))


def version_parity(world: World, tmp: Path) -> Case:
    return Case(["parity", str(versioned_state(world, tmp))], ("journal schema 99",))


def no_trade_start_parity(world: World, tmp: Path) -> Case:
    return Case(["parity", str(session_edit(world, tmp, lambda m: m.pop("trade_start")))],
                ("'trade_start' is missing",))


def sizing_key_parity(world: World, tmp: Path) -> Case:
    state = session_edit(world, tmp, lambda m: m["sizing"].update(bogus=1))
    return Case(["parity", str(state)], ("'sizing.bogus' is invalid",))


CASES = {f.__name__: f for f in (
    wrong_keys_new, wrong_keys_resume, missing_bundle, invalid_bundle, other_allocations,
    pooled_paper, k_above_symbols_paper, two_allocations_paper, other_portfolio_resume,
    foreign_paper, random_paper, version_paper, sizing_key_paper,
    version_status,
    version_parity, no_trade_start_parity, sizing_key_parity)}
#: The cases whose journal is their own, not a copy of the session's: they need no world.
WITHOUT_A_SESSION = {f.__name__: f for f in (
    foreign_status, random_status, foreign_parity, random_parity)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_refused(world, tmp_path, name):
    case = CASES[name](world, tmp_path)
    assert_refused(case.args, tmp_path, *case.needles, env=case.env)


@pytest.mark.parametrize("name", sample(WITHOUT_A_SESSION, "random_status", "foreign_parity"))
def test_refused_without_a_session(tmp_path, name):
    case = WITHOUT_A_SESSION[name](tmp_path)
    assert_refused(case.args, tmp_path, *case.needles, env=case.env)


@pytest.mark.slow
def test_refused_http_port_already_bound(world, tmp_path):
    with bound_port() as listener:
        port = listener.getsockname()[1]
        args = paper(world, tmp_path, tmp_path / "state", "--http", f"127.0.0.1:{port}")
        assert_refused(args, tmp_path, "cannot serve HTTP", str(port), env=GOOD_KEYS)
