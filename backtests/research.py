"""Walk-forward vintages from Python, without a cerebro: a signal and its out-of-sample table.

:func:`walk_forward` fits the same vintages a backtest fits (:mod:`backtests.runner`: the
schedule, the stack, the leakage audit) and returns them as a :class:`WalkForward`: the
:class:`~models.signal.VintageSignal` to hand to an
:class:`~strategies.predictor.EnsemblePredictor`, and a table of every out-of-sample prediction
beside the return it predicted, for research in pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtests.config import BacktestConfig, load_config
from backtests.datasets import load_dataset, validate_ohlcv
from backtests.plan import resolve_period, test_scores, train_vintages
from backtests.results import raise_on_leakage
from ensemble_bt.errors import ConfigurationError
from models.metrics import direction_accuracy, information_coefficient
from models.signal import VintageSignal
from models.targets import forward_log_return
from models.vintages import Vintage, leakage_audit

NO_BUNDLE = ("walk_forward fits vintages and takes no bundle; load a bundle with "
             "load_signal(bundle, horizon=...)")


@dataclass(frozen=True)
class WalkForward:
    """Fitted walk-forward vintages and their out-of-sample predictions.

    Attributes
    ----------
    signal : VintageSignal
        The vintages as a signal: each bar of the evaluation period is predicted by the one
        vintage whose every training label ended before it; other bars predict NaN.
    predictions : pandas.DataFrame
        One row per evaluation bar, indexed by ``date``: ``prediction`` (log return over the
        horizon), ``actual`` (the realised one; NaN for the last ``horizon`` bars) and
        ``vintage`` (the index of the vintage that predicted it).
    vintages : list[Vintage]
        The fitted vintages, in order.
    audit : dict
        The leakage audit of the predicted bars (:func:`models.vintages.leakage_audit`); its
        ``verdict`` is always ``"pass"``, as a failure raises.
    config : BacktestConfig
        The resolved configuration (horizon, retrain_every, models, ...).
    """

    signal: VintageSignal
    predictions: pd.DataFrame
    vintages: list[Vintage]
    audit: dict[str, Any]
    config: BacktestConfig

    @property
    def ic(self) -> float:
        """Spearman IC of every out-of-sample prediction with its realised return."""
        return information_coefficient(self.predictions["prediction"].to_numpy(),
                                       self.predictions["actual"].to_numpy())

    @property
    def direction_accuracy(self) -> float:
        """Share of out-of-sample predictions with the sign of the realised return."""
        return direction_accuracy(self.predictions["prediction"].to_numpy(),
                                  self.predictions["actual"].to_numpy())

    def by_vintage(self) -> pd.DataFrame:
        """One row per vintage: its windows and its out-of-sample scores.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``vintage``: ``train_start``, ``train_end`` (the bar where its last
            training label ends), ``predict_start``, ``predict_end``, ``n_train``,
            ``holdout_dir_acc`` (its own validation accuracy), ``test_dir_acc`` and
            ``test_ic`` (on the bars it predicted) and ``wfe`` (walk-forward efficiency, %).
        """
        rows = []
        for v in self.vintages:
            rows.append({"vintage": v.spec.index, "train_start": v.train_start,
                         "train_end": v.train_end, "predict_start": v.predict_start,
                         "predict_end": v.predict_end, "n_train": len(v.spec.train_rows),
                         "holdout_dir_acc": v.holdout_dir_acc,
                         **test_scores(v, self.predictions["prediction"],
                                       self.predictions["actual"])})
        return pd.DataFrame(rows).set_index("vintage")


def resolve_config(config: BacktestConfig | str | Path | None,
                   overrides: dict[str, Any]) -> BacktestConfig:
    """A validated :class:`BacktestConfig`: ``config`` (an object, a YAML path or the
    defaults) with ``overrides`` (its keys) laid over it.

    Raises
    ------
    ConfigurationError
        An unknown key or a value out of range, named as ``load_config`` names it.
    """
    if isinstance(config, BacktestConfig):
        return load_config(None, {**config.model_dump(), **overrides})
    return load_config(config, overrides)


def bars_of(ohlcv: pd.DataFrame | str, source: str) -> pd.DataFrame:
    """Validated bars: a dataset name or path for :func:`load_dataset`, or a frame to check.

    Raises
    ------
    DataError
        The dataset cannot be loaded, or the frame breaks a rule of
        :func:`backtests.datasets.validate_ohlcv`.
    """
    if isinstance(ohlcv, str):
        return load_dataset(ohlcv)
    validate_ohlcv(ohlcv, source)
    return ohlcv


def walk_forward(ohlcv: pd.DataFrame | str, config: BacktestConfig | str | Path | None = None,
                 *, progress: bool = False, **overrides: Any) -> WalkForward:
    """Fit walk-forward vintages over ``ohlcv`` and predict its evaluation bars out of sample.

    Vintage ``k`` trains on every row whose label ends at least ``embargo`` bars before its
    cutoff, then predicts the ``retrain_every`` bars from the cutoff on: the first cutoff is
    ``start`` (default: the bar with ``min_train`` bars of history).

    Parameters
    ----------
    ohlcv : pandas.DataFrame | str
        Daily bars (``DatetimeIndex``; ``open, high, low, close, volume``), or a dataset for
        :func:`~backtests.datasets.load_dataset` (``"AAPL"``, a CSV or Parquet path).
    config : BacktestConfig | str | Path | None
        A config object, a YAML file such as ``configs/backtest.yaml``, or None for the
        defaults.  Its ``data`` is ignored: the bars are ``ohlcv``.
    progress : bool
        Show a progress bar over the vintages.
    **overrides
        Config keys laid over ``config``: ``horizon``, ``retrain_every``, ``min_train``,
        ``embargo``, ``models``, ``start``, ``end``, ``seed``, ``stack``, ...

    Returns
    -------
    WalkForward
        ``.signal``, ``.predictions``, ``.vintages``, ``.audit``, ``.config``, ``.ic`` and
        ``.by_vintage()``.

    Raises
    ------
    ConfigurationError
        A bad key or value, ``bundle`` set (use :func:`models.bundle_signal.load_signal`), or
        too little history for ``min_train``.
    DataError
        Bars that break a validation rule, or too few complete rows to train a vintage.

    Examples
    --------
    >>> wf = walk_forward("AAPL", horizon=5, retrain_every=252, models=("xgb",))  # doctest: +SKIP
    >>> wf.by_vintage()[["predict_start", "test_ic"]]  # doctest: +SKIP
    """
    bars = bars_of(ohlcv, "walk_forward(ohlcv)")
    symbol = str(bars.attrs.get("symbol") or "DATA")
    # Checked before the config too: with a bundle, load_config refuses the training keys
    # beside it, in words meant for command-line flags.
    if overrides.get("bundle") is not None:
        raise ConfigurationError(NO_BUNDLE)
    cfg = resolve_config(config, {**overrides, "data": symbol})
    if cfg.bundle is not None:
        raise ConfigurationError(NO_BUNDLE)
    period = resolve_period(bars.index, cfg)
    # Nothing after the evaluation period exists for this run, as in a backtest.
    bars = bars.iloc[: period.end + 1]
    vintages = train_vintages(bars, period, cfg, progress=progress)
    signal = VintageSignal(vintages)
    dates = bars.index[period.start:]
    table = pd.DataFrame({
        "prediction": signal.predict_batch(bars)[period.start:],
        "actual": forward_log_return(bars["close"], cfg.horizon).to_numpy()[period.start:],
        "vintage": np.full(len(dates), -1, dtype=np.int64),
    }, index=dates.rename("date"))
    for v in vintages:
        table.loc[v.predict_start:v.predict_end, "vintage"] = v.spec.index
    audit = leakage_audit(vintages, dates[table["prediction"].notna().to_numpy()], bars.index,
                          cfg.embargo)
    raise_on_leakage(audit)
    return WalkForward(signal, table, vintages, audit, cfg)
