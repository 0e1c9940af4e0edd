"""Your own SMA crossover, gated by the ensemble's prediction and sized by the lagged Kelly rule.

What it shows
    - a plain ``bt.Strategy`` of your own: it enters when the fast SMA crosses above the slow
      one, but only when the ensemble predicts a rise (``prediction > 0``), and exits when the
      fast SMA crosses back below;
    - the ensemble as an indicator, ``EnsemblePredictor(data, signal=...)``, with its lines
      ``prediction``, ``volatility`` and ``prior``;
    - sizing by ``KellySizer`` with the weight of ``LaggedKelly`` (the lagged half-Kelly
      hybrid) capped by the account's ``DrawdownBreaker``;
    - ``write_results``: the same results directory as ``ensemble-bt backtest`` (summary.json,
      equity.csv, orders.csv, trades.csv, vintages.json, report.png/html).

The signal is walk-forward vintages fitted here (``walk_forward``), or a bundle trained by
``ensemble-bt train`` (``--bundle``; ``load_signal`` makes it predict only after its training
window).  Either way every prediction is out of sample.

How to run
    python examples/sma_gated.py                        # AAPL (embedded), walk-forward
    python examples/sma_gated.py --data MSFT --out results
    ensemble-bt train --data AAPL --end 2010-12-31 --out bundles/aapl --skip-gate
    python examples/sma_gated.py --bundle bundles/aapl  # trades 2011 on, out of sample
    python examples/sma_gated.py --synthetic 1200 --models xgb   # seconds, no dataset

The last line printed is the results directory.
"""

from __future__ import annotations

import argparse
import json
import sys

import backtrader as bt
import pandas as pd
from loguru import logger

from ensemble_bt import (
    DrawdownBreaker,
    EnsemblePredictor,
    KellySizer,
    LaggedKelly,
    RunRecorder,
    SizingConfig,
    configure_broker,
    load_dataset,
    load_signal,
    walk_forward,
    write_results,
)


class SmaCrossGated(bt.Strategy):
    """Long on a fast-over-slow SMA cross when the ensemble agrees; flat on the cross back."""

    params = (("signal", None), ("horizon", 5), ("fast", 10), ("slow", 30),
              ("sizing", SizingConfig()))

    def __init__(self) -> None:
        sizing = self.p.sizing
        self.ensemble = EnsemblePredictor(self.data, signal=self.p.signal,
                                          vol_window=sizing.vol_window)
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast),
                                      bt.ind.SMA(period=self.p.slow))
        self.kelly = LaggedKelly(self.p.horizon, sizing)
        self.breaker = DrawdownBreaker(sizing)  # write_results reads its trips

    def next(self) -> None:
        prediction = self.ensemble.prediction[0]
        # Every bar, traded or not: the track record resolves each prediction h bars later.
        weight = self.kelly.update(prediction, self.data.close[0], self.ensemble.volatility[0],
                                   self.ensemble.prior[0])
        equity = self.broker.getvalue()
        self.breaker.update(equity)
        held = self.position.size * self.data.close[0] / equity
        if not self.position:
            if self.cross[0] > 0 and prediction > 0:  # NaN (no model yet) never enters
                self.trade_to(self.breaker.cap(weight, held))
        elif self.cross[0] < 0:
            self.trade_to(0.0)
        elif held > self.breaker.limits()[0] * 1.05:  # the breaker tripped: trim to its cap
            self.trade_to(self.breaker.limits()[0])

    def trade_to(self, weight: float) -> None:
        """Order the shares between the held position and ``weight`` of the account.

        Decided at this bar's close, the order fills at the next bar's open.
        """
        sizer = self.getsizer()
        sizer.set_target(self.data, weight)
        delta = sizer.delta_shares(self.data)
        if delta > 0:
            self.buy()
        elif delta < 0:
            self.sell()


def bars(args: argparse.Namespace) -> pd.DataFrame:
    if args.synthetic:
        from backtests.synthetic import ar1_returns  # test data built in code, not the API

        frame = ar1_returns(n=args.synthetic, seed=11)
        frame.attrs["symbol"] = "AR1"
        return frame
    return load_dataset(args.data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="AAPL", help="dataset name or CSV/Parquet path")
    parser.add_argument("--synthetic", type=int, metavar="N", help="N synthetic AR(1) bars")
    parser.add_argument("--bundle", help="trade this bundle instead of walk-forward vintages")
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--retrain-every", type=int, default=126)
    parser.add_argument("--models", default="xgb,lgbm")
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{level: <7} {message}")

    ohlcv = bars(args)
    if args.bundle:
        signal = load_signal(args.bundle, horizon=args.horizon)
    else:
        signal = walk_forward(ohlcv, horizon=args.horizon, retrain_every=args.retrain_every,
                              models=tuple(args.models.split(","))).signal
    sizing = SizingConfig()

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=ohlcv, name=ohlcv.attrs["symbol"]))
    configure_broker(cerebro, cash=100_000.0, commission=0.0005, slippage=0.0005,
                     sizing=sizing)
    cerebro.addsizer(KellySizer)
    cerebro.addstrategy(SmaCrossGated, signal=signal, horizon=args.horizon, sizing=sizing)
    cerebro.addanalyzer(RunRecorder)
    strategy = cerebro.run()[0]

    folder = write_results(strategy, ohlcv, horizon=args.horizon, signal=signal, out=args.out)
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("start", "end", "strategy_return", "buy_hold_return", "max_drawdown",
                "n_trades", "ic", "leakage_audit"):
        print(f"{key:>16}: {summary[key]}")
    print(folder)


if __name__ == "__main__":
    main()
