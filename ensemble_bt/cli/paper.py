"""``ensemble-bt paper``, ``paper status`` and ``parity``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ensemble_bt.errors import ConfigurationError


def paper(args: argparse.Namespace) -> int:
    if args.action == "status":
        return status(args.state)
    if args.replay_from and not args.replay:
        raise ConfigurationError("--from only applies to --replay; a real paper session "
                                 "starts today")
    from live.session.config import load_paper_config

    cfg = load_paper_config(args.config, {"bundle": args.bundle})
    from live.session.paper import run_paper  # the daemon loads only for a valid config

    print(run_paper(cfg, replay=args.replay, replay_from=args.replay_from,
                    max_bars=args.max_bars, state=args.state, http=args.http))
    return 0


def status(state: str | None) -> int:
    from ensemble_bt import jsonio
    from live.monitor.status import read_status

    if not state:
        raise ConfigurationError("paper status needs --state DIR")
    print(jsonio.dumps(read_status(Path(state)), indent=2, default=str))
    return 0


def parity(args: argparse.Namespace) -> int:
    from live.session.parity import run_parity

    report = run_parity(Path(args.state_dir))
    print(f"orders: paper {report.paper_orders}, backtest {report.backtest_orders}; final "
          f"equity: paper {report.equity_paper:.2f}, backtest {report.equity_backtest:.2f} "
          f"(relative difference {report.equity_rel_diff:.1e})")
    for line in report.differences:
        print(line)
    print("parity: identical" if report.identical else "parity: MISMATCH")
    return 0 if report.identical else 1
