"""A portfolio's universe: its symbols, their checks, the union calendar and each one's period.

``--data AAPL,MSFT,IBM`` (embedded names, ``store:`` names or file paths) is a portfolio: one
account over several symbols.  Everything here runs before a results directory exists, so
a refused input writes nothing (the bad-input contract).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from backtests.config import LATER_KEYS, BacktestConfig
from backtests.datasets import load_datasets
from backtests.plan import Period
from backtests.store import expand_specs
from ensemble_bt.errors import ConfigurationError
from sizing.config import PortfolioConfig

#: A symbol that can be part of a results directory's name as it is.
_PLAIN = re.compile(r"^[A-Z0-9][A-Z0-9._]{0,15}$")
#: Longest joined name (``AAPL-MSFT-...``) before the directory is named ``PORTFOLIO_<n>``.
MAX_LABEL = 40


def data_specs(data: str) -> list[str]:
    """One dataset spec per symbol of ``--data``: its comma list, ``store:A,B`` expanded."""
    return expand_specs([part.strip() for part in data.split(",") if part.strip()])


def is_portfolio(data: str) -> bool:
    """Whether ``--data`` names several symbols (a comma list)."""
    return len(data_specs(data)) > 1


def check_one_symbol(cfg: BacktestConfig) -> None:
    """Refuse the portfolio keys in a one-symbol backtest, where they would mean nothing."""
    for key, default in LATER_KEYS.items():
        if getattr(cfg, key) != default:
            raise ConfigurationError(
                f"{key} applies to several symbols (--data AAPL,MSFT,...); remove it for a "
                f"one-symbol backtest of {cfg.data}")


def load_universe(cfg: BacktestConfig) -> dict[str, pd.DataFrame]:
    """The validated bars of every symbol, in the order listed, keyed by upper-case symbol.

    Raises
    ------
    DataError
        A symbol that cannot be loaded, or one listed twice.
    ConfigurationError
        An option that does not apply to a portfolio.
    """
    if cfg.bundle is not None:
        raise ConfigurationError("--bundle backtests one symbol; a portfolio (--data A,B,...) "
                                 "trains walk-forward vintages: drop --bundle")
    frames = load_datasets(data_specs(cfg.data))
    check_portfolio(cfg.portfolio or PortfolioConfig(), list(frames))
    return frames


def check_portfolio(portfolio: PortfolioConfig, symbols: Sequence[str]) -> None:
    """The cross-field rules between the ``portfolio:`` block and the symbols.

    Raises
    ------
    ConfigurationError
        ``k`` above the number of symbols, or ``allocations`` not naming exactly them.
    """
    n = len(symbols)
    if portfolio.k is not None and portfolio.k > n:
        raise ConfigurationError(f"portfolio.k {portfolio.k} is more than the {n} symbols in "
                                 f"--data; choose k <= {n}")
    if portfolio.allocations is not None and set(portfolio.allocations) != set(symbols):
        named = ", ".join(sorted(portfolio.allocations)) or "none"
        raise ConfigurationError(f"portfolio.allocations must name exactly the symbols in "
                                 f"--data ({', '.join(symbols)}), not {named}; fix the "
                                 "allocations, or set them to null for equal slices")


def slices(portfolio: PortfolioConfig, symbols: Sequence[str]) -> dict[str, float]:
    """Each symbol's share of the account: its allocation, ``1/n``, or ``1/k`` for top-k."""
    if portfolio.mode == "topk":
        assert portfolio.k is not None
        return dict.fromkeys(symbols, 1.0 / portfolio.k)
    if portfolio.allocations is not None:
        return {s: float(portfolio.allocations[s]) for s in symbols}
    return dict.fromkeys(symbols, 1.0 / len(symbols))


def portfolio_label(symbols: Sequence[str]) -> str:
    """The name in ``backtest_<name>_<stamp>``: ``AAPL-MSFT-IBM`` when short and plain, else
    ``PORTFOLIO_<n>``."""
    joined = "-".join(symbols)
    if len(joined) <= MAX_LABEL and all(_PLAIN.match(s) for s in symbols):
        return joined
    return f"PORTFOLIO_{len(symbols)}"


@dataclass(frozen=True)
class PortfolioPeriod:
    """The evaluation sessions of a portfolio and each symbol's evaluation bars.

    Attributes
    ----------
    dates : pandas.DatetimeIndex
        The union of the symbols' sessions from the first evaluated one to the last.
    periods : dict[str, Period]
        Per symbol, positions in its own bars: from the later of the first evaluated session
        and its ``min_train``-th bar (when it joins) to its last bar in the period.
    """

    dates: pd.DatetimeIndex
    periods: dict[str, Period]


def _check_dates(cfg: BacktestConfig, union: pd.DatetimeIndex, earliest: pd.Timestamp) -> None:
    if cfg.start and cfg.end and cfg.start > cfg.end:
        raise ConfigurationError(f"--start {cfg.start} is after --end {cfg.end}; swap them")
    if cfg.start is not None and pd.Timestamp(cfg.start) < earliest:
        raise ConfigurationError(
            f"--start {cfg.start} leaves fewer than min_train={cfg.min_train} bars of history in "
            f"every symbol; the earliest valid start is {earliest.date()}")
    if cfg.start is not None and pd.Timestamp(cfg.start) > union[-1]:
        raise ConfigurationError(f"--start {cfg.start} is after the last bar of every symbol "
                                 f"({union[-1].date()})")


def resolve_portfolio_period(frames: Mapping[str, pd.DataFrame],
                             cfg: BacktestConfig) -> PortfolioPeriod:
    """The evaluation sessions and each symbol's evaluation bars.

    The period starts at ``--start``, else at the first session on which some symbol has
    ``min_train`` bars of history; the others join once they have them.

    Raises
    ------
    ConfigurationError
        No symbol with enough history, a start or end that leaves fewer than two sessions,
        or a symbol with no bar to trade in the period.
    """
    union = pd.DatetimeIndex(sorted(set().union(*(f.index for f in frames.values()))))
    ready = [f.index[cfg.min_train] for f in frames.values() if len(f) > cfg.min_train + 1]
    if not ready:
        raise ConfigurationError(f"no symbol in --data has more than min_train={cfg.min_train} "
                                 "bars; a backtest needs that much history")
    earliest = min(ready)
    _check_dates(cfg, union, earliest)
    start = earliest if cfg.start is None else pd.Timestamp(cfg.start)
    end = union[-1] if cfg.end is None else pd.Timestamp(cfg.end)
    dates = union[(union >= start) & (union <= end)]
    if len(dates) < 2:
        raise ConfigurationError(f"the evaluation period {start.date()}..{end.date()} holds "
                                 f"fewer than two sessions; choose an --end after "
                                 f"{start.date()}")
    return PortfolioPeriod(dates, {s: _symbol_period(s, f, dates, cfg)
                                   for s, f in frames.items()})


def _symbol_period(symbol: str, frame: pd.DataFrame, dates: pd.DatetimeIndex,
                   cfg: BacktestConfig) -> Period:
    index = frame.index
    first = max(int(index.searchsorted(dates[0])), cfg.min_train)
    last = int(index.searchsorted(dates[-1], "right")) - 1
    if last <= first:
        raise ConfigurationError(
            f"{symbol} has {last + 1} bars up to {dates[-1].date()}: too few to trade in the "
            f"evaluation period (a symbol joins after min_train={cfg.min_train} bars and needs "
            f"two more); drop {symbol} from --data, or choose other --start/--end dates")
    return Period(first, last)
