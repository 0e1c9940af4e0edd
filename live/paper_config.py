"""Paper-trading configuration: endpoints, symbols, bundle, costs and sizing.

Credentials are never part of a config: they come from ``APCA_API_KEY_ID`` and
``APCA_API_SECRET_KEY`` (see :func:`credentials_from_env`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backtests.yaml_config import first_error, read_config
from live.retrain import RetrainConfig
from models.errors import ConfigurationError
from sizing.config import SizingConfig

_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")
_ID = re.compile(r"^[A-Za-z0-9_]{1,16}$")


class AlpacaEndpoints(BaseModel):
    """Where the clients connect.  ``null`` URLs mean Alpaca's own (paper) endpoints.

    ``ensemble-bt paper --replay`` points every URL at the local server it starts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    paper: bool = Field(True, description="Alpaca's paper endpoints; false means real money "
                        "and needs allow_live plus ENSEMBLE_BT_ALLOW_LIVE=1")
    sim: bool = Field(False, description="the endpoints are a local replay server "
                      "(ensemble-bt sim-server): drive its replay")
    trading_url: str | None = Field(None, description="TradingClient url_override")
    data_url: str | None = Field(None, description="StockHistoricalDataClient url_override")
    data_stream_url: str | None = Field(None, description="StockDataStream url_override")
    trading_stream_url: str | None = Field(None, description="TradingStream url_override")
    feed: Literal["iex", "sip"] = Field("iex", description="market-data feed")
    stream_bars: Literal["bars", "dailyBars"] = Field(
        "dailyBars", description="stream channel: dailyBars for daily strategies, bars for the "
        "local server's replay")
    rest_retries: int = Field(3, ge=0, le=10, description="retries of a 429/5xx REST reply")
    rest_retry_wait: float = Field(0.5, ge=0, le=60, description="seconds between retries")
    fill_timeout: float = Field(10.0, gt=0, description="seconds to wait for the trading "
                                "stream before reconciling fills over REST (replay)")
    bar_timeout: float = Field(5.0, gt=0, description="seconds to wait for a streamed bar "
                               "before backfilling it over REST (replay)")


class PaperConfig(BaseModel):
    """Everything a paper session needs (``configs/paper.yaml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, ...] = Field(("AAPL",), min_length=1, description="symbols traded")
    bundle: str = Field(..., description="trained bundle directory (ensemble-bt train)")
    horizon: int = Field(5, ge=1, le=63, description="label horizon of the bundle")
    allocations: dict[str, float] | None = Field(None, description="share of equity per "
                                                 "symbol; null splits equally")
    history_days: int = Field(400, ge=150, le=3650, description="calendar days of history "
                              "backfilled to warm up features")
    commission: float = Field(0.0, ge=0, lt=0.1, description="fraction of notional per fill")
    slippage: float = Field(0.0, ge=0, lt=0.1, description="fraction of price per fill "
                            "(replay server only; Alpaca fills at market)")
    initial_cash: float = Field(100_000.0, gt=0, description="starting cash (replay only)")
    strategy_id: str = Field("ens", description="prefix of every client_order_id")
    allow_live: bool = Field(False, description="with ENSEMBLE_BT_ALLOW_LIVE=1, allows "
                             "alpaca.paper: false (real money)")
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

    def checked_allocations(self) -> dict[str, float] | None:
        """Allocations for :class:`sizing.sizers.KellySizer`, checked against ``symbols``."""
        if self.allocations is None:
            return None
        alloc = {k.upper(): float(v) for k, v in self.allocations.items()}
        if set(alloc) != set(self.symbols):
            raise ConfigurationError(f"allocations must name exactly the symbols "
                                     f"{list(self.symbols)}; got {sorted(alloc)}")
        if any(v < 0 for v in alloc.values()) or sum(alloc.values()) > 1.0 + 1e-9:
            raise ConfigurationError("allocations must be >= 0 and sum to at most 1")
        return alloc


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
        raise ConfigurationError(f"{source}: key '{e.key}': {e.message}") from None


def credentials_from_env(default: tuple[str, str] | None = None) -> tuple[str, str]:
    """``(key_id, secret)`` from ``APCA_API_KEY_ID`` / ``APCA_API_SECRET_KEY``.

    ``default`` is used when both are unset (the local replay server); otherwise a missing
    variable is a ConfigurationError.  The values are never logged.
    """
    key, secret = os.environ.get("APCA_API_KEY_ID"), os.environ.get("APCA_API_SECRET_KEY")
    if key and secret:
        return key, secret
    if default is not None and not key and not secret:
        return default
    raise ConfigurationError("set APCA_API_KEY_ID and APCA_API_SECRET_KEY in the environment "
                             "(paper keys from the Alpaca dashboard)")
