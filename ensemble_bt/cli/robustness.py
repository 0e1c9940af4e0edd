"""``ensemble-bt robustness``."""

from __future__ import annotations

import argparse

KEYS = ("data", "universes", "windows", "costs", "sizing_grid", "workers", "engine", "sim",
        "out", "task_timeout")


def robustness(args: argparse.Namespace) -> int:
    from backtests.robustness.config import load_robustness_config

    cfg = load_robustness_config(args.config, {k: getattr(args, k) for k in KEYS})
    from backtests.robustness.batch import run_robustness  # the learners load only now

    print(run_robustness(cfg, progress=not args.no_progress))
    return 0
