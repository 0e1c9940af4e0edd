"""A numba fast path that reproduces one backtrader run of ``EnsembleStrategy``, one symbol.

The robustness batch sweeps hundreds of cost and sizing cells over the same predictions; a
backtrader run costs seconds, this path costs milliseconds.  It replays, bar by bar and in
the same floating-point order, what :func:`backtests.engine.run_strategy` does:

- at each bar, :class:`strategies.financing.FinancedBroker` charges financing on the previous
  close's exposure, then backtrader's ``BackBroker`` fills the order decided at the previous
  close at this open, slipped by ``slippage`` (``slip_out=True``: never capped at the range),
  with commission on ``|size| * price``, and marks the account to the close with its
  leverage-aware cash accounting (a long opening that would leave cash below zero is
  rejected for margin, exactly as backtrader rejects it);
- from ``trade_start`` on, :class:`strategies.strategy.EnsembleStrategy` steps the breaker on
  the broker value, resolves the lagged statistics, sizes the target weight with the sizing
  functions (compiled here with numba, not re-derived) and orders the whole-share gap;
- :class:`strategies.analyzers.RunRecorder`'s bars, fills and closed trades are rebuilt from
  the kernel's arrays after the loop.

Orders decided at the last bar never fill, as in backtrader.  High and low are not needed:
with ``slip_out=True`` a slipped market fill never looks at the bar's range.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from itertools import repeat
from typing import Any, NamedTuple

import backtrader as bt
import numba
import numpy as np
import pandas as pd

from models.targets import check_horizon
from sizing.config import SizingConfig
from sizing.decisions import DECISION_FIELDS
from sizing.kelly import blend, hybrid_weight, win_rate_prior
from sizing.rebalance import needs_rebalance
from sizing.volatility import realised_vol
from strategies.predictor import bt_dates
from strategies.sizers import shares_for_weight

# The project's pure sizing functions, compiled as they are.
_blend = numba.njit(cache=True)(blend)
_hybrid_weight = numba.njit(cache=True)(hybrid_weight)
_win_rate_prior = numba.njit(cache=True)(win_rate_prior)
_shares_for_weight = numba.njit(cache=True)(shares_for_weight)
_needs_rebalance = numba.njit(cache=True)(needs_rebalance)

# Parameter vector (float64), in the order of :func:`_params`.
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

# Columns of the per-decision output.
_D_MU, _D_PWIN, _D_PAYOFF, _D_N, _D_WEIGHT, _D_HELD, _D_DRAWDOWN, _D_TRIPPED = range(8)
# Columns of the per-fill-bar output; status 1 filled, 2 rejected for margin.
_F_STATUS, _F_SIZE, _F_PRICE, _F_COMM = range(4)
_FILLED, _REJECTED = 1, 2
# Columns of the closed-trade output.
_T_OPEN, _T_CLOSE, _T_PNL, _T_COMM = range(4)


class FastRun(NamedTuple):
    """The kernel's arrays, before any Python objects are built (see :func:`simulate`).

    ``equity`` and ``weight`` are per bar (the recorder's value and held weight at each
    close); ``decisions`` has a row per bar (NaN before the trade start); ``orders`` is the
    signed share count decided at each close (0: none); ``fills`` is per fill bar;
    ``trades`` has one row per closed trade.
    """

    equity: np.ndarray
    weight: np.ndarray
    decisions: np.ndarray
    orders: np.ndarray
    fills: np.ndarray
    trades: np.ndarray
    start: int
    breaker_trips: int
    financing_costs: float
    max_gross_leverage: float


# ---------------------------------------------------------------------------- kernel
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
        trades[k, _T_OPEN], trades[k, _T_CLOSE] = ist[_TOPEN], i
        trades[k, _T_PNL], trades[k, _T_COMM] = fs[_TPNL], fs[_TCOMM]
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
    status = _FILLED
    if openedcomm != openedcomm:  # margin: only the closing part, if any, executes
        status, opened, openedcomm = _REJECTED, 0, 0.0
        newsize, newprice = oldsize, pprice_orig
        if closed != 0:
            newsize, newprice, _, _ = _position_update(oldsize, pprice_orig, closed, price)
    executed = closed + opened
    ist[_SIZE], fs[_PPRICE] = newsize, newprice
    fills[i, _F_STATUS], fills[i, _F_SIZE] = status, executed
    fills[i, _F_PRICE] = (0.0 + executed * price) / executed if executed != 0 else 0.0
    fills[i, _F_COMM] = closedcomm + openedcomm
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
def _breaker_step(value, p, fs, ist):
    """``sizing.breaker.step`` on scalar state."""
    high = max(fs[_HIGH_WATER], value)
    dd = 1.0 - value / high if high > 0 else 0.0
    tripped = ist[_TRIPPED] != 0
    if not tripped and dd >= p[_TRIGGER]:
        tripped = True
        ist[_TRIPS] += 1
    elif tripped and dd <= p[_RESET]:
        tripped = False
    fs[_HIGH_WATER], fs[_DRAWDOWN] = high, dd
    ist[_TRIPPED] = 1 if tripped else 0
    ist[_HALTED] = 1 if tripped and dd >= p[_HALT] else 0  # halt NaN: never


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
def _cap_weight(weight, held, ist, p):
    """``sizing.breaker.cap_weight`` on scalar state."""
    if ist[_TRIPPED]:
        weight = min(max(weight, -p[_MAX_POSITION]), p[_MAX_POSITION])
    if ist[_HALTED]:
        weight = min(max(weight, min(held, 0.0)), max(held, 0.0))
    return weight


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
    weight = _cap_weight(weight, held, ist, p)
    row = decisions[i]
    row[_D_MU], row[_D_PWIN], row[_D_PAYOFF], row[_D_N] = mu, p_win, b, ist[_NRES]
    row[_D_WEIGHT], row[_D_HELD] = weight, held
    row[_D_DRAWDOWN], row[_D_TRIPPED] = fs[_DRAWDOWN], ist[_TRIPPED]
    long_limit, short_limit = p[_MAX_LONG], p[_MAX_SHORT]
    if ist[_TRIPPED]:  # sizing.breaker.position_limits
        long_limit = min(p[_MAX_POSITION], long_limit)
        short_limit = min(p[_MAX_POSITION], short_limit)
    if _needs_rebalance(weight, held, p[_BAND], long_limit, short_limit):
        orders[i] = _shares_for_weight(weight, value, close, 1.0) - ist[_SIZE]


@numba.njit(cache=True)
def _kernel(open_, close, day, pred, vol, prior, start, horizon, window, p):
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
            _breaker_step(value, p, fs, ist)
            _observe(i, start, horizon, window, pred, close, fs, ist, res_hit, res_size)
            _decide(i, close[i], pred[i], vol[i], prior[i], hf, p, fs, ist, decisions, orders)
        equity[i] = value
        weight[i] = (0.0 + ist[_SIZE] * close[i]) / value if value else 0.0
    summary = np.array([ist[_TRIPS], fs[_FINANCING], fs[_MAX_GROSS]])
    return equity, weight, decisions, orders, fills, trades[:ist[_NTRADES]], summary


# ---------------------------------------------------------------------------- Python side
def _params(sizing: SizingConfig, cash: float, commission: float, slippage: float) -> np.ndarray:
    """The kernel's parameter vector; the leverage is the one ``configure_broker`` sets."""
    halt = sizing.drawdown_halt if sizing.drawdown_halt is not None else math.nan
    return np.array([
        sizing.max_long, sizing.max_short, sizing.base_long_bias, sizing.bearish_risk_off,
        sizing.kelly_scale, sizing.signal_scale, sizing.prior_strength, sizing.prior_low,
        sizing.prior_high, sizing.vol_target or 0.0, sizing.rebalance_band,
        sizing.drawdown_circuit_breaker, sizing.drawdown_max_position, sizing.drawdown_reset,
        halt, sizing.margin_rate, sizing.short_borrow_rate, commission, slippage,
        max(4.0, 2.0 * sizing.max_long), cash], dtype=np.float64)


