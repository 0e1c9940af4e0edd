"""The ``ensemble-bt`` command line.

Exit codes: 0 success; 2 bad input (one line on stderr, no traceback); 1 unexpected failure.
The last line printed on stdout by a command that writes results is the results path.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from loguru import logger

from live import sim_command
from models.errors import ConfigurationError, EnsembleBTError, StopError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line, with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"ensemble-bt: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def _models(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ensemble-bt", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", type=str.upper,
                        choices=("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"),
                        help="loguru level on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("datasets", help="list embedded datasets with date ranges")

    bt = sub.add_parser("backtest", help="walk-forward backtest of one symbol")
    bt.add_argument("--config", help="YAML config (see configs/backtest.yaml)")
    bt.add_argument("--data", help="embedded name (AAPL, ...), CSV/Parquet path")
    bt.add_argument("--start", type=_date, help="first evaluation date")
    bt.add_argument("--end", type=_date, help="last evaluation date")
    bt.add_argument("--commission", type=float, help="fraction of notional per fill")
    bt.add_argument("--slippage", type=float, help="fraction of price per fill")
    bt.add_argument("--horizon", type=int, help="label horizon in bars (1 or 5 typical)")
    bt.add_argument("--retrain-every", type=int, help="bars between vintages")
    bt.add_argument("--models", type=_models, help="comma-separated learners, e.g. xgb,lgbm")
    bt.add_argument("--bundle", help="backtest a trained bundle, out of sample only")
    bt.add_argument("--sim", help="simulation engine: backtrader (the reference) or fast "
                    "(the numba path, exact to backtrader)")
    bt.add_argument("--out", help="parent folder of the results directory")
    bt.add_argument("--seed", type=int, help="seed of every learner")
    bt.add_argument("--no-progress", action="store_true", help="hide progress bars")

    rb = sub.add_parser("robustness", help="datasets x windows x costs (x sizing) grid, in "
                        "parallel, with DSR and PBO")
    rb.add_argument("--config", help="YAML config (see configs/robustness.yaml)")
    rb.add_argument("--data", help="comma-separated datasets: embedded names or CSV/Parquet "
                    "paths, e.g. AAPL,MSFT")
    rb.add_argument("--windows", help="comma-separated evaluation years START:END, e.g. "
                    "2007:2009,2010:2012")
    rb.add_argument("--costs", help="comma-separated costs per side, fractions of notional "
                    "(commission and slippage together), e.g. 0,0.0005,0.001")
    rb.add_argument("--sizing-grid", help="sizing overrides, every combination a "
                    "configuration, e.g. 'max_long=1.3,1.8;rebalance_band=0.02,0.05'")
    rb.add_argument("--workers", type=_positive, help="parallel workers (default: CPU count)")
    rb.add_argument("--engine", choices=("local", "ray"), help="executor (default: local)")
    rb.add_argument("--sim", choices=("fast", "backtrader"), help="cell simulator "
                    "(default: fast)")
    rb.add_argument("--out", help="parent folder of the results directory")
    rb.add_argument("--task-timeout", type=float, help="seconds one task may run before the "
                    "batch stops (default 3600)")
    rb.add_argument("--no-progress", action="store_true", help="hide progress bars")

    tr = sub.add_parser("train", help="validate, gate, then fit a production bundle")
    tr.add_argument("--data", required=True, help="embedded name or CSV/Parquet path")
    tr.add_argument("--out", required=True, help="bundle directory (created or retrained)")
    tr.add_argument("--end", type=_date, help="last bar of history to train on")
    tr.add_argument("--skip-gate", action="store_true",
                    help="train even if the walk-forward gate refuses (recorded)")
    tr.add_argument("--config", help="YAML config (models, stack, horizon, ...)")
    tr.add_argument("--horizon", type=int, help="label horizon in bars")
    tr.add_argument("--retrain-every", type=int, help="bars between validation vintages")
    tr.add_argument("--models", type=_models, help="comma-separated learners, e.g. xgb,lgbm")
    tr.add_argument("--seed", type=int, help="seed of every learner")
    tr.add_argument("--no-progress", action="store_true", help="hide progress bars")
    pp = sub.add_parser("paper", help="paper-trading daemon on Alpaca or the local server; "
                        "`paper status --state DIR` prints its status")
    pp.add_argument("action", nargs="?", choices=("status",),
                    help="status: print the daemon's status as JSON and exit")
    pp.add_argument("--config", default="configs/paper.yaml", help="YAML paper config")
    pp.add_argument("--replay", type=_models, help="replay these datasets on a local "
                    "Alpaca-protocol server, e.g. AAPL or AAPL,MSFT")
    pp.add_argument("--from", dest="replay_from", type=_date, help="first replayed session")
    pp.add_argument("--max-bars", type=_positive, help="stop after this many new bars")
    pp.add_argument("--bundle", help="bundle directory (overrides the config)")
    pp.add_argument("--state", help="state directory (default: the config's state_dir); "
                    "a new one starts a session, one with a journal resumes it")
    pp.add_argument("--http", metavar="HOST:PORT", help="serve read-only GET /status and "
                    "GET /decision?symbol=S (non-loopback needs ENSEMBLE_BT_HTTP_TOKEN)")

    pa = sub.add_parser("parity", help="replay a paper session through the backtester")
    pa.add_argument("state_dir", help="a session directory written by `ensemble-bt paper`")
    sim_command.add_parser(sub)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _cmd_paper(args: argparse.Namespace) -> int:
    from live.paper import run_paper
    from live.paper_config import load_paper_config

    if args.action == "status":
        return _paper_status(args.state)
    if args.replay_from and not args.replay:
        raise ConfigurationError("--from only applies to --replay; a real paper session "
                                 "starts today")
    cfg = load_paper_config(args.config, {"bundle": args.bundle})
    folder = run_paper(cfg, replay=args.replay, replay_from=args.replay_from,
                       max_bars=args.max_bars, state=args.state, http=args.http)
    print(folder)
    return 0


def _paper_status(state: str | None) -> int:
    from live.status import read_status
    from models import jsonio

    if not state:
        raise ConfigurationError("paper status needs --state DIR")
    print(jsonio.dumps(read_status(Path(state)), indent=2, default=str))
    return 0


def _cmd_parity(args: argparse.Namespace) -> int:
    from live.parity import run_parity

    report = run_parity(Path(args.state_dir))
    print(f"orders: paper {report.paper_orders}, backtest {report.backtest_orders}; final "
          f"equity: paper {report.equity_paper:.2f}, backtest {report.equity_backtest:.2f} "
          f"(relative difference {report.equity_rel_diff:.1e})")
    for line in report.differences:
        print(line)
    print("parity: identical" if report.identical else "parity: MISMATCH")
    return 0 if report.identical else 1


def _say(line: str) -> None:
    """The CLI's stdout: one line, flushed at once (a parent process may be reading it)."""
    print(line, flush=True)


