"""The two guards of the pooled model's honest numbers, at the model level: out-of-sample rank
IC of the walk-forward predictions, with the GBM stack the backtests use.

- Planted panel: 20 symbols whose next-day ranking depends weakly on their own last five
  days (a reversal, coefficient 0.05): the pooled model must find it (rank IC >= 0.05), and
  per-symbol models, each with 1/20 of the rows, find less.
- Canary panel: 20 independent random walks, 2,500 sessions: no ranking edge may appear
  (mean rank IC within +-0.02).

Neither threshold may be relaxed to get a green run.  A vintage a year (retrain_every 252)
keeps the run short; the schedule is otherwise the backtests' (min_train 504, embargo 5).
"""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from backtests.synthetic_panel import random_walk_panel, reversal_panel
from models.crosssection import rank_ic, rank_ic_summary
from models.features import FEATURE_NAMES
from models.panel import PanelFit, fit_panel
from models.panel_baseline import fit_per_symbol
from models.stacking import StackedEnsemble

SCHEDULE = {"horizon": 1, "retrain_every": 252, "min_train": 504, "embargo": 5}
MAKE_STACK = functools.partial(StackedEnsemble, models=("xgb", "lgbm"), meta="mean",
                               feature_names=FEATURE_NAMES, purge=1, embargo=5, seed=42)


def _pooled(frames: dict[str, pd.DataFrame], target: str) -> PanelFit:
    calendar = frames["S00"].index
    return fit_panel(frames, calendar[504], calendar[-1], target=target,  # type: ignore[arg-type]
                     make_model=MAKE_STACK, progress=False, **SCHEDULE)


@pytest.fixture(scope="module")
def planted() -> dict[str, pd.DataFrame]:
    return reversal_panel(n_symbols=20, n=2500, seed=11)


@pytest.mark.slow
def test_planted_reversal_is_found_by_the_pooled_model_and_less_by_per_symbol_models(planted):
    pooled = _pooled(planted, "raw")
    calendar = planted["S00"].index
    per_symbol = fit_per_symbol(planted, calendar[504], calendar[-1], make_model=MAKE_STACK,
                                **SCHEDULE)
    pooled_ic, _ = rank_ic_summary(rank_ic(pooled.predictions, pooled.realised))
    per_symbol_ic, _ = rank_ic_summary(rank_ic(per_symbol, pooled.realised))
    assert pooled.audit["verdict"] == "pass"
    assert pooled.audit["bars_checked"] == 20 * (2500 - 504)
    assert pooled_ic >= 0.05
    assert per_symbol_ic < pooled_ic


@pytest.mark.slow
def test_planted_reversal_is_found_with_the_demeaned_target(planted):
    pooled = _pooled(planted, "demeaned")
    mean, ir = rank_ic_summary(rank_ic(pooled.predictions, pooled.realised))
    assert pooled.audit["verdict"] == "pass"
    assert mean >= 0.05 and ir > 0


@pytest.mark.slow
@pytest.mark.parametrize("target", ["raw", "demeaned"])
def test_canary_random_walks_show_no_ranking_edge(target):
    pooled = _pooled(random_walk_panel(n_symbols=20, n=2500, seed=7), target)
    ic = rank_ic(pooled.predictions, pooled.realised)
    mean, _ = rank_ic_summary(ic)
    assert pooled.audit["verdict"] == "pass"
    assert ic.notna().sum() >= 0.95 * (2500 - 504)  # scored nearly every date, not skipped
    assert abs(mean) <= 0.02
