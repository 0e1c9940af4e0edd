"""One walk-forward backtest of one account over several symbols (``--data AAPL,MSFT,...``).

The same :class:`strategies.strategy.EnsembleStrategy` as one symbol trades every symbol's
signal (:func:`backtests.portfolio_signals.signals_for`) on the union of their sessions; the
results directory ``<out>/backtest_<AAPL-MSFT-...|PORTFOLIO_n>_<stamp>/`` holds the
contract's files for the account plus ``symbols.csv`` and ``weights.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from loguru import logger

from backtests.config import BacktestConfig
from backtests.engine import run_strategy
from backtests.fastportfolio import run_fast_portfolio
from backtests.plan import test_scores
from backtests.portfolio_results import (
    audit_symbols,
    baseline_panels,
    benchmark_curve,
    cross_section,
    decision_frame,
    held_panel,
    momentum_verdict,
    pooled_quality,
    portfolio_summary,
    prediction_panels,
    symbol_table,
    weights_frame,
)
from backtests.portfolio_signals import PortfolioSignals, signals_for
from backtests.report import write_report
from backtests.results import (
    build_summary,
    equity_frame,
    orders_frame,
    raise_on_leakage,
    results_dir,
    write_json,
)
from backtests.universe import (
    PortfolioPeriod,
    load_universe,
    portfolio_label,
    resolve_portfolio_period,
    slices,
)
from sizing.config import PortfolioConfig
from sizing.decisions import DECISION_FIELDS


def run_portfolio(cfg: BacktestConfig, progress: bool = True) -> Path:
    """Run a walk-forward backtest of one account over ``cfg.data``'s symbols.

    Every input is checked before the results directory exists: symbols that cannot be
    loaded or are listed twice, the ``portfolio:`` block against them, and each symbol's
    history.

    Returns
    -------
    Path
        The results directory.
    """
    frames = load_universe(cfg)
    period = resolve_portfolio_period(frames, cfg)
    # Nothing after the evaluation period exists for this run, not even for features.
    frames = {s: f.iloc[:period.periods[s].end + 1] for s, f in frames.items()}
    portfolio = cfg.portfolio or PortfolioConfig()
    slice_of = slices(portfolio, list(frames))
    label = portfolio_label(list(frames))
    with results_dir(cfg.out, "backtest", label) as pending:
        trained = signals_for(frames, period, cfg, progress=progress)
        signals = trained.signals
        logger.info("backtest {} ({} symbols) {}..{} ({} sessions), horizon {}, {}", label,
                    len(frames), period.dates[0].date(), period.dates[-1].date(),
                    len(period.dates), cfg.horizon, portfolio.mode)
        # --sim fast replays this very run on the numba kernel (backtests.fastportfolio).
        engine = run_fast_portfolio if cfg.sim == "fast" else run_strategy
        analysis = engine(frames, signals, horizon=cfg.horizon,
                          trade_start=period.dates[0].date(), sizing=cfg.sizing,
                          cash=cfg.initial_cash, commission=cfg.commission,
                          slippage=cfg.slippage, allocations=slice_of, portfolio=portfolio)
        summary = write_portfolio(pending.scratch, cfg, frames, period, trained, analysis,
                                  slice_of, label)
    logger.info("return {:+.2%} vs equal-weight buy-and-hold {:+.2%}; rank IC {:.4f} "
                "(momentum_63 {:.4f}, reversal_5 {:.4f}): {}; leakage audit {}",
                summary["strategy_return"], summary["benchmark_return"],
                *(np.nan_to_num(v) for v in (summary["rank_ic"],
                                             *summary["baseline_rank_ic"].values())),
                momentum_verdict(_number(summary["rank_ic"]),
                                 {k: _number(v) for k, v in summary["baseline_rank_ic"].items()}),
                summary["leakage_audit"])
    return pending.final


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def vintage_records(trained: PortfolioSignals, pred: pd.DataFrame,
                    actual: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``vintages.json``: the pooled fit's, or each symbol's with its scores."""
    if trained.pooled is not None:
        return list(trained.pooled.vintages)
    return [{"symbol": s, **v.record(), **test_scores(v, pred[s], actual[s])}
            for s, signal in trained.signals.items() for v in getattr(signal, "vintages", [])]


