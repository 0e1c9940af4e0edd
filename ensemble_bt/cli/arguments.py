"""Each command's parser, composed from :data:`ensemble_bt.cli.options.OPTIONS` by name.

:data:`COMMANDS` are single commands; :data:`GROUPS` hold subcommands (``data fetch``), whose
name the parser stores as ``subcommand``.
"""

from __future__ import annotations

import argparse
import sys

from ensemble_bt.cli.options import OPTIONS

#: command -> (help, option names, in the order --help lists them)
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "datasets": ("list embedded datasets and stored symbols with date ranges", ("store",)),
    "backtest": ("walk-forward backtest of one symbol, or of one account over several "
                 "(--data A,B,C)", (
        "backtest_config", "data", "start", "end", "commission", "slippage", "horizon",
        "retrain_every", "models", "bundle", "backtest_sim", "results_out", "seed",
        "portfolio_mode", "top_k", "top_k_dropout", "max_gross", "model_scope", "target",
        "workers", "no_progress")),
    "robustness": ("datasets (or universes) x windows x costs (x sizing) grid, in parallel, "
                   "with DSR and PBO", (
                       "robustness_config", "datasets", "universes", "windows", "costs",
                       "sizing_grid", "workers", "engine", "robustness_sim", "results_out",
                       "task_timeout", "no_progress")),
    "train": ("validate, gate, then fit a production bundle", (
        "train_data", "bundle_out", "train_end", "skip_gate", "train_config", "horizon",
        "retrain_every", "models", "seed", "no_progress")),
    "paper": ("paper-trading daemon on Alpaca or the local server; `paper status --state DIR` "
              "prints its status", (
                  "paper_action", "paper_config", "replay", "replay_from", "max_bars",
                  "paper_bundle", "paper_state", "http")),
    "parity": ("replay a paper session through the backtester", ("state_dir",)),
    "report": ("write RESULTS_DIR/index.html: every run inside, sortable, with equity curves",
               ("results_dir",)),
    "sim-server": ("local Alpaca-protocol server replaying daily bars (REST and websockets)", (
        "sim_data", "sim_from", "port", "host", "sim_state", "cash", "sim_commission",
        "sim_slippage", "partial_fills", "drop_stream_after", "drop_stream_every",
        "auth_delay", "error_rate", "error_status", "reject_every")),
}


#: command group -> (help, {subcommand: (help, option names)})
GROUPS: dict[str, tuple[str, dict[str, tuple[str, tuple[str, ...]]]]] = {
    "data": ("keep daily bars from Alpaca (or a local sim-server) in a local store", {
        "fetch": ("fetch whole symbols into the store", (
            "fetch_symbols", "fetch_start", "fetch_end", "feed", "adjustment", "store",
            "data_url", "no_progress")),
        "update": ("append the sessions after each symbol's last; refetch re-adjusted ones", (
            "update_symbols", "store", "data_url", "no_progress")),
        "list": ("one row per stored symbol: dates, rows, feed, adjustment, fetch time, "
                 "missing sessions", ("store",)),
    }),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports bad arguments in one line, with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"ensemble-bt: error: {message[:300]} (see {self.prog} --help)\n")
        raise SystemExit(2)


def add_options(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """Add the named options of :data:`OPTIONS` to ``parser``."""
    for name in names:
        option = OPTIONS[name]
        parser.add_argument(*option.flags, **option.kwargs)


def build_parser(description: str) -> argparse.ArgumentParser:
    """The ``ensemble-bt`` parser with one subparser per command of :data:`COMMANDS`."""
    parser = OneLineParser(prog="ensemble-bt", description=description)
    add_options(parser, ("log_level",))
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command, (help_text, names) in COMMANDS.items():
        add_options(sub.add_parser(command, help=help_text), names)
    for group, (help_text, commands) in GROUPS.items():
        inner = sub.add_parser(group, help=help_text).add_subparsers(
            dest="subcommand", metavar="{" + ",".join(commands) + "}", required=True,
            parser_class=OneLineParser)
        for command, (command_help, names) in commands.items():
            add_options(inner.add_parser(command, help=command_help), names)
    return parser
