"""The numba fast path of a portfolio backtest: one account over several symbols.

:func:`run_fast_portfolio` returns what :func:`backtests.engine.run_strategy` returns for
:class:`strategies.strategy.EnsembleStrategy` over several feeds (``allocations=``,
``portfolio=``), on the same inputs and in the same floating-point order.  Backtrader runs on
the union of the feeds' sessions: a symbol without a bar at a close is neither decided nor
traded and keeps its last price, a symbol that starts later joins at its first bar, and an
order waits, pending, until its symbol's next bar.  The broker, the breaker and each symbol's
sizing run in numba (:mod:`backtests.fastportfolio_kernel`); the cross-sectional rule runs
per close as the strategy runs it, in Python: :func:`sizing.portfolio.target_weights` (top-k
with dropout, slices, the gross cap), :meth:`sizing.portfolio.Book.over_gross` and
:func:`sizing.breaker.position_limits`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import NamedTuple

import numpy as np
import pandas as pd

from backtests import fastportfolio_kernel as kernel
from backtests.fastkernel import (
    _DRAWDOWN,
    _FINANCING,
    _HALTED,
    _HIGH_WATER,
    _MAX_GROSS,
    _TRIPPED,
    _TRIPS,
    FILLED,
    params_vector,
)
from backtests.fastpath import fast_inputs
from models.signal import Signal
from models.targets import check_horizon
from sizing.breaker import BreakerState, breaker_params, position_limits
from sizing.config import PortfolioConfig, SizingConfig
from sizing.decisions import DECISION_FIELDS
from sizing.portfolio import Book, gross_cap, target_weights

#: One symbol's predictor lines over its own bars: ``(predictions, volatility, prior)``.
Inputs = tuple[np.ndarray, np.ndarray, np.ndarray]


class Panel(NamedTuple):
    """The feeds laid out on the union of their sessions (``n`` bars, ``S`` symbols).

    ``has``: a bar at this session; ``open``: its open (NaN without a bar); ``close``: the
    last close so far (0 before the first bar, where no position exists); ``own``: position
    of the latest bar in the symbol's own bars (-1 before the first).  ``close_own``,
    ``pred``, ``vol`` and ``prior`` are ``(S, m)``, per own bar, NaN-padded.
    """

    dates: pd.DatetimeIndex
    symbols: list[str]
    has: np.ndarray
    open: np.ndarray
    close: np.ndarray
    own: np.ndarray
    close_own: np.ndarray
    pred: np.ndarray
    vol: np.ndarray
    prior: np.ndarray


def make_panel(feeds: Mapping[str, pd.DataFrame], inputs: Mapping[str, Inputs]) -> Panel:
    """Lay the feeds and their predictor lines (:func:`fast_inputs`) on the union calendar."""
    symbols = list(feeds)
    dates = pd.DatetimeIndex(sorted(set().union(*(f.index for f in feeds.values()))))
    n, width, m = len(dates), len(symbols), max(len(f) for f in feeds.values())
    has = np.zeros((n, width), np.bool_)
    open_, close = np.full((n, width), np.nan), np.zeros((n, width))
    own = np.full((n, width), -1, np.int64)
    lines = np.full((4, width, m), np.nan)
    for s, name in enumerate(symbols):
        frame = feeds[name]
        at = dates.get_indexer(frame.index)
        has[at, s] = True
        open_[at, s] = frame["open"].to_numpy(dtype=np.float64)
        mark = np.full(n, -1, np.int64)
        mark[at] = np.arange(len(frame))
        own[:, s] = np.maximum.accumulate(mark)
        closes = frame["close"].to_numpy(dtype=np.float64)
        close[:, s] = np.where(own[:, s] >= 0, closes[own[:, s]], 0.0)
        lines[0, s, :len(frame)] = closes
        for j, values in enumerate(inputs[name], start=1):
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (len(frame),):
                raise ValueError(f"{name}: predictor lines must have one value per bar "
                                 f"({len(frame)}), got shape {values.shape}")
            lines[j, s, :len(frame)] = values
    return Panel(dates, symbols, has, open_, close, own, *(np.ascontiguousarray(x)
                                                           for x in lines))


class FastPortfolioRun(NamedTuple):
    """The kernel's arrays after a run (see :mod:`backtests.fastportfolio_kernel` columns)."""

    equity: np.ndarray
    weight: np.ndarray
    fills: np.ndarray
    trades: np.ndarray
    decisions: np.ndarray
    breaker_trips: int
    financing_costs: float
    max_gross_leverage: float


