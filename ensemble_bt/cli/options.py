"""Every command-line option, defined once (as freqtrade's ``commands/cli_options.py``).

Each :class:`Arg` holds the flags and the ``argparse`` keywords of one option;
:mod:`ensemble_bt.cli.arguments` composes them into each command's parser by name.  Options
that look alike but mean different things (a results folder, a bundle folder) are separate
entries, so a help text never lies about one command to fit another.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import date
from typing import Any

DEFAULT_SIM_PORT = 8765


@dataclass(frozen=True)
class Arg:
    """One option: its flags (or positional name) and its ``add_argument`` keywords."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------- types
def iso_date(text: str) -> date:
    """``YYYY-MM-DD`` as a date; argparse reports anything else in one line."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a date; use YYYY-MM-DD") from None


def name_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of names (learners, datasets), blanks dropped."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def status_list(text: str) -> tuple[int, ...]:
    """An HTTP status or a comma list of them."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a status or a comma list of "
                                         "statuses") from None


# ----------------------------------------------------------------------------- options
OPTIONS: dict[str, Arg] = {
    # shared by several commands
    "log_level": Arg(("--log-level",), dict(
        default="INFO", type=str.upper,
        choices=("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"),
        help="loguru level on stderr")),
    "no_progress": Arg(("--no-progress",), dict(action="store_true", help="hide progress bars")),
    "results_out": Arg(("--out",), dict(help="parent folder of the results directory")),
    "horizon": Arg(("--horizon",), dict(type=int, help="label horizon in bars (1 or 5 typical)")),
    "retrain_every": Arg(("--retrain-every",), dict(type=int, help="bars between vintages")),
    "models": Arg(("--models",), dict(type=name_list,
                                      help="comma-separated learners, e.g. xgb,lgbm")),
    "seed": Arg(("--seed",), dict(type=int, help="seed of every learner")),
    "start": Arg(("--start",), dict(type=iso_date, help="first evaluation date")),
    "end": Arg(("--end",), dict(type=iso_date, help="last evaluation date")),
    "commission": Arg(("--commission",), dict(type=float,
                                              help="fraction of notional per fill")),
    "slippage": Arg(("--slippage",), dict(type=float, help="fraction of price per fill")),
    # backtest
    "backtest_config": Arg(("--config",), dict(help="YAML config (see configs/backtest.yaml)")),
    "data": Arg(("--data",), dict(help="embedded name (AAPL, ...), a CSV/Parquet path, or "
                                       "store:SYMBOL (see `ensemble-bt data`)")),
    "bundle": Arg(("--bundle",), dict(help="a trained bundle directory: backtest it out of "
                                           "sample only, instead of walk-forward vintages")),
    "backtest_sim": Arg(("--sim",), dict(help="simulation engine: backtrader (the reference) "
                                              "or fast (the numba path, exact to backtrader)")),
    # backtest of several symbols (docs/sizing.md, "Portfolios"); each overrides its config key
    "portfolio_mode": Arg(("--portfolio",), dict(
        dest="portfolio_mode", choices=("allocations", "topk"),
        help="several symbols: a fixed slice each (allocations) or the k best-predicted, long "
             "only (topk); portfolio.mode")),
    "top_k": Arg(("--top-k",), dict(type=positive_int, metavar="K",
                                    help="--portfolio topk: symbols held; portfolio.k")),
    "top_k_dropout": Arg(("--top-k-dropout",), dict(
        type=positive_int, metavar="N",
        help="--portfolio topk: most symbols replaced a day; portfolio.dropout")),
    "max_gross": Arg(("--max-gross",), dict(type=float, metavar="G",
                                            help="cap on the sum of |weight| over symbols; "
                                                 "portfolio.max_gross")),
    "model_scope": Arg(("--model-scope",), dict(
        choices=("per_symbol", "pooled"),
        help="several symbols: one model per symbol, or one pooled model")),
    "target": Arg(("--target",), dict(choices=("raw", "demeaned"),
                                      help="label: the forward log return, or less the "
                                           "universe's mean (several symbols)")),
    # train
    "train_config": Arg(("--config",), dict(help="YAML config (models, stack, horizon, ...)")),
    "train_data": Arg(("--data",), dict(required=True,
                                        help="embedded name, a CSV/Parquet path, or "
                                             "store:SYMBOL")),
    "bundle_out": Arg(("--out",), dict(required=True,
                                       help="bundle directory (created or retrained)")),
    "train_end": Arg(("--end",), dict(type=iso_date, help="last bar of history to train on")),
    "skip_gate": Arg(("--skip-gate",), dict(
        action="store_true", help="train even if the walk-forward gate refuses (recorded)")),
    # robustness
    "robustness_config": Arg(("--config",), dict(
        help="YAML config (see configs/robustness.yaml)")),
    "datasets": Arg(("--data",), dict(help="comma-separated datasets: embedded names, "
                                           "CSV/Parquet paths or stored symbols, e.g. "
                                           "AAPL,MSFT or store:AAPL,MSFT")),
    "universes": Arg(("--universes",), dict(
        help="portfolios in place of --data: ';'-separated universes of ','-separated "
             "datasets, e.g. 'AAPL,MSFT,IBM,GOOG;SP500,NASDAQ'; each cell is a portfolio "
             "backtest")),
    "windows": Arg(("--windows",), dict(help="comma-separated evaluation years START:END, "
                                             "e.g. 2007:2009,2010:2012")),
    "costs": Arg(("--costs",), dict(help="comma-separated costs per side, fractions of "
                                         "notional (commission and slippage together), e.g. "
                                         "0,0.0005,0.001")),
    "sizing_grid": Arg(("--sizing-grid",), dict(
        help="sizing overrides, every combination a configuration, e.g. "
             "'max_long=1.3,1.8;rebalance_band=0.02,0.05'")),
    "workers": Arg(("--workers",), dict(type=positive_int,
                                        help="parallel workers (default: CPU count)")),
    "engine": Arg(("--engine",), dict(choices=("local", "ray"),
                                      help="executor (default: local)")),
    "robustness_sim": Arg(("--sim",), dict(choices=("fast", "backtrader"),
                                           help="cell simulator (default: fast)")),
    "task_timeout": Arg(("--task-timeout",), dict(
        type=float, help="seconds one task may run before the batch stops (default 3600)")),
    # paper, paper status, parity
    "paper_action": Arg(("action",), dict(nargs="?", choices=("status",),
                                          help="status: print the daemon's status as JSON "
                                               "and exit")),
    "paper_config": Arg(("--config",), dict(default="configs/paper.yaml",
                                            help="YAML paper config")),
    "replay": Arg(("--replay",), dict(type=name_list, help="replay these datasets on a local "
                                      "Alpaca-protocol server, e.g. AAPL, AAPL,MSFT or "
                                      "store:AAPL,MSFT")),
    "replay_from": Arg(("--from",), dict(dest="replay_from", type=iso_date,
                                         help="first replayed session")),
    "max_bars": Arg(("--max-bars",), dict(type=positive_int,
                                          help="stop after this many new bars")),
    "paper_bundle": Arg(("--bundle",), dict(help="bundle directory (overrides the config)")),
    "paper_state": Arg(("--state",), dict(help="state directory (default: the config's "
                                               "state_dir); a new one starts a session, one "
                                               "with a journal resumes it")),
    "http": Arg(("--http",), dict(metavar="HOST:PORT", help="serve read-only the page at GET /, "
                                  "GET /status and GET /decision?symbol=S (non-loopback "
                                  "needs ENSEMBLE_BT_HTTP_TOKEN)")),
    "state_dir": Arg(("state_dir",), dict(help="a session directory written by "
                                                "`ensemble-bt paper`")),
    # report
    "results_dir": Arg(("results_dir",), dict(help="a folder of runs (the --out of backtest, "
                                                   "robustness or paper); index.html is "
                                                   "written there")),
    # sim-server
    "sim_data": Arg(("--data",), dict(action="append", required=True, metavar="D",
                                      help="embedded name, CSV/Parquet path or "
                                           "store:SYMBOL[,SYMBOL...]; repeat for more "
                                           "symbols")),
    "sim_from": Arg(("--from",), dict(dest="start", type=iso_date, metavar="DATE",
                                      help="first replayed session (earlier bars are "
                                           "history)")),
    "port": Arg(("--port",), dict(type=int, default=DEFAULT_SIM_PORT,
                                  help="0 picks a free port")),
    "host": Arg(("--host",), dict(default="127.0.0.1", help="interface to bind; other than "
                                  "loopback needs APCA_* keys set")),
    "sim_state": Arg(("--state",), dict(metavar="DIR",
                                        help="persist and resume the replay here")),
    "cash": Arg(("--cash",), dict(type=float, default=100_000.0, help="starting cash")),
    "sim_commission": Arg(("--commission",), dict(type=float, default=0.0,
                                                  help="fraction of notional")),
    "sim_slippage": Arg(("--slippage",), dict(type=float, default=0.0,
                                              help="fraction of the open")),
    "partial_fills": Arg(("--partial-fills",), dict(action="store_true",
                                                    help="fill every order in two executions")),
    "drop_stream_after": Arg(("--drop-stream-after",), dict(
        type=int, metavar="N",
        help="fault: close the market-data stream instead of sending bar N+1")),
    "drop_stream_every": Arg(("--drop-stream-every",), dict(
        type=int, metavar="N", help="fault: close the market-data stream again every N bars "
                                    "sent")),
    "auth_delay": Arg(("--auth-delay",), dict(type=float, default=0.0, metavar="S",
                                              help="fault: seconds before answering "
                                                   "websocket auth")),
    "error_rate": Arg(("--error-rate",), dict(type=float, default=0.0, metavar="R",
                                              help="fault: fraction of REST requests "
                                                   "answered with --error-status")),
    "error_status": Arg(("--error-status",), dict(type=status_list, default=(429,),
                                                  help="fault: 429, 500 or 503, or a comma "
                                                       "list drawn per failure")),
    # data fetch, data update, data list (and datasets)
    "fetch_symbols": Arg(("symbols",), dict(nargs="+", metavar="SYMBOL",
                                            help="tickers to fetch whole, e.g. AAPL MSFT")),
    "update_symbols": Arg(("symbols",), dict(nargs="*", metavar="SYMBOL",
                                             help="stored tickers (default: every one)")),
    "fetch_start": Arg(("--start",), dict(type=iso_date, metavar="DATE",
                                          help="first session (default: all the history the "
                                               "feed has)")),
    "fetch_end": Arg(("--end",), dict(type=iso_date, metavar="DATE",
                                      help="last session (default: the last complete one)")),
    "feed": Arg(("--feed",), dict(choices=("iex", "sip"), default="iex",
                                  help="Alpaca's feed: iex (free) or sip (all exchanges)")),
    "adjustment": Arg(("--adjustment",), dict(choices=("all", "split", "raw"), default="all",
                                              help="corporate-action adjustment of the prices")),
    "store": Arg(("--store",), dict(metavar="DIR", help="the store folder (default: "
                                    "$ENSEMBLE_BT_STORE, else data/)")),
    "data_url": Arg(("--data-url",), dict(metavar="URL", help="Alpaca's market-data API "
                                          "(default https://data.alpaca.markets); a local "
                                          "`ensemble-bt sim-server` URL serves the clock, "
                                          "calendar and assets too")),
    "reject_every": Arg(("--reject-every",), dict(type=int, metavar="N",
                                                  help="fault: reject every N-th submitted "
                                                       "order")),
}
