"""What every test shares: a clean loguru, and one way to run the command line.

The helpers that build inputs live in the modules that own them: synthetic bars in
``backtests.synthetic``; the shared trained bundles in tests/bundles.py; paper sessions
against a sim-server in tests/sessions.py; the bad-input contract in tests/badinput.py.
The first two are plugins of this file, so their fixtures reach every test module; no test
module imports from another test module.  This file holds only what every test module needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from loguru import logger

pytest.register_assert_rewrite("tests.badinput")  # its asserts report like a test's own
pytest_plugins = ("tests.bundles", "tests.sessions")

REPO = Path(__file__).resolve().parents[1]


def _warnings_to_current_stderr() -> None:
    logger.remove()
    logger.add(lambda message: sys.stderr.write(message), level="WARNING",
               format="{level: <7} {message}")


@pytest.fixture(autouse=True)
def loguru_to_the_current_stderr() -> Iterator[None]:
    """One WARNING sink that writes to whatever ``sys.stderr`` is when a message comes.

    A test that runs ``ensemble_bt.cli.main`` in-process replaces loguru's sinks with one on
    the ``sys.stderr`` of that moment, pytest's capture of that test; once that capture is
    closed, any later message would raise "Logging error in Loguru Handler" into another
    test's output.  Every test starts and ends with this sink instead.
    """
    _warnings_to_current_stderr()
    yield
    _warnings_to_current_stderr()


def ensemble_bt() -> list[str]:
    """The ``ensemble-bt`` console script of the running interpreter's environment."""
    script = Path(sys.executable).with_name("ensemble-bt")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ensemble_bt.cli"]


def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without a developer's own settings, ``env`` laid over it.

    ``APCA_*`` credentials, the ``ENSEMBLE_BT_*`` opt-ins and ``RAY_ADDRESS`` are removed, so
    a developer's keys never reach a test and a grid never joins their Ray cluster.
    """
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("APCA_", "ENSEMBLE_BT_")) and k != "RAY_ADDRESS"}
    return {**base, **(env or {})}


def run_cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float = 600, text: bool = True) -> subprocess.CompletedProcess:
    """Run ``ensemble-bt *args`` in ``cwd`` as a user would, in :func:`cli_env` ``(env)``."""
    return subprocess.run([*ensemble_bt(), *args], cwd=cwd, env=cli_env(env),
                          capture_output=True, timeout=timeout, text=text)


def popen_cli(args: Sequence[str], *, env: Mapping[str, str] | None = None,
              **kwargs: object) -> subprocess.Popen:
    """Start ``ensemble-bt *args`` in the background (servers, daemons), in :func:`cli_env`
    ``(env)``; ``kwargs`` go to :class:`subprocess.Popen`."""
    command = [*ensemble_bt(), *args]
    return subprocess.Popen(command, env=cli_env(env), **kwargs)  # type: ignore[call-overload]
