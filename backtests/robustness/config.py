"""Robustness grid configuration: datasets × windows × costs (× sizing overrides).

One frozen model, :class:`RobustnessConfig`, holds the grid keys; the model and sizing keys
it shares with a single backtest live in ``base``, a :class:`~backtests.config.BacktestConfig`
validated by that class itself, so both commands accept the same values.  Lists may come from
YAML (sequences) or from the command line (comma-separated strings); every failure is a
one-line :class:`~ensemble_bt.errors.ConfigurationError` that names the flag or the file and key.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from backtests.config import LATER_KEYS, BacktestConfig
from ensemble_bt.errors import ConfigurationError
from ensemble_bt.yamlio import first_error, read_config, short_repr
from sizing.config import SizingConfig

DEFAULT_DATA = ("AAPL", "IBM", "MSFT", "GOOG", "SP500", "NASDAQ")
DEFAULT_WINDOWS = ("2007:2009", "2010:2012")
DEFAULT_COSTS = (0.0, 0.0005, 0.001, 0.0025)  # 0, 5, 10 and 25 bps per side
DEFAULT_CACHE_DIR = ".cache/ensemble-bt/predictions"
# Keys a robustness config shares with `ensemble-bt backtest` (validated by BacktestConfig).
MODEL_KEYS = ("horizon", "retrain_every", "min_train", "embargo", "models", "stack", "deep",
              "seed", "initial_cash", "device", "sizing")
# The subset that changes walk-forward predictions: the prediction cache is keyed on it.
PREDICTION_KEYS = ("models", "stack", "deep", "horizon", "retrain_every", "min_train", "embargo",
                   "seed")
_HINTS = {
    "commission": "costs (a fraction of notional per side, commission and slippage together)",
    "slippage": "costs (a fraction of notional per side, commission and slippage together)",
    "start": "windows (evaluation years START:END)", "end": "windows (evaluation years START:END)",
}
_WINDOW = re.compile(r"^\s*(\d{4})\s*(?::\s*(\d{4})\s*)?$")
# Years a window may name: pandas timestamps span 1677-2262, and no dataset is older.
_YEARS = (1800, 2200)
#: Most sizing configurations one run may hold (the grid is their cartesian product).
MAX_SIZING_CELLS = 1_000
#: Seconds one task (a training or a batch of cells) may run before the batch is stopped.
DEFAULT_TASK_TIMEOUT = 3600.0
# Characters of a rejected value quoted inside a longer message.
_QUOTE = 80


@dataclass(frozen=True, order=True)
class Window:
    """Evaluation years ``first..last`` inclusive: their first to last trading day."""

    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW.match(str(text))
        if not match:
            raise ValueError(f"window {short_repr(text, _QUOTE)} is not START:END in years, e.g. "
                             "2007:2009")
        first, last = int(match[1]), int(match[2] or match[1])
        if first > last:
            raise ValueError(f"window {text!r} ends before it starts; write {last}:{first}")
        if first < _YEARS[0] or last > _YEARS[1]:
            raise ValueError(f"window {text!r} is outside the years {_YEARS[0]}-{_YEARS[1]}; "
                             "give evaluation years of the data, e.g. 2007:2009")
        return cls(first, last)

    @property
    def label(self) -> str:
        return f"{self.first}:{self.last}"

    @property
    def start_date(self) -> date:
        return date(self.first, 1, 1)

    @property
    def end_date(self) -> date:
        return date(self.last, 12, 31)


def _split(value: Any) -> Any:
    """A comma-separated string (the CLI form) becomes a list; anything else passes."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return value