def _day_numbers(index: pd.DatetimeIndex) -> np.ndarray:
    """Whole calendar days since 1970-01-01 (what FinancedBroker's day differences count)."""
    return index.to_numpy().astype("datetime64[D]").astype(np.int64)


def _floats(values: np.ndarray, n: int, what: str) -> np.ndarray:
    out = np.ascontiguousarray(values, dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f"{what} must have one value per bar ({n}), got shape {out.shape}")
    return out


def fast_inputs(ohlcv: pd.DataFrame, signal: Any, vol_window: int,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions, volatility and prior exactly as ``EnsemblePredictor.once`` computes them.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated daily bars (``open, high, low, close, volume``).
    signal : VintageSignal | SeriesSignal
        The signal the strategy would bind (:mod:`models.signal`).
    vol_window : int
        Bars in the realised-volatility window (``SizingConfig.vol_window``).

    Returns
    -------
    tuple of numpy.ndarray
        ``(predictions, volatility, prior)``, one float64 value per bar.
    """
    # The predictor sees the bars through backtrader's buffer: float columns and dates that
    # went through date2num and back.
    nums = np.array([bt.date2num(d) for d in ohlcv.index.to_pydatetime()], dtype=np.float64)
    frame = pd.DataFrame({c: ohlcv[c].to_numpy(dtype=np.float64)
                          for c in ("open", "high", "low", "close", "volume")},
                         index=bt_dates(nums))
    predictions = np.asarray(signal.predict_batch(frame), dtype=np.float64)
    volatility = realised_vol(frame["close"].to_numpy(), vol_window)
    prior = np.asarray(signal.prior_batch(frame.index), dtype=np.float64)
    return predictions, volatility, prior


def simulate(ohlcv: pd.DataFrame, predictions: np.ndarray, prior: np.ndarray, *,
             horizon: int, trade_start: date | None, sizing: SizingConfig, cash: float,
             commission: float, slippage: float, volatility: np.ndarray | None = None,
             ) -> FastRun:
    """Run the kernel and return its arrays (no per-bar Python objects).

    Parameters are those of :func:`run_fast`; use this directly where only equity, weights
    or costs are needed (the robustness batch).
    """
    n = len(ohlcv)
    h = check_horizon(horizon)
    close = _floats(ohlcv["close"].to_numpy(), n, "close")
    if volatility is None:
        volatility = realised_vol(close, sizing.vol_window)
    day = _day_numbers(ohlcv.index)
    start = 0 if trade_start is None else int(np.searchsorted(
        day, np.datetime64(trade_start, "D").astype(np.int64), side="left"))
    equity, weight, decisions, orders, fills, trades, summary = _kernel(
        _floats(ohlcv["open"].to_numpy(), n, "open"), close, day,
        _floats(predictions, n, "predictions"), _floats(volatility, n, "volatility"),
        _floats(prior, n, "prior"), start, h, sizing.stats_window,
        _params(sizing, cash, commission, slippage))
    return FastRun(equity, weight, decisions, orders, fills, trades, start, int(summary[0]),
                   float(summary[1]), float(summary[2]))


def run_fast(ohlcv: pd.DataFrame, predictions: np.ndarray, prior: np.ndarray, *,
             horizon: int, trade_start: date | None, sizing: SizingConfig, cash: float,
             commission: float, slippage: float, volatility: np.ndarray | None = None,
             symbol: str | None = None) -> dict:
    """:func:`backtests.engine.run_strategy` for one symbol, on the numba kernel.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated daily bars of one symbol.
    predictions, prior : numpy.ndarray
        Per bar, the predictor's ``prediction`` and ``prior`` lines (:func:`fast_inputs`).
    horizon : int
        Label horizon of the predictions.
    trade_start : datetime.date | None
        No decision before this date.
    sizing : SizingConfig
        Sizing, breaker and financing parameters.
    cash, commission, slippage : float
        Starting equity, commission and slippage as fractions of notional and price.
    volatility : numpy.ndarray | None
        The predictor's ``volatility`` line; computed from the closes when None.
    symbol : str | None
        Name recorded in decisions, orders and trades (default ``ohlcv.attrs["symbol"]``).

    Returns
    -------
    dict
        The keys of ``run_strategy``: ``bars``, ``orders``, ``trades``, ``decisions``,
        ``breaker_trips``, ``financing_costs`` and ``max_gross_leverage``.
    """
    if volatility is None:
        volatility = realised_vol(ohlcv["close"].to_numpy(dtype=np.float64), sizing.vol_window)
    run = simulate(ohlcv, predictions, prior, horizon=horizon, trade_start=trade_start,
                   sizing=sizing, cash=cash, commission=commission, slippage=slippage,
                   volatility=volatility)
    name = symbol if symbol is not None else str(ohlcv.attrs.get("symbol", "DATA"))
    stamps = ohlcv.index.to_pydatetime()
    iso = np.datetime_as_string(ohlcv.index.to_numpy().astype("datetime64[D]")).tolist()
    vol = np.asarray(volatility, dtype=np.float64)
    pred = np.asarray(predictions, dtype=np.float64)
    shown = np.where(np.isfinite(pred), pred, np.nan)
    return {
        "bars": list(zip(stamps.tolist(), run.equity.tolist(), run.weight.tolist(),
                         shown.tolist(), strict=True)),
        "orders": _order_rows(run, ohlcv["open"].to_numpy(), iso, name),
        "trades": [{"symbol": name, "open_date": iso[int(t[_T_OPEN])],
                    "close_date": iso[int(t[_T_CLOSE])], "bars": int(t[_T_CLOSE] - t[_T_OPEN]),
                    "pnl": t[_T_PNL], "pnl_net": t[_T_PNL] - t[_T_COMM], "commission": t[_T_COMM]}
                   for t in run.trades.tolist()],
        "decisions": _decision_rows(run, stamps, pred, vol, name),
        "breaker_trips": run.breaker_trips, "financing_costs": run.financing_costs,
        "max_gross_leverage": run.max_gross_leverage,
    }


def _order_rows(run: FastRun, open_: np.ndarray, iso: list[str], name: str) -> list[dict]:
    """``RunRecorder._order_row`` for each fill or margin rejection, in bar order.

    A rejection is dated at its bar too: ``Order.margin`` stamps ``executed.dt``.
    """
    at = np.flatnonzero(run.fills[:, _F_STATUS])
    fills = run.fills[at]
    sizes = np.abs(fills[:, _F_SIZE]).astype(np.int64).tolist()
    columns = zip(at.tolist(), (fills[:, _F_STATUS] == _FILLED).tolist(),
                  (run.orders[at - 1] > 0).tolist(), sizes, fills[:, _F_PRICE].tolist(),
                  fills[:, _F_COMM].tolist(), open_[at].tolist(), strict=True)
    return [{"date": iso[i], "decided": iso[i - 1], "symbol": name,
             "side": "buy" if buy else "sell", "size": size, "price": price,
             "commission": comm, "notional": size * price,
             "slippage": abs(price - open_price) * size if size else 0.0,
             "status": "filled" if filled else "rejected"}
            for i, filled, buy, size, price, comm, open_price in columns]


def _decision_rows(run: FastRun, stamps: np.ndarray, pred: np.ndarray, vol: np.ndarray,
                   name: str) -> list[dict]:
    """Rows of ``DECISION_FIELDS`` for every bar from the trade start."""
    k = run.start
    d = run.decisions[k:]
    days: list[datetime] = stamps[k:].tolist()
    rows = zip([x.date() for x in days], repeat(name), pred[k:].tolist(), d[:, _D_MU].tolist(),
               vol[k:].tolist(), d[:, _D_PWIN].tolist(), d[:, _D_PAYOFF].tolist(),
               d[:, _D_N].astype(np.int64).tolist(), d[:, _D_WEIGHT].tolist(),
               d[:, _D_HELD].tolist(), d[:, _D_DRAWDOWN].tolist(),
               (d[:, _D_TRIPPED] != 0).tolist(), strict=False)  # repeat() is endless
    # Every row has len(DECISION_FIELDS) values; strict zips cost a third of the time here.
    return [dict(zip(DECISION_FIELDS, row, strict=False)) for row in rows]
