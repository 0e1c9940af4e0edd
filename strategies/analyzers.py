"""Analyzers that record what the results directory needs, bar by bar and fill by fill."""

from __future__ import annotations

import backtrader as bt


class RunRecorder(bt.Analyzer):
    """Records per-bar equity, held weight and prediction, every fill and every closed trade.

    ``get_analysis()`` returns ``{"bars": [...], "orders": [...], "trades": [...]}``; bars are
    recorded for the first data feed's clock.
    """

    def start(self) -> None:
        self.bars: list[tuple] = []
        self.orders: list[dict] = []
        self.trades: list[dict] = []

    def next(self) -> None:
        strat = self.strategy
        data = strat.datas[0]
        value = strat.broker.getvalue()
        held = sum(strat.getposition(d).size * d.close[0] for d in strat.datas)
        self.bars.append((data.datetime.datetime(0), value, held / value if value else 0.0,
                          strat.prediction(data)))

    def notify_order(self, order: bt.Order) -> None:
        if order.status != order.Completed:
            if order.status in (order.Margin, order.Rejected):
                self.orders.append(self._order_row(order, "rejected"))
            return
        self.orders.append(self._order_row(order, "filled"))

    def _order_row(self, order: bt.Order, status: str) -> dict:
        ex = order.executed
        return {
            "date": bt.num2date(ex.dt).date().isoformat() if ex.dt else "",
            "decided": bt.num2date(order.created.dt).date().isoformat(),
            "symbol": order.data._name, "side": "buy" if order.isbuy() else "sell",
            "size": abs(ex.size), "price": ex.price, "commission": ex.comm,
            "notional": abs(ex.size) * ex.price,
            # Notified on the fill bar, so open[0] is the price before slippage.
            "slippage": abs(ex.price - order.data.open[0]) * abs(ex.size) if ex.size else 0.0,
            "status": status,
        }

    def notify_trade(self, trade: bt.Trade) -> None:
        if trade.isclosed:
            self.trades.append({
                "symbol": trade.data._name,
                "open_date": bt.num2date(trade.dtopen).date().isoformat(),
                "close_date": bt.num2date(trade.dtclose).date().isoformat(),
                "bars": trade.barlen, "pnl": trade.pnl, "pnl_net": trade.pnlcomm,
                "commission": trade.commission,
            })

    def get_analysis(self) -> dict:
        return {"bars": self.bars, "orders": self.orders, "trades": self.trades}
