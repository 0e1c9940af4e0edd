"""What every test shares: a clean loguru, and one way to run the command line.

The helpers that build inputs (synthetic bars, bundles, sessions) live in the modules that
own them (``backtests.synthetic``, the test modules' fixtures); this file holds only what
every test module needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from loguru import logger

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


def run_cli(*args: str, cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float = 600, text: bool = True) -> subprocess.CompletedProcess:
    """Run ``ensemble-bt *args`` in ``cwd`` as a user would.

    ``APCA_*`` credentials and the ``ENSEMBLE_BT_*`` opt-ins are removed from the inherited
    environment, so a developer's own keys never reach a test; ``env`` is laid over it.
    """
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("APCA_", "ENSEMBLE_BT_"))}
    return subprocess.run([*ensemble_bt(), *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, timeout=timeout, text=text)


def popen_cli(args: Sequence[str], **kwargs: object) -> subprocess.Popen:
    """Start ``ensemble-bt *args`` in the background (servers, daemons)."""
    return subprocess.Popen([*ensemble_bt(), *args], **kwargs)  # type: ignore[call-overload]