def _listed(value: Any, what: str, example: str) -> list[Any]:
    """``value`` as a list (a CLI string split at commas), or a one-line ``ValueError``."""
    value = _split(value)
    if value is None or isinstance(value, list | tuple) and not value:
        raise ValueError(f"the {what} list is empty; give at least one, e.g. {example}")
    if not isinstance(value, list | tuple):
        raise ValueError(f"a {what} list is expected, e.g. {example}; got a "
                         f"{type(value).__name__} ({short_repr(value, _QUOTE)})")
    return list(value)


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
        values = _split(values)
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
        grid[key] = _split(values)
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


class RobustnessConfig(BaseModel):
    """Everything ``ensemble-bt robustness`` needs (see ``configs/robustness.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # First, so that the sizing grid's validator can check each cell against it.
    base: BacktestConfig = Field(default_factory=BacktestConfig,
                                 description="model and sizing keys shared with backtest")
    data: tuple[str, ...] = Field(DEFAULT_DATA, description="datasets: embedded names or paths")
    windows: tuple[Window, ...] = Field(tuple(Window.parse(w) for w in DEFAULT_WINDOWS),
                                        description="evaluation years START:END, inclusive")
    costs: tuple[float, ...] = Field(DEFAULT_COSTS, description="cost per side, fraction of "
                                     "notional (commission and slippage together)")
    sizing_grid: dict[str, tuple[Any, ...]] = Field(
        default_factory=dict, description="sizing key -> values; the cartesian product")
    workers: int | None = Field(None, ge=1, strict=True,
                                description="parallel workers; null = CPU count")
    engine: Literal["local", "ray"] = Field("local", description="executor")
    sim: Literal["fast", "backtrader"] = Field("fast", description="simulator of each cell")
    out: str = Field("results", description="parent folder of the results directory")
    cache_dir: str = Field(DEFAULT_CACHE_DIR, description="walk-forward prediction cache")
    pbo_splits: int = Field(16, ge=2, le=22, strict=True,
                            description="CSCV blocks for PBO (even)")
    task_timeout: float = Field(DEFAULT_TASK_TIMEOUT, gt=0, allow_inf_nan=False, strict=True,
                                description="seconds one task may run before the batch stops")

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> Any:
        value = _listed(value, "data", "AAPL,MSFT")
        seen: set[str] = set()
        for spec in (s for s in value if isinstance(s, str)):  # pydantic words the others
            if not spec.strip():
                raise ValueError("a dataset name is empty; name each dataset, e.g. AAPL,MSFT")
            if spec in seen:
                raise ValueError(f"dataset {short_repr(spec, _QUOTE)} is listed twice; list "
                                 "each dataset once")
            seen.add(spec)
        return value

    @field_validator("windows", mode="before")
    @classmethod
    def _windows(cls, value: Any) -> tuple[Window, ...]:
        value = _listed(value, "window", "2007:2009")
        parsed = [w if isinstance(w, Window) else Window.parse(str(w)) for w in value]
        return tuple(sorted(set(parsed)))

    @field_validator("costs", mode="before")
    @classmethod
    def _costs(cls, value: Any) -> tuple[float, ...]:
        return tuple(sorted({_cost(item) for item in _listed(value, "cost", "0,0.0005")}))

    @field_validator("sizing_grid", mode="before")
    @classmethod
    def _grid(cls, value: Any, info: ValidationInfo) -> dict[str, tuple[Any, ...]]:
        grid = parse_sizing_grid(value)
        base = info.data.get("base")
        if base is None:  # base failed its own validation, which reports first
            return grid
        for label, overrides in _sizing_cells(grid):
            try:
                SizingConfig.model_validate({**base.sizing.model_dump(), **overrides})
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
                raise ValueError(f"sizing grid cell {label}: {msg}; adjust the grid or the "
                                 "sizing section") from None
        return grid

    @field_validator("pbo_splits")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"pbo_splits must be even (CSCV halves the blocks), got {value}")
        return value

    @field_serializer("windows")
    def _window_labels(self, windows: tuple[Window, ...]) -> list[str]:
        return [w.label for w in windows]

    def sizing_cells(self) -> list[tuple[str, dict[str, Any]]]:
        """``(label, overrides)`` per sizing configuration; one ``default`` without a grid."""
        return _sizing_cells(self.sizing_grid)

    def sizing_for(self, overrides: dict[str, Any]) -> SizingConfig:
        return SizingConfig.model_validate({**self.base.sizing.model_dump(), **overrides})

    def prediction_hash(self) -> str:
        """sha256 of the keys that change walk-forward predictions, 16 hex digits."""
        return prediction_hash(self.base)

    def config_hash(self) -> str:
        """sha256 of everything that changes results (not out, workers, engine, cache)."""
        payload = self.model_dump(mode="json", exclude={"out", "workers", "engine", "cache_dir",
                                                        "task_timeout"})
        payload["base"].pop("workers", None)  # the grid's own workers key is excluded above
        for key, default in LATER_KEYS.items():  # as BacktestConfig.config_hash does
            if payload["base"].get(key) == default:
                del payload["base"][key]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """The config as one flat YAML mapping, the shape it is read in."""
        dumped = self.model_dump(mode="json")
        base = dumped.pop("base")
        return {**dumped, **{k: base[k] for k in MODEL_KEYS}}


def _cost(item: Any) -> float:
    """One cost per side: a number in [0, 0.1), from YAML or from the command line."""
    try:
        cost = float(item)
    except (TypeError, ValueError):
        cost = None
    if cost is None or isinstance(item, bool):  # float(True) is 1.0: not what was meant
        raise ValueError(f"cost {short_repr(item, _QUOTE)} is not a number; use fractions of "
                         "notional, e.g. 0.0005 for 5 bps")
    if not 0.0 <= cost < 0.1:
        raise ValueError(f"cost {short_repr(item, _QUOTE)} must be in [0, 0.1): a fraction of "
                         "notional per side, e.g. 0.0005 for 5 bps")
    return cost


def _sizing_cells(grid: dict[str, tuple[Any, ...]]) -> list[tuple[str, dict[str, Any]]]:
    if not grid:
        return [("default", {})]
    keys = list(grid)
    return [(";".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True)),
             dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*grid.values())]


def prediction_hash(cfg: BacktestConfig) -> str:
    """sha256 of the :data:`PREDICTION_KEYS` of a backtest config, 16 hex digits."""
    payload = cfg.model_dump(mode="json", include=set(PREDICTION_KEYS))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _describe(err: ValidationError, source: str, cli_keys: set[str]) -> str:
    e = first_error(err, source, cli_keys)
    source = e.source if e.from_cli or source == "command line" else f"{source}: key '{e.key}'"
    if e.kind == "value_error":
        return f"{source}: {e.message}"
    return f"{source}: {e.message} (got {e.got!r})"


def load_robustness_config(path: str | Path | None = None,
                           overrides: dict[str, Any] | None = None) -> RobustnessConfig:
    """Read a flat YAML config (optional), apply CLI overrides (None = unset), validate.

    Raises
    ------
    ConfigurationError
        Unreadable YAML, an unknown key, an empty or malformed grid, a negative cost, or a
        model or sizing value out of range: one line naming the flag or the file and key.
    """
    raw, source, cli_keys = read_config(path, overrides)
    grid_keys = set(RobustnessConfig.model_fields) - {"base"}
    for key in raw:
        if key not in grid_keys and key not in MODEL_KEYS:
            hint = f"use {_HINTS[key]}" if key in _HINTS else \
                "see configs/robustness.yaml for keys"
            raise ConfigurationError(f"{source}: unknown key '{key}'; {hint}")
    try:
        base = BacktestConfig.model_validate({k: raw[k] for k in MODEL_KEYS if k in raw})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, source, cli_keys)) from None
    try:
        return RobustnessConfig.model_validate(
            {**{k: v for k, v in raw.items() if k in grid_keys}, "base": base})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, source, cli_keys)) from None
