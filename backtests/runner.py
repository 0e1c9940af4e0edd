"""One walk-forward backtest of one symbol, from config to results directory.

Several symbols are a portfolio, run by :mod:`backtests.portfolio`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from loguru import logger

from backtests.config import BacktestConfig, check_bundle_config
from backtests.datasets import load_dataset
from backtests.engine import run_strategy
from backtests.fastpath import fast_inputs, run_fast
from backtests.plan import Period, fit_plan, plan_vintages, resolve_period, test_scores
from backtests.portfolio import run_portfolio
from backtests.report import write_report
from backtests.results import (
    build_summary,
    equity_frame,
    orders_frame,
    raise_on_leakage,
    results_dir,
    write_json,
)
from backtests.universe import check_one_symbol, is_portfolio
from ensemble_bt.errors import ConfigurationError
from models.artifacts import load_bundle, training_end
from models.features import FEATURE_NAMES, LOOKBACK
from models.signal import Signal, VintageSignal
from models.targets import forward_log_return
from models.vintages import (
    Vintage,
    fixed_vintage,
    leakage_audit,
)
from sizing.decisions import DECISION_FIELDS


def _write_outputs(folder: Path, cfg: BacktestConfig, ohlcv: pd.DataFrame, period: Period,
                   vintages: list[Vintage], analysis: dict) -> dict:
    dates = ohlcv.index
    eval_dates = dates[period.start:period.end + 1]
    equity = equity_frame(analysis["bars"], eval_dates)
    orders = orders_frame(analysis["orders"])
    trades = pd.DataFrame(analysis["trades"], columns=[
        "symbol", "open_date", "close_date", "bars", "pnl", "pnl_net", "commission"])
    predicted = equity.index[equity["prediction"].notna()]
    audit = leakage_audit(vintages, predicted, dates, None if cfg.bundle else cfg.embargo)
    raise_on_leakage(audit)
    actual = forward_log_return(ohlcv["close"], cfg.horizon).reindex(eval_dates)
    close = ohlcv["close"].reindex(eval_dates)
    summary = build_summary(
        equity, close, actual, orders, analysis, symbol=ohlcv.attrs.get("symbol", cfg.data),
        horizon=cfg.horizon, n_vintages=len(vintages), leakage_audit=audit["verdict"],
        config_hash=cfg.config_hash())

    equity.to_csv(folder / "equity.csv", index_label="date", float_format="%.10g")
    orders.to_csv(folder / "orders.csv", index=False)
    trades.to_csv(folder / "trades.csv", index=False)
    pd.DataFrame(analysis["decisions"], columns=DECISION_FIELDS).to_csv(
        folder / "decisions.csv", index=False, float_format="%.10g")
    write_json(folder / "vintages.json", {
        "horizon": cfg.horizon, "embargo": cfg.embargo, "retrain_every": cfg.retrain_every,
        "min_train": cfg.min_train, "stack": cfg.stack.model_dump(),
        "vintages": [{**v.record(), **test_scores(v, equity["prediction"], actual)}
                     for v in vintages]})
    write_json(folder / "leakage_audit.json", audit)
    write_json(folder / "summary.json", summary)
    resolved = cfg.model_copy(update={"start": eval_dates[0].date(), "end": eval_dates[-1].date()})
    (folder / "config.yaml").write_text(
        yaml.safe_dump(resolved.model_dump(mode="json"), sort_keys=False))
    report = equity.assign(benchmark=cfg.initial_cash * close / close.iloc[0])
    write_report(folder, report, summary)
    return summary


def bundle_vintage(ohlcv: pd.DataFrame, cfg: BacktestConfig,
                   ) -> tuple[Vintage, Period, BacktestConfig]:
    """The fixed bundle as the run's only vintage, predicting after its training window.

    Also returns ``cfg`` with the bundle's learners and stack, so that the results directory
    describes what ran (:func:`backtests.config.check_bundle_config`).
    """
    assert cfg.bundle is not None
    model, manifest = load_bundle(Path(cfg.bundle), feature_names=FEATURE_NAMES,
                                  horizon=cfg.horizon)
    cfg = check_bundle_config(cfg, manifest)
    dates, train_end = ohlcv.index, training_end(manifest, cfg.bundle)
    label_end = int(dates.searchsorted(train_end, "right")) - 1
    if cfg.start is not None and pd.Timestamp(cfg.start) <= train_end:
        raise ConfigurationError(
            f"--start {cfg.start} overlaps the bundle's training window (labels through "
            f"{train_end.date()}); a bundle is backtested out of sample only: use a --start "
            f"after {train_end.date()}")
    start = label_end + 1 if cfg.start is None else int(dates.searchsorted(
        pd.Timestamp(cfg.start)))
    start = max(start, LOOKBACK - 1)
    end = len(dates) - 1 if cfg.end is None else int(
        dates.searchsorted(pd.Timestamp(cfg.end), "right")) - 1
    if end <= start:
        raise ConfigurationError(
            f"{cfg.data} has fewer than two bars after the bundle's training window (labels "
            f"through {train_end.date()}); backtest it on later data")
    vintage = fixed_vintage(model, manifest, str(cfg.bundle), horizon=cfg.horizon,
                            predict_start=dates[start], predict_end=dates[end],
                            positions=(start, end, label_end))
    return vintage, Period(start, end), cfg


def simulate_run(cfg: BacktestConfig, ohlcv: pd.DataFrame, signal: Signal, symbol: str,
                 trade_start: date) -> dict:
    """Trade one symbol on the engine ``cfg.sim`` names; both return the same analysis."""
    if cfg.sim == "fast":
        predictions, volatility, prior = fast_inputs(ohlcv, signal, cfg.sizing.vol_window)
        return run_fast(ohlcv, predictions, prior, horizon=cfg.horizon, trade_start=trade_start,
                        sizing=cfg.sizing, cash=cfg.initial_cash, commission=cfg.commission,
                        slippage=cfg.slippage, volatility=volatility, symbol=symbol)
    return run_strategy({symbol: ohlcv}, {symbol: signal}, horizon=cfg.horizon,
                        trade_start=trade_start, sizing=cfg.sizing, cash=cfg.initial_cash,
                        commission=cfg.commission, slippage=cfg.slippage)


def run_backtest(cfg: BacktestConfig, progress: bool = True) -> Path:
    """Run a walk-forward (or fixed-bundle) backtest; returns its results directory.

    ``--data`` with several symbols (``AAPL,MSFT``) is one account over all of them
    (:func:`backtests.portfolio.run_portfolio`).
    """
    if is_portfolio(cfg.data):
        return run_portfolio(cfg, progress=progress)
    check_one_symbol(cfg)
    ohlcv = load_dataset(cfg.data)
    fixed, plan = None, None
    if cfg.bundle:
        fixed, period, cfg = bundle_vintage(ohlcv, cfg)
    else:
        period = resolve_period(ohlcv.index, cfg)
    # Nothing after the evaluation period exists for this run, not even for features.
    ohlcv = ohlcv.iloc[: period.end + 1]
    if fixed is None:
        plan = plan_vintages(ohlcv, period, cfg)  # data too short fails here, before writing
    symbol = str(ohlcv.attrs.get("symbol", "DATA"))
    with results_dir(cfg.out, "backtest", symbol) as pending:
        logger.info("backtest {} {}..{} ({} bars), horizon {}", symbol,
                    ohlcv.index[period.start].date(), ohlcv.index[period.end].date(),
                    period.end - period.start + 1, cfg.horizon)
        vintages = [fixed] if plan is None else fit_plan(plan, cfg, progress=progress)
        analysis = simulate_run(cfg, ohlcv, VintageSignal(vintages), symbol,
                                trade_start=ohlcv.index[period.start].date())
        summary = _write_outputs(pending.scratch, cfg, ohlcv, period, vintages, analysis)
    logger.info("return {:+.2%} vs buy-and-hold {:+.2%}; direction accuracy {:.3f}, IC {:.3f}; "
                "leakage audit {}", summary["strategy_return"], summary["buy_hold_return"],
                np.nan_to_num(summary["direction_accuracy"]), np.nan_to_num(summary["ic"]),
                summary["leakage_audit"])
    return pending.final
