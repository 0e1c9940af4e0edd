"""Backtest configuration: frozen pydantic models that reject unknown keys.

Loading happens in two layers: types and keys (pydantic), then cross-field checks that need
the data (in :mod:`backtests.runner`).  Every failure becomes a one-line
:class:`~ensemble_bt.errors.ConfigurationError` naming the file, the key and the fix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from ensemble_bt.errors import ConfigurationError
from ensemble_bt.yamlio import first_error, read_config
from models.learners.registry import DEEP_LEARNERS, GBM_LEARNERS, check_learner_name
from sizing.config import PortfolioConfig, SizingConfig


class StackConfig(BaseModel):
    """How base learners are stacked (``models.stacking``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # mean is the default because neither stacked meta-learner beat it out of sample on the
    # planted-signal data (benchmarks/RESULTS.md, "Stacking").
    meta: Literal["elasticnet", "xgb", "mean"] = Field(
        "mean", description="meta-learner over out-of-fold base predictions")
    n_folds: int = Field(3, ge=1, le=10, description="walk-forward folds inside each window")
    scheme: Literal["anchored", "rolling"] = Field("anchored", description="fold training rows")
    top_k: int | None = Field(None, ge=1, description="keep this many features; null keeps all")
    selection: Literal["shap", "importance"] = Field("shap", description="how top_k ranks")
    alpha: float = Field(0.01, gt=0, le=10, description="ElasticNet penalty (standardised)")


class DeepConfig(BaseModel):
    """Hyperparameters of the sequence learners ``lstm`` and ``xlstm`` (``models.learners.deep``).

    The defaults are small on purpose: a CPU fit takes a few seconds, most of it TensorFlow
    tracing the training step, so a walk-forward with a deep learner stays affordable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    seq_len: int = Field(16, ge=2, le=256, description="rows in each causal window")
    units: int = Field(16, ge=2, le=512, description="width of recurrent/attention layers")
    n_blocks: int = Field(1, ge=1, le=8, description="Transformer (lstm) or sLSTM blocks")
    n_heads: int = Field(2, ge=1, le=16, description="attention heads (lstm only)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout inside the blocks")
    l2: float = Field(0.0, ge=0, description="L2 penalty on the output layer")
    loss: Literal["mse", "directional_huber"] = Field(
        "mse", description="training loss (mse: see models/learners/deep.py for why)")
    learning_rate: float = Field(2e-3, gt=0, le=1, description="Adam learning rate")
    epochs: int = Field(12, ge=1, le=1000, description="epoch cap")
    batch_size: int = Field(256, ge=1, le=65536, description="minibatch size")
    patience: int = Field(3, ge=0, le=100, description="early-stopping patience in epochs")


class BacktestConfig(BaseModel):
    """Everything a walk-forward backtest of one symbol, or of one account over several
    (``data: AAPL,MSFT``), needs."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    data: str = Field("AAPL", description="embedded dataset name, CSV/Parquet path or "
                                          "store:SYMBOL; a comma list is a portfolio")
    start: date | None = Field(None, description="first evaluation bar (default: first with "
                                                 "min_train bars of history)")
    end: date | None = Field(None, description="last evaluation bar (default: last bar)")
    horizon: int = Field(5, ge=1, le=63, description="label horizon in bars")
    retrain_every: int = Field(63, ge=1, description="bars between vintages")
    min_train: int = Field(504, ge=200, description="bars of history before the first cutoff")
    embargo: int = Field(5, ge=0, le=63, description="extra bars between labels and cutoff")
    models: tuple[str, ...] = Field(("xgb", "lgbm"), min_length=1, description="base learners")
    commission: float = Field(0.0005, ge=0, lt=0.1, description="fraction of notional per fill")
    slippage: float = Field(0.0005, ge=0, lt=0.1, description="fraction of price per fill")
    initial_cash: float = Field(100_000.0, gt=0, description="starting equity")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="seed of every learner")
    sim: Literal["backtrader", "fast"] = Field(
        "backtrader", description="simulation engine: backtrader (the reference) or fast (its "
        "numba replay: backtests.fastpath, backtests.fastportfolio)")
    bundle: str | None = Field(None, description="backtest this fixed bundle (out of sample "
                                                  "only) instead of walk-forward vintages")
    out: str = Field("results", description="parent folder of the results directory")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="learner device; auto "
                                                  "uses a GPU where a probe finds one")
    stack: StackConfig = StackConfig()
    deep: DeepConfig = DeepConfig()
    sizing: SizingConfig = SizingConfig()
    workers: int | None = Field(None, ge=1, le=256, description="processes fitting pooled "
                                "vintages (default: the CPU count); results do not depend on it")
    model_scope: Literal["per_symbol", "pooled"] = Field(
        "per_symbol", description="several symbols: one model per symbol (per_symbol), or one "
        "cross-sectional model over all of them (pooled)")
    target: Literal["raw", "demeaned"] = Field(
        "raw", description="label: the forward log return (raw), or less the universe's "
        "equal-weight mean on the same date (demeaned; several symbols)")
    portfolio: PortfolioConfig | None = Field(
        None, description="several symbols: how one account trades them (docs/sizing.md, "
        "Portfolios); null: equal allocations")

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in value if m not in GBM_LEARNERS and m not in DEEP_LEARNERS]
        if unknown:
            raise ValueError(f"unknown model(s) {unknown}; choose from {list(GBM_LEARNERS)} or "
                             f"{list(DEEP_LEARNERS)} (with ensemble-bt[deep])")
        if len(set(value)) != len(value):
            raise ValueError("a model is listed twice")
        for m in value:
            try:
                check_learner_name(m)  # lstm/xlstm without TensorFlow: install the extra
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return value

    def config_hash(self) -> str:
        """sha256 of everything that changes results (``out`` excluded), 16 hex digits.

        A key added after runs were first hashed (:data:`LATER_KEYS`) counts only when it is
        set away from its default, so that adding it changed no earlier run's hash.
        """
        payload = self.model_dump(mode="json", exclude={"out", "workers"})
        for key, default in LATER_KEYS.items():
            if payload[key] == default:
                del payload[key]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


