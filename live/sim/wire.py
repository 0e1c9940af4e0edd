"""JSON shapes of the local Alpaca-protocol server: what alpaca-py's models require.

Reading what a request carries (query parameters, JSON body fields) is in
:mod:`live.sim.params`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from aiohttp import web

from live.sim.bars import bar_timestamp, session_time
from live.sim.orders import QTY_DECIMALS, SimOrder, deterministic_uuid
from live.sim.state import SimState

ACCOUNT_ID = deterministic_uuid("account", "sim")


def error_response(status: int, code: int, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """An Alpaca-style JSON error body, which alpaca-py raises as ``APIError``."""
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def iso(stamp: pd.Timestamp | None) -> str | None:
    """ISO 8601 with the offset, or ``None``."""
    return None if stamp is None else stamp.isoformat()


def rfc3339_utc(stamp: pd.Timestamp) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of a tz-aware time, as Alpaca's data API writes it."""
    return stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def num(value: float | None) -> str | None:
    """A number as Alpaca's trading API sends it: a decimal string (``None`` stays ``None``).

    The shortest text that reads back as the same float, never in exponent form and without
    a trailing ``.0``: ``10.0`` is ``'10'``, ``1e-05`` is ``'0.00001'`` (Alpaca's decimals).
    Prices and amounts keep every digit, so a client's sums match the server's.
    """
    if value is None:
        return None
    text = np.format_float_positional(float(value), trim="-")
    return "0" if text == "-0" else text


def qty_num(value: float | None) -> str | None:
    """A quantity as Alpaca sends it: at most :data:`QTY_DECIMALS` decimals, no trailing zeros.

    The rounding drops the float noise that sums of fills leave (``32.973982107000005`` is
    ``'32.973982107'``), so ``int(position.qty)`` works for whole shares.
    """
    return None if value is None else num(round(float(value), QTY_DECIMALS))


# ------------------------------------------------------------------------- JSON shapes
def asset_id(symbol: str) -> str:
    """The stable asset id of ``symbol``."""
    return deterministic_uuid("asset", symbol)


def symbol_of(state: SimState, wanted: str) -> str | None:
    """The replayed symbol named by ``wanted`` (a symbol or an asset id), else ``None``."""
    for symbol in state.symbols:
        if wanted.upper() == symbol or wanted == asset_id(symbol):
            return symbol
    return None


def asset_json(symbol: str) -> dict[str, Any]:
    """A replayed symbol as Alpaca's asset object."""
    return {"id": asset_id(symbol), "class": "us_equity",
            "exchange": "NASDAQ", "symbol": symbol, "name": f"{symbol} (replay)",
            "status": "active", "tradable": True, "marginable": True, "shortable": False,
            "easy_to_borrow": False, "fractionable": True, "min_order_size": "0.000000001",
            "min_trade_increment": "0.000000001", "price_increment": "0.01",
            "attributes": ["fractional_eh_enabled"]}


def order_json(order: SimOrder) -> dict[str, Any]:
    """An order with every field alpaca-py's ``Order`` model reads."""
    intent = "buy_to_open" if order.side == "buy" else "sell_to_close"
    return {
        "id": order.id, "client_order_id": order.client_order_id,
        "created_at": iso(order.submitted_at), "updated_at": iso(order.updated_at),
        "submitted_at": iso(order.submitted_at), "filled_at": iso(order.filled_at),
        "expired_at": iso(order.expired_at), "expires_at": None,
        "canceled_at": iso(order.canceled_at), "failed_at": iso(order.failed_at),
        "replaced_at": iso(order.replaced_at), "replaced_by": order.replaced_by,
        "replaces": order.replaces, "asset_id": asset_id(order.symbol), "symbol": order.symbol,
        "asset_class": "us_equity", "notional": num(order.notional), "qty": qty_num(order.qty),
        "filled_qty": qty_num(order.filled_qty), "filled_avg_price": num(order.filled_avg_price),
        "order_class": "", "order_type": order.order_type, "type": order.order_type,
        "side": order.side, "position_intent": intent, "time_in_force": order.time_in_force,
        "limit_price": num(order.limit_price), "stop_price": num(order.stop_price),
        "status": order.status, "extended_hours": order.extended_hours, "legs": None,
        "trail_percent": num(order.trail_percent), "trail_price": num(order.trail_price),
        "hwm": num(order.hwm), "source": "sim",
    }


