"""Universes as robustness cells: ``--universes "AAPL,MSFT,IBM,GOOG;SP500,NASDAQ"``.

A universe is a portfolio: one account over two or more datasets (embedded names,
``store:NAME`` or paths, as ``backtest --data A,B`` takes them).  In a grid of universes each
universe takes the place of a symbol: a cell is a portfolio backtest of the universe for one
window, cost and sizing.  This module only reads the list; loading and checking the data
happens when the grid is planned (:mod:`backtests.robustness.universe_batch`).
"""

from __future__ import annotations

from typing import Any

from ensemble_bt.yamlio import short_repr

# Characters of a rejected value quoted inside a longer message.
_QUOTE = 80
EXAMPLE = "AAPL,MSFT;SP500,NASDAQ"


def universe_label(symbols: tuple[str, ...] | list[str]) -> str:
    """The name of a universe in ``runs.csv`` and ``summary.json``: ``AAPL+MSFT+IBM``."""
    return "+".join(symbols)


def _names(universe: Any, n: int) -> tuple[str, ...]:
    """One universe as its data names, or a one-line ``ValueError``."""
    if isinstance(universe, str):
        names = [part.strip() for part in universe.split(",")]
    elif isinstance(universe, list | tuple) and all(isinstance(x, str) for x in universe):
        names = [part.strip() for part in universe]
    else:
        raise ValueError(f"universe {n} ({short_repr(universe, _QUOTE)}) is not a list of data "
                         f"names; write NAME,NAME;NAME,NAME, e.g. {EXAMPLE}")
    shown = short_repr(",".join(names), _QUOTE)
    if not any(names):
        raise ValueError(f"universe {n} is empty; name two or more datasets in each universe, "
                         f"e.g. {EXAMPLE}")
    if not all(names):
        raise ValueError(f"universe {n} ({shown}) has an empty name; separate the names of a "
                         "universe with single commas")
    seen: set[str] = set()
    for name in names:
        if name.upper() in seen:
            raise ValueError(f"universe {n} ({shown}) names {short_repr(name, _QUOTE)} twice; "
                             "list each dataset of a universe once")
        seen.add(name.upper())
    if len(names) < 2:
        raise ValueError(f"universe {n} ({shown}) has one dataset; a universe is a portfolio "
                         "of two or more: run one-symbol cells with --data instead")
    return tuple(names)


def parse_universes(value: Any) -> tuple[tuple[str, ...], ...] | None:
    """``"A,B;C,D"`` (the CLI form), or a YAML list of ``"A,B"`` strings or of name lists.

    Returns
    -------
    tuple of tuples of str, or None
        Each universe's data names in the order given; None when not set.

    Raises
    ------
    ValueError
        An empty list or universe, an empty name, a name listed twice in a universe, a
        universe of one dataset, or the same universe twice; one short line.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(";")
        if not any(part.strip() for part in value):
            value = []
    if not isinstance(value, list | tuple):
        raise ValueError(f"universes must be a list of universes, e.g. {EXAMPLE}; got a "
                         f"{type(value).__name__} ({short_repr(value, _QUOTE)})")
    if not value:
        raise ValueError(f"the universes list is empty; give at least one, e.g. {EXAMPLE}")
    universes = tuple(_names(u, n) for n, u in enumerate(value, start=1))
    seen: dict[frozenset[str], int] = {}
    for n, names in enumerate(universes, start=1):
        key = frozenset(name.upper() for name in names)
        if key in seen:
            raise ValueError(f"universes {seen[key]} and {n} are the same datasets "
                             f"({short_repr(','.join(names), _QUOTE)}); list each universe once")
        seen[key] = n
    return universes