def write_portfolio(folder: Path, cfg: BacktestConfig, frames: Mapping[str, pd.DataFrame],
                    period: PortfolioPeriod, trained: PortfolioSignals, analysis: dict,
                    slice_of: Mapping[str, float], label: str) -> dict[str, Any]:
    """Write a portfolio's results directory into ``folder``; returns its summary.

    Raises
    ------
    LeakageError
        The audit of some (date, symbol) prediction failed: nothing is written.
    """
    decisions = decision_frame(analysis["decisions"])
    pred, actual = prediction_panels(decisions, frames, cfg.horizon)
    audit = (trained.pooled.audit if trained.pooled is not None
             else audit_symbols(trained.signals, pred, frames, cfg.embargo))
    raise_on_leakage(audit)
    equity = equity_frame(analysis["bars"], period.dates)
    # One prediction per account bar: the mean of that session's decided predictions.
    equity["prediction"] = pred.mean(axis=1).reindex(period.dates)
    orders = orders_frame(analysis["orders"])
    benchmark = benchmark_curve(frames, period, cfg.initial_cash)
    cross = cross_section(pred, actual, baseline_panels(frames, pred))
    records = vintage_records(trained, pred, actual)
    base = build_summary(
        equity, benchmark, actual.mean(axis=1), orders, analysis, symbol=label,
        horizon=cfg.horizon, n_vintages=len(records),
        leakage_audit=audit["verdict"], config_hash=cfg.config_hash(),
        buy_hold=float(benchmark.iloc[-1] / cfg.initial_cash - 1.0),
        quality=pooled_quality(pred, actual))
    summary = portfolio_summary(base, {"symbols": list(frames),
                                       "benchmark_return": base["buy_hold_return"], **cross})
    weights = weights_frame(decisions, slice_of)
    symbols = symbol_table(decisions, orders, frames, pred, actual, slice_of, cfg.initial_cash)

    equity.to_csv(folder / "equity.csv", index_label="date", float_format="%.10g")
    orders.to_csv(folder / "orders.csv", index=False)
    pd.DataFrame(analysis["trades"], columns=[
        "symbol", "open_date", "close_date", "bars", "pnl", "pnl_net", "commission"]).to_csv(
        folder / "trades.csv", index=False)
    decisions.assign(date=decisions["date"].dt.date).to_csv(
        folder / "decisions.csv", index=False, float_format="%.10g", columns=DECISION_FIELDS)
    weights.to_csv(folder / "weights.csv", index=False, float_format="%.10g")
    symbols.to_csv(folder / "symbols.csv", index=False, float_format="%.10g")
    write_json(folder / "vintages.json", {
        "horizon": cfg.horizon, "embargo": cfg.embargo, "retrain_every": cfg.retrain_every,
        "min_train": cfg.min_train, "stack": cfg.stack.model_dump(),
        "model_scope": cfg.model_scope, "target": cfg.target,
        "vintages": records})
    write_json(folder / "leakage_audit.json", audit)
    write_json(folder / "summary.json", summary)
    resolved = cfg.model_copy(update={"start": period.dates[0].date(),
                                      "end": period.dates[-1].date()})
    (folder / "config.yaml").write_text(
        yaml.safe_dump(resolved.model_dump(mode="json"), sort_keys=False))
    write_report(folder, equity.assign(benchmark=benchmark), summary,
                 weights=held_panel(weights, period.dates, list(frames)), symbols=symbols,
                 note=momentum_verdict(cross["rank_ic"], cross["baseline_rank_ic"]))
    return summary
