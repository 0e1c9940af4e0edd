"""Walk-forward research without a cerebro: out-of-sample IC by vintage, in pandas.

What it shows
    - ``walk_forward(ohlcv, **config)``: the vintages a backtest fits, returned as a
      ``WalkForward`` with ``.predictions`` (date, prediction, actual, vintage: every
      prediction out of sample), ``.vintages``, ``.audit`` (the leakage audit) and
      ``.signal`` (for an ``EnsemblePredictor`` later);
    - ``.by_vintage()``: each vintage's windows and its test accuracy, IC and walk-forward
      efficiency, and ``.ic`` over all of them;
    - plain pandas on ``.predictions``: the IC of each calendar year.

Vintage k trains only on rows whose label (the log return over ``horizon`` bars) ended at
least ``embargo`` bars before its first predicted bar.

How to run
    python examples/research_ic.py                       # AAPL (embedded)
    python examples/research_ic.py --data prices.csv --horizon 1 --retrain-every 63
    python examples/research_ic.py --synthetic 1200 --models xgb   # seconds, no dataset
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd
from loguru import logger

from ensemble_bt import load_dataset, walk_forward


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="AAPL", help="dataset name or CSV/Parquet path")
    parser.add_argument("--synthetic", type=int, metavar="N", help="N synthetic AR(1) bars")
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--retrain-every", type=int, default=126)
    parser.add_argument("--models", default="xgb,lgbm")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{level: <7} {message}")

    if args.synthetic:
        from backtests.synthetic import ar1_returns  # test data built in code, not the API

        ohlcv = ar1_returns(n=args.synthetic, seed=11)
    else:
        ohlcv = load_dataset(args.data)
    wf = walk_forward(ohlcv, horizon=args.horizon, retrain_every=args.retrain_every,
                      models=tuple(args.models.split(",")))

    table = wf.by_vintage()[["predict_start", "predict_end", "n_train", "holdout_dir_acc",
                             "test_dir_acc", "test_ic"]]
    with pd.option_context("display.width", 120, "display.float_format", "{:.4f}".format):
        print(table.to_string())
        scored = wf.predictions.dropna()
        by_year = scored.groupby(scored.index.year).apply(
            lambda g: g["prediction"].corr(g["actual"], method="spearman"))
        print(by_year.rename("ic").rename_axis("year").to_frame().T.to_string())
    print(f"{len(wf.vintages)} vintages, {len(wf.predictions)} predictions, "
          f"IC {wf.ic:.4f}, direction accuracy {wf.direction_accuracy:.4f}, "
          f"leakage audit {wf.audit['verdict']}")


if __name__ == "__main__":
    main()
