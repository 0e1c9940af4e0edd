"""``ensemble-bt datasets``, ``backtest`` and ``train``."""

from __future__ import annotations

import argparse
from pathlib import Path

BACKTEST_KEYS = ("data", "start", "end", "commission", "slippage", "horizon", "retrain_every",
                 "models", "sim", "out", "seed", "bundle", "model_scope", "target", "workers")
#: Flags that set one key of the ``portfolio:`` block: option name -> dotted key.
PORTFOLIO_FLAGS = {"portfolio_mode": "portfolio.mode", "top_k": "portfolio.k",
                   "top_k_dropout": "portfolio.dropout", "max_gross": "portfolio.max_gross"}
TRAIN_KEYS = ("data", "end", "horizon", "retrain_every", "models", "seed")


def datasets(args: argparse.Namespace) -> int:
    from backtests.datasets import list_datasets
    from backtests.store import BarStore, store_root

    rows = list_datasets(BarStore(store_root(args.store)))
    width = max(8, *(len(str(row["name"])) for row in rows))
    print(f"{'name':<{width}} {'start':<10}  {'end':<10}  {'bars':>5}  source")
    for row in rows:
        print(f"{row['name']:<{width}} {row['start']:<10}  {row['end']:<10}  {row['bars']:>5}  "
              f"{row['source']}")
    return 0


def backtest(args: argparse.Namespace) -> int:
    from backtests.config import load_config

    # getattr with a default: a flag the parser does not compose reads as unset.
    overrides = {k: getattr(args, k, None) for k in BACKTEST_KEYS}
    overrides |= {key: getattr(args, name, None) for name, key in PORTFOLIO_FLAGS.items()}
    cfg = load_config(args.config, overrides)
    from backtests.runner import run_backtest  # the engines load only for a valid config

    print(run_backtest(cfg, progress=not args.no_progress))
    return 0


def train(args: argparse.Namespace) -> int:
    from backtests.config import load_config

    cfg = load_config(args.config, {k: getattr(args, k) for k in TRAIN_KEYS})
    from backtests.train import train_bundle  # the learners load only for a valid config

    print(train_bundle(cfg, Path(args.out), skip_gate=args.skip_gate,
                       progress=not args.no_progress))
    return 0