def simulate_portfolio(panel: Panel, *, horizon: int, trade_start: date | None,
                       sizing: SizingConfig, cash: float, commission: float, slippage: float,
                       slices: np.ndarray, portfolio: PortfolioConfig) -> FastPortfolioRun:
    """Run the bar loop: per close, the kernel's bar, then the strategy's cross-section."""
    h = check_horizon(horizon)
    n, width = panel.has.shape
    day = panel.dates.to_numpy().astype("datetime64[D]").astype(np.int64)
    start = 0 if trade_start is None else int(np.searchsorted(
        day, np.datetime64(trade_start, "D").astype(np.int64), side="left"))
    p = params_vector(sizing, cash, commission, slippage)
    st = kernel.new_state(width, n, panel.pred.shape[1], cash)
    slices = np.ascontiguousarray(slices, dtype=np.float64)
    equity, weight = np.zeros(n), np.zeros(n)
    targets, control = np.zeros(width), np.zeros(3)
    params = breaker_params(sizing)
    cap, band = portfolio.max_gross, sizing.rebalance_band
    fs, ist = st["fs"], st["ist"]
    decided = -1
    for t in range(n + 1):
        decide = start <= t < n
        kernel.advance(t, decided, decide, day, panel.has, panel.open, panel.close, panel.own,
                       panel.pred, panel.vol, panel.prior, panel.close_own, slices, targets,
                       control, h, sizing.stats_window, p, fs, ist, st["sfs"], st["sist"],
                       st["queue"], st["counts"], st["res_hit"], st["res_size"], st["fills"],
                       st["trades"], st["decisions"], st["assessed"], st["kelly"],
                       st["scores"], st["held"], equity, weight)
        decided = t if decide else -1
        if not decide:
            continue
        state = BreakerState(float(fs[_HIGH_WATER]), float(fs[_DRAWDOWN]),
                             bool(ist[_TRIPPED]), bool(ist[_HALTED]), int(ist[_TRIPS]))
        book = Book(kelly=st["kelly"], scores=st["scores"], held=st["held"], slices=slices,
                    live=panel.has[t])
        targets[:] = target_weights(book, portfolio, state, params)
        control[kernel.K_LONG], control[kernel.K_SHORT] = position_limits(
            state, params, sizing.max_long, sizing.max_short)
        control[kernel.K_FORCE] = book.over_gross(gross_cap(cap, state, params), band)
    counts = st["counts"]
    return FastPortfolioRun(equity, weight, st["fills"][:counts[kernel.N_FILLS]],
                            st["trades"][:counts[kernel.N_TRADES]],
                            st["decisions"][:counts[kernel.N_DECISIONS]], int(ist[_TRIPS]),
                            float(fs[_FINANCING]), float(fs[_MAX_GROSS]))


def run_fast_portfolio(feeds: Mapping[str, pd.DataFrame], signals: Mapping[str, Signal], *,
                       horizon: int, trade_start: date | None, sizing: SizingConfig,
                       cash: float, commission: float, slippage: float,
                       allocations: Mapping[str, float] | None = None,
                       portfolio: PortfolioConfig | None = None,
                       inputs: Mapping[str, Inputs] | None = None) -> dict:
    """:func:`backtests.engine.run_strategy` over several feeds, on the fast path.

    Parameters are ``run_strategy``'s; ``inputs`` (each symbol's :func:`fast_inputs`) skips
    computing the predictor lines from ``signals``.

    Returns
    -------
    dict
        ``run_strategy``'s keys: ``bars``, ``orders``, ``trades``, ``decisions``,
        ``breaker_trips``, ``financing_costs`` and ``max_gross_leverage``.
    """
    if inputs is None:
        inputs = {s: fast_inputs(f, signals[s], sizing.vol_window) for s, f in feeds.items()}
    panel = make_panel(feeds, inputs)
    shares = ([float(allocations.get(s, 0.0)) for s in panel.symbols] if allocations
              else [1.0 / len(panel.symbols)] * len(panel.symbols))  # KellySizer.allocation
    run = simulate_portfolio(panel, horizon=horizon, trade_start=trade_start, sizing=sizing,
                             cash=cash, commission=commission, slippage=slippage,
                             slices=np.array(shares), portfolio=portfolio or PortfolioConfig())
    return analysis_of(run, panel)


def analysis_of(run: FastPortfolioRun, panel: Panel) -> dict:
    """``run_strategy``'s records from the kernel's arrays."""
    names = panel.symbols
    iso = np.datetime_as_string(panel.dates.to_numpy().astype("datetime64[D]")).tolist()
    stamps = panel.dates.to_pydatetime().tolist()
    first = panel.own[:, 0]  # the recorder shows the first feed's latest prediction
    shown = np.where(first >= 0, panel.pred[0][np.maximum(first, 0)], np.nan)
    shown = np.where(np.isfinite(shown), shown, np.nan)
    orders = []
    for t, s, created, buy, status, executed, price, comm, open_ in run.fills.tolist():
        size = abs(int(executed))
        orders.append({"date": iso[int(t)], "decided": iso[int(created)], "symbol": names[int(s)],
                       "side": "buy" if buy else "sell", "size": size, "price": price,
                       "commission": comm, "notional": size * price,
                       "slippage": abs(price - open_) * size if size else 0.0,
                       "status": "filled" if status == FILLED else "rejected"})
    trades = [{"symbol": names[int(s)], "open_date": iso[int(o)], "close_date": iso[int(c)],
               "bars": int(b), "pnl": pnl, "pnl_net": pnl - comm, "commission": comm}
              for s, o, c, b, pnl, comm in run.trades.tolist()]
    decisions = [dict(zip(DECISION_FIELDS, (stamps[int(r[0])].date(), names[int(r[1])],
                                            *r[2:7], int(r[7]), r[8], r[9], r[10],
                                            bool(r[11])), strict=True))
                 for r in run.decisions.tolist()]
    return {"bars": list(zip(stamps, run.equity.tolist(), run.weight.tolist(), shown.tolist(),
                             strict=True)),
            "orders": orders, "trades": trades, "decisions": decisions,
            "breaker_trips": run.breaker_trips, "financing_costs": run.financing_costs,
            "max_gross_leverage": run.max_gross_leverage}
