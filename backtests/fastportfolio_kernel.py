"""The portfolio fast path's numba pieces: one account over several symbols, bar by bar.

:mod:`backtests.fastportfolio` runs the bar loop; per bar it calls :func:`advance`, which
does in numba what backtrader does for :class:`strategies.strategy.EnsembleStrategy` over
several feeds on the union of their sessions, in the same floating-point order:

- :class:`strategies.financing.FinancedBroker` charges financing on the previous close's
  exposure; ``BackBroker`` then walks its pending orders *in submission order*: an order whose
  symbol has a bar fills at its open (slipped, with commission; a long opening that would
  leave the account's cash below zero is rejected for margin, as backtrader rejects it), an
  order whose symbol has no bar stays pending; then it marks every position to its last close;
- from ``trade_start`` on, the breaker steps on the account value and each symbol with a bar
  resolves its lagged statistics and sizes its hybrid weight.

The cross-sectional rule (:func:`sizing.portfolio.target_weights`: top-k, slices, gross cap)
runs in Python between two calls, then :func:`advance` places the orders of that close.  The
scalar rules are the one-symbol kernel's compiled project functions
(:mod:`backtests.fastkernel`), and the account arrays keep that kernel's layout, so its cash,
financing, breaker and lagged-statistics pieces run here unchanged.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from backtests.fastkernel import (
    _BAND,
    _BASE_LONG,
    _BEAR_OFF,
    _BORROWED,
    _CASH,
    _DRAWDOWN,
    _KELLY_SCALE,
    _LEVERAGE,
    _MAX_GROSS,
    _MAX_LONG,
    _MAX_SHORT,
    _N_FLOAT,
    _N_INT,
    _NRES,
    _PPRICE,
    _PRIOR_HIGH,
    _SHORT,
    _SIGNAL_SCALE,
    _SIZE,
    _SLIPPAGE,
    _TCOMM,
    _TOPEN,
    _TPNL,
    _TPRICE,
    _TRIPPED,
    _TSIZE,
    _VALUE,
    _VOL_TARGET,
    FILLED,
    REJECTED,
    _charge_financing,
    _close_part,
    _hybrid_weight,
    _lagged_inputs,
    _needs_rebalance,
    _observe,
    _open_part,
    _position_update,
    _shares_for_weight,
    _step_breaker,
)

#: Per-symbol int state: the one-symbol kernel's columns, plus these two.
_OWN_OPEN, _FIRST = _N_INT, _N_INT + 1
N_SYMBOL_INT = _N_INT + 2
#: Counters: pending orders, fills, closed trades, decisions.
N_QUEUE, N_FILLS, N_TRADES, N_DECISIONS = range(4)
#: Columns of a fill (or margin rejection) row.
O_BAR, O_SYMBOL, O_CREATED, O_BUY, O_STATUS, O_SIZE, O_PRICE, O_COMM, O_OPEN = range(9)
#: Columns of a closed-trade row (bars of the union calendar, and of the symbol's own bars).
R_SYMBOL, R_OPEN, R_CLOSE, R_BARS, R_PNL, R_COMM = range(6)
#: Columns of a decision row; ``C_PRED..C_N`` are the ``assess`` columns.
(C_BAR, C_SYMBOL, C_PRED, C_MU, C_SIGMA, C_PWIN, C_PAYOFF, C_N, C_WEIGHT, C_HELD, C_DD,
 C_TRIPPED) = range(12)
#: Columns of the control vector Python hands :func:`advance`: force trims, the two limits.
K_FORCE, K_LONG, K_SHORT = range(3)


def new_state(n_symbols: int, n_bars: int, n_own: int, cash: float) -> dict[str, np.ndarray]:
    """Zeroed state arrays for one run (the account in the one-symbol kernel's layout)."""
    fs = np.zeros(_N_FLOAT)
    fs[_CASH] = cash
    si = np.zeros((n_symbols, N_SYMBOL_INT), np.int64)
    si[:, _FIRST] = -1
    rows = n_bars * n_symbols
    return {"fs": fs, "ist": np.zeros(_N_INT, np.int64), "sfs": np.zeros((n_symbols, _N_FLOAT)),
            "sist": si, "queue": np.zeros((n_symbols, 3), np.int64),
            "counts": np.zeros(4, np.int64), "res_hit": np.zeros((n_symbols, n_own), np.bool_),
            "res_size": np.zeros((n_symbols, n_own)), "fills": np.zeros((rows, 9)),
            "trades": np.zeros((rows, 6)), "decisions": np.zeros((rows, 12)),
            "assessed": np.full((n_symbols, 6), np.nan), "kelly": np.zeros(n_symbols),
            "scores": np.zeros(n_symbols), "held": np.zeros(n_symbols)}


@numba.njit(cache=True)
def _trade(t, own_i, s, size, price, comm, sfs, sist, trades, counts):
    """``backtrader.Trade.update`` of symbol ``s`` for one execution part."""
    fs, ist = sfs[s], sist[s]
    oldsize = ist[_TSIZE]
    if oldsize == 0:  # a fresh trade opens
        fs[_TPRICE], fs[_TPNL], fs[_TCOMM] = 0.0, 0.0, 0.0
        ist[_TOPEN], ist[_OWN_OPEN] = t, own_i
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
        k = counts[N_TRADES]
        row = trades[k]
        row[R_SYMBOL], row[R_OPEN], row[R_CLOSE] = s, ist[_TOPEN], t
        row[R_BARS], row[R_PNL], row[R_COMM] = own_i - ist[_OWN_OPEN], fs[_TPNL], fs[_TCOMM]
        counts[N_TRADES] = k + 1


@numba.njit(cache=True)
def _fill(t, s, size, created, open_price, own_i, p, fs, sfs, sist, fills, trades, counts):
    """``BackBroker._execute`` of a market order of ``size`` shares of ``s`` at this open."""
    price = open_price
    if p[_SLIPPAGE] != 0.0:
        price = open_price * (1.0 + p[_SLIPPAGE]) if size > 0 else open_price * (
            1.0 - p[_SLIPPAGE])
    oldsize, pprice_orig = sist[s, _SIZE], sfs[s, _PPRICE]
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
    sist[s, _SIZE], sfs[s, _PPRICE] = newsize, newprice
    k = counts[N_FILLS]
    row = fills[k]
    row[O_BAR], row[O_SYMBOL], row[O_CREATED] = t, s, created
    row[O_BUY] = 1.0 if size > 0 else 0.0
    row[O_STATUS], row[O_SIZE], row[O_OPEN] = status, executed, open_price
    row[O_PRICE] = (0.0 + executed * price) / executed if executed != 0 else 0.0
    row[O_COMM] = closedcomm + openedcomm
    counts[N_FILLS] = k + 1
    if closed != 0:
        _trade(t, own_i, s, closed, price, closedcomm, sfs, sist, trades, counts)
    if opened != 0:
        _trade(t, own_i, s, opened, price, openedcomm, sfs, sist, trades, counts)


@numba.njit(cache=True)
def _broker(t, days, has, open_, close, own, p, fs, sfs, sist, queue, counts, fills, trades):
    """``FinancedBroker.next`` at bar ``t``; returns the recorder's held weight."""
    if t > 0:
        _charge_financing(days, p, fs)
    keep = 0
    for q in range(counts[N_QUEUE]):  # submission order; no bar today: stays pending
        s = queue[q, 0]
        if has[s]:
            _fill(t, s, queue[q, 1], queue[q, 2], open_[s], own[s], p, fs, sfs, sist, fills,
                  trades, counts)
        else:
            queue[keep] = queue[q]
            keep += 1
    counts[N_QUEUE] = keep
    unlevered = 0.0  # BackBroker._get_value, position by position in listing order
    for s in range(close.shape[0]):
        size = sist[s, _SIZE]
        market = size * close[s]
        unrealised = size * (close[s] - sfs[s, _PPRICE])
        if market > 0:
            unlevered += (market - unrealised) / p[_LEVERAGE]
            unlevered += unrealised
        else:
            unlevered += market
    value = fs[_CASH] + unlevered
    fs[_VALUE] = value
    long_value, short_value, held = 0.0, 0.0, 0.0  # FinancedBroker._snapshot, RunRecorder
    for s in range(close.shape[0]):
        size = sist[s, _SIZE]
        market = size * close[s]
        if market > 0:
            long_value += market
        else:
            short_value -= market
        if size != 0:
            held += size * close[s]
    fs[_BORROWED] = max(long_value - value, 0.0)
    fs[_SHORT] = short_value
    if value > 0:
        fs[_MAX_GROSS] = max(fs[_MAX_GROSS], (long_value + short_value) / value)
    return held / value if value else 0.0


@numba.njit(cache=True)
def _assess(has, own, close, pred, vol, prior, close_own, slices, horizon, window, p, fs,
            sfs, sist, res_hit, res_size, assessed, kelly, scores, held):
    """``EnsembleStrategy._book``: each symbol's inputs and hybrid weight, and held weights."""
    value = fs[_VALUE]
    hf = float(horizon)
    for s in range(close.shape[0]):
        kelly[s], scores[s] = 0.0, np.nan
        if has[s]:
            i = own[s]
            if sist[s, _FIRST] < 0:
                sist[s, _FIRST] = i
            _observe(i, sist[s, _FIRST], horizon, window, pred[s], close_own[s], sfs[s],
                     sist[s], res_hit[s], res_size[s])
            x = pred[s, i]
            mu = math.exp(x / hf) - 1.0
            sigma = vol[s, i]
            p_win, b = _lagged_inputs(prior[s, i], p, sfs[s], sist[s])
            kelly[s] = _hybrid_weight(mu, sigma, p_win, b, p[_MAX_LONG], p[_MAX_SHORT],
                                      p[_BASE_LONG], p[_BEAR_OFF], p[_KELLY_SCALE],
                                      p[_SIGNAL_SCALE], p[_PRIOR_HIGH], p[_VOL_TARGET])
            scores[s] = x if math.isfinite(x) else np.nan
            row = assessed[s]
            row[0], row[1], row[2], row[3], row[4], row[5] = x, mu, sigma, p_win, b, sist[s, _NRES]
        size = sist[s, _SIZE]
        if value <= 0 or size == 0:
            held[s] = 0.0
        else:
            h = size * close[s] / value
            held[s] = h / slices[s] if slices[s] > 0 else h


@numba.njit(cache=True)
def _place(t, has, close, targets, control, slices, p, fs, ist, sist, queue, counts,
           assessed, held, decisions):
    """``EnsembleStrategy._decide`` after the targets: record, then order the share gaps."""
    value = fs[_VALUE]
    for s in range(close.shape[0]):
        if not has[s]:
            continue
        weight, h = targets[s], held[s]
        k = counts[N_DECISIONS]
        row = decisions[k]
        row[C_BAR], row[C_SYMBOL] = t, s
        row[C_PRED:C_N + 1] = assessed[s]
        row[C_WEIGHT], row[C_HELD], row[C_DD], row[C_TRIPPED] = weight, h, fs[_DRAWDOWN], ist[
            _TRIPPED]
        counts[N_DECISIONS] = k + 1
        trim = control[K_FORCE] != 0.0 and abs(weight) < abs(h)
        if trim or _needs_rebalance(weight, h, p[_BAND], control[K_LONG], control[K_SHORT]):
            delta = _shares_for_weight(weight, value, close[s], slices[s]) - sist[s, _SIZE]
            if delta != 0:
                q = counts[N_QUEUE]
                queue[q, 0], queue[q, 1], queue[q, 2] = s, delta, t
                counts[N_QUEUE] = q + 1


@numba.njit(cache=True)
def advance(t, decided, decide, day, has, open_, close, own, pred, vol, prior, close_own,
            slices, targets, control, horizon, window, p, fs, ist, sfs, sist, queue, counts,
            res_hit, res_size, fills, trades, decisions, assessed, kelly, scores, held,
            equity, weight):
    """Place the orders decided at bar ``decided`` (< 0: none), then run bar ``t`` (none
    when ``t`` is past the last bar): the broker, and with ``decide`` the breaker step and
    the assessment that :func:`sizing.portfolio.target_weights` reads next."""
    if decided >= 0:
        _place(decided, has[decided], close[decided], targets, control, slices, p, fs, ist,
               sist, queue, counts, assessed, held, decisions)
    if t >= day.shape[0]:
        return
    days = day[t] - day[t - 1] if t > 0 else 0
    weight[t] = _broker(t, days, has[t], open_[t], close[t], own[t], p, fs, sfs, sist, queue,
                        counts, fills, trades)
    equity[t] = fs[_VALUE]
    if decide:
        _step_breaker(fs[_VALUE], p, fs, ist)
        _assess(has[t], own[t], close[t], pred, vol, prior, close_own, slices, horizon,
                window, p, fs, sfs, sist, res_hit, res_size, assessed, kelly, scores, held)
