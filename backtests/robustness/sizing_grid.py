"""The sizing grid of a robustness run: ``max_long=1.3,1.8;rebalance_band=0.02,0.05``.

Each key is a sizing key (:class:`sizing.config.SizingConfig`), each value list a finite number
or null per entry; every combination is one sizing configuration of the grid.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from typing import Any

from ensemble_bt.yamlio import short_repr
from sizing.config import SizingConfig

#: Most sizing configurations one run may hold (the grid is their cartesian product).
MAX_SIZING_CELLS = 1_000
# Characters of a rejected value quoted inside a longer message.
_QUOTE = 80


def split_list(value: Any) -> Any:
    """A comma-separated string (the CLI form) becomes a list; anything else passes."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return value


def _grid_number(key: str, value: Any) -> float | int | None:
    """One value of a sizing grid: a finite number, or null (for the optional keys).

    Command-line values are parsed as plain numbers, never as YAML: a tag such as
    ``!!python/object`` or an unclosed ``[`` is just text that is not a number.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("null", "none", "~"):
            return None
        try:
            value = int(text) if re.fullmatch(r"[+-]?\d{1,18}", text) else float(text)
        except ValueError:
            raise ValueError(f"sizing grid value {short_repr(text, _QUOTE)} of {key} is not a "
                             "number; write KEY=V1,V2 with numbers, e.g. max_long=1.3,1.8"
                             ) from None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise ValueError(f"sizing grid value {short_repr(value, _QUOTE)} of {key} is not a "
                         "finite number; e.g. max_long: [1.3, 1.8]")
    return value


def _unknown_sizing_key(key: Any) -> ValueError:
    close = difflib.get_close_matches(str(key), list(SizingConfig.model_fields), n=1)
    hint = f"did you mean {close[0]}?" if close else "the keys are in docs/sizing.md"
    return ValueError(f"sizing grid key {short_repr(key, _QUOTE)} is not a sizing key; {hint}")


def _grid_values(key: Any, values: Any) -> tuple[Any, ...]:
    if not isinstance(key, str) or key not in SizingConfig.model_fields:
        raise _unknown_sizing_key(key)
    if isinstance(values, str):
        values = split_list(values)
    elif not isinstance(values, list | tuple):
        values = [values]
    if not values:
        raise ValueError(f"sizing grid key {key!r} has no values; e.g. {key}=1.3,1.8")
    # A repeated value would be the same configuration twice, under the same label.
    return tuple(dict.fromkeys(_grid_number(key, v) for v in values))


def _grid_text(text: str) -> dict[str, list[str]]:
    """``KEY=V1,V2;KEY2=...`` to key -> value texts."""
    grid: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, sep, values = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"sizing grid entry {short_repr(part, _QUOTE)} is not KEY=V1,V2, "
                             "e.g. max_long=1.3,1.8")
        if key in grid:
            raise ValueError(f"sizing grid key {short_repr(key, _QUOTE)} appears twice; give "
                             "all its values once, e.g. max_long=1.3,1.8")
        grid[key] = split_list(values)
    return grid


def parse_sizing_grid(value: Any) -> dict[str, tuple[Any, ...]]:
    """``max_long=1.3,1.8;rebalance_band=0.02,0.05`` (or a YAML mapping) to key -> values.

    Raises
    ------
    ValueError
        A malformed entry, an unknown or repeated key, a value that is not a finite number
        (or null), or more than :data:`MAX_SIZING_CELLS` combinations; one short line.
    """
    if value is None:
        return {}
    if isinstance(value, str):
        value = _grid_text(value)
    if not isinstance(value, dict):
        raise ValueError("sizing_grid must map sizing keys to lists of values, e.g. "
                         f"{{max_long: [1.3, 1.8]}}; got a {type(value).__name__}")
    out = {str(key): _grid_values(key, values) for key, values in value.items()}
    n_cells = math.prod(len(values) for values in out.values())
    if n_cells > MAX_SIZING_CELLS:
        raise ValueError(f"the sizing grid has {n_cells:,} combinations, more than "
                         f"{MAX_SIZING_CELLS:,}; split it into several runs")
    return out


def sizing_cells(grid: dict[str, tuple[Any, ...]]) -> list[tuple[str, dict[str, Any]]]:
    """``(label, overrides)`` per combination of ``grid``; one ``default`` when empty."""
    if not grid:
        return [("default", {})]
    keys = list(grid)
    return [(";".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True)),
             dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*grid.values())]
