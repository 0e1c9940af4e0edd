"""Figure 1: ``EnsembleStrategy`` on precomputed predictions vs backtrader's SMA crossover.

Every case runs a whole backtest (cerebro built, data preloaded, run) over the same synthetic
daily bars with the same broker costs, in the same process.  After one warm-up of each case
(numba JIT, imports, caches), the cases are timed in interleaved rounds (A, B, C, A, B, C,
...) and each keeps its median, so drift in machine load hits every case alike.

Cases (``runonce`` unless named ``stream``):

- ``ensemble+recorder``: :func:`backtests.engine.run_strategy` exactly as users run it, with
  the :class:`~strategies.analyzers.RunRecorder` analyzer;
- ``ensemble``: the same wiring without the recorder (the strategy alone);
- ``ensemble(sma-replica)``: the strategy alone, fed predictions that say "long" exactly
  while SMA(10) > SMA(30), so it makes the same trades as the baseline: what the plug-in
  costs at equal order flow;
- ``sma``: the baseline, backtrader's own ``SMA``/``CrossOver`` strategy with a
  ``PercentSizer``;
- ``ensemble+recorder stream`` / ``sma stream``: the same with ``runonce=False`` (the
  bar-by-bar path live feeds use), for information.

The figure is the throughput ratio ``bars/s(case) / bars/s(baseline)`` (equivalently
``t_baseline / t_case``); a ratio of 0.8 means the case costs 25% more time than the baseline.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import backtrader as bt
import numpy as np
import pandas as pd

from backtests.engine import configure_broker, make_feed, run_strategy
from models.signal import SeriesSignal
from models.targets import to_daily_return
from sizing.bt_sizers import TargetWeightSizer
from sizing.interim import InterimSizing
from sizing.volatility import realised_vol
from strategies.strategy import EnsembleStrategy

NAME = "strategy_vs_sma"
SYMBOL = "SYN"
N_BARS = 5_000
ROUNDS = 5
STREAM_ROUNDS = 3
CASH = 100_000.0
COMMISSION = 0.0005
SLIPPAGE = 0.0005
HORIZON = 5
VOL_WINDOW = 21
SIZING = InterimSizing()
FAST, SLOW = 10, 30
PERCENTS = 95
GOAL = 0.8  # recorded next to the figure, never asserted


# --------------------------------------------------------------------------- data


def synthetic_bars(n: int, seed: int = 7, vol: float = 0.01,
                   start: str = "2000-01-03") -> pd.DataFrame:
    """Business-day OHLCV bars over a driftless Gaussian random walk of daily log returns.

    The same construction as ``tests/synthetic.py``: open, high, low and volume carry
    independent noise around the closes.
    """
    rng = np.random.default_rng(seed)
    log_returns = rng.normal(0.0, vol, n)
    close = 100.0 * np.exp(np.cumsum(log_returns))
    prev = np.concatenate([[100.0], close[:-1]])
    open_ = prev * np.exp(rng.normal(0.0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, 0.005, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, 0.005, n)))
    volume = np.round(1e6 * np.exp(rng.normal(0.0, 0.3, n)))
    index = pd.bdate_range(start, periods=n, name="date")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=index)


def ar1_predictions(index: pd.DatetimeIndex, seed: int = 11, phi: float = 0.95,
                    mean: float = 2.5e-4, sd: float = 5e-4) -> pd.Series:
    """Predicted ``HORIZON``-bar log returns that follow a stationary AR(1).

    With ~1% daily volatility the interim weight ``0.5 * mu / vol**2`` is about ``1000 * p``,
    so ``mean`` and ``sd`` put it near 0.25 +- 0.5: flat, partly long and fully long in turn,
    and moving enough from day to day that the strategy rebalances often, as a model's
    predictions make it do.
    """
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), len(index))
    p = np.empty(len(index))
    p[0] = eps[0]
    for t in range(1, len(index)):
        p[t] = phi * p[t - 1] + eps[t]
    return pd.Series(p + mean, index=index, name="prediction")


def sma_replica_predictions(close: pd.Series, fast: int = FAST, slow: int = SLOW,
                            level: float = 0.05) -> pd.Series:
    """``+level`` while SMA(fast) > SMA(slow) after their first cross, ``-level`` otherwise.

    ``+level`` drives the interim weight to its cap and ``-level`` to zero, so the strategy
    enters and exits on the crossover's bars, like the baseline.
    """
    above = (close.rolling(fast).mean() > close.rolling(slow).mean()).to_numpy()
    valid = np.flatnonzero(close.rolling(slow).mean().notna().to_numpy())
    long = above.copy()
    if valid.size:
        first = valid[0]
        changes = np.flatnonzero(above[first + 1:] != above[first:-1])
        first_cross = first + 1 + changes[0] if changes.size else len(above)
        long[:first_cross] = False
    return pd.Series(np.where(long, level, -level), index=close.index, name="prediction")


def weight_profile(bars: pd.DataFrame, predictions: pd.Series) -> dict:
    """Share of bars whose interim target weight is 0, strictly inside (0, max) and at max."""
    mu = to_daily_return(predictions.reindex(bars.index).to_numpy(), HORIZON)
    vol = realised_vol(bars["close"].to_numpy(), VOL_WINDOW)
    ok = np.isfinite(vol) & np.isfinite(mu)
    w = np.clip(SIZING.kelly_scale * mu[ok] / vol[ok] ** 2, 0.0, SIZING.max_weight)
    return {"flat": float(np.mean(w == 0.0)),
            "partial": float(np.mean((w > 0.0) & (w < SIZING.max_weight))),
            "capped": float(np.mean(w == SIZING.max_weight)),
            "mean_weight": float(np.mean(w)),
            "mean_abs_daily_change": float(np.mean(np.abs(np.diff(w))))}


# --------------------------------------------------------------------------- strategies


class _FillCounter:
    """Counts completed orders (a few attribute writes per fill; same cost in every case)."""

    def start(self) -> None:
        self.fills = 0

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.fills += 1


class SmaCross(_FillCounter, bt.Strategy):
    """backtrader's canonical SMA crossover: buy on an up-cross, close on a down-cross."""

    params = (("fast", FAST), ("slow", SLOW))

    def __init__(self) -> None:
        self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast),
                                      bt.ind.SMA(period=self.p.slow))

    def next(self) -> None:
        if not self.position:
            if self.cross[0] > 0:
                self.buy()
        elif self.cross[0] < 0:
            self.close()


