"""Paper-trading configuration: symbols, bundle, costs, sizing, portfolio, and the real-money
opt-in.

The ``portfolio:`` block is the backtest's (:class:`sizing.config.PortfolioConfig`): the
daemon trades several symbols exactly as ``backtest --data A,B`` does.  The older top-level
``allocations`` key stays accepted as ``portfolio.allocations`` (:meth:`PaperConfig.
effective_portfolio`); setting both differently is refused.

Where the clients connect is :class:`live.alpaca.endpoints.AlpacaEndpoints` (the ``alpaca``
key): whether a resolved endpoint moves real money is decided there, whether a session may
use one (:func:`check_live`) here.

Credentials are never part of a config: they come from ``APCA_API_KEY_ID`` and
``APCA_API_SECRET_KEY`` (see :func:`live.alpaca.keys.credentials_from_env`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ensemble_bt.errors import ConfigurationError
from ensemble_bt.yamlio import first_error, read_config
from live.alpaca.endpoints import AlpacaEndpoints, live_endpoint, why_live
from live.session.retrain import RetrainConfig
from sizing.config import PortfolioConfig, SizingConfig

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
_ID = re.compile(r"^[A-Za-z0-9_]{1,16}$")
#: The environment's half of the real-money opt-in (the config's half is ``allow_live``).
LIVE_ENV = "ENSEMBLE_BT_ALLOW_LIVE"


class PaperConfig(BaseModel):
    """Everything a paper session needs (``configs/paper.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, ...] = Field(("AAPL",), min_length=1, description="symbols traded")
    bundle: str = Field(..., description="trained bundle directory (ensemble-bt train)")
    horizon: int = Field(5, ge=1, le=63, description="label horizon of the bundle")
    allocations: dict[str, float] | None = Field(None, description="share of equity per "
                                                 "symbol; null splits equally (the same as "
                                                 "portfolio.allocations)")
    portfolio: PortfolioConfig | None = Field(None, description="several symbols: how the "
                                              "account trades them, as in a backtest "
                                              "(docs/sizing.md, Portfolios); null: "
                                              "allocations mode")
    model_scope: Literal["per_symbol", "pooled"] = Field(
        "per_symbol", description="per_symbol: the bundle predicts each symbol on its own "
        "bars; pooled is refused (no pooled bundles yet)")
    history_days: int = Field(400, ge=150, le=3650, description="calendar days of history "
                              "backfilled to warm up features")
    commission: float = Field(0.0, ge=0, lt=0.1, description="fraction of notional per fill")
    slippage: float = Field(0.0, ge=0, lt=0.1, description="fraction of price per fill "
                            "(replay server only; Alpaca fills at market)")
    initial_cash: float = Field(100_000.0, gt=0, description="starting cash (replay only)")
    strategy_id: str = Field("ens", description="prefix of every client_order_id")
    allow_live: bool = Field(False, description="with ENSEMBLE_BT_ALLOW_LIVE=1, allows a "
                             "live trading endpoint (real money): any but Alpaca's paper "
                             "host, loopback or a sim server")
    state_dir: str = Field("paper_state", description="where the session records bars, "
                           "decisions and orders (a new or empty directory)")
    decision_delay_minutes: int = Field(10, ge=0, le=240, description="decision time: minutes "
                                        "after each session's close (Alpaca clock) to wait "
                                        "for the daily bar before backfilling it")
    retrain: RetrainConfig = RetrainConfig()
    alpaca: AlpacaEndpoints = AlpacaEndpoints()
    sizing: SizingConfig = SizingConfig(max_long=0.95, max_short=0.0, base_long_bias=0.8,
                                        margin_rate=0.0, short_borrow_rate=0.0)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        value = tuple(s.upper() for s in value)
        bad = [s for s in value if not _SYMBOL.match(s)]
        if bad:
            raise ValueError(f"symbols: {bad} are not ticker symbols")
        if len(set(value)) != len(value):
            raise ValueError("symbols: a symbol is listed twice")
        return value

    @field_validator("strategy_id")
    @classmethod
    def _strategy_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("strategy_id: use 1-16 letters, digits or underscores")
        return value

    @field_validator("model_scope")
    @classmethod
    def _model_scope(cls, value: str) -> str:
        if value == "pooled":
            raise ValueError("model_scope: pooled needs a pooled bundle, and pooled bundles are "
                             "not supported yet (`train` makes per-symbol bundles); paper "
                             "trades model_scope: per_symbol only")
        return value

    @model_validator(mode="after")
    def _one_allocations(self) -> PaperConfig:
        if self.allocations is None:
            return self
        if self.portfolio is not None and self.portfolio.mode == "topk":
            raise ValueError("allocations applies to portfolio.mode allocations; remove it "
                             "with portfolio.mode topk")
        mine = {k.strip().upper(): float(v) for k, v in self.allocations.items()}
        theirs = self.portfolio.allocations if self.portfolio is not None else None
        if theirs is not None and mine != theirs:
            raise ValueError("allocations and portfolio.allocations differ; set only "
                             "portfolio.allocations")
        try:
            self.effective_portfolio()
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None
        return self

    def effective_portfolio(self) -> PortfolioConfig:
        """The ``portfolio:`` block with the top-level ``allocations`` folded in.

        Only the keys set away from their defaults are carried, so the result round-trips
        through :func:`portfolio_facts` and ``PortfolioConfig.model_validate``.
        """
        raw = (self.portfolio.model_dump(mode="json", exclude_defaults=True)
               if self.portfolio is not None else {})
        if self.allocations is not None:
            raw["allocations"] = dict(self.allocations)
        try:
            return PortfolioConfig.model_validate(raw)
        except ValidationError as exc:  # the top-level allocations broke a portfolio rule
            message = first_error(exc, "allocations").message
            raise ConfigurationError(message.replace("portfolio.allocations", "allocations")
                                     ) from None

    def checked_portfolio(self) -> PortfolioConfig:
        """:meth:`effective_portfolio`, checked against the traded ``symbols``.

        Raises
        ------
        ConfigurationError
            ``portfolio.k`` above the number of symbols, or allocations that do not name
            exactly the traded symbols.
        """
        portfolio = self.effective_portfolio()
        symbols = list(self.symbols)
        if portfolio.k is not None and portfolio.k > len(symbols):
            raise ConfigurationError(f"portfolio.k {portfolio.k} is more than the "
                                     f"{len(symbols)} traded symbols {symbols[:20]}; choose "
                                     f"k <= {len(symbols)}")
        alloc = portfolio.allocations
        if alloc is not None and set(alloc) != set(symbols):
            key = "allocations" if self.allocations is not None else "portfolio.allocations"
            raise ConfigurationError(f"{key} must name exactly the traded symbols "
                                     f"{symbols[:20]}; got {sorted(alloc)[:20]}: fix {key} "
                                     "in the config, or set it to null")
        return portfolio


