"""The ready-made ``EnsembleStrategy`` on two symbols in one cerebro: one account, one breaker.

What it shows
    - one walk-forward signal per symbol (``walk_forward(...).signal``), keyed by feed name;
    - ``EnsembleStrategy(signals={...})``: each feed gets an ``EnsemblePredictor`` and its own
      lagged half-Kelly weight; the account's drawdown breaker caps them all;
    - ``KellySizer``: each feed trades its share of the account (equal split here;
      ``allocations={"AAPL": 0.6, "MSFT": 0.4}`` to choose);
    - ``configure_broker``: financed leverage, commission and slippage, as the CLI runs them.

Orders are decided at the close of bar t and fill at the open of t+1; nothing trades before
``trade_start``, the first bar that both signals predict out of sample.

How to run
    python examples/two_symbols.py                         # AAPL and MSFT (embedded)
    python examples/two_symbols.py --data IBM,GOOG --retrain-every 63
    python examples/two_symbols.py --synthetic 1200 --models xgb   # seconds, no dataset
"""

from __future__ import annotations

import argparse
import sys

import backtrader as bt
import numpy as np
import pandas as pd
from loguru import logger

from ensemble_bt import (
    EnsembleStrategy,
    KellySizer,
    RunRecorder,
    SizingConfig,
    configure_broker,
    load_dataset,
    walk_forward,
)


def feeds(args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    if args.synthetic:
        from backtests.synthetic import ar1_returns  # test data built in code, not the API

        return {"AR1": ar1_returns(n=args.synthetic, seed=11),
                "AR2": ar1_returns(n=args.synthetic, seed=12)}
    return {name.upper(): load_dataset(name) for name in args.data.split(",")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="AAPL,MSFT", help="two or more dataset names")
    parser.add_argument("--synthetic", type=int, metavar="N", help="two series of N AR(1) bars")
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--retrain-every", type=int, default=126)
    parser.add_argument("--models", default="xgb,lgbm")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{level: <7} {message}")

    bars = feeds(args)
    research = {name: walk_forward(frame, horizon=args.horizon,
                                   retrain_every=args.retrain_every,
                                   models=tuple(args.models.split(",")))
                for name, frame in bars.items()}
    trade_start = max(wf.predictions.index[0] for wf in research.values())
    sizing = SizingConfig()

    cerebro = bt.Cerebro(stdstats=False)
    for name, frame in bars.items():
        cerebro.adddata(bt.feeds.PandasData(dataname=frame, name=name))
    configure_broker(cerebro, cash=100_000.0, commission=0.0005, slippage=0.0005,
                     sizing=sizing)
    cerebro.addsizer(KellySizer)
    cerebro.addstrategy(EnsembleStrategy, signals={n: wf.signal for n, wf in research.items()},
                        horizon=args.horizon, trade_start=trade_start.date(), sizing=sizing)
    cerebro.addanalyzer(RunRecorder)
    strategy = cerebro.run()[0]

    recorded = strategy.analyzers.runrecorder.get_analysis()
    equity = pd.Series([b[1] for b in recorded["bars"]],
                       index=pd.DatetimeIndex([b[0] for b in recorded["bars"]]).normalize())
    equity = equity.loc[trade_start:]
    hold = np.mean([f["close"].loc[trade_start:].iloc[-1] / f["close"].loc[trade_start]
                    for f in bars.values()]) - 1.0
    orders = pd.DataFrame(recorded["orders"])
    print(f"{'symbol':<8} {'fills':>6} {'shares held':>12} {'walk-forward IC':>16}")
    for data in strategy.datas:
        fills = int((orders["symbol"] == data._name).sum()) if len(orders) else 0
        print(f"{data._name:<8} {fills:>6} {strategy.getposition(data).size:>12.0f} "
              f"{research[data._name].ic:>16.4f}")
    print(f"from {trade_start.date()} to {equity.index[-1].date()}: strategy "
          f"{equity.iloc[-1] / equity.iloc[0] - 1.0:+.2%}, equal-weight buy-and-hold "
          f"{hold:+.2%}, breaker trips {strategy.breaker.trips}")


if __name__ == "__main__":
    main()