class CountedEnsemble(_FillCounter, EnsembleStrategy):
    """:class:`EnsembleStrategy` with a fill count, so the report can show its order flow."""


# --------------------------------------------------------------------------- cases


def _cerebro(bars: pd.DataFrame, runonce: bool) -> bt.Cerebro:
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce, preload=True)
    cerebro.adddata(make_feed(bars, SYMBOL))
    configure_broker(cerebro, CASH, COMMISSION, SLIPPAGE)
    return cerebro


def run_sma(bars: pd.DataFrame, runonce: bool = True) -> int:
    """Baseline backtest; returns the number of fills."""
    cerebro = _cerebro(bars, runonce)
    cerebro.addsizer(bt.sizers.PercentSizer, percents=PERCENTS)
    cerebro.addstrategy(SmaCross)
    return cerebro.run()[0].fills


def run_ensemble(bars: pd.DataFrame, predictions: pd.Series, sizing: InterimSizing = SIZING,
                 runonce: bool = True) -> int:
    """The strategy wired as :func:`run_strategy` wires it, minus the recorder."""
    cerebro = _cerebro(bars, runonce)
    cerebro.addsizer(TargetWeightSizer)
    cerebro.addstrategy(CountedEnsemble, signals={SYMBOL: SeriesSignal(predictions)},
                        horizon=HORIZON, trade_start=None, sizing=sizing,
                        vol_window=VOL_WINDOW)
    return cerebro.run()[0].fills


def run_ensemble_recorded(bars: pd.DataFrame, predictions: pd.Series,
                          runonce: bool = True) -> int:
    """:func:`backtests.engine.run_strategy`, as users run it."""
    analysis = run_strategy({SYMBOL: bars}, {SYMBOL: SeriesSignal(predictions)},
                            horizon=HORIZON, trade_start=None, sizing=SIZING, cash=CASH,
                            commission=COMMISSION, slippage=SLIPPAGE, vol_window=VOL_WINDOW,
                            runonce=runonce)
    return sum(1 for row in analysis["orders"] if row["status"] == "filled")


