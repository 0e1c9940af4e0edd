"""The fast path's numba kernel: one backtrader run of ``EnsembleStrategy``, as arrays.

:mod:`backtests.fastpath` prepares the inputs and turns the outputs into the records that
:func:`backtests.engine.run_strategy` returns; this module is the bar loop itself, bar by bar
and in the same floating-point order as backtrader:

- at each bar, :class:`strategies.financing.FinancedBroker` charges financing on the previous
  close's exposure, then backtrader's ``BackBroker`` fills the order decided at the previous
  close at this open, slipped by ``slippage`` (``slip_out=True``: never capped at the range),
  with commission on ``|size| * price``, and marks the account to the close with its
  leverage-aware cash accounting (a long opening that would leave cash below zero is
  rejected for margin, exactly as backtrader rejects it);
- from ``trade_start`` on, :class:`strategies.strategy.EnsembleStrategy` steps the breaker on
  the broker value, resolves the lagged statistics, sizes the target weight and orders the
  whole-share gap.  The breaker, the Kelly sizing, the rebalance rule and the share count are
  the project's own scalar functions (:mod:`sizing.breaker`, :mod:`sizing.kelly`,
  :mod:`sizing.rebalance`, :func:`strategies.sizers.shares_for_weight`), compiled here with
  numba, not re-derived.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sizing.breaker import breaker_cap, breaker_limits, breaker_step
from sizing.config import SizingConfig
from sizing.kelly import blend, hybrid_weight, win_rate_prior
from sizing.rebalance import needs_rebalance
from strategies.sizers import shares_for_weight

# The project's pure sizing functions, compiled as they are.
_blend = numba.njit(cache=True)(blend)
_hybrid_weight = numba.njit(cache=True)(hybrid_weight)
_win_rate_prior = numba.njit(cache=True)(win_rate_prior)
_shares_for_weight = numba.njit(cache=True)(shares_for_weight)
_needs_rebalance = numba.njit(cache=True)(needs_rebalance)
_breaker_step = numba.njit(cache=True)(breaker_step)
_breaker_cap = numba.njit(cache=True)(breaker_cap)
_breaker_limits = numba.njit(cache=True)(breaker_limits)

# Parameter vector (float64), in the order of :func:`params_vector`.
(_MAX_LONG, _MAX_SHORT, _BASE_LONG, _BEAR_OFF, _KELLY_SCALE, _SIGNAL_SCALE, _PRIOR_STRENGTH,
 _PRIOR_LOW, _PRIOR_HIGH, _VOL_TARGET, _BAND, _TRIGGER, _MAX_POSITION, _RESET, _HALT,
 _MARGIN_RATE, _BORROW_RATE, _COMMISSION, _SLIPPAGE, _LEVERAGE, _CASH0) = range(21)

# Mutable float state: broker, breaker, current trade and lagged statistics.
(_CASH, _PPRICE, _VALUE, _BORROWED, _SHORT, _FINANCING, _MAX_GROSS, _HIGH_WATER, _DRAWDOWN,
 _TPRICE, _TPNL, _TCOMM, _WIN_SUM, _LOSS_SUM) = range(14)
_N_FLOAT = 14
# Mutable int state.
(_SIZE, _TSIZE, _TOPEN, _NTRADES, _TRIPPED, _HALTED, _TRIPS, _HITS, _NRES, _HEAD,
 _TAIL) = range(11)
_N_INT = 11

# The kernel's outputs, read by backtests.fastpath and benchmarks.
#: Columns of the per-decision output.
D_MU, D_PWIN, D_PAYOFF, D_N, D_WEIGHT, D_HELD, D_DRAWDOWN, D_TRIPPED = range(8)
#: Columns of the per-fill-bar output; status ``FILLED`` or ``REJECTED`` (for margin).
F_STATUS, F_SIZE, F_PRICE, F_COMM = range(4)
FILLED, REJECTED = 1, 2
#: Columns of the closed-trade output.
T_OPEN, T_CLOSE, T_PNL, T_COMM = range(4)


def params_vector(sizing: SizingConfig, cash: float, commission: float,
                  slippage: float) -> np.ndarray:
    """The kernel's parameter vector; the leverage is the one ``configure_broker`` sets."""
    halt = sizing.drawdown_halt if sizing.drawdown_halt is not None else math.nan
    return np.array([
        sizing.max_long, sizing.max_short, sizing.base_long_bias, sizing.bearish_risk_off,
        sizing.kelly_scale, sizing.signal_scale, sizing.prior_strength, sizing.prior_low,
        sizing.prior_high, sizing.vol_target or 0.0, sizing.rebalance_band,
        sizing.drawdown_circuit_breaker, sizing.drawdown_max_position, sizing.drawdown_reset,
        halt, sizing.margin_rate, sizing.short_borrow_rate, commission, slippage,
        max(4.0, 2.0 * sizing.max_long), cash], dtype=np.float64)


