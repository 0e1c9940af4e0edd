"""How an order that is not a plain market order fills on one daily bar: pure functions.

A daily bar says only where the session opened, how high and low it went and where it
closed.  The open is the first trade, so everything between the low and the high happened
*after* the open; the order of the high, the low and a stop's trigger within the session is
unknown, and these rules never assume the favourable one.

An order submitted after the close of bar ``t`` is first worked on bar ``t + 1``.  ``s`` is
the replay's slippage fraction; a buy pays ``x * (1 + s)``, a sell gets ``x * (1 - s)``.

=================  ======================================================================
Order              Rule on the bar (buy; a sell mirrors it)
=================  ======================================================================
market             fills at the open ``open * (1 + s)`` (unchanged; ``cls``: at the close)
limit ``L``        open <= L: fills at the open, ``min(open * (1 + s), L)``; else low <= L:
                   fills at ``L``; else rests.  A limit never fills worse than ``L``.
stop ``S``         open >= S (a gap through the stop): fills at ``open * (1 + s)``; else
                   high >= S: fills at ``S * (1 + s)``; else rests.
stop_limit S, L    triggered at the open (open >= S): works as limit ``L`` for the whole
                   bar.  Triggered during the bar (high >= S): fills at
                   ``min(S * (1 + s), L)`` when ``S <= L``, else stays triggered and works
                   as limit ``L`` from the next session.  Not triggered: rests.
trailing_stop      stop = hwm + trail_price, or hwm * (1 + trail_percent / 100), where the
                   hwm (low-water mark for a buy, high-water for a sell) starts at the close
                   the order was submitted on; the stop fills as a stop.  Not triggered: the
                   hwm moves to the bar's close if better (close to close).
=================  ======================================================================

Time in force decides what an order that did not fill becomes:

- ``day``: expires at that session's close (status ``expired``); ``gtc``: rests.
- ``opg``: only the open counts (a limit's open rule); unfilled it expires at the open.
- ``cls``: only the close counts (a limit: close <= L fills at ``min(close * (1 + s), L)``);
  unfilled it expires at the close.
- ``ioc`` and ``fok``: only the open counts; unfilled they are canceled at the open.  A daily
  bar has no depth, so ``fok`` fills whole and ``ioc`` fills whole or not at all too.

Fills at the open are stamped 09:30 New York, at the close 16:00, and fills inside the session
(a limit reached by the low, a stop by the high) 12:00: a daily bar says no more than that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

#: When in the session an outcome happens: the open, inside the session, or the close.
Moment = Literal["open", "intraday", "close"]
SESSION_TIMES: dict[str, str] = {"open": "09:30", "intraday": "12:00", "close": "16:00"}
_OPEN_ONLY = frozenset({"opg", "ioc", "fok"})


class Bar(NamedTuple):
    """One daily bar's prices."""

    open: float
    high: float
    low: float
    close: float


@dataclass(frozen=True)
class Outcome:
    """What one bar did to an order.

    ``action`` is ``fill`` (at ``price``), ``rest`` (still open), ``expire`` or ``cancel``;
    ``at`` says when in the session.  ``triggered`` is whether a stop_limit's stop has been
    hit (so it works as a limit from now on).
    """

    action: Literal["fill", "rest", "expire", "cancel"]
    at: Moment = "close"
    price: float | None = None
    triggered: bool = False


def worse(price: float, side: str, slippage: float) -> float:
    """``price`` moved against the trader by the fraction ``slippage``."""
    return price * (1.0 + slippage) if side == "buy" else price * (1.0 - slippage)


def marketable(price: float, side: str, limit: float) -> bool:
    """Whether a limit ``limit`` accepts a trade at ``price``."""
    return price <= limit if side == "buy" else price >= limit


def capped(price: float, side: str, limit: float) -> float:
    """``price`` no worse than ``limit``."""
    return min(price, limit) if side == "buy" else max(price, limit)


def limit_fill(bar: Bar, side: str, limit: float, slippage: float,
               ) -> tuple[float, Moment] | None:
    """A limit's fill on ``bar``: at the open when marketable there, else at ``limit`` when the
    low (high for a sell) reaches it, else ``None``."""
    if marketable(bar.open, side, limit):
        return capped(worse(bar.open, side, slippage), side, limit), "open"
    extreme = bar.low if side == "buy" else bar.high
    if marketable(extreme, side, limit):
        return limit, "intraday"
    return None