@dataclass(frozen=True)
class Case:
    name: str
    mode: str  # "runonce" or "stream"
    run: Callable[[], int]
    baseline: str | None  # the case its ratio is taken against


def _time(run: Callable[[], int]) -> tuple[float, float, int]:
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    fills = run()
    return time.perf_counter() - wall0, time.process_time() - cpu0, fills


def _measure(cases: list[Case], rounds: int) -> dict[str, list[tuple[float, float, int]]]:
    """Warm each case up once, then time them in ``rounds`` interleaved rounds."""
    for case in cases:
        case.run()
    samples: dict[str, list[tuple[float, float, int]]] = {c.name: [] for c in cases}
    for _ in range(rounds):
        for case in cases:
            samples[case.name].append(_time(case.run))
    return samples


def _summarise(case: Case, samples: list[tuple[float, float, int]], n_bars: int) -> dict:
    walls = [s[0] for s in samples]
    cpus = [s[1] for s in samples]
    wall = float(np.median(walls))
    return {"name": case.name, "mode": case.mode, "baseline": case.baseline,
            "median_wall_s": wall, "median_cpu_s": float(np.median(cpus)),
            "bars_per_s": n_bars / wall, "fills": samples[-1][2],
            "wall_s": walls, "cpu_s": cpus}


def _ratios(rows: dict[str, dict]) -> list[dict]:
    out = []
    for row in rows.values():
        base = rows.get(row["baseline"]) if row["baseline"] else None
        if base is None:
            continue
        out.append({"name": f"{row['name']} / {base['name']}",
                    "throughput_ratio": base["median_wall_s"] / row["median_wall_s"],
                    "cpu_throughput_ratio": base["median_cpu_s"] / row["median_cpu_s"],
                    "goal": GOAL if row["name"] == "ensemble+recorder" else None})
    return out


def run(rounds: int = ROUNDS, stream_rounds: int = STREAM_ROUNDS, n_bars: int = N_BARS,
        ) -> dict:
    """Measure every case and return the machine-readable result."""
    bars = synthetic_bars(n_bars)
    predictions = ar1_predictions(bars.index)
    replica = sma_replica_predictions(bars["close"])
    capped = InterimSizing(max_weight=PERCENTS / 100, kelly_scale=SIZING.kelly_scale,
                           rebalance_band=SIZING.rebalance_band)
    batch = [
        Case("ensemble+recorder", "runonce",
             partial(run_ensemble_recorded, bars, predictions), "sma"),
        Case("ensemble", "runonce", partial(run_ensemble, bars, predictions), "sma"),
        Case("ensemble(sma-replica)", "runonce",
             partial(run_ensemble, bars, replica, capped), "sma"),
        Case("sma", "runonce", partial(run_sma, bars), None),
    ]
    stream = [
        Case("ensemble+recorder stream", "stream",
             partial(run_ensemble_recorded, bars, predictions, runonce=False), "sma stream"),
        Case("sma stream", "stream", partial(run_sma, bars, runonce=False), None),
    ]
    samples = _measure(batch, rounds)
    if stream_rounds > 0:
        samples |= _measure(stream, stream_rounds)
    rows = {c.name: _summarise(c, samples[c.name], n_bars)
            for c in batch + stream if c.name in samples}
    return {
        "name": NAME,
        "title": "EnsembleStrategy (precomputed predictions) vs backtrader SMA crossover",
        "n_bars": n_bars, "rounds": rounds, "stream_rounds": stream_rounds,
        "setup": {"cash": CASH, "commission": COMMISSION, "slippage": SLIPPAGE,
                  "horizon": HORIZON, "vol_window": VOL_WINDOW, "sma": [FAST, SLOW],
                  "sma_sizer": f"PercentSizer(percents={PERCENTS})",
                  "sizing": vars(SIZING)},
        "weights": {"ar1": weight_profile(bars, predictions),
                    "sma-replica": weight_profile(bars, replica)},
        "cases": list(rows.values()),
        "ratios": _ratios(rows),
    }
