"""The robustness batch over universes: each (universe, window) trains once, each (cost,
sizing) cell is a portfolio backtest of the universe, on the grid's ``sim`` (the fast path
replays backtrader exactly).

A cell equals ``ensemble-bt backtest --data A,B --start FIRST --end LAST --commission COST
--slippage 0 --sim SIM`` with the grid's model, sizing and ``portfolio:`` keys: the same signals
(:func:`backtests.portfolio_signals.signals_for`), period
(:func:`backtests.universe.resolve_portfolio_period`) and engine, fed from cached predictions.
Predictions are cached per (universe, window, model config): the key covers every symbol's
bars, the first evaluation session, the prediction keys plus ``model_scope`` and ``target``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from loguru import logger

from backtests.config import BacktestConfig
from backtests.datasets import data_hash, load_datasets
from backtests.robustness.cache import (
    PredictionCache,
    UniversePredictions,
    load_universe,
    save_universe,
    universe_cache_key,
)
from backtests.robustness.config import RobustnessConfig, Window
from backtests.robustness.executors import LocalExecutor, RayExecutor
from backtests.robustness.tasks import Cell, CellResult
from backtests.robustness.universe_tasks import (
    UniverseGroup,
    simulate_universe_cells,
    train_universe,
)
from backtests.robustness.universes import universe_label
from backtests.robustness.windows import window_period
from backtests.store import expand_specs
from backtests.universe import (
    PortfolioPeriod,
    check_portfolio,
    resolve_portfolio_period,
    slices,
)
from ensemble_bt.errors import ConfigurationError, DataError
from ensemble_bt.yamlio import short_repr
from sizing.config import PortfolioConfig


@dataclass(frozen=True)
class PlannedUniverse:
    """One (universe, window) before training: each symbol's bars up to its last evaluation
    bar, and the portfolio period."""

    specs: tuple[str, ...]
    symbol: str  # the universe's label
    window: Window
    frames: dict[str, pd.DataFrame]
    period: PortfolioPeriod
    key: str
    cache_path: Path

    @property
    def eval_dates(self) -> pd.DatetimeIndex:
        return self.period.dates

    def cell_config(self, base: BacktestConfig, sim: str) -> BacktestConfig:
        """The ``backtest --data A,B --sim SIM`` config of this (universe, window)."""
        return base.model_copy(update={
            "data": ",".join(self.specs), "start": self.period.dates[0].date(),
            "end": self.period.dates[-1].date(), "sim": sim})


def universe_model_hash(base: BacktestConfig, prediction_hash: str) -> str:
    """The model part of a universe's cache key: the prediction keys, scope and target."""
    text = f"{prediction_hash}|{base.model_scope}|{base.target}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_universes(cfg: RobustnessConfig) -> list[PlannedUniverse]:
    """Load every universe and resolve every window: all input checks, nothing written.

    Raises
    ------
    DataError, ConfigurationError
        A name that cannot be loaded, two names of one symbol, a ``portfolio:`` block that
        does not fit a universe, or a window outside a symbol's data.
    """
    assert cfg.universes is not None
    cache = PredictionCache(cfg.cache_dir)
    model_hash = universe_model_hash(cfg.base, cfg.prediction_hash())
    planned = []
    for n, names in enumerate(cfg.universes, start=1):
        specs = tuple(expand_specs(list(names)))
        try:
            frames = load_datasets(specs, flag="the universe")
            check_portfolio(cfg.base.portfolio or PortfolioConfig(), list(frames))
        except (ConfigurationError, DataError) as exc:
            raise type(exc)(f"--universes: universe {n} ({short_repr(','.join(names), 80)})"
                            f": {exc}") from None
        label = universe_label(list(frames))
        for window in cfg.windows:
            for spec, frame in zip(specs, frames.values(), strict=True):
                window_period(frame, window, cfg.base.min_train, spec)
            bounded = cfg.base.model_copy(update={"start": window.start_date,
                                                  "end": window.end_date})
            period = resolve_portfolio_period(frames, bounded)
            # Nothing after the evaluation period exists for this run, not even for features.
            cut = {s: f.iloc[:period.periods[s].end + 1] for s, f in frames.items()}
            key = universe_cache_key([data_hash(f) for f in cut.values()], period.dates[0],
                                     model_hash)
            planned.append(PlannedUniverse(specs, label, window, cut, period, key,
                                           cache.path(f"U-{label}"[:60], window.label, key)))
    return planned


def universe_predictions(cfg: RobustnessConfig, planned: list[PlannedUniverse],
                         pool: LocalExecutor | RayExecutor,
                         ) -> tuple[list[UniversePredictions], int]:
    """Cached predictions where valid; train the rest (one task each) and cache them."""
    found = [load_universe(p.cache_path, p.key, {s: f.index for s, f in p.frames.items()})
             for p in planned]
    missing = [i for i, hit in enumerate(found) if hit is None]
    logger.info("predictions: {} of {} (universe, window) pairs from the cache, training {}",
                len(planned) - len(missing), len(planned), len(missing))
    # A pooled fit inside a pool's worker fits in that process: identical for any count.
    train_cfg = cfg.base.model_copy(update={"workers": 1})
    trained = pool.map(train_universe,
                       [(planned[i].frames, planned[i].period, train_cfg) for i in missing],
                       desc="training", unit="window")
    for i, fresh in zip(missing, trained, strict=True):
        save_universe(planned[i].cache_path, planned[i].key, fresh)
        found[i] = fresh
    return found, len(missing)  # type: ignore[return-value]


def _cells(cfg: RobustnessConfig, p: PlannedUniverse) -> list[Cell]:
    single = p.cell_config(cfg.base, cfg.sim)
    cells = []
    for cost in cfg.costs:
        for label, overrides in cfg.sizing_cells():
            sizing = cfg.sizing_for(overrides)
            hashed = single.model_copy(update={"commission": cost, "slippage": 0.0,
                                               "sizing": sizing})
            cells.append(Cell(cost, label, sizing, hashed.config_hash()))
    return cells


def simulate_universes(cfg: RobustnessConfig, planned: list[PlannedUniverse],
                       predictions: list[UniversePredictions],
                       pool: LocalExecutor | RayExecutor, workers: int,
                       ) -> list[CellResult]:
    """Every cell of every (universe, window), several per task, in submission order."""
    per_group = [_cells(cfg, p) for p in planned]
    size = max(1, math.ceil(sum(map(len, per_group)) / (4 * workers)))
    portfolio = cfg.base.portfolio or PortfolioConfig()
    tasks = []
    for p, preds, cells in zip(planned, predictions, per_group, strict=True):
        group = pool.share(UniverseGroup(p.symbol, p.window.label, p.frames, p.period, preds,
                                         cfg.base.horizon, cfg.base.initial_cash, portfolio,
                                         slices(portfolio, list(p.frames))))
        tasks += [(group, cells[i:i + size], cfg.sim) for i in range(0, len(cells), size)]
    batches = pool.map(simulate_universe_cells, tasks, desc="cells", unit="batch")
    return [result for batch in batches for result in batch]