def _cmd_sim_server(args: argparse.Namespace) -> int:
    return sim_command.run(args, out=_say)


def _cmd_datasets(args: argparse.Namespace) -> int:
    from backtests.datasets import list_datasets

    rows = list_datasets()
    print(f"{'name':<8} {'start':<10}  {'end':<10}  {'bars':>5}  source")
    for row in rows:
        print(f"{row['name']:<8} {row['start']:<10}  {row['end']:<10}  {row['bars']:>5}  "
              f"{row['source']}")
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from backtests.config import load_config

    overrides = {k: getattr(args, k) for k in (
        "data", "start", "end", "commission", "slippage", "horizon", "retrain_every", "models",
        "sim", "out", "seed", "bundle")}
    cfg = load_config(args.config, overrides)
    from backtests.runner import run_backtest  # the engines load only for a valid config

    path = run_backtest(cfg, progress=not args.no_progress)
    print(path)
    return 0


def _cmd_robustness(args: argparse.Namespace) -> int:
    from backtests.robustness import load_robustness_config, run_robustness

    overrides = {k: getattr(args, k) for k in (
        "data", "windows", "costs", "sizing_grid", "workers", "engine", "sim", "out",
        "task_timeout")}
    cfg = load_robustness_config(args.config, overrides)
    print(run_robustness(cfg, progress=not args.no_progress))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from backtests.config import load_config

    overrides = {k: getattr(args, k) for k in (
        "data", "end", "horizon", "retrain_every", "models", "seed")}
    cfg = load_config(args.config, overrides)
    from backtests.train import train_bundle  # the learners load only for a valid config

    path = train_bundle(cfg, Path(args.out), skip_gate=args.skip_gate,
                        progress=not args.no_progress)
    print(path)
    return 0


def _log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
    """Python warnings go through loguru, so --log-level governs them like every log line."""
    logger.warning("{}: {} ({}:{})", category.__name__, message, Path(filename).name, lineno)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _build_parser().parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper(),
               format="<green>{time:HH:mm:ss}</green> {level: <7} {message}")
    warnings.showwarning = _log_warning
    handlers = {"datasets": _cmd_datasets, "backtest": _cmd_backtest, "train": _cmd_train,
                "robustness": _cmd_robustness,
                "paper": _cmd_paper, "parity": _cmd_parity, "sim-server": _cmd_sim_server}
    try:
        return handlers[args.command](args)
    except StopError as exc:
        sys.stderr.write(f"ensemble-bt: error: {exc}\n")
        return 2
    except EnsembleBTError as exc:
        sys.stderr.write(f"ensemble-bt: failed: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("ensemble-bt: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
