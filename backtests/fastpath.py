"""A numba fast path that reproduces one backtrader run of ``EnsembleStrategy``, one symbol.

The robustness batch sweeps hundreds of cost and sizing cells over the same predictions; a
backtrader run costs seconds, this path costs milliseconds.  :func:`fast_inputs` computes the
predictor's lines exactly as :class:`strategies.predictor.EnsemblePredictor` does; the kernel
(:mod:`backtests.fastkernel`) replays, bar by bar and in the same floating-point order, what
:func:`backtests.engine.run_strategy` does; :func:`run_fast` rebuilds
:class:`strategies.analyzers.RunRecorder`'s bars, fills and closed trades from the kernel's
arrays after the loop.

Orders decided at the last bar never fill, as in backtrader.  High and low are not needed:
with ``slip_out=True`` a slipped market fill never looks at the bar's range.
"""

from __future__ import annotations

from datetime import date, datetime
from itertools import repeat
from typing import NamedTuple

import backtrader as bt
import numpy as np
import pandas as pd

from backtests.fastkernel import (
    D_DRAWDOWN,
    D_HELD,
    D_MU,
    D_N,
    D_PAYOFF,
    D_PWIN,
    D_TRIPPED,
    D_WEIGHT,
    F_COMM,
    F_PRICE,
    F_SIZE,
    F_STATUS,
    FILLED,
    T_CLOSE,
    T_COMM,
    T_OPEN,
    T_PNL,
    params_vector,
    run_kernel,
)
from models.signal import Signal
from models.targets import check_horizon
from sizing.config import SizingConfig
from sizing.decisions import DECISION_FIELDS
from sizing.volatility import realised_vol
from strategies.predictor import bt_dates


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


def _day_numbers(index: pd.DatetimeIndex) -> np.ndarray:
    """Whole calendar days since 1970-01-01 (what FinancedBroker's day differences count)."""
    return index.to_numpy().astype("datetime64[D]").astype(np.int64)


def _floats(values: np.ndarray, n: int, what: str) -> np.ndarray:
    out = np.ascontiguousarray(values, dtype=np.float64)
    if out.shape != (n,):
        raise ValueError(f"{what} must have one value per bar ({n}), got shape {out.shape}")
    return out


def fast_inputs(ohlcv: pd.DataFrame, signal: Signal, vol_window: int,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions, volatility and prior exactly as ``EnsemblePredictor.once`` computes them.

    Parameters
    ----------
    ohlcv : pandas.DataFrame
        Validated daily bars (``open, high, low, close, volume``).
    signal : Signal
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
    equity, weight, decisions, orders, fills, trades, summary = run_kernel(
        _floats(ohlcv["open"].to_numpy(), n, "open"), close, day,
        _floats(predictions, n, "predictions"), _floats(volatility, n, "volatility"),
        _floats(prior, n, "prior"), start, h, sizing.stats_window,
        params_vector(sizing, cash, commission, slippage))
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
        "trades": [{"symbol": name, "open_date": iso[int(t[T_OPEN])],
                    "close_date": iso[int(t[T_CLOSE])], "bars": int(t[T_CLOSE] - t[T_OPEN]),
                    "pnl": t[T_PNL], "pnl_net": t[T_PNL] - t[T_COMM], "commission": t[T_COMM]}
                   for t in run.trades.tolist()],
        "decisions": _decision_rows(run, stamps, pred, vol, name),
        "breaker_trips": run.breaker_trips, "financing_costs": run.financing_costs,
        "max_gross_leverage": run.max_gross_leverage,
    }


def _order_rows(run: FastRun, open_: np.ndarray, iso: list[str], name: str) -> list[dict]:
    """``RunRecorder._order_row`` for each fill or margin rejection, in bar order.

    A rejection is dated at its bar too: ``Order.margin`` stamps ``executed.dt``.
    """
    at = np.flatnonzero(run.fills[:, F_STATUS])
    fills = run.fills[at]
    sizes = np.abs(fills[:, F_SIZE]).astype(np.int64).tolist()
    columns = zip(at.tolist(), (fills[:, F_STATUS] == FILLED).tolist(),
                  (run.orders[at - 1] > 0).tolist(), sizes, fills[:, F_PRICE].tolist(),
                  fills[:, F_COMM].tolist(), open_[at].tolist(), strict=True)
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
    rows = zip([x.date() for x in days], repeat(name), pred[k:].tolist(), d[:, D_MU].tolist(),
               vol[k:].tolist(), d[:, D_PWIN].tolist(), d[:, D_PAYOFF].tolist(),
               d[:, D_N].astype(np.int64).tolist(), d[:, D_WEIGHT].tolist(),
               d[:, D_HELD].tolist(), d[:, D_DRAWDOWN].tolist(),
               (d[:, D_TRIPPED] != 0).tolist(), strict=False)  # repeat() is endless
    # Every row has len(DECISION_FIELDS) values; strict zips cost a third of the time here.
    return [dict(zip(DECISION_FIELDS, row, strict=False)) for row in rows]
