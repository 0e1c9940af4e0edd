"""Wire one backtrader run: feed, broker costs, strategy, sizer and recorder."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import backtrader as bt
import pandas as pd

from sizing.bt_sizers import TargetWeightSizer
from sizing.interim import InterimSizing
from strategies.analyzers import RunRecorder
from strategies.commission import FractionalCommission
from strategies.strategy import EnsembleStrategy


def make_feed(ohlcv: pd.DataFrame, name: str) -> bt.feeds.PandasData:
    """A backtrader daily feed over a validated OHLCV frame."""
    frame = ohlcv[["open", "high", "low", "close", "volume"]].copy()
    frame["openinterest"] = 0.0
    return bt.feeds.PandasData(dataname=frame, name=name, timeframe=bt.TimeFrame.Days)


def configure_broker(cerebro: bt.Cerebro, cash: float, commission: float,
                     slippage: float) -> None:
    """Cash, commission on notional, and slippage as an exact fraction of the fill price.

    ``slip_out=True`` keeps the slipped price even beyond the bar's range, so the cost is
    always ``slippage * notional`` and never silently capped at the high or low.
    """
    cerebro.broker.setcash(cash)
    cerebro.broker.addcommissioninfo(FractionalCommission(commission=commission))
    cerebro.broker.set_slippage_perc(slippage, slip_open=True, slip_limit=True,
                                     slip_match=True, slip_out=True)
    # Orders are sized at the decision bar's close and fill at the next open; a gap may need
    # slightly more cash than is free.  Accept the fill rather than drop the order (see
    # FractionalCommission.leverage for why the execution-time check passes too).
    cerebro.broker.set_checksubmit(False)


def run_strategy(feeds: Mapping[str, pd.DataFrame], signals: Mapping[str, Any], *,
                 horizon: int, trade_start: date | None, sizing: InterimSizing,
                 cash: float, commission: float, slippage: float, vol_window: int = 21,
                 runonce: bool = True) -> dict:
    """Run :class:`EnsembleStrategy` over the feeds and return the recorder's analysis."""
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce, preload=True)
    for name, frame in feeds.items():
        cerebro.adddata(make_feed(frame, name))
    configure_broker(cerebro, cash, commission, slippage)
    cerebro.addsizer(TargetWeightSizer)
    cerebro.addstrategy(EnsembleStrategy, signals=dict(signals), horizon=horizon,
                        trade_start=trade_start, sizing=sizing, vol_window=vol_window)
    cerebro.addanalyzer(RunRecorder, _name="recorder")
    strat = cerebro.run()[0]
    return strat.analyzers.recorder.get_analysis()
