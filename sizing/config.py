"""Sizing configuration, shared by backtests, the fast path and paper.

:class:`SizingConfig` sizes one symbol and holds the account's breaker;
:class:`PortfolioConfig` says how one account trades several symbols.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class SizingConfig(BaseModel):
    """The lagged half-Kelly hybrid and its drawdown circuit breaker (``docs/sizing.md``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    max_long: float = Field(1.8, gt=0, le=4, description="largest long weight (gross leverage)")
    max_short: float = Field(0.1, ge=0, le=4, description="largest short weight")
    base_long_bias: float = Field(1.30, ge=0, le=4, description="weight when bullish, "
                                  "before the Kelly tilt")
    bearish_risk_off: float = Field(0.10, ge=0, le=4, description="weight when bearish, "
                                    "before the Kelly tilt")
    kelly_scale: float = Field(0.5, gt=0, le=1, description="fraction of full Kelly")
    signal_scale: float = Field(0.05, gt=0, le=10, description="forecast mu/sigma at which the "
                                "tilt reaches tanh(1)")
    prior_strength: float = Field(50.0, ge=0, description="pseudo-outcomes behind the prior")
    prior_low: float = Field(0.50, gt=0, lt=1, description="floor of the win-rate prior")
    prior_high: float = Field(0.60, gt=0, lt=1, description="cap of the win-rate prior")
    stats_window: int = Field(252, ge=1, description="resolved predictions in the lagged stats")
    vol_target: float | None = Field(None, gt=0, le=2, description="annualised volatility "
                                     "target; null disables it")
    vol_window: int = Field(21, ge=2, le=252, description="bars of realised volatility")
    rebalance_band: float = Field(0.05, ge=0, lt=1, description="smallest weight change traded")
    drawdown_circuit_breaker: float = Field(0.25, gt=0, lt=1, description="drawdown that trips "
                                            "the breaker")
    drawdown_max_position: float = Field(0.60, gt=0, lt=1, description="|weight| cap while "
                                         "tripped")
    drawdown_reset: float = Field(0.10, gt=0, lt=1, description="drawdown at which a tripped "
                                  "breaker releases")
    drawdown_halt: float | None = Field(None, gt=0, lt=1, description="drawdown that halts new "
                                        "exposure; null disables it")
    margin_rate: float = Field(0.07, ge=0, lt=1, description="annual interest on borrowed cash")
    short_borrow_rate: float = Field(0.01, ge=0, lt=1, description="annual fee on short value")

    @model_validator(mode="after")
    def _consistent(self) -> SizingConfig:
        checks = [
            (self.prior_low <= self.prior_high, "prior_low", f"<= prior_high ({self.prior_high})"),
            (self.bearish_risk_off <= self.base_long_bias, "bearish_risk_off",
             f"<= base_long_bias ({self.base_long_bias})"),
            (self.base_long_bias <= self.max_long, "base_long_bias",
             f"<= max_long ({self.max_long})"),
            (self.drawdown_reset < self.drawdown_circuit_breaker, "drawdown_reset",
             f"< drawdown_circuit_breaker ({self.drawdown_circuit_breaker})"),
            (self.drawdown_halt is None or self.drawdown_halt > self.drawdown_circuit_breaker,
             "drawdown_halt", f"> drawdown_circuit_breaker ({self.drawdown_circuit_breaker})"),
        ]
        for ok, key, rule in checks:
            if not ok:
                raise ValueError(f"sizing.{key} must be {rule}")
        return self


class PortfolioConfig(BaseModel):
    """How one account trades several symbols (``docs/sizing.md``, "Portfolios").

    Each symbol trades a slice of the account: its allocation (``mode: allocations``) or
    ``1/k`` (``mode: topk``).  Its slice weight comes from the lagged half-Kelly hybrid
    (allocations, and topk with ``weights: kelly``) or is 1 (topk, ``weights: equal``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    mode: Literal["allocations", "topk"] = Field(
        "allocations", description="allocations: a fixed slice per symbol; topk: hold the k "
        "best-predicted symbols, long only")
    allocations: dict[str, float] | None = Field(
        None, description="mode allocations: share of equity per symbol (>= 0, sum <= 1); "
        "null splits it equally")
    k: int | None = Field(None, ge=1, le=1000, description="mode topk: symbols held")
    weights: Literal["equal", "kelly"] = Field(
        "equal", description="mode topk: each held symbol's slice weight, 1 (equal) or its "
        "Kelly weight floored at 0 (kelly)")
    dropout: int | None = Field(None, ge=1, le=1000, description="mode topk: most symbols "
                                "replaced a day (Qlib's n_drop); null: any")
    max_gross: float | None = Field(None, gt=0, le=8, description="cap on the sum of |weight| "
                                    "over symbols; null: none beyond the sizing limits")

    @field_validator("allocations")
    @classmethod
    def _upper(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return None if value is None else {k.strip().upper(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _consistent(self) -> PortfolioConfig:
        topk_only = [k for k in ("k", "dropout", "weights") if k in self.model_fields_set]
        if self.mode == "allocations" and topk_only:
            raise ValueError(f"portfolio.{topk_only[0]} applies to mode topk; remove it, or "
                             "set portfolio.mode: topk")
        if self.mode == "topk" and self.allocations is not None:
            raise ValueError("portfolio.allocations applies to mode allocations; remove it, or "
                             "set portfolio.mode: allocations")
        if self.mode == "topk" and self.k is None:
            raise ValueError("portfolio.k is required with mode topk: how many symbols to hold")
        if self.dropout is not None and self.k is not None and self.dropout > self.k:
            raise ValueError(f"portfolio.dropout must be <= k ({self.k}): it caps the symbols "
                             "replaced a day")
        if self.allocations is not None:
            if any(v < 0 for v in self.allocations.values()):
                raise ValueError("portfolio.allocations must be >= 0")
            if sum(self.allocations.values()) > 1.0 + 1e-9:
                raise ValueError("portfolio.allocations must sum to at most 1")
        return self
