"""Commission as a fraction of traded notional, for stock-like instruments."""

from __future__ import annotations

import backtrader as bt


class FractionalCommission(bt.CommInfoBase):
    """``commission`` is charged on ``|size| * price`` of every fill (e.g. 0.0005 = 5 bps)."""

    params = (("commission", 0.0), ("stocklike", True),
              ("commtype", bt.CommInfoBase.COMM_PERC), ("percabs", True))

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        return abs(size) * price * self.p.commission
