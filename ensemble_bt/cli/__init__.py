"""The ``ensemble-bt`` command line.

Exit codes: 0 success; 2 bad input (one line on stderr, no traceback); 1 unexpected failure.
Commands that write results print the results directory as their last stdout line.

Nothing in the project imports this package: it is the outermost layer.  Options are defined
once (:mod:`ensemble_bt.cli.options`) and composed per command
(:mod:`ensemble_bt.cli.arguments`); each command group has its own module, which imports what
it needs only when it runs, so a refused input exits before the learners load.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from ensemble_bt.cli import backtest, data, paper, report, robustness, sim
from ensemble_bt.cli.arguments import build_parser
from ensemble_bt.errors import EnsembleBTError, StopError

HANDLERS: dict[str, Callable[[Any], int]] = {
    "datasets": backtest.datasets, "backtest": backtest.backtest, "train": backtest.train,
    "robustness": robustness.robustness, "paper": paper.paper, "parity": paper.parity,
    "sim-server": sim.sim_server, "data": data.data, "report": report.report,
}


def _log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    """Python warnings go through loguru, so --log-level governs them like every log line."""
    logger.warning("{}: {} ({}:{})", category.__name__, message, Path(filename).name, lineno)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper(),
               format="<green>{time:HH:mm:ss}</green> {level: <7} {message}")
    warnings.showwarning = _log_warning
    try:
        return HANDLERS[args.command](args)
    except StopError as exc:
        sys.stderr.write(f"ensemble-bt: error: {exc}\n")
        return 2
    except EnsembleBTError as exc:
        sys.stderr.write(f"ensemble-bt: failed: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("ensemble-bt: interrupted\n")
        return 130