def account_json(state: SimState) -> dict[str, Any]:
    """The simulated cash account (no margin: buying power is cash less open buys)."""
    equity, buying_power = num(state.equity), num(state.buying_power())
    return {
        "id": ACCOUNT_ID, "account_number": "SIM000001",
        "status": "ACTIVE", "crypto_status": "INACTIVE", "currency": "USD",
        "buying_power": buying_power, "regt_buying_power": buying_power,
        "daytrading_buying_power": "0", "non_marginable_buying_power": buying_power,
        "cash": num(state.cash), "accrued_fees": "0", "pending_transfer_in": "0",
        "portfolio_value": equity, "pattern_day_trader": False, "trading_blocked": False,
        "transfers_blocked": False, "account_blocked": False,
        "created_at": iso(session_time(state.calendar[0], "00:00")),
        "trade_suspended_by_user": False, "multiplier": "1", "shorting_enabled": False,
        "equity": equity, "last_equity": num(state.last_equity),
        "long_market_value": num(state.market_value), "short_market_value": "0",
        "initial_margin": "0", "maintenance_margin": "0", "last_maintenance_margin": "0",
        "sma": "0", "daytrade_count": 0,
    }


def held_for_orders(state: SimState, symbol: str) -> float:
    """Shares of ``symbol`` that open sell orders hold (not available to another sale)."""
    return sum(float(order.qty or 0.0) for order in state.orders
               if order.is_open and order.side == "sell" and order.symbol == symbol)


def position_json(state: SimState, symbol: str) -> dict[str, Any]:
    """The open position in ``symbol``, valued at the current close."""
    holding = state.position(symbol)
    price, qty, last_close = state.price(symbol), holding.qty, state.previous_close(symbol)
    unrealized = qty * price - holding.cost_basis
    plpc = unrealized / holding.cost_basis if holding.cost_basis else 0.0
    return {
        "asset_id": asset_id(symbol), "symbol": symbol,
        "exchange": "NASDAQ", "asset_class": "us_equity", "asset_marginable": True,
        "avg_entry_price": num(holding.avg_entry_price), "qty": qty_num(qty), "side": "long",
        "market_value": num(qty * price), "cost_basis": num(holding.cost_basis),
        "unrealized_pl": num(unrealized), "unrealized_plpc": num(plpc),
        "unrealized_intraday_pl": num(qty * (price - last_close)),
        "unrealized_intraday_plpc": num(price / last_close - 1.0),
        "current_price": num(price), "lastday_price": num(last_close),
        "change_today": num(price / last_close - 1.0),
        "qty_available": qty_num(qty - held_for_orders(state, symbol)),
    }


def volume_int(volume: float) -> int:
    """A bar's volume as Alpaca sends it: a whole number of shares."""
    return int(round(volume))


def bar_json(day: pd.Timestamp, row: pd.Series) -> dict[str, Any]:
    """One daily bar in the data API's short-key form; ``vw`` is the typical price."""
    high, low, close = float(row["high"]), float(row["low"]), float(row["close"])
    return {"t": rfc3339_utc(bar_timestamp(day)), "o": float(row["open"]),
            "h": high, "l": low, "c": close, "v": volume_int(float(row["volume"])), "n": 0,
            "vw": (high + low + close) / 3.0}


def trade_update_json(event: dict[str, Any]) -> dict[str, Any]:
    """A :attr:`SimState.events` entry as the trading stream's ``trade_updates`` message.

    ``qty`` and ``price`` are the execution's own; ``order.filled_qty`` is cumulative.  Events
    without an execution (``new``, ``canceled``, ``rejected``) carry no ``execution_id``,
    ``price``, ``qty`` or ``position_qty``.
    """
    data: dict[str, Any] = {"event": event["event"], "order": order_json(event["order"]),
                            "timestamp": iso(event["timestamp"])}
    if event.get("execution_id") is not None:
        data.update(execution_id=event["execution_id"], price=num(event["price"]),
                    qty=qty_num(event["qty"]),
                    position_qty=qty_num(event["position_qty"]))
    return {"stream": "trade_updates", "data": data}


def status_json(state: SimState) -> dict[str, Any]:
    """``GET /sim/status``: where the replay stands."""
    return {"index": state.index, "day": state.current_day.date().isoformat(),
            "bar_time": rfc3339_utc(bar_timestamp(state.current_day)),
            "finished": state.finished, "symbols": list(state.symbols),
            "orders": len(state.orders), "duplicate_submissions": state.duplicate_submissions}


def advance_json(state: SimState, orders: list[SimOrder]) -> dict[str, Any]:
    """``POST /sim/advance``: the new bar of every symbol and the orders it filled or rejected."""
    day = state.current_day
    return {"index": state.index, "day": day.date().isoformat(),
            "bar_time": rfc3339_utc(bar_timestamp(day)), "finished": state.finished,
            "orders": [order_json(order) for order in orders],
            "bars": {symbol: bar_json(day, state.bar(symbol)) for symbol in state.symbols}}
