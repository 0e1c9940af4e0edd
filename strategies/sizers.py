"""Thin ``bt.Sizer`` adapters: they only turn a target weight into a share count."""

from __future__ import annotations

import math

import backtrader as bt


def shares_for_weight(weight: float, equity: float, price: float, allocation: float) -> int:
    """Whole shares worth ``weight * allocation * equity`` at ``price``, truncated toward 0."""
    if price <= 0 or not math.isfinite(weight):
        return 0
    return int(weight * allocation * equity / price)


class KellySizer(bt.Sizer):
    """Sizes an order as the gap between the target position and the held one.

    The strategy calls :meth:`set_target` and then ``buy``/``sell``; this sizer answers with
    the absolute share difference at the decision bar's close.

    Parameters
    ----------
    allocations : dict[str, float] | None
        Share of equity per data name; equal split when None.
    """

    params = (("allocations", None),)

    def __init__(self) -> None:
        self._targets: dict[str, float] = {}

    def allocation(self, data: bt.AbstractDataBase) -> float:
        if self.p.allocations:
            return float(self.p.allocations.get(data._name, 0.0))
        return 1.0 / len(self.strategy.datas)

    def set_target(self, data: bt.AbstractDataBase, weight: float) -> None:
        self._targets[data._name] = weight

    def delta_shares(self, data: bt.AbstractDataBase) -> int:
        target = shares_for_weight(self._targets.get(data._name, 0.0), self.broker.getvalue(),
                                   data.close[0], self.allocation(data))
        return target - int(self.strategy.getposition(data).size)

    def _getsizing(self, comminfo, cash, data, isbuy) -> int:
        delta = self.delta_shares(data)
        return max(delta, 0) if isbuy else max(-delta, 0)
