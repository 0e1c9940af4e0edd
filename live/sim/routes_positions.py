"""Closing positions on the local Alpaca-protocol server: ``DELETE /v2/positions[/{symbol}]``.

As Alpaca does, closing submits a market sell order (the replay is long-only) that fills at
the next bar's open like any other (:meth:`live.sim.state.SimState.submit`):

- ``DELETE /v2/positions/{symbol_or_asset_id}`` sells the whole position, or ``qty`` shares,
  or ``percentage`` of it (whole shares of a whole-share position: Alpaca sells a fraction
  only of a fractional position), and answers with the order;
- ``DELETE /v2/positions`` does it for every open position, after cancelling every open
  order when ``cancel_orders=true``, and answers 207 with one ``{symbol, status, body}`` per
  position: the order, or the refusal (403 when open orders hold the shares).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from live.sim.appkeys import STATE_KEY
from live.sim.orders import QTY_DECIMALS, SimOrder, SimRejection
from live.sim.params import float_field, quote
from live.sim.state import SimState
from live.sim.wire import held_for_orders, order_json, symbol_of


def _percentage_qty(held: float, percentage: float) -> float:
    if not 0 < percentage <= 100:
        raise SimRejection(422, 40010001, "percentage must be above 0 and at most 100")
    qty = held * percentage / 100.0
    if float(held).is_integer():
        return float(math.floor(qty + 1e-9))
    scale = 10 ** QTY_DECIMALS
    return math.floor(qty * scale + 1e-6) / scale


def close_qty(held: float, query: Mapping[str, str]) -> float:
    """The shares a close sells: ``qty``, ``percentage`` of ``held``, or all of it.

    Raises
    ------
    SimRejection
        422 for both parameters at once or a value that is not a number in range.
    """
    fields = {name: query[name] for name in ("qty", "percentage") if name in query}
    if len(fields) == 2:
        raise SimRejection(422, 40010001, "give only one of qty or percentage")
    qty = float_field(fields, "qty")
    if qty is not None:
        return qty
    percentage = float_field(fields, "percentage")
    return held if percentage is None else _percentage_qty(held, percentage)


def close(state: SimState, symbol: str, qty: float) -> SimOrder:
    """Submit the market sell that closes ``qty`` shares of ``symbol``."""
    return state.submit(symbol=symbol, side="sell", qty=round(qty, QTY_DECIMALS),
                        notional=None, time_in_force="day")


async def close_position(request: web.Request) -> web.Response:
    """``DELETE /v2/positions/{symbol_or_asset_id}``: the closing order; 404 when flat."""
    state = request.app[STATE_KEY]
    symbol = symbol_of(state, request.match_info["symbol"])
    if symbol is None or not state.position(symbol).qty:
        raise SimRejection(404, 40410000, "position does not exist")
    qty = close_qty(state.position(symbol).qty, request.query)
    return web.json_response(order_json(close(state, symbol, qty)))


def _cancel_orders(query: Mapping[str, str]) -> bool:
    value = query.get("cancel_orders", "false").lower()
    if value not in ("true", "false"):
        raise SimRejection(422, 40010001, f"invalid cancel_orders: {quote(value)}")
    return value == "true"


def _refusal(state: SimState, symbol: str, exc: SimRejection) -> dict[str, Any]:
    held = state.position(symbol).qty
    pending = held_for_orders(state, symbol)
    return {"code": exc.code, "message": exc.message, "symbol": symbol,
            "existing_qty": held, "held_for_orders": pending, "available": held - pending}


async def close_all_positions(request: web.Request) -> web.Response:
    """``DELETE /v2/positions``: 207 with each position's closing order or refusal."""
    state = request.app[STATE_KEY]
    if _cancel_orders(request.query):
        state.cancel_all()
    results = []
    for symbol, holding in state.open_positions().items():
        try:
            order = close(state, symbol, holding.qty)
        except SimRejection as exc:
            results.append({"symbol": symbol, "status": exc.status,
                            "body": _refusal(state, symbol, exc)})
        else:
            results.append({"symbol": symbol, "status": 200, "body": order_json(order)})
    return web.json_response(results, status=207)


def add_position_routes(app: web.Application) -> None:
    """Register the position-closing routes on ``app``."""
    app.router.add_delete("/v2/positions", close_all_positions)
    app.router.add_delete("/v2/positions/{symbol}", close_position)