@numba.njit(cache=True)
def _position_update(oldsize, pprice, size, price):
    """``backtrader.Position.update``: new size and price, opened and closed parts."""
    newsize = oldsize + size
    if newsize == 0:
        return 0, 0.0, 0, size
    if oldsize == 0:
        return newsize, price, size, 0
    if (oldsize > 0) == (size > 0):  # increased
        return newsize, (pprice * oldsize + size * price) / newsize, size, 0
    if (newsize > 0) == (oldsize > 0):  # reduced
        return newsize, pprice, 0, size
    return newsize, price, newsize, -oldsize  # reversed


@numba.njit(cache=True)
def _trade_update(i, size, price, comm, fs, ist, trades):
    """``backtrader.Trade.update`` for one execution part; records the trade if it closes."""
    oldsize = ist[_TSIZE]
    if oldsize == 0:  # a fresh trade opens
        fs[_TPRICE], fs[_TPNL], fs[_TCOMM] = 0.0, 0.0, 0.0
        ist[_TOPEN] = i
    fs[_TCOMM] += comm
    newsize = oldsize + size
    ist[_TSIZE] = newsize
    pnl = 0.0
    if abs(newsize) > abs(oldsize):
        fs[_TPRICE] = (oldsize * fs[_TPRICE] + size * price) / newsize
    else:
        pnl = -size * (price - fs[_TPRICE])
    fs[_TPNL] += pnl
    if newsize == 0:
        k = ist[_NTRADES]
        trades[k, T_OPEN], trades[k, T_CLOSE] = ist[_TOPEN], i
        trades[k, T_PNL], trades[k, T_COMM] = fs[_TPNL], fs[_TCOMM]
        ist[_NTRADES] = k + 1


@numba.njit(cache=True)
def _close_part(closed, pprice_orig, price, p, fs):
    """Cash of the part of a fill that reduces the position; returns its commission."""
    pnl = -closed * (price - pprice_orig)
    closedvalue = -closed * pprice_orig
    closecash = closedvalue
    if closedvalue > 0:
        closecash /= p[_LEVERAGE]
    cash = fs[_CASH] + (closecash + pnl)
    comm = abs(closed) * price * p[_COMMISSION]
    fs[_CASH] = cash - comm
    return comm


@numba.njit(cache=True)
def _open_part(opened, price, p, fs):
    """Cash of the part of a fill that opens exposure; NaN when it is rejected for margin."""
    openedvalue = opened * price
    opencash = openedvalue
    if openedvalue > 0:
        opencash /= p[_LEVERAGE]
    cash = fs[_CASH] - opencash
    comm = abs(opened) * price * p[_COMMISSION]
    cash -= comm
    if cash < 0.0:
        return np.nan
    fs[_CASH] = cash
    return comm


