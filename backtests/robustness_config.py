"""Robustness grid configuration: datasets × windows × costs (× sizing overrides).

One frozen model, :class:`RobustnessConfig`, holds the grid keys; the model and sizing keys
it shares with a single backtest live in ``base``, a :class:`~backtests.config.BacktestConfig`
validated by that class itself, so both commands accept the same values.  Lists may come from
YAML (sequences) or from the command line (comma-separated strings); every failure is a
one-line :class:`~models.errors.ConfigurationError` that names the flag or the file and key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from backtests.config import BacktestConfig
from backtests.yaml_config import first_error, read_config
from models.errors import ConfigurationError
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


@dataclass(frozen=True, order=True)
class Window:
    """Evaluation years ``first..last`` inclusive: their first to last trading day."""

    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> Window:
        match = _WINDOW.match(str(text))
        if not match:
            raise ValueError(f"window {text!r} is not START:END in years, e.g. 2007:2009")
        first, last = int(match[1]), int(match[2] or match[1])
        if first > last:
            raise ValueError(f"window {text!r} ends before it starts; write {last}:{first}")
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
    if isinstance(value, int | float):
        return [value]
    return value


def parse_sizing_grid(value: Any) -> dict[str, tuple[Any, ...]]:
    """``max_long=1.3,1.8;rebalance_band=0.02,0.05`` (or a YAML mapping) to key -> values."""
    if value is None:
        return {}
    if isinstance(value, str):
        grid: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in value.split(";"))):
            key, sep, values = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"sizing grid entry {part!r} is not KEY=V1,V2")
            grid[key.strip()] = [yaml.safe_load(v) for v in _split(values)]
        value = grid
    if not isinstance(value, dict):
        raise ValueError("sizing_grid must map sizing keys to lists of values")
    out: dict[str, tuple[Any, ...]] = {}
    for key, values in value.items():
        if key not in SizingConfig.model_fields:
            raise ValueError(f"sizing grid key {key!r} is not a sizing key; choose from "
                             f"{', '.join(SizingConfig.model_fields)}")
        values = tuple(_split(values) if isinstance(values, str) else
                       values if isinstance(values, list | tuple) else [values])
        if not values:
            raise ValueError(f"sizing grid key {key!r} has no values")
        out[str(key)] = values
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
    workers: int | None = Field(None, ge=1, description="parallel workers; null = CPU count")
    engine: Literal["local", "ray"] = Field("local", description="executor")
    sim: Literal["fast", "backtrader"] = Field("fast", description="simulator of each cell")
    out: str = Field("results", description="parent folder of the results directory")
    cache_dir: str = Field(DEFAULT_CACHE_DIR, description="walk-forward prediction cache")
    pbo_splits: int = Field(16, ge=2, le=22, description="CSCV blocks for PBO (even)")

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> Any:
        value = _split(value)
        if isinstance(value, list | tuple) and not value:
            raise ValueError("the data list is empty; name at least one dataset, e.g. AAPL")
        return value

    @field_validator("windows", mode="before")
    @classmethod
    def _windows(cls, value: Any) -> tuple[Window, ...]:
        value = _split(value)
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("the window list is empty; give at least one, e.g. 2007:2009")
        parsed = [w if isinstance(w, Window) else Window.parse(str(w)) for w in value]
        return tuple(sorted(set(parsed)))

    @field_validator("costs", mode="before")
    @classmethod
    def _costs(cls, value: Any) -> tuple[float, ...]:
        value = _split(value)
        if not isinstance(value, list | tuple) or not value:
            raise ValueError("the cost list is empty; give at least one cost per side, "
                             "e.g. 0,0.0005")
        costs = []
        for item in value:
            try:
                cost = float(item)
            except (TypeError, ValueError):
                raise ValueError(f"cost {item!r} is not a number; use fractions of notional, "
                                 "e.g. 0.0005 for 5 bps") from None
            if not 0.0 <= cost < 0.1:
                raise ValueError(f"cost {item} must be in [0, 0.1): a fraction of notional "
                                 "per side, e.g. 0.0005 for 5 bps")
            costs.append(cost)
        return tuple(sorted(set(costs)))

    @field_validator("sizing_grid", mode="before")
    @classmethod
    def _grid(cls, value: Any, info: ValidationInfo) -> dict[str, tuple[Any, ...]]:
        grid = parse_sizing_grid(value)
        base = info.data.get("base")
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
        payload = self.model_dump(mode="json", exclude={"out", "workers", "engine", "cache_dir"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """The config as one flat YAML mapping, the shape it is read in."""
        dumped = self.model_dump(mode="json")
        base = dumped.pop("base")
        return {**dumped, **{k: base[k] for k in MODEL_KEYS}}


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
