"""The public API (``ensemble_bt.__all__``): cheap to import, and each capability in a user's
own script behaves as the CLI's pipeline does."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import ensemble_bt
from backtests.config import load_config
from backtests.datasets import load_dataset
from backtests.results import SUMMARY_KEYS
from backtests.runner import run_backtest
from backtests.synthetic import ar1_returns, noisy_foresight, ohlcv_from_returns, write_csv
from ensemble_bt import (
    DrawdownBreaker,
    EnsemblePredictor,
    EnsembleStrategy,
    KellySizer,
    LaggedKelly,
    RunRecorder,
    SeriesSignal,
    SizingConfig,
    configure_broker,
    load_signal,
    walk_forward,
    write_results,
)
from ensemble_bt.errors import BundleError, ConfigurationError, DataError, LeakageError
from models.artifacts import load_bundle
from models.metrics import information_coefficient
from models.signal import VintageSignal
from models.vintages import fixed_vintage
from sizing.rebalance import needs_rebalance

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ensemble_bt", "models", "sizing", "strategies", "backtests", "live")
HEAVY = ("backtrader", "xgboost", "lightgbm", "models", "sizing", "strategies", "backtests",
         "live")
#: Small, fast walk-forward settings: 900 bars, 2 vintages of one learner.
QUICK = {"horizon": 5, "retrain_every": 200, "models": ("xgb",)}


def _loaded_after(code: str) -> set[str]:
    """Top-level packages (and ``models.stacking``) a fresh interpreter holds after ``code``."""
    probe = (f"{code}\nimport sys\n"
             "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} | "
             "({'models.stacking'} & set(sys.modules)))))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=True)
    return set(proc.stdout.split())


# --- the package: a small surface, loaded lazily ------------------------------------------

def test_importing_errors_or_the_package_loads_nothing_heavy():
    loaded = _loaded_after("import ensemble_bt.errors, ensemble_bt.jsonio\nimport ensemble_bt\n"
                           "dir(ensemble_bt)\nfrom ensemble_bt import errors")
    assert loaded & {*HEAVY, "models.stacking"} == set()


def test_a_public_name_loads_only_its_own_layer():
    loaded = _loaded_after("from ensemble_bt import SizingConfig, DrawdownBreaker, LaggedKelly")
    assert "sizing" in loaded
    assert loaded & {"backtrader", "xgboost", "models.stacking", "strategies", "backtests"} == set()


def test_every_public_name_comes_from_the_module_the_table_names():
    homes = ensemble_bt._HOMES
    assert ensemble_bt.__all__ == list(homes)
    assert 10 <= len(ensemble_bt.__all__) <= 16  # small on purpose: see docs/plugin.md
    for name in ensemble_bt.__all__:
        value = getattr(ensemble_bt, name)
        assert value.__module__ == homes[name], name
        assert value.__doc__, f"{name} has no docstring"
    assert set(ensemble_bt.__all__) <= set(dir(ensemble_bt))


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ensemble_bt.nope  # noqa: B018
    from ensemble_bt import jsonio, yamlio

    assert jsonio.__name__ == "ensemble_bt.jsonio" and yamlio.__name__ == "ensemble_bt.yamlio"


def test_the_public_api_lives_in_the_layers_a_user_may_use():
    homes = set(ensemble_bt._HOMES.values())
    assert not [h for h in homes if h.startswith(("live", "ensemble_bt"))]


def test_no_module_of_the_project_imports_the_facade_so_it_closes_no_cycle():
    public = set(ensemble_bt.__all__)
    users = []
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.ImportFrom) and node.module == "ensemble_bt"
                        and public & {a.name for a in node.names}):
                    users.append(str(path.relative_to(REPO)))
    assert users == []


# --- sizing for your own strategy ----------------------------------------------------------

def test_drawdown_breaker_trips_caps_and_resets_at_the_configured_drawdowns():
    breaker = DrawdownBreaker(SizingConfig(drawdown_circuit_breaker=0.2, drawdown_reset=0.05,
                                           drawdown_max_position=0.5))
    assert not breaker.update(100.0).tripped
    assert breaker.cap(1.5, held=1.2) == 1.5 and breaker.limits() == (1.8, 0.1)
    assert breaker.update(79.0).tripped and breaker.trips == 1
    assert breaker.drawdown == pytest.approx(0.21)
    assert breaker.cap(1.5, held=1.2) == 0.5 and breaker.cap(-0.9, held=0.0) == -0.5
    assert breaker.limits() == (0.5, 0.1)
    assert breaker.update(90.0).tripped  # 10% down: still above the reset
    assert not breaker.update(96.0).tripped and breaker.trips == 1


def test_lagged_kelly_is_flat_without_a_prediction_and_learns_only_from_resolved_ones():
    kelly = LaggedKelly(horizon=2)
    assert kelly.update(math.nan, 100.0, 0.01, 0.55) == 0.0
    for close in (101.0, 102.0, 103.0):
        assert kelly.update(0.01, close, 0.01, 0.55) > 0.0
    # The NaN of bar 0 resolved at bar 2 (not counted); the first 0.01 resolves at bar 3.
    assert kelly.n_resolved == 1 and kelly.p_win > 0.55
    with pytest.raises(ConfigurationError, match="horizon"):
        LaggedKelly(horizon=0)


class _Mirror(bt.Strategy):
    """EnsembleStrategy's decisions rebuilt from the public pieces, as a user would."""

    params = (("signal", None), ("horizon", 5), ("sizing", SizingConfig()),
              ("trade_start", None))

    def __init__(self) -> None:
        cfg = self.p.sizing
        self.pred = EnsemblePredictor(self.data, signal=self.p.signal, vol_window=cfg.vol_window)
        self.kelly = LaggedKelly(self.p.horizon, cfg)
        self.breaker = DrawdownBreaker(cfg)

    def next(self) -> None:
        if self.data.datetime.date(0) < self.p.trade_start:
            return
        self.breaker.update(self.broker.getvalue())
        weight = self.kelly.update(self.pred.prediction[0], self.data.close[0],
                                   self.pred.volatility[0], self.pred.prior[0])
        held = self.position.size * self.data.close[0] / self.broker.getvalue()
        weight = self.breaker.cap(weight, held)
        if needs_rebalance(weight, held, self.p.sizing.rebalance_band, *self.breaker.limits()):
            sizer = self.getsizer()
            sizer.set_target(self.data, weight)
            delta = sizer.delta_shares(self.data)
            if delta > 0:
                self.buy()
            elif delta < 0:
                self.sell()


