"""``ensemble-bt report RESULTS_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path


def report(args: argparse.Namespace) -> int:
    from backtests.index import write_index  # matplotlib loads only now

    print(write_index(Path(args.results_dir)))
    return 0
