"""Analyzers that record what the results directory needs, bar by bar and fill by fill."""

from __future__ import annotations

import backtrader as bt


class RunRecorder(bt.Analyzer):
    """Records per-bar equity, held weight and prediction, every fill and every closed trade.

    ``get_analysis()`` returns ``{"bars": [...], "orders": [...], "trades": [...]}``; bars
    (rows of ``backtests.results.BAR_COLUMNS``) are recorded on the first data feed's clock.
    The per-bar work stores raw floats only; dates are converted once, in ``get_analysis``.
    """

    def start(self) -> None:
        self._bars: list[tuple[float, float, float, float]] = []
        self._fills: list[tuple] = []
        self.trades: list[dict] = []

    def next(self) -> None:
        strat = self.strategy
        value = strat.broker.getvalue()
        held = 0.0
        for d in strat.datas:
            held += strat.getposition(d).size * d.close[0]
        self._bars.append((strat.datas[0].datetime[0], value, held / value if value else 0.0,
                           strat.prediction(strat.datas[0])))

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