def _cerebro(ohlcv: pd.DataFrame, sizing: SizingConfig, cost: float = 0.0005) -> bt.Cerebro:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=ohlcv, name="X"))
    configure_broker(cerebro, cash=100_000.0, commission=cost, slippage=cost, sizing=sizing)
    cerebro.addsizer(KellySizer)
    cerebro.addanalyzer(RunRecorder)
    return cerebro


def test_a_user_strategy_built_from_the_public_pieces_trades_as_ensemble_strategy_does():
    # Arrange: a rally, a 45% fall that trips and halts the breaker, a recovery; noisy
    # foresight trades often, both ways.
    rng = np.random.default_rng(5)
    drift = np.r_[np.full(250, 0.002), np.full(60, math.log(0.55) / 60), np.full(250, 0.004)]
    ohlcv = ohlcv_from_returns(drift + rng.normal(0.0, 0.01, len(drift)), seed=5)
    signal = noisy_foresight(ohlcv, horizon=5, noise=2.0)
    sizing = SizingConfig(drawdown_halt=0.28, vol_target=0.25)
    start = ohlcv.index[60].date()
    ours, theirs = _cerebro(ohlcv, sizing, 0.0025), _cerebro(ohlcv, sizing, 0.0025)
    ours.addstrategy(_Mirror, signal=signal, horizon=5, sizing=sizing, trade_start=start)
    theirs.addstrategy(EnsembleStrategy, signals={"X": signal}, horizon=5, trade_start=start,
                       sizing=sizing)
    # Act
    mine, reference = ours.run()[0], theirs.run()[0]
    # Assert: the same fills, bar for bar, and the breaker tripped in both.
    orders = [r.analyzers.runrecorder.get_analysis()["orders"] for r in (mine, reference)]
    assert len(orders[0]) > 50 and orders[0] == orders[1]
    assert mine.breaker.trips == reference.breaker.trips >= 1
    bars = [r.analyzers.runrecorder.get_analysis()["bars"] for r in (mine, reference)]
    np.testing.assert_array_equal(np.array([b[1:3] for b in bars[0]]),
                                  np.array([b[1:3] for b in bars[1]]))