def portfolio_facts(portfolio: PortfolioConfig) -> dict[str, Any]:
    """How a session journals its portfolio: the keys set away from their defaults."""
    return portfolio.model_dump(mode="json", exclude_defaults=True)


def check_live(cfg: PaperConfig, environ: dict[str, str] | None = None) -> None:
    """Refuse real money unless ``allow_live: true`` *and* ``ENSEMBLE_BT_ALLOW_LIVE=1``.

    The resolved endpoints decide (:func:`live.alpaca.endpoints.live_endpoint`), not
    ``alpaca.paper``: ``paper: true`` with ``trading_url: https://api.alpaca.markets`` is live.

    Parameters
    ----------
    cfg : PaperConfig
        The effective config (``--replay`` has already pointed it at its local server).
    environ : dict | None
        The environment to read ``ENSEMBLE_BT_ALLOW_LIVE`` from; defaults to ``os.environ``.

    Raises
    ------
    ConfigurationError
        A live endpoint without both opt-ins; the message names the endpoint.
    """
    first = live_endpoint(cfg.alpaca)
    if first is None:
        return
    env = os.environ if environ is None else environ
    if cfg.allow_live and env.get(LIVE_ENV) == "1":
        return
    raise ConfigurationError(f"{why_live(first)}; real money needs allow_live: true in the "
                             f"config and {LIVE_ENV}=1 in the environment")


def load_paper_config(path: str | Path | None, overrides: dict[str, Any] | None = None,
                      ) -> PaperConfig:
    """Read and validate a paper config; every failure is a one-line ConfigurationError."""
    raw, source, _ = read_config(path, overrides)
    try:
        return PaperConfig.model_validate(raw)
    except ValidationError as exc:
        e = first_error(exc, source)
        if e.kind == "extra_forbidden":
            raise ConfigurationError(f"{source}: unknown key '{e.key}'; remove it (see "
                                     "configs/paper.yaml for keys)") from None
        if e.kind == "missing":
            raise ConfigurationError(f"{source}: key '{e.key}' is required") from None
        if e.kind == "value_error" and (e.key == "(top level)"
                                        or e.message.startswith(e.key.split(".")[0])):
            raise ConfigurationError(f"{source}: {e.message}") from None  # it names its key
        raise ConfigurationError(f"{source}: key '{e.key}': {e.message}") from None
