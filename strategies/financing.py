"""A backtrader broker that charges financing the way a margin account does.

- Borrowed cash (long exposure beyond equity) pays ``margin_rate`` a year.
- Short positions pay ``short_borrow_rate`` a year on their market value.

Both accrue per calendar day (rate / 365) on the exposure held at the previous close, and are
charged at the next bar, before its orders fill.  Paper trading uses Alpaca's own charges, so
this broker only exists in backtest wiring.
"""

from __future__ import annotations

import backtrader as bt


class FinancedBroker(bt.brokers.BackBroker):
    """``BackBroker`` plus daily margin interest and short borrow fees.

    Attributes
    ----------
    financing_paid : float
        Interest and borrow fees charged so far, in account currency.
    max_gross_leverage : float
        Largest sum of |position value| over equity seen at a close.
    """

    params = (("margin_rate", 0.07), ("short_borrow_rate", 0.01))

    def start(self) -> None:
        super().start()
        self.financing_paid = 0.0
        self.max_gross_leverage = 0.0
        self._exposure: tuple[float, float] | None = None  # (borrowed, short value)
        self._last_day = None

    def next(self) -> None:
        # backtrader datetimes are float days, so their difference is calendar days.  Over
        # several feeds the latest bar is today's (a feed may have none today, or not have
        # started: its datetime line would then read its last preloaded bar).
        started = [d.datetime[0] for d in self.positions if len(d)]
        day = max(started) if started else None
        if self._exposure is not None and day is not None and self._last_day is not None:
            days = round(day - self._last_day)
            borrowed, short = self._exposure
            charge = days / 365.0 * (borrowed * self.p.margin_rate
                                     + short * self.p.short_borrow_rate)
            if charge > 0.0:
                self.cash -= charge
                self.financing_paid += charge
        super().next()
        self._snapshot(day)

    def _snapshot(self, day) -> None:
        long_value = short_value = 0.0
        for data, pos in self.positions.items():
            value = pos.size * data.close[0]
            if value > 0:
                long_value += value
            else:
                short_value -= value
        equity = self._value  # just refreshed by BackBroker.next()
        self._exposure = (max(long_value - equity, 0.0), short_value)
        self._last_day = day
        if equity > 0:
            self.max_gross_leverage = max(self.max_gross_leverage,
                                          (long_value + short_value) / equity)