@numba.njit(cache=True)
def _fill(i, size, open_price, p, fs, ist, fills, trades):
    """``BackBroker._execute`` of a market order of ``size`` shares at this bar's open."""
    price = open_price
    if p[_SLIPPAGE] != 0.0:
        price = open_price * (1.0 + p[_SLIPPAGE]) if size > 0 else open_price * (
            1.0 - p[_SLIPPAGE])
    oldsize, pprice_orig = ist[_SIZE], fs[_PPRICE]
    newsize, newprice, opened, closed = _position_update(oldsize, pprice_orig, size, price)
    closedcomm = _close_part(closed, pprice_orig, price, p, fs) if closed != 0 else 0.0
    openedcomm = _open_part(opened, price, p, fs) if opened != 0 else 0.0
    status = FILLED
    if openedcomm != openedcomm:  # margin: only the closing part, if any, executes
        status, opened, openedcomm = REJECTED, 0, 0.0
        newsize, newprice = oldsize, pprice_orig
        if closed != 0:
            newsize, newprice, _, _ = _position_update(oldsize, pprice_orig, closed, price)
    executed = closed + opened
    ist[_SIZE], fs[_PPRICE] = newsize, newprice
    fills[i, F_STATUS], fills[i, F_SIZE] = status, executed
    fills[i, F_PRICE] = (0.0 + executed * price) / executed if executed != 0 else 0.0
    fills[i, F_COMM] = closedcomm + openedcomm
    if closed != 0:
        _trade_update(i, closed, price, closedcomm, fs, ist, trades)
    if opened != 0:
        _trade_update(i, opened, price, openedcomm, fs, ist, trades)


@numba.njit(cache=True)
def _charge_financing(days, p, fs):
    """``FinancedBroker.next``: interest and borrow fee on the previous close's exposure."""
    charge = days / 365.0 * (fs[_BORROWED] * p[_MARGIN_RATE] + fs[_SHORT] * p[_BORROW_RATE])
    if charge > 0.0:
        fs[_CASH] -= charge
        fs[_FINANCING] += charge


@numba.njit(cache=True)
def _mark_to_market(close, p, fs, ist):
    """``BackBroker._get_value`` then ``FinancedBroker._snapshot`` at this close."""
    size = ist[_SIZE]
    market = size * close
    if market > 0:
        unrealised = size * (close - fs[_PPRICE])
        unlevered = (market - unrealised) / p[_LEVERAGE] + unrealised
    else:
        unlevered = market
    value = fs[_CASH] + unlevered
    fs[_VALUE] = value
    long_value = market if market > 0 else 0.0
    short_value = 0.0 if market > 0 else 0.0 - market
    fs[_BORROWED] = max(long_value - value, 0.0)
    fs[_SHORT] = short_value
    if value > 0:
        fs[_MAX_GROSS] = max(fs[_MAX_GROSS], (long_value + short_value) / value)


@numba.njit(cache=True)
def _step_breaker(value, p, fs, ist):
    """:func:`sizing.breaker.breaker_step` on the kernel's state arrays."""
    high, dd, tripped, halted, trips = _breaker_step(
        fs[_HIGH_WATER], ist[_TRIPPED] != 0, ist[_TRIPS], value, p[_TRIGGER], p[_RESET],
        p[_HALT])
    fs[_HIGH_WATER], fs[_DRAWDOWN] = high, dd
    ist[_TRIPPED] = 1 if tripped else 0
    ist[_HALTED] = 1 if halted else 0
    ist[_TRIPS] = trips


@numba.njit(cache=True)
def _observe(i, start, horizon, window, pred, close, fs, ist, res_hit, res_size):
    """``LaggedStats.observe``: resolve the prediction made ``horizon`` bars ago."""
    if i - start < horizon:
        return
    j = i - horizon
    outcome = math.log(close[i] / close[j])
    old = pred[j]
    if not (math.isfinite(old) and old != 0.0 and outcome != 0.0):
        return
    hit, size = (old > 0.0) == (outcome > 0.0), abs(outcome)
    tail = ist[_TAIL]
    res_hit[tail], res_size[tail] = hit, size
    ist[_TAIL] = tail + 1
    _account(hit, size, 1, fs, ist)
    if ist[_NRES] < window:
        ist[_NRES] += 1
    else:
        head = ist[_HEAD]
        _account(res_hit[head], res_size[head], -1, fs, ist)
        ist[_HEAD] = head + 1


@numba.njit(cache=True)
def _account(hit, size, sign, fs, ist):
    if hit:
        ist[_HITS] += sign
        fs[_WIN_SUM] += sign * size
    else:
        fs[_LOSS_SUM] += sign * size