def stop_fill(bar: Bar, side: str, stop: float, slippage: float,
              ) -> tuple[float, Moment] | None:
    """A stop's fill on ``bar``: at the open on a gap through ``stop``, at ``stop`` when the
    high (low for a sell) reaches it, else ``None``; slippage applies to both."""
    if triggers(bar.open, side, stop):
        return worse(bar.open, side, slippage), "open"
    extreme = bar.high if side == "buy" else bar.low
    if triggers(extreme, side, stop):
        return worse(stop, side, slippage), "intraday"
    return None


def triggers(price: float, side: str, stop: float) -> bool:
    """Whether a trade at ``price`` triggers a buy (at or above) or sell (at or below) stop."""
    return price >= stop if side == "buy" else price <= stop


def stop_limit_fill(bar: Bar, side: str, stop: float, limit: float, slippage: float,
                    triggered: bool) -> tuple[tuple[float, Moment] | None, bool]:
    """A stop_limit's fill on ``bar`` and whether its stop has been hit by the end of it."""
    if triggered or triggers(bar.open, side, stop):
        return limit_fill(bar, side, limit, slippage), True
    extreme = bar.high if side == "buy" else bar.low
    if not triggers(extreme, side, stop):
        return None, False
    if marketable(stop, side, limit):
        return (capped(worse(stop, side, slippage), side, limit), "intraday"), True
    return None, True


def trailing_stop_price(side: str, hwm: float, trail_price: float | None,
                        trail_percent: float | None) -> float:
    """The stop a trailing stop stands at, ``trail_price`` or ``trail_percent`` from ``hwm``."""
    sign = 1.0 if side == "buy" else -1.0
    if trail_price is not None:
        return hwm + sign * trail_price
    return hwm * (1.0 + sign * float(trail_percent or 0.0) / 100.0)


def next_hwm(side: str, hwm: float, close: float) -> float:
    """The water mark after a close: the lowest close for a buy, the highest for a sell."""
    return min(hwm, close) if side == "buy" else max(hwm, close)


def _unfilled(time_in_force: str, triggered: bool = False) -> Outcome:
    if time_in_force in ("ioc", "fok"):
        return Outcome("cancel", "open", triggered=triggered)
    if time_in_force == "opg":
        return Outcome("expire", "open", triggered=triggered)
    if time_in_force == "gtc":
        return Outcome("rest", "close", triggered=triggered)
    return Outcome("expire", "close", triggered=triggered)


def _at_open_or_close(bar: Bar, side: str, order_type: str, limit: float | None,
                      slippage: float, time_in_force: str) -> Outcome:
    """``opg``/``ioc``/``fok`` (the open only) and ``cls`` (the close only); market or limit."""
    moment: Moment = "close" if time_in_force == "cls" else "open"
    price = bar.close if moment == "close" else bar.open
    if order_type == "market":
        return Outcome("fill", moment, worse(price, side, slippage))
    if limit is not None and marketable(price, side, limit):
        return Outcome("fill", moment, capped(worse(price, side, slippage), side, limit))
    return _unfilled(time_in_force)


def evaluate(bar: Bar, *, side: str, order_type: str, time_in_force: str, slippage: float,
             limit_price: float | None = None, stop_price: float | None = None,
             triggered: bool = False) -> Outcome:
    """What ``bar`` does to an order (a trailing stop passes its current stop as
    ``stop_price``); see the module's table for the rules."""
    if time_in_force in _OPEN_ONLY or time_in_force == "cls":
        return _at_open_or_close(bar, side, order_type, limit_price, slippage, time_in_force)
    if order_type == "market":
        return Outcome("fill", "open", worse(bar.open, side, slippage))
    if order_type == "limit":
        fill = limit_fill(bar, side, float(limit_price or 0.0), slippage)
    elif order_type == "stop_limit":
        fill, triggered = stop_limit_fill(bar, side, float(stop_price or 0.0),
                                          float(limit_price or 0.0), slippage, triggered)
    else:  # stop, trailing_stop
        fill = stop_fill(bar, side, float(stop_price or 0.0), slippage)
    if fill is None:
        return _unfilled(time_in_force, triggered)
    return Outcome("fill", fill[1], fill[0], triggered)
