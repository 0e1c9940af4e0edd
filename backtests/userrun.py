"""The results directory of a user's own cerebro run: the CLI's files, from any strategy.

A user adds :class:`strategies.analyzers.RunRecorder` to their cerebro, runs it, and hands the
strategy to :func:`write_results`.  The directory holds what a backtest's holds
(``docs/architecture.md``, "Results directory"): ``summary.json`` with the contract's keys
(:func:`backtests.results.build_summary`, the one summary), ``equity.csv``, ``orders.csv``,
``trades.csv``, ``config.yaml``, ``report.png`` and ``report.html``; and, when the signal is
made of vintages, ``vintages.json`` and ``leakage_audit.json``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd
import yaml
from loguru import logger
from pydantic import BaseModel

from backtests.plan import test_scores
from backtests.report import write_report
from backtests.research import bars_of
from backtests.results import (
    build_summary,
    equity_frame,
    orders_frame,
    raise_on_leakage,
    results_dir,
    write_json,
)
from ensemble_bt.errors import ConfigurationError, DataError
from models.signal import Signal
from models.targets import check_horizon, forward_log_return
from models.vintages import Vintage, leakage_audit
from strategies.analyzers import RunRecorder

TRADE_COLUMNS = ("symbol", "open_date", "close_date", "bars", "pnl", "pnl_net", "commission")


def recorder_of(strategy: bt.Strategy) -> RunRecorder:
    """The strategy's run recorder.

    Raises
    ------
    ConfigurationError
        The cerebro had no :class:`~strategies.analyzers.RunRecorder`.
    """
    if not isinstance(strategy, bt.Strategy):
        raise ConfigurationError(f"write_results takes the strategy that ran, not a "
                                 f"{type(strategy).__name__}: pass cerebro.run()[0]")
    found = [a for a in strategy.analyzers if isinstance(a, RunRecorder)]
    if not found:
        raise ConfigurationError("the strategy ran without a RunRecorder: add "
                                 "cerebro.addanalyzer(RunRecorder) before cerebro.run()")
    return found[0]


def on_dates(vintage: Vintage, dates: pd.DatetimeIndex) -> Vintage:
    """``vintage`` with its bar positions taken in ``dates``, for the leakage audit.

    A vintage knows its windows by date; its positions are those of the bars it was fitted on
    (walk-forward) or unknown (a bundle).  The first predicted bar, the last one and the bar
    where the last training label ends are looked up in ``dates``.
    """
    n_train = vintage.n_train if vintage.n_train is not None else len(vintage.spec.train_rows)
    spec = replace(vintage.spec, cutoff=int(dates.searchsorted(vintage.predict_start)),
                   predict_last=int(dates.searchsorted(vintage.predict_end, "right")) - 1,
                   train_rows=np.empty(0, dtype=np.int64))
    label_end = int(dates.searchsorted(vintage.train_end, "right")) - 1
    return replace(vintage, spec=spec, train_label_end=label_end, n_train=n_train)


def _plain(value: Any) -> Any:
    """A strategy parameter as YAML-safe data; objects (signals, bundles) by type name."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return f"<{type(value).__name__}>"


def run_config(strategy: bt.Strategy, symbol: str, horizon: int,
               eval_dates: pd.DatetimeIndex) -> dict[str, Any]:
    """What ``config.yaml`` records: the strategy class and parameters, and the period."""
    params = {name: _plain(getattr(strategy.params, name))
              for name in strategy.params._getkeys()}
    return {"strategy": f"{type(strategy).__module__}.{type(strategy).__qualname__}",
            "params": params, "symbol": symbol, "feeds": [d._name for d in strategy.datas],
            "horizon": horizon, "start": eval_dates[0].date().isoformat(),
            "end": eval_dates[-1].date().isoformat()}


def _eval_dates(recorded: pd.DataFrame, start: Any, end: Any) -> pd.DatetimeIndex:
    """Recorded dates from ``start`` (default: the first with a prediction) to ``end``."""
    dates = pd.DatetimeIndex(recorded.index)
    if start is None:
        predicted = dates[np.isfinite(recorded["prediction"].to_numpy(dtype=np.float64))]
        start = predicted[0] if len(predicted) else dates[0]
    keep = dates >= pd.Timestamp(start)
    if end is not None:
        keep &= dates <= pd.Timestamp(end)
    if keep.sum() < 2:
        raise ConfigurationError(f"the run has {int(keep.sum())} bars between start {start} and "
                                 f"end {end}; a summary needs two or more")
    return dates[keep].rename("date")


def _analysis(strategy: bt.Strategy, breaker: Any) -> dict[str, Any]:
    """The recorder's rows plus the breaker, financing and leverage figures of the summary."""
    analysis = recorder_of(strategy).get_analysis()
    breaker = breaker if breaker is not None else getattr(strategy, "breaker", None)
    broker = strategy.broker
    return {**analysis, "breaker_trips": int(getattr(breaker, "trips", 0)),
            "financing_costs": float(getattr(broker, "financing_paid", 0.0)),
            # Only the project's FinancedBroker tracks gross leverage: null elsewhere.
            "max_gross_leverage": getattr(broker, "max_gross_leverage", None)}


