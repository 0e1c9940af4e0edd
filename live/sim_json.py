"""JSON shapes of the local Alpaca-protocol server: what alpaca-py's models require."""

from __future__ import annotations

from typing import Any

import pandas as pd
from aiohttp import web

from live.sim_state import (
    SimOrder,
    SimRejection,
    SimState,
    bar_timestamp,
    deterministic_uuid,
    session_time,
)


def error_response(status: int, code: int, message: str) -> web.Response:
    """An Alpaca-style JSON error body, which alpaca-py raises as ``APIError``."""
    return web.json_response({"code": code, "message": message}, status=status)


def iso(stamp: pd.Timestamp | None) -> str | None:
    return None if stamp is None else stamp.isoformat()


def num(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def parse_time(text: str) -> pd.Timestamp:
    """An RFC 3339 time or a plain date as a UTC timestamp (naive input is taken as UTC)."""
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def float_field(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise SimRejection(422, 40010001, f"invalid {name}: {value!r}") from exc


# ------------------------------------------------------------------------- JSON shapes
def asset_json(state: SimState) -> dict[str, Any]:
    """The replayed symbol as Alpaca's asset object."""
    return {"id": deterministic_uuid("asset", state.symbol), "class": "us_equity",
            "exchange": "NASDAQ", "symbol": state.symbol, "name": f"{state.symbol} (replay)",
            "status": "active", "tradable": True, "marginable": True, "shortable": False,
            "easy_to_borrow": False, "fractionable": True, "min_order_size": "0.000000001",
            "min_trade_increment": "0.000000001", "price_increment": "0.01",
            "attributes": ["fractional_eh_enabled"]}


def order_json(state: SimState, order: SimOrder) -> dict[str, Any]:
    """An order with every field alpaca-py's ``Order`` model reads."""
    intent = "buy_to_open" if order.side == "buy" else "sell_to_close"
    return {
        "id": order.id, "client_order_id": order.client_order_id,
        "created_at": iso(order.submitted_at), "updated_at": iso(order.updated_at),
        "submitted_at": iso(order.submitted_at), "filled_at": iso(order.filled_at),
        "expired_at": None, "expires_at": None, "canceled_at": iso(order.canceled_at),
        "failed_at": None, "replaced_at": None, "replaced_by": None, "replaces": None,
        "asset_id": deterministic_uuid("asset", state.symbol), "symbol": order.symbol,
        "asset_class": "us_equity", "notional": num(order.notional), "qty": num(order.qty),
        "filled_qty": num(order.filled_qty), "filled_avg_price": num(order.filled_avg_price),
        "order_class": "", "order_type": "market", "type": "market", "side": order.side,
        "position_intent": intent, "time_in_force": order.time_in_force, "limit_price": None,
        "stop_price": None, "status": order.status, "extended_hours": False, "legs": None,
        "trail_percent": None, "trail_price": None, "hwm": None, "source": "sim",
    }


def account_json(state: SimState) -> dict[str, Any]:
    """The simulated cash account (no margin: buying power is cash less open buys)."""
    equity, buying_power = num(state.equity), num(state.buying_power())
    return {
        "id": deterministic_uuid("account", state.symbol), "account_number": "SIM000001",
        "status": "ACTIVE", "crypto_status": "INACTIVE", "currency": "USD",
        "buying_power": buying_power, "regt_buying_power": buying_power,
        "daytrading_buying_power": "0", "non_marginable_buying_power": buying_power,
        "cash": num(state.cash), "accrued_fees": "0", "pending_transfer_in": "0",
        "portfolio_value": equity, "pattern_day_trader": False, "trading_blocked": False,
        "transfers_blocked": False, "account_blocked": False,
        "created_at": iso(session_time(state.bars.index[0], "00:00")),
        "trade_suspended_by_user": False, "multiplier": "1", "shorting_enabled": False,
        "equity": equity, "last_equity": num(state.last_equity),
        "long_market_value": num(state.market_value), "short_market_value": "0",
        "initial_margin": "0", "maintenance_margin": "0", "last_maintenance_margin": "0",
        "sma": "0", "daytrade_count": 0,
    }


def position_json(state: SimState) -> dict[str, Any]:
    """The open position, valued at the current close."""
    price, qty = state.price(), state.position_qty
    last_close = float(state.bars["close"].iloc[max(state.index - 1, 0)])
    unrealized = qty * price - state.cost_basis
    plpc = unrealized / state.cost_basis if state.cost_basis else 0.0
    return {
        "asset_id": deterministic_uuid("asset", state.symbol), "symbol": state.symbol,
        "exchange": "NASDAQ", "asset_class": "us_equity", "asset_marginable": True,
        "avg_entry_price": num(state.avg_entry_price), "qty": num(qty), "side": "long",
        "market_value": num(qty * price), "cost_basis": num(state.cost_basis),
        "unrealized_pl": num(unrealized), "unrealized_plpc": num(plpc),
        "unrealized_intraday_pl": num(qty * (price - last_close)),
        "unrealized_intraday_plpc": num(price / last_close - 1.0),
        "current_price": num(price), "lastday_price": num(last_close),
        "change_today": num(price / last_close - 1.0), "qty_available": num(qty),
    }


def bar_json(day: pd.Timestamp, row: pd.Series) -> dict[str, Any]:
    """One daily bar in the data API's short-key form; ``vw`` is the typical price."""
    high, low, close = float(row["high"]), float(row["low"]), float(row["close"])
    return {"t": bar_timestamp(day).strftime("%Y-%m-%dT%H:%M:%SZ"), "o": float(row["open"]),
            "h": high, "l": low, "c": close, "v": float(row["volume"]), "n": 0,
            "vw": (high + low + close) / 3.0}


# -------------------------------------------------------------------------- middleware
