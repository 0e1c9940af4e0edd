"""A session's portfolio, read back from its journaled facts.

A session journals how its account trades its symbols (``portfolio``, the keys of
:class:`sizing.config.PortfolioConfig` set away from their defaults) and what its decisions'
weights are measured against (``weight_basis``).  The daemon, parity and the exports all
derive the strategy's ``portfolio`` and the sizer's slices from those facts, exactly as
``backtests.portfolio.run_portfolio`` derives them from its config
(:func:`backtests.universe.slices`), so the two paths cannot drift apart.

Held weights.  Since portfolios, a decision's ``held_weight`` is the position's value over
the symbol's *slice* of the account, as its ``target_weight`` always was
(:data:`WEIGHT_BASIS`).  An older version measured it over the whole account.  The two agree
when every slice is 1 (one symbol, no allocation), so such an older session resumes and
replays unchanged; any other older session would mix the two and is refused
(:func:`check_weight_basis`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.universe import slices
from ensemble_bt.errors import DataError
from sizing.config import PortfolioConfig

#: The ``weight_basis`` fact of a session written by this version: slice-relative weights.
WEIGHT_BASIS = "slice"
#: The columns of ``weights.csv``, as a backtest writes them (account weights).
WEIGHT_COLUMNS = ("date", "symbol", "target_weight", "held_weight")


def session_portfolio(meta: Mapping[str, Any]) -> PortfolioConfig:
    """The session's portfolio; one journaled before portfolios is its ``allocations``."""
    raw = meta.get("portfolio")
    if raw is None:
        return PortfolioConfig(allocations=meta.get("allocations"))
    return PortfolioConfig.model_validate(raw)


def session_slices(meta: Mapping[str, Any]) -> dict[str, float]:
    """Each symbol's share of the account (the sizer's ``allocations``), in listing order."""
    return slices(session_portfolio(meta), list(meta["symbols"]))


def check_portfolio_facts(meta: Mapping[str, Any], journal: Path) -> None:
    """Refuse a journaled portfolio that does not fit the session's symbols.

    Raises
    ------
    DataError
        ``k`` above the number of symbols, or allocations not naming exactly them.
    """
    portfolio, symbols = session_portfolio(meta), list(meta["symbols"])
    wrong = ((portfolio.k is not None and portfolio.k > len(symbols))
             or (portfolio.allocations is not None
                 and set(portfolio.allocations) != set(symbols)))
    if wrong:
        raise DataError(f"{journal}: the session's portfolio does not fit its symbols "
                        f"{symbols[:20]}; the journal was edited: use a new --state directory")


def check_weight_basis(meta: Mapping[str, Any], journal: Path, action: str) -> None:
    """Refuse to resume or replay an older session whose held weights would mix two bases.

    Parameters
    ----------
    meta : Mapping
        The session's facts.
    journal : pathlib.Path
        Named in the message.
    action : str
        What was refused (``"resume"``, ``"replay"``).

    Raises
    ------
    DataError
        The session has no ``weight_basis`` (an older version wrote it) and a slice below 1.
    """
    if meta.get("weight_basis") == WEIGHT_BASIS:
        return
    if all(share == 1.0 for share in session_slices(meta).values()):
        return  # one symbol, no allocation: account and slice weights are the same numbers
    raise DataError(f"{journal}: an older ensemble-bt journaled this session with held weights "
                    f"over the whole account, this one measures them over each symbol's slice; "
                    f"cannot {action} it without mixing the two: use the version that started "
                    "it, or a new --state directory")


def weights_frame(decisions: pd.DataFrame, slice_of: Mapping[str, float]) -> pd.DataFrame:
    """``weights.csv``: each decision's target and held weight in the account (its slice
    weight times its slice), as a portfolio backtest writes it."""
    share = decisions["symbol"].map(dict(slice_of)).astype(float)
    return pd.DataFrame({"date": decisions["date"], "symbol": decisions["symbol"],
                         "target_weight": decisions["target_weight"] * share,
                         "held_weight": decisions["held_weight"] * share},
                        columns=list(WEIGHT_COLUMNS))


def in_listing_order(frames: Mapping[str, pd.DataFrame],
                     symbols: Sequence[str]) -> dict[str, pd.DataFrame]:
    """``frames`` in the session's listing order (top-k breaks ties by it)."""
    return {s: frames[s] for s in symbols if s in frames}
