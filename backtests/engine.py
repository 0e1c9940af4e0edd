"""Wire one backtrader run: feed, broker costs, strategy, sizer and recorder."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import backtrader as bt
import pandas as pd

from models.signal import Signal
from sizing.config import PortfolioConfig, SizingConfig
from sizing.decisions import DECISION_FIELDS
from strategies.analyzers import RunRecorder
from strategies.commission import FractionalCommission
from strategies.financing import FinancedBroker
from strategies.sizers import KellySizer
from strategies.strategy import EnsembleStrategy


def make_feed(ohlcv: pd.DataFrame, name: str) -> bt.feeds.PandasData:
    """A backtrader daily feed over a validated OHLCV frame."""
    frame = ohlcv[["open", "high", "low", "close", "volume"]].copy()
    frame["openinterest"] = 0.0
    return bt.feeds.PandasData(dataname=frame, name=name, timeframe=bt.TimeFrame.Days)


def configure_broker(cerebro: bt.Cerebro, cash: float, commission: float, slippage: float,
                     sizing: SizingConfig | None = None) -> None:
    """Financed broker, commission on notional, slippage as an exact fraction of the price.

    ``slip_out=True`` keeps the slipped price even beyond the bar's range, so the cost is
    always ``slippage * notional`` and never silently capped at the high or low.  The
    commission info's ``leverage`` is at least ``2 * max_long`` so that share counts up to the
    largest allowed gross exposure pass the margin check in ordinary conditions (see
    docs/sizing.md for when backtrader still rejects one).
    """
    sizing = sizing or SizingConfig()
    cerebro.broker = FinancedBroker(margin_rate=sizing.margin_rate,
                                    short_borrow_rate=sizing.short_borrow_rate)
    cerebro.broker.setcash(cash)
    leverage = max(4.0, 2.0 * sizing.max_long)
    cerebro.broker.addcommissioninfo(FractionalCommission(commission=commission,
                                                          leverage=leverage))
    cerebro.broker.set_slippage_perc(slippage, slip_open=True, slip_limit=True,
                                     slip_match=True, slip_out=True)
    # Orders are sized at the decision bar's close and fill at the next open; a gap may need
    # slightly more cash than is free.  Accept the fill rather than drop the order (see
    # FractionalCommission.leverage for why the execution-time check passes too).
    cerebro.broker.set_checksubmit(False)


def run_strategy(feeds: Mapping[str, pd.DataFrame], signals: Mapping[str, Signal], *,
                 horizon: int, trade_start: date | None, sizing: SizingConfig,
                 cash: float, commission: float, slippage: float,
                 runonce: bool = True, allocations: Mapping[str, float] | None = None,
                 portfolio: PortfolioConfig | None = None) -> dict:
    """Run :class:`EnsembleStrategy` over the feeds, one :class:`models.signal.Signal` each.

    ``allocations`` splits equity between feeds (equal when None), as in paper trading;
    ``portfolio`` says how the feeds share the account (``docs/sizing.md``, "Portfolios"),
    and a top-k book trades slices of ``1/k`` (``backtests.universe.slices``).

    Returns
    -------
    dict
        The recorder's ``bars``, ``orders`` and ``trades``, plus ``decisions`` (rows of
        ``DECISION_FIELDS``), ``breaker_trips``, ``financing_costs`` and
        ``max_gross_leverage``.
    """
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce, preload=True)
    for name, frame in feeds.items():
        cerebro.adddata(make_feed(frame, name))
    configure_broker(cerebro, cash, commission, slippage, sizing)
    cerebro.addsizer(KellySizer, allocations=dict(allocations) if allocations else None)
    cerebro.addstrategy(EnsembleStrategy, signals=dict(signals), horizon=horizon,
                        trade_start=trade_start, sizing=sizing, portfolio=portfolio)
    cerebro.addanalyzer(RunRecorder, _name="recorder")
    strat = cerebro.run()[0]
    broker = cerebro.broker
    return {**strat.analyzers.recorder.get_analysis(),
            "decisions": [dict(zip(DECISION_FIELDS, (bt.num2date(row[0]).date(), *row[1:]),
                                   strict=True)) for row in strat.decisions],
            "breaker_trips": strat.breaker.trips, "financing_costs": broker.financing_paid,
            "max_gross_leverage": broker.max_gross_leverage}
