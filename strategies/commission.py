"""Commission as a fraction of traded notional, for stock-like instruments."""

from __future__ import annotations

import backtrader as bt


class FractionalCommission(bt.CommInfoBase):
    """``commission`` is charged on ``|size| * price`` of every fill (e.g. 0.0005 = 5 bps).

    ``leverage`` only tells backtrader's broker how much cash a long fill reserves
    (``notional / leverage``).  Its equity accounting stays exact (cash plus cost basis over
    leverage plus unrealised P&L), so a fill after an overnight gap up, which needs a little
    more than the free cash, executes instead of being rejected for margin.
    """

    params = (("commission", 0.0), ("stocklike", True),
              ("commtype", bt.CommInfoBase.COMM_PERC), ("percabs", True), ("leverage", 4.0))

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        return abs(size) * price * self.p.commission