# --- signals: walk-forward research and bundles ---------------------------------------------

@pytest.fixture(scope="module")
def research():
    return walk_forward(ar1_returns(n=900, seed=11), **QUICK)


def test_walk_forward_predicts_each_bar_with_a_vintage_trained_before_it(research):
    table = research.predictions
    assert list(table.columns) == ["prediction", "actual", "vintage"]
    assert table.index.name == "date" and table["prediction"].notna().all()
    assert len(research.vintages) == 2 and research.audit["verdict"] == "pass"
    for v in research.vintages:
        mine = table[table["vintage"] == v.spec.index]
        assert mine.index[0] == v.predict_start and v.train_end < v.predict_start
    assert table["actual"].isna().sum() == QUICK["horizon"]  # the last h labels are unknown


def test_walk_forward_signal_and_scores_agree_with_its_table(research):
    table = research.predictions
    ohlcv = ar1_returns(n=900, seed=11)
    batch = research.signal.predict_batch(ohlcv)
    np.testing.assert_array_equal(batch[-len(table):], table["prediction"].to_numpy())
    assert np.isnan(batch[:-len(table)]).all()
    assert research.ic == information_coefficient(table["prediction"], table["actual"])
    scores = research.by_vintage()
    assert list(scores.index) == [0, 1] and {"test_ic", "test_dir_acc", "wfe"} <= set(scores)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"retrain_evry": 10}, "retrain_evry"),
    ({"horizon": 0}, "horizon"),
    ({"bundle": "b"}, "load_signal"),
])
def test_walk_forward_refuses_a_bad_setting_naming_it(kwargs, needle):
    with pytest.raises(ConfigurationError, match=needle):
        walk_forward(ar1_returns(n=700, seed=1), **{**QUICK, **kwargs})


def test_a_loaded_bundle_predicts_only_after_its_training_window(planted, planted_bundle):
    ohlcv = load_dataset(str(planted))
    manifest = json.loads((planted_bundle / "manifest.json").read_text())
    train_end = pd.Timestamp(manifest["training_window"]["end"])
    # Act
    predictions = load_signal(planted_bundle, horizon=1).predict_batch(ohlcv)
    # Assert
    after = ohlcv.index > train_end
    assert np.isnan(predictions[~after]).all() and np.isfinite(predictions[after]).all()
    later = load_signal(planted_bundle, horizon=1, start="2006-06-01").predict_batch(ohlcv)
    assert np.isnan(later[ohlcv.index < "2006-06-01"]).all()
    with pytest.raises(ConfigurationError, match="out of sample"):
        load_signal(planted_bundle, horizon=1, start=train_end.date())
    with pytest.raises(BundleError, match="horizon 1"):
        load_signal(planted_bundle, horizon=5)


# --- results of your own cerebro -------------------------------------------------------------