#: Keys hashed only away from their default (:meth:`BacktestConfig.config_hash`).
LATER_KEYS: dict[str, Any] = {"model_scope": "per_symbol", "target": "raw", "portfolio": None}


#: Command-line flags that set one key of a block, by dotted key (``ensemble_bt.cli``).
NESTED_FLAGS = {"portfolio.mode": "--portfolio", "portfolio.k": "--top-k",
                "portfolio.dropout": "--top-k-dropout", "portfolio.max_gross": "--max-gross"}


def _describe(err: ValidationError, source: str, cli_keys: set[str],
              nested: Collection[str] = ()) -> str:
    e = first_error(err, source, cli_keys)
    if e.key in nested:
        e = e._replace(source=NESTED_FLAGS[e.key])
    if e.kind == "extra_forbidden":
        return f"{e.source}: unknown key '{e.key}'; remove it (see configs/backtest.yaml for keys)"
    if e.kind == "value_error":  # a cross-field rule: the message names the key
        return f"{e.source}: {e.message}"
    return f"{e.source}: key '{e.key}': {e.message} (got {e.got!r})"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                ) -> BacktestConfig:
    """Read a YAML config (optional), apply CLI overrides, validate.

    An override keyed ``block.key`` (``portfolio.k``) sets that one key inside the block,
    leaving the block's other keys as the file has them.

    Raises
    ------
    ConfigurationError
        Unreadable YAML, unknown keys or out-of-range values.
    """
    overrides = overrides or {}
    nested = {k: v for k, v in overrides.items() if "." in k and v is not None}
    raw, source, cli_keys = read_config(path, {k: v for k, v in overrides.items()
                                               if "." not in k})
    for dotted, value in nested.items():
        block, key = dotted.split(".", 1)
        inner = raw.get(block)
        raw[block] = {**(inner if isinstance(inner, dict) else {}), key: value}
    try:
        cfg = BacktestConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, source, cli_keys, set(nested))) from None
    if cfg.bundle is not None:
        _check_bundle_flags(cli_keys)
    return cfg


#: Keys that shape how vintages are trained: a fixed bundle was trained already.
TRAINING_KEYS = ("models", "retrain_every", "min_train", "embargo", "stack", "deep", "seed")


def _check_bundle_flags(cli_keys: set[str]) -> None:
    """Refuse training flags next to ``--bundle``: they would be silently ignored."""
    given = [k for k in TRAINING_KEYS if k in cli_keys]
    if given:
        flag = f"--{given[0].replace('_', '-')}"
        raise ConfigurationError(f"{flag} does not apply to a bundle: its learners were "
                                 f"trained by `ensemble-bt train`; drop {flag}, or drop "
                                 "--bundle to backtest walk-forward vintages")


def check_bundle_config(cfg: BacktestConfig, manifest: dict[str, Any]) -> BacktestConfig:
    """``cfg`` describing what a bundle backtest runs: the bundle's learners and stack.

    Raises
    ------
    ConfigurationError
        The config sets ``models`` or ``stack`` to something other than the bundle's.
    """
    update: dict[str, Any] = {}
    theirs = manifest.get("models")
    if isinstance(theirs, list) and all(isinstance(m, str) for m in theirs):
        if "models" in cfg.model_fields_set and list(cfg.models) != theirs:
            raise ConfigurationError(f"models {list(cfg.models)} differ from the bundle's "
                                     f"{theirs}; remove models from the config")
        update["models"] = tuple(theirs)
    try:
        stack = StackConfig.model_validate(manifest.get("stack"))
    except ValidationError:
        stack = None
    if stack is not None:
        if "stack" in cfg.model_fields_set and cfg.stack != stack:
            raise ConfigurationError("the config's stack differs from the bundle's "
                                     f"{stack.model_dump()}; remove stack from the config")
        update["stack"] = stack
    return cfg.model_copy(update=update)
