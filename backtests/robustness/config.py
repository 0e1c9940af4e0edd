"""Robustness grid configuration: datasets (or universes) × windows × costs (× sizing overrides).

One frozen model, :class:`RobustnessConfig`, holds the grid keys; the model and sizing keys
it shares with a single backtest live in ``base``, a :class:`~backtests.config.BacktestConfig`
validated by that class itself, so both commands accept the same values.  Lists may come from
YAML (sequences) or from the command line (comma-separated strings); every failure is a
one-line :class:`~ensemble_bt.errors.ConfigurationError` that names the flag or the file and key.
"""

from __future__ import annotations

import hashlib
import json
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
from backtests.robustness.sizing_grid import (
    parse_sizing_grid,
    sizing_cells,
    split_list,
)
from backtests.robustness.universes import parse_universes
from ensemble_bt.errors import ConfigurationError
from ensemble_bt.yamlio import first_error, read_config, short_repr
from sizing.config import SizingConfig

DEFAULT_DATA = ("AAPL", "IBM", "MSFT", "GOOG", "SP500", "NASDAQ")
DEFAULT_WINDOWS = ("2007:2009", "2010:2012")
DEFAULT_COSTS = (0.0, 0.0005, 0.001, 0.0025)  # 0, 5, 10 and 25 bps per side
DEFAULT_CACHE_DIR = ".cache/ensemble-bt/predictions"
# Keys a robustness config shares with `ensemble-bt backtest` (validated by BacktestConfig).
MODEL_KEYS = ("horizon", "retrain_every", "min_train", "embargo", "models", "stack", "deep",
              "seed", "initial_cash", "device", "sizing", *LATER_KEYS)
# Keys that apply to universes only (a portfolio's): refused in a grid of one-symbol cells.
UNIVERSE_KEYS = tuple(LATER_KEYS)
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


def _listed(value: Any, what: str, example: str) -> list[Any]:
    """``value`` as a list (a CLI string split at commas), or a one-line ``ValueError``."""
    value = split_list(value)
    if value is None or isinstance(value, list | tuple) and not value:
        raise ValueError(f"the {what} list is empty; give at least one, e.g. {example}")
    if not isinstance(value, list | tuple):
        raise ValueError(f"a {what} list is expected, e.g. {example}; got a "
                         f"{type(value).__name__} ({short_repr(value, _QUOTE)})")
    return list(value)


class RobustnessConfig(BaseModel):
    """Everything ``ensemble-bt robustness`` needs (see ``configs/robustness.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # First, so that the sizing grid's validator can check each cell against it.
    base: BacktestConfig = Field(default_factory=BacktestConfig,
                                 description="model and sizing keys shared with backtest")
    data: tuple[str, ...] = Field(DEFAULT_DATA, description="datasets: embedded names or paths")
    universes: tuple[tuple[str, ...], ...] | None = Field(
        None, description="portfolios in place of datasets: each a cell dimension")
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

    @field_validator("universes", mode="before")
    @classmethod
    def _universes(cls, value: Any) -> tuple[tuple[str, ...], ...] | None:
        return parse_universes(value)

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
        for label, overrides in sizing_cells(grid):
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

    @field_serializer("universes")
    def _universe_lists(self, universes: tuple[tuple[str, ...], ...] | None,
                        ) -> list[str] | None:
        return None if universes is None else [",".join(u) for u in universes]

    def _dump(self, **kwargs: Any) -> dict[str, Any]:
        """``model_dump`` in JSON mode without the cell dimension not in use."""
        dumped = self.model_dump(mode="json", **kwargs)
        dumped.pop("universes" if self.universes is None else "data", None)
        return dumped

    def sizing_cells(self) -> list[tuple[str, dict[str, Any]]]:
        """``(label, overrides)`` per sizing configuration; one ``default`` without a grid."""
        return sizing_cells(self.sizing_grid)

    def sizing_for(self, overrides: dict[str, Any]) -> SizingConfig:
        return SizingConfig.model_validate({**self.base.sizing.model_dump(), **overrides})

    def prediction_hash(self) -> str:
        """sha256 of the keys that change walk-forward predictions, 16 hex digits."""
        return prediction_hash(self.base)

    def config_hash(self) -> str:
        """sha256 of everything that changes results (not out, workers, engine, cache)."""
        payload = self._dump(exclude={"out", "workers", "engine", "cache_dir", "task_timeout"})
        payload["base"].pop("workers", None)  # the grid's own workers key is excluded above
        for key, default in LATER_KEYS.items():  # as BacktestConfig.config_hash does
            if payload["base"].get(key) == default:
                del payload["base"][key]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def flat(self) -> dict[str, Any]:
        """The config as one flat YAML mapping, the shape it is read in."""
        dumped = self._dump()
        base = dumped.pop("base")
        return {**dumped, **{k: base[k] for k in MODEL_KEYS
                             if k not in LATER_KEYS or base[k] != LATER_KEYS[k]}}


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
    _check_cell_dimension(raw, source, cli_keys)
    try:
        base = BacktestConfig.model_validate({k: raw[k] for k in MODEL_KEYS if k in raw})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, source, cli_keys)) from None
    if raw.get("universes") is None:
        for key in (k for k in UNIVERSE_KEYS if getattr(base, k) != LATER_KEYS[k]):
            raise ConfigurationError(f"{source}: key '{key}' applies to universes (--universes "
                                     "A,B;C,D); remove it for a grid of one-symbol cells")
    try:
        return RobustnessConfig.model_validate(
            {**{k: v for k, v in raw.items() if k in grid_keys}, "base": base})
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, source, cli_keys)) from None


def _check_cell_dimension(raw: dict[str, Any], source: str, cli_keys: set[str]) -> None:
    """Universes replace datasets.

    Raises
    ------
    ConfigurationError
        Both ``data`` and ``universes`` set.
    """
    if raw.get("universes") is None:
        return
    def where(key: str) -> str:
        return f"--{key}" if key in cli_keys else f"key '{key}' of {source}"

    if raw.get("data") is not None:
        raise ConfigurationError(f"{where('universes')} and {where('data')} are both set; "
                                 "each universe is a cell in place of a dataset: give one of "
                                 "them")