def _audit(signal: Signal | None, equity: pd.DataFrame,
           dates: pd.DatetimeIndex) -> tuple[list[Vintage], dict[str, Any] | None]:
    """The signal's vintages on ``dates`` and the audit of the bars that carry a prediction."""
    vintages = [on_dates(v, dates) for v in getattr(signal, "vintages", [])]
    predicted = equity.index[equity["prediction"].notna().to_numpy()]
    if not vintages:
        return [], None
    if not len(predicted):
        logger.warning("no bar of the run carries a prediction: is the signal's "
                       "EnsemblePredictor on the strategy's first feed? No leakage audit")
        return vintages, None
    audit = leakage_audit(vintages, predicted, dates, None)
    raise_on_leakage(audit)
    return vintages, audit


def write_results(strategy: bt.Strategy, ohlcv: pd.DataFrame | str, *, horizon: int,
                  out: str | Path = "results", signal: Signal | None = None,
                  start: date | str | None = None, end: date | str | None = None,
                  symbol: str | None = None, breaker: Any = None,
                  kind: str = "backtest") -> Path:
    """Write the results directory of a finished cerebro run.

    Parameters
    ----------
    strategy : bt.Strategy
        The strategy ``cerebro.run()`` returned; its cerebro had a
        :class:`~strategies.analyzers.RunRecorder`.
    ohlcv : pandas.DataFrame | str
        The bars of the strategy's first feed (or a dataset name or path): buy-and-hold and
        the realised returns the prediction is scored against.
    horizon : int
        The signal's label horizon: ``actual`` is the log return over it.
    out : str | Path
        Parent folder of ``<kind>_<SYMBOL>_<UTC stamp>/``.
    signal : Signal | None
        The signal the strategy traded; when it is made of vintages (``walk_forward``,
        ``load_signal``), ``vintages.json`` and the leakage audit are written and a failed
        audit raises.  ``n_vintages`` and ``leakage_audit`` are null otherwise.
    start, end : date | str | None
        The evaluation period the summary covers; by default from the first bar with a
        prediction (the first recorded bar when none has one) to the last recorded bar.
    symbol : str | None
        The results' symbol; default ``ohlcv.attrs["symbol"]``, else the first feed's name.
    breaker : object | None
        Anything with ``trips`` (a :class:`~sizing.drawdown.DrawdownBreaker`); default the
        strategy's ``breaker`` attribute, if it has one.
    kind : str
        The first part of the directory's name.

    Returns
    -------
    Path
        The results directory, which appears only once complete.

    Raises
    ------
    ConfigurationError
        Not a strategy that ran with a recorder, or fewer than two bars in the period.
    DataError
        ``ohlcv`` lacks bars the strategy ran on.
    LeakageError
        A bar was predicted by a vintage trained on a label that ended after it.
    """
    horizon = check_horizon(horizon)
    bars = bars_of(ohlcv, "write_results(ohlcv)")
    analysis = _analysis(strategy, breaker)
    if not analysis["bars"]:
        raise ConfigurationError("the RunRecorder recorded no bar: run the cerebro first")
    recorded = equity_frame(analysis["bars"], pd.DatetimeIndex(
        pd.to_datetime([b[0] for b in analysis["bars"]])).normalize())
    missing = recorded.index.difference(bars.index)
    if len(missing):
        raise DataError(f"write_results(ohlcv) lacks {len(missing)} bars the strategy ran on "
                        f"(first {missing[0].date()}); pass the bars of its first feed")
    eval_dates = _eval_dates(recorded, start, end)
    symbol = symbol or str(bars.attrs.get("symbol") or strategy.datas[0]._name or "DATA")
    if len(strategy.datas) > 1:
        logger.info("{} feeds: buy-and-hold, direction accuracy and IC are {}'s",
                    len(strategy.datas), symbol)
    equity = equity_frame(analysis["bars"], eval_dates)
    first, last = eval_dates[0].date().isoformat(), eval_dates[-1].date().isoformat()
    orders = orders_frame(analysis["orders"])
    orders = orders[(orders["decided"] >= first) & (orders["decided"] <= last)]
    trades = pd.DataFrame(analysis["trades"], columns=list(TRADE_COLUMNS))
    trades = trades[(trades["close_date"] >= first) & (trades["close_date"] <= last)]
    vintages, audit = _audit(signal, equity, bars.index)
    actual = forward_log_return(bars["close"], horizon).reindex(eval_dates)
    close = bars["close"].reindex(eval_dates)
    config = run_config(strategy, symbol, horizon, eval_dates)
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    summary = build_summary(
        equity, close, actual, orders, analysis, symbol=symbol, horizon=horizon,
        n_vintages=len(vintages) if audit else None,
        leakage_audit=audit["verdict"] if audit else None, config_hash=config_hash)
    with results_dir(out, kind, symbol) as pending:
        folder = pending.scratch
        equity.to_csv(folder / "equity.csv", index_label="date", float_format="%.10g")
        orders.to_csv(folder / "orders.csv", index=False)
        trades.to_csv(folder / "trades.csv", index=False)
        if audit:
            write_json(folder / "vintages.json", {"horizon": horizon, "vintages": [
                {**v.record(), **test_scores(v, equity["prediction"], actual)}
                for v in vintages]})
            write_json(folder / "leakage_audit.json", audit)
        write_json(folder / "summary.json", summary)
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        report = equity.assign(benchmark=equity["equity"].iloc[0] * close / close.iloc[0])
        write_report(folder, report, summary)
    logger.info("{}: return {:+.2%} vs buy-and-hold {:+.2%}; results in {}", symbol,
                summary["strategy_return"], summary["buy_hold_return"], pending.final)
    return pending.final
