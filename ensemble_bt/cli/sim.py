"""``ensemble-bt sim-server``."""

from __future__ import annotations

import argparse


def _say(line: str) -> None:
    """The CLI's stdout: one line, flushed at once (a parent process may be reading it)."""
    print(line, flush=True)


def sim_server(args: argparse.Namespace) -> int:
    from live.sim.command import run

    return run(args, out=_say)
