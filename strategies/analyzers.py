"""Analyzers that record what the results directory needs, bar by bar and fill by fill.

:class:`RunRecorder` works on any strategy: :class:`~strategies.strategy.EnsembleStrategy`
and a user's own ``bt.Strategy`` alike (:func:`prediction_reader`), so that
:func:`backtests.userrun.write_results` can write the results directory of any cerebro run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import backtrader as bt

from strategies.predictor import EnsemblePredictor


def prediction_reader(strategy: bt.Strategy) -> Callable[[], float]:
    """A function that returns the current bar's prediction of ``strategy``'s first feed.

    In order: the strategy's own ``prediction(data)`` method
    (:class:`~strategies.strategy.EnsembleStrategy` has one); else the ``prediction`` line of
    the strategy's :class:`~strategies.predictor.EnsemblePredictor` on its first feed (or of
    its first one on any feed); else NaN on every bar.
    """
    own = getattr(strategy, "prediction", None)
    first = strategy.datas[0]
    if callable(own):
        return lambda: own(first)
    predictors = [i for i in strategy.getindicators() if isinstance(i, EnsemblePredictor)]
    predictors.sort(key=lambda p: p.data is not first)  # the first feed's, if there is one
    if not predictors:
        return lambda: math.nan
    line = predictors[0].prediction
    return lambda: line[0]



class RunRecorder(bt.Analyzer):
    """Records per-bar equity, held weight and prediction, every fill and every closed trade.

    Add it to any cerebro (``cerebro.addanalyzer(RunRecorder)``).  ``get_analysis()`` returns
    ``{"bars": [...], "orders": [...], "trades": [...]}``; bars (rows of
    ``backtests.results.BAR_COLUMNS``) are recorded on the strategy's clock (the union of its
    feeds' sessions; backtrader calls an analyzer's ``prenext`` and ``next`` alike), and their
    held weight is the net value of every feed's position over the account value.  The
    prediction comes from :func:`prediction_reader`.  The per-bar work stores raw floats only;
    dates are converted once, in ``get_analysis``.
    """

    def start(self) -> None:
        self._bars: list[tuple[float, float, float, float]] = []
        self._fills: list[tuple] = []
        self.trades: list[dict] = []
        self._prediction = prediction_reader(self.strategy)

    def next(self) -> None:
        strat = self.strategy
        value = strat.broker.getvalue()
        held = 0.0
        for d in strat.datas:
            size = strat.getposition(d).size
            if size:  # a feed not started yet holds nothing (and its close reads ahead)
                held += size * d.close[0]
        self._bars.append((strat.lines.datetime[0], value, held / value if value else 0.0,
                           self._prediction()))

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            status = "filled"
        elif order.status in (order.Margin, order.Rejected):
            status = "rejected"
        else:
            return
        ex = order.executed
        # Notified on the fill bar, so open[0] is the price before slippage.
        self._fills.append((ex.dt, order.created.dt, order.data._name, order.isbuy(),
                            abs(ex.size), ex.price, ex.comm, order.data.open[0], status))

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            self.trades.append({
                "symbol": trade.data._name,
                "open_date": bt.num2date(trade.dtopen).date().isoformat(),
                "close_date": bt.num2date(trade.dtclose).date().isoformat(),
                "bars": trade.barlen, "pnl": trade.pnl, "pnl_net": trade.pnlcomm,
                "commission": trade.commission,
            })

    @staticmethod
    def _order_row(fill: tuple) -> dict:
        exdt, created, name, isbuy, size, price, comm, open_, status = fill
        return {
            "date": bt.num2date(exdt).date().isoformat() if exdt else "",
            "decided": bt.num2date(created).date().isoformat(),
            "symbol": name, "side": "buy" if isbuy else "sell",
            "size": size, "price": price, "commission": comm, "notional": size * price,
            "slippage": abs(price - open_) * size if size else 0.0, "status": status,
        }

    def get_analysis(self) -> dict:
        bars = [(bt.num2date(b[0]), *b[1:]) for b in self._bars]
        return {"bars": bars, "orders": [self._order_row(f) for f in self._fills],
                "trades": self.trades}