def test_write_results_of_the_public_pipeline_matches_the_cli_backtest(tmp_path):
    # Arrange: the same data and config through `backtest` and through the public API.
    data = write_csv(ar1_returns(n=900, seed=11), tmp_path / "ar1.csv")
    cfg = load_config(None, {"data": str(data), **QUICK, "out": str(tmp_path / "cli")})
    cli = json.loads((run_backtest(cfg, progress=False) / "summary.json").read_text())
    ohlcv = load_dataset(str(data))
    wf = walk_forward(ohlcv, **QUICK)
    cerebro = _cerebro(ohlcv, cfg.sizing)
    cerebro.addstrategy(EnsembleStrategy, signals={"X": wf.signal}, horizon=5,
                        trade_start=wf.predictions.index[0].date(), sizing=cfg.sizing)
    # Act
    folder = write_results(cerebro.run()[0], ohlcv, horizon=5, signal=wf.signal,
                           out=tmp_path / "api")
    # Assert
    summary = json.loads((folder / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_KEYS
    assert {k: v for k, v in summary.items() if k != "config_hash"} == {
        k: v for k, v in cli.items() if k != "config_hash"}
    assert summary["leakage_audit"] == "pass" and summary["n_trades"] > 0
    names = {p.name for p in folder.iterdir()}
    assert {"summary.json", "equity.csv", "orders.csv", "trades.csv", "vintages.json",
            "leakage_audit.json", "config.yaml", "report.png", "report.html"} <= names
    assert folder.name.startswith("backtest_AR1_")


class _BuyAndHold(bt.Strategy):
    def next(self) -> None:
        if not self.position:
            self.buy(size=100)


def test_write_results_of_a_strategy_without_a_signal_leaves_the_audit_null(tmp_path):
    ohlcv = ar1_returns(n=120, seed=2)
    cerebro = _cerebro(ohlcv, SizingConfig())
    cerebro.addstrategy(_BuyAndHold)
    folder = write_results(cerebro.run()[0], ohlcv, horizon=1, out=tmp_path, symbol="hold")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["symbol"] == "hold" and summary["bars"] == 120
    assert summary["leakage_audit"] is None and summary["ic"] is None
    assert summary["n_trades"] == 1 and summary["breaker_trips"] == 0
    assert not (folder / "vintages.json").exists()


def test_write_results_without_a_recorder_says_what_to_add_and_writes_nothing(tmp_path):
    ohlcv = ar1_returns(n=60, seed=2)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=ohlcv, name="X"))
    cerebro.addstrategy(_BuyAndHold)
    strategies = cerebro.run()
    with pytest.raises(ConfigurationError, match=r"addanalyzer\(RunRecorder\)"):
        write_results(strategies[0], ohlcv, horizon=1, out=tmp_path / "r")
    with pytest.raises(ConfigurationError, match=r"cerebro.run\(\)\[0\]"):
        write_results(strategies, ohlcv, horizon=1, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_recorder_finds_a_user_strategys_predictor_and_a_series_signal_records(tmp_path):
    ohlcv = ar1_returns(n=80, seed=4)
    predictions = pd.Series(np.linspace(-0.01, 0.01, 80), index=ohlcv.index)

    class WithPredictor(_BuyAndHold):
        def __init__(self) -> None:
            self.ensemble = EnsemblePredictor(self.data, signal=SeriesSignal(predictions))

    cerebro = _cerebro(ohlcv, SizingConfig())
    cerebro.addstrategy(WithPredictor)
    strategy = cerebro.run()[0]
    bars = strategy.analyzers.runrecorder.get_analysis()["bars"]
    np.testing.assert_array_equal([b[3] for b in bars], predictions.to_numpy())


def test_write_results_refuses_a_run_whose_signal_predicted_inside_its_training_window(
        planted, planted_bundle, tmp_path):
    # Arrange: the bundle as a vintage that predicts from 60 days before its training ended,
    # which load_signal refuses; a user could still build one by hand.
    ohlcv = load_dataset(str(planted))
    model, manifest = load_bundle(planted_bundle, horizon=1)
    early = pd.Timestamp(manifest["training_window"]["end"]) - pd.Timedelta(days=60)
    leaky = VintageSignal([fixed_vintage(model, manifest, "hand-made", horizon=1,
                                         predict_start=early, predict_end=ohlcv.index[-1])])

    class WithPredictor(_BuyAndHold):
        def __init__(self) -> None:
            self.ensemble = EnsemblePredictor(self.data, signal=leaky)

    cerebro = _cerebro(ohlcv, SizingConfig())
    cerebro.addstrategy(WithPredictor)
    strategy = cerebro.run()[0]
    # Act, Assert
    with pytest.raises(LeakageError, match="leakage audit failed"):
        write_results(strategy, ohlcv, horizon=1, signal=leaky, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    with pytest.raises(DataError, match="bars the strategy ran on"):
        write_results(strategy, ohlcv.iloc[5:], horizon=1, out=tmp_path / "r")