@numba.njit(cache=True)
def _lagged_inputs(prior_raw, p, fs, ist):
    """``sizing.kelly.lagged_inputs`` from the statistics' hit rate and payoff."""
    n, hits = ist[_NRES], ist[_HITS]
    hit_rate = hits / n if n else np.nan
    losses = n - hits
    payoff = np.nan
    if hits != 0 and losses != 0 and fs[_LOSS_SUM] > 0.0:
        payoff = (fs[_WIN_SUM] / hits) / (fs[_LOSS_SUM] / losses)
    prior = _win_rate_prior(prior_raw, np.nan, p[_PRIOR_LOW], p[_PRIOR_HIGH])
    p_win = _blend(prior, hit_rate, n, p[_PRIOR_STRENGTH])
    b = _blend(1.0, payoff, n if payoff == payoff else 0, p[_PRIOR_STRENGTH])
    return p_win, b


@numba.njit(cache=True)
def _decide(i, close, pred, sigma, prior_raw, horizon, p, fs, ist, decisions, orders):
    """``EnsembleStrategy._decide`` after the breaker step and the statistics update."""
    value = fs[_VALUE]
    mu = math.exp(pred / horizon) - 1.0
    p_win, b = _lagged_inputs(prior_raw, p, fs, ist)
    held = ist[_SIZE] * close / value if value > 0 else 0.0
    weight = _hybrid_weight(mu, sigma, p_win, b, p[_MAX_LONG], p[_MAX_SHORT], p[_BASE_LONG],
                            p[_BEAR_OFF], p[_KELLY_SCALE], p[_SIGNAL_SCALE], p[_PRIOR_HIGH],
                            p[_VOL_TARGET])
    tripped = ist[_TRIPPED] != 0
    weight = _breaker_cap(weight, held, tripped, ist[_HALTED] != 0, p[_MAX_POSITION])
    row = decisions[i]
    row[D_MU], row[D_PWIN], row[D_PAYOFF], row[D_N] = mu, p_win, b, ist[_NRES]
    row[D_WEIGHT], row[D_HELD] = weight, held
    row[D_DRAWDOWN], row[D_TRIPPED] = fs[_DRAWDOWN], ist[_TRIPPED]
    long_limit, short_limit = _breaker_limits(tripped, p[_MAX_POSITION], p[_MAX_LONG],
                                              p[_MAX_SHORT])
    if _needs_rebalance(weight, held, p[_BAND], long_limit, short_limit):
        orders[i] = _shares_for_weight(weight, value, close, 1.0) - ist[_SIZE]


@numba.njit(cache=True)
def run_kernel(open_, close, day, pred, vol, prior, start, horizon, window, p):
    """One run: per bar, financing, the previous close's order, the mark, then the decision.

    The order is cerebro's: the broker's ``next`` (financing, fills, value) runs before the
    strategy's, and the recorder reads the account after the strategy has ordered.
    """
    n = close.shape[0]
    fs = np.zeros(_N_FLOAT)
    ist = np.zeros(_N_INT, np.int64)
    fs[_CASH] = p[_CASH0]
    equity, weight = np.zeros(n), np.zeros(n)
    decisions = np.full((n, 8), np.nan)
    orders = np.zeros(n, np.int64)
    fills = np.zeros((n, 4))
    trades = np.zeros((n, 4))
    res_hit, res_size = np.zeros(n, np.bool_), np.zeros(n)
    hf = float(horizon)
    for i in range(n):
        if i > 0:
            _charge_financing(day[i] - day[i - 1], p, fs)
            if orders[i - 1] != 0:
                _fill(i, orders[i - 1], open_[i], p, fs, ist, fills, trades)
        _mark_to_market(close[i], p, fs, ist)
        value = fs[_VALUE]
        if i >= start:
            _step_breaker(value, p, fs, ist)
            _observe(i, start, horizon, window, pred, close, fs, ist, res_hit, res_size)
            _decide(i, close[i], pred[i], vol[i], prior[i], hf, p, fs, ist, decisions, orders)
        equity[i] = value
        weight[i] = (0.0 + ist[_SIZE] * close[i]) / value if value else 0.0
    summary = np.array([ist[_TRIPS], fs[_FINANCING], fs[_MAX_GROSS]])
    return equity, weight, decisions, orders, fills, trades[:ist[_NTRADES]], summary
