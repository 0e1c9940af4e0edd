"""One account over several symbols: alignment, late joiners, top-k, caps, the config, and
whole runs.

The strategy scenarios run real backtrader on precomputed predictions (no training); the
end-to-end runs (CLI and in-process, with training) are slow.  The scores on constructed
data are in tests/test_portfolio_scores.py, the pure sizing rules in
tests/test_portfolio_sizing.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtests.config import load_config
from backtests.engine import run_strategy
from backtests.portfolio_results import PORTFOLIO_KEYS, SYMBOL_COLUMNS, WEIGHT_COLUMNS
from backtests.results import SUMMARY_KEYS
from backtests.runner import run_backtest
from backtests.synthetic import ohlcv_from_returns, random_walk, write_csv
from backtests.universe import portfolio_label
from ensemble_bt.errors import ConfigurationError
from models.signal import SeriesSignal
from sizing.config import PortfolioConfig, SizingConfig
from tests.conftest import run_cli

CASH = 100_000.0
FREE = SizingConfig(margin_rate=0.0, short_borrow_rate=0.0)  # exact ledgers: no financing


def _signal(frame: pd.DataFrame, seed: int, first: int = 20) -> SeriesSignal:
    rng = np.random.default_rng(seed)
    pred = pd.Series(rng.normal(0.002, 0.01, len(frame)), index=frame.index)
    pred.iloc[:first] = np.nan
    return SeriesSignal(pred)


def _universe() -> dict[str, pd.DataFrame]:
    """A full calendar (A), one with two missing sessions (B), one that starts later (C)."""
    a = random_walk(n=320, seed=1)
    b = random_walk(n=320, seed=2).drop(a.index[[200, 201, 260]])
    c = random_walk(n=200, seed=3)
    c.index = a.index[120:]
    return {"A": a, "B": b, "C": c}


def _run(frames: dict, portfolio: PortfolioConfig | None = None, sizing: SizingConfig = FREE,
         allocations: dict | None = None, start: int = 150) -> dict:
    signals = {s: _signal(f, seed=i) for i, (s, f) in enumerate(frames.items())}
    return run_strategy(frames, signals, horizon=5, trade_start=frames["A"].index[start].date(),
                        sizing=sizing, cash=CASH, commission=0.0, slippage=0.0,
                        allocations=allocations, portfolio=portfolio)


def _decisions(analysis: dict) -> pd.DataFrame:
    frame = pd.DataFrame(analysis["decisions"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


@pytest.fixture(scope="module")
def aligned_run() -> tuple[dict, dict]:
    frames = _universe()
    return frames, _run(frames)


# ------------------------------------------------------------------- the union of sessions
def test_a_symbol_without_a_bar_that_day_is_not_decided(aligned_run):
    frames, analysis = aligned_run
    decided = _decisions(analysis).groupby("symbol")["date"].apply(set)
    union = frames["A"].index[150:]
    assert decided["A"] == set(union)
    assert decided["B"] == set(union.intersection(frames["B"].index))
    assert not decided["B"] & set(frames["A"].index[[200, 201, 260]])


def test_orders_fill_at_the_symbols_next_bar_after_the_decision(aligned_run):
    frames, analysis = aligned_run
    for order in analysis["orders"]:
        own = frames[order["symbol"]].index
        decided = own.get_loc(pd.Timestamp(order["decided"]))
        assert order["date"] == own[decided + 1].date().isoformat()
        assert order["price"] == pytest.approx(frames[order["symbol"]]["open"].iloc[decided + 1])


def test_the_account_values_a_symbol_without_a_bar_at_its_last_price(aligned_run):
    # Arrange: replay the fills on the union calendar, each symbol's last close carried over.
    frames, analysis = aligned_run
    union = frames["A"].index
    closes = pd.DataFrame({s: f["close"] for s, f in frames.items()}).reindex(union).ffill()
    orders = pd.DataFrame(analysis["orders"])
    orders["signed"] = np.where(orders["side"] == "buy", 1.0, -1.0) * orders["size"]
    shares = orders.pivot_table(index=pd.to_datetime(orders["date"]), columns="symbol",
                                values="signed", aggfunc="sum").reindex(union).fillna(0.0)
    cash = CASH - (orders["signed"] * orders["price"]).groupby(
        pd.to_datetime(orders["date"])).sum().reindex(union).fillna(0.0).cumsum()
    # Act
    expected = cash + (shares.cumsum() * closes.fillna(0.0)).sum(axis=1)
    recorded = pd.Series([b[1] for b in analysis["bars"]],
                         index=pd.DatetimeIndex([b[0] for b in analysis["bars"]]).normalize())
    # Assert: every union session recorded once, at the replayed value.
    assert recorded.index.equals(union)
    np.testing.assert_allclose(recorded.to_numpy(), expected.to_numpy(), rtol=1e-9)


def test_a_symbol_that_starts_later_is_decided_from_the_trade_start_on(aligned_run):
    frames, analysis = aligned_run
    decisions = _decisions(analysis)
    own = decisions[decisions["symbol"] == "C"]
    assert own["date"].min() == frames["C"].index[30]  # A's bar 150 is C's bar 30
    first_fill = min(o["date"] for o in analysis["orders"] if o["symbol"] == "C")
    assert pd.Timestamp(first_fill) > frames["C"].index[30]


def test_a_symbol_that_starts_after_the_trade_start_is_decided_from_its_first_bar():
    frames = _universe()
    frames["C"].index = frames["A"].index[-200:]
    frames["C"] = frames["C"].iloc[60:]  # starts at A's bar 180, after the trade start
    decisions = _decisions(_run(frames))
    assert decisions.loc[decisions["symbol"] == "C", "date"].min() == frames["C"].index[0]
    assert decisions.loc[decisions["symbol"] == "A", "date"].min() == frames["A"].index[150]


# --------------------------------------------------------------------------- sizing rules
def _gross(decisions: pd.DataFrame, slice_of: dict) -> pd.Series:
    account = decisions["target_weight"].abs() * decisions["symbol"].map(slice_of)
    return account.groupby(decisions["date"]).sum()


def test_allocations_weigh_each_symbols_kelly_weight_by_its_slice():
    # Arrange: always bullish, with no track record: the hybrid weight is the long bias 1.3.
    frames = _universe()
    allocations = {"A": 0.5, "B": 0.3, "C": 0.2}
    signals = {s: SeriesSignal(pd.Series(0.01, index=f.index)) for s, f in frames.items()}
    # Act
    analysis = run_strategy(frames, signals, horizon=5, trade_start=frames["A"].index[150].date(),
                            sizing=FREE, cash=CASH, commission=0.0, slippage=0.0,
                            allocations=allocations)
    # Assert: each first buy is its slice of equity times 1.3, held weights in slice terms.
    first = pd.DataFrame(analysis["orders"]).groupby("symbol").first()
    for symbol, share in allocations.items():
        assert first.loc[symbol, "notional"] == pytest.approx(1.3 * share * CASH, rel=0.02)
    decisions = _decisions(analysis)
    later = decisions[decisions["date"] > frames["A"].index[160]]
    assert later["held_weight"].between(1.2, 1.9).all()  # slice terms, not 1.3 * slice


def test_topk_holds_at_most_k_symbols_long_only_and_drops_at_most_n_a_day():
    frames = {s: random_walk(n=320, seed=10 + i) for i, s in enumerate("ABCDE")}
    cfg = PortfolioConfig(mode="topk", k=2, dropout=1)
    analysis = _run(frames, portfolio=cfg, allocations=dict.fromkeys(frames, 0.5))
    decisions = _decisions(analysis)
    held = decisions.pivot(index="date", columns="symbol", values="target_weight") > 0
    assert (decisions["target_weight"] >= 0).all()
    assert (held.sum(axis=1) <= 2).all() and (held.sum(axis=1).iloc[5:] == 2).all()
    dropped = (held.shift(1, fill_value=False) & ~held).sum(axis=1)
    assert dropped.max() == 1 and dropped.sum() > 5
    assert set(decisions.loc[decisions["target_weight"] > 0, "target_weight"]) == {1.0}


def test_max_gross_caps_the_sum_of_target_weights():
    frames = _universe()
    analysis = _run(frames, portfolio=PortfolioConfig(max_gross=0.8))
    gross = _gross(_decisions(analysis), dict.fromkeys(frames, 1 / 3))
    assert gross.max() <= 0.8 + 1e-12 and gross.max() > 0.79


def _crash(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    drift = np.concatenate([np.full(200, 0.001), np.full(50, math.log(0.5) / 50),
                            np.full(150, 0.003)])
    return ohlcv_from_returns(drift + rng.normal(0.0, 0.008, len(drift)), seed=seed)


def test_the_tripped_breaker_caps_the_accounts_gross_weight():
    frames = {s: _crash(seed) for s, seed in (("A", 1), ("B", 2), ("C", 3))}
    cfg = PortfolioConfig(mode="topk", k=2, weights="kelly")
    analysis = _run(frames, portfolio=cfg, allocations=dict.fromkeys(frames, 0.5))
    decisions = _decisions(analysis)
    gross = _gross(decisions, dict.fromkeys(frames, 0.5))
    tripped = decisions.groupby("date")["breaker"].first()
    assert analysis["breaker_trips"] >= 1 and tripped.any()
    assert gross[tripped].max() <= 0.6 + 1e-12
    assert gross[~tripped].max() > 0.6  # the cap binds only while tripped


def test_one_symbol_is_unchanged_by_the_default_portfolio():
    frame = random_walk(n=300, seed=4)
    signal = {"X": _signal(frame, seed=4)}
    kwargs = dict(horizon=5, trade_start=frame.index[100].date(), sizing=SizingConfig(),
                  cash=CASH, commission=0.001, slippage=0.001)
    plain = run_strategy({"X": frame}, signal, **kwargs)
    explicit = run_strategy({"X": frame}, signal, portfolio=PortfolioConfig(), **kwargs)
    pd.testing.assert_frame_equal(pd.DataFrame(plain["decisions"]),
                                  pd.DataFrame(explicit["decisions"]))
    pd.testing.assert_frame_equal(pd.DataFrame(plain["bars"]), pd.DataFrame(explicit["bars"]))


def test_the_results_directory_is_named_after_short_plain_symbol_lists():
    assert portfolio_label(["AAPL", "MSFT", "BRK.B"]) == "AAPL-MSFT-BRK.B"
    assert portfolio_label([f"SYM{i:02d}" for i in range(12)]) == "PORTFOLIO_12"
    assert portfolio_label(["A B", "C"]) == "PORTFOLIO_2"


# ------------------------------------------------------------------------------ the config
def test_a_flag_overrides_one_key_of_the_portfolio_block(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("portfolio:\n  mode: topk\n  k: 3\n  weights: kelly\n")
    cfg = load_config(path, {"portfolio.k": 2, "portfolio.dropout": None})
    assert cfg.portfolio == PortfolioConfig(mode="topk", k=2, weights="kelly")
    with pytest.raises(ConfigurationError, match="^--max-gross: key 'portfolio.max_gross'"):
        load_config(path, {"portfolio.max_gross": -1.0})


def test_the_portfolio_keys_at_their_defaults_leave_the_config_hash_as_it_was():
    plain = load_config(None, {}).config_hash()
    explicit = load_config(None, {"model_scope": "per_symbol", "target": "raw",
                                  "portfolio": None})
    assert explicit.config_hash() == plain
    assert load_config(None, {"portfolio": {"max_gross": 1.0}}).config_hash() != plain
    assert load_config(None, {"target": "demeaned"}).config_hash() != plain


# ------------------------------------------------------------------- end to end (training)
@pytest.fixture(scope="module")
def portfolio_csvs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("portfolio")
    a, b, c = (random_walk(n=n, seed=s) for n, s in ((1000, 31), (1000, 32), (860, 33)))
    c.index = a.index[140:]
    b = b.drop(a.index[[700, 701]])
    return [write_csv(f, folder / f"{name}.csv") for name, f in zip("ABC", (a, b, c),
                                                                      strict=True)]


def _check_directory(folder: Path, symbols: list[str]) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    extras = [k for keys in PORTFOLIO_KEYS.values() for k in keys]
    assert [k for k in summary if k not in extras] == list(SUMMARY_KEYS)
    assert summary["symbols"] == symbols and summary["leakage_audit"] == "pass"
    assert summary["benchmark_return"] == summary["buy_hold_return"]
    assert summary["alpha"] == pytest.approx(summary["strategy_return"]
                                             - summary["benchmark_return"])
    assert set(summary["baseline_rank_ic"]) == {"momentum_63", "reversal_5"}
    table = pd.read_csv(folder / "symbols.csv")
    assert list(table.columns) == list(SYMBOL_COLUMNS) and list(table["symbol"]) == symbols
    financing = summary["financing_costs"] / 100_000.0
    assert table["return_contribution"].sum() - financing == pytest.approx(
        summary["strategy_return"], abs=1e-9)
    assert table["n_trades"].sum() == summary["n_trades"]
    weights = pd.read_csv(folder / "weights.csv")
    decisions = pd.read_csv(folder / "decisions.csv")
    assert list(weights.columns) == list(WEIGHT_COLUMNS) and len(weights) == len(decisions)
    assert set(decisions["symbol"]) == set(symbols)
    audit = json.loads((folder / "leakage_audit.json").read_text())
    assert audit["bars_checked"] == int(decisions["prediction"].notna().sum())
    assert set(pd.read_csv(folder / "orders.csv")["symbol"]) <= set(symbols)
    return summary


@pytest.mark.slow
def test_a_portfolio_backtest_through_the_cli_writes_the_portfolio_directory(portfolio_csvs,
                                                                             tmp_path):
    out = tmp_path / "results"
    proc = run_cli("backtest", "--data", ",".join(map(str, portfolio_csvs)), "--models", "xgb",
                   "--retrain-every", "252", "--horizon", "1", "--out", str(out),
                   "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = Path(proc.stdout.strip().splitlines()[-1])
    assert folder.parent == out and folder.name.startswith("backtest_A-B-C_")
    assert {"symbols.csv", "weights.csv", "report.html", "report.png"} <= {
        p.name for p in folder.iterdir()}
    summary = _check_directory(folder, ["A", "B", "C"])
    assert "momentum" in (folder / "report.html").read_text()
    assert summary["bars"] == 1000 - 504


@pytest.mark.slow
def test_a_topk_portfolio_backtest_in_process(portfolio_csvs, tmp_path):
    cfg = load_config(None, {"data": ",".join(map(str, portfolio_csvs)), "models": ("xgb",),
                             "retrain_every": 252, "horizon": 1, "out": str(tmp_path),
                             "portfolio": {"mode": "topk", "k": 2, "dropout": 1},
                             "target": "demeaned"})
    folder = run_backtest(cfg, progress=False)
    _check_directory(folder, ["A", "B", "C"])
    weights = pd.read_csv(folder / "weights.csv")
    held = weights.pivot(index="date", columns="symbol", values="target_weight") > 0
    assert held.sum(axis=1).max() == 2
    assert json.loads((folder / "vintages.json").read_text())["target"] == "demeaned"
