"""The page's panels as HTML fragments, one function per panel, from a :class:`Dashboard`.

Every value is escaped.  Numbers a test or a script may want exactly carry it in a
``data-value`` attribute beside the formatted text; table rows carry their keys
(``data-date``, ``data-symbol``, ``data-id``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from live.monitor.dashboard_data import PERCENTILES, Dashboard

STATES = ("running", "stopped", "finished", "failed")


def text(value: Any) -> str:
    """A value as escaped text; None as an em dash."""
    return "&mdash;" if value is None else escape(str(value))


def number(value: Any, digits: int = 2) -> str:
    """A finite number with thousands separators, else :func:`text`."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return text(value)
    return f"{value:,.{digits}f}"


def percent(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return text(value)
    return f"{value * 100:.{digits}f}%"


def cell(html: str, value: Any = None, field: str | None = None) -> str:
    attrs = f' data-field="{escape(field)}"' if field else ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        attrs += f' data-value="{escape(repr(value))}"'
    return f"<td{attrs}>{html}</td>"


def definitions(rows: Iterable[tuple[str, str, str, Any]]) -> str:
    """``<dl>`` of ``(label, field, html, raw value)``."""
    items = []
    for label, field, html, value in rows:
        attrs = f' data-value="{escape(repr(value))}"' if isinstance(value, int | float) \
            and not isinstance(value, bool) else ""
        items.append(f'<dt>{escape(label)}</dt><dd data-field="{field}"{attrs}>{html}</dd>')
    return f"<dl>{''.join(items)}</dl>"


def table(headers: Sequence[str], rows: Iterable[str], empty: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary(d: Dashboard) -> str:
    s = d.status
    state = str(s.get("state") or "unknown")
    badge = f'<span class="badge {state if state in STATES else "unknown"}">{text(state)}</span>'
    connections = s.get("connections") or {}
    links = ", ".join(f"{escape(k.replace('_', ' '))}: "
                      f"<span class=\"{'good' if v == 'connected' else 'bad'}\">{text(v)}</span>"
                      for k, v in connections.items()) or "&mdash;"
    bundle = s.get("bundle") or {}
    age = s.get("age_seconds")
    return "<h2>Session</h2>" + definitions([
        ("state", "state", badge, None),
        ("symbols", "symbols", text(", ".join(map(str, s.get("symbols") or [])) or None), None),
        ("last bar", "last_bar", text(s.get("last_bar")), None),
        ("status written", "age_seconds",
         f"{number(age, 1)} s ago" if isinstance(age, int | float) else text(None), age),
        ("connections", "connections", links, None),
        ("bundle", "bundle", f"#{text(bundle.get('id'))} {text(bundle.get('path'))}"
         if bundle else text(None), None),
        ("pid", "pid", text(s.get("pid")), None),
        ("replay", "replay", text(s.get("replay")), None)])


def account(d: Dashboard) -> str:
    s = d.status
    breaker = s.get("breaker") or {}
    trigger = d.thresholds.get("trigger")
    tripped = breaker.get("tripped")
    state = ('<span class="bad">tripped</span>' if tripped else
             '<span class="good">armed</span>' if tripped is not None else text(None))
    if breaker.get("halted"):
        state += ' <span class="bad">halted</span>'
    return "<h2>Account</h2>" + definitions([
        ("equity", "equity", number(s.get("equity")), s.get("equity")),
        ("cash", "cash", number(s.get("cash")), s.get("cash")),
        ("high-water mark", "high_water", number(s.get("high_water")), s.get("high_water")),
        ("drawdown", "drawdown", percent(s.get("drawdown")), s.get("drawdown")),
        ("breaker trips at", "trigger", percent(trigger, 0), trigger),
        ("breaker", "breaker", state, None),
        ("trips", "trips", text(breaker.get("trips")), breaker.get("trips"))])


def charts(equity_svg: str, drawdown_svg: str) -> str:
    return ("<h2>Equity and high-water mark</h2>" + f'<div id="equity-chart">{equity_svg}</div>'
            + "<h2>Drawdown and the breaker</h2>"
            + f'<div id="drawdown-chart">{drawdown_svg}</div>')


def positions(d: Dashboard) -> str:
    s = d.status
    held = s.get("positions") or {}
    journal = (s.get("journal") or {}).get("positions") or {}
    weights = s.get("weights") or {}
    symbols = list(dict.fromkeys([*(s.get("symbols") or []), *held, *weights]))
    rows = []
    for sym in symbols:
        w = weights.get(sym) or {}
        rows.append(f'<tr data-symbol="{escape(str(sym))}"><td>{text(sym)}</td>'
                    + cell(number(held.get(sym), 0), held.get(sym), "position")
                    + cell(number(journal.get(sym, 0.0), 0), journal.get(sym, 0.0), "filled")
                    + "".join(cell(percent(w.get(k)), w.get(k), k) for k in (
                        "slice", "target_weight", "held_weight", "account_target_weight",
                        "account_held_weight"))
                    + cell(text(w.get("date")), None, "date") + "</tr>")
    return "<h2>Positions and target weights</h2>" + table(
        ("symbol", "position", "from fills", "slice", "target (slice)", "held (slice)",
         "target (account)", "held (account)", "decided"), rows, "no symbol yet")


def decisions(d: Dashboard) -> str:
    rows = [f'<tr data-date="{escape(str(r.get("date")))}" '
            f'data-symbol="{escape(str(r.get("symbol")))}"><td>{text(r.get("date"))}</td>'
            + cell(text(r.get("symbol")), None, "symbol")
            + cell(number(r.get("prediction"), 5), r.get("prediction"), "prediction")
            + cell(number(r.get("p_win"), 3), r.get("p_win"), "p_win")
            + cell(percent(r.get("target_weight")), r.get("target_weight"), "target_weight")
            + cell(percent(r.get("held_weight")), r.get("held_weight"), "held_weight")
            + cell(percent(r.get("drawdown")), r.get("drawdown"), "drawdown")
            + cell(text(r.get("bundle")), r.get("bundle"), "bundle") + "</tr>"
            for r in d.decisions]
    return f"<h2>Last {len(d.decisions)} decisions</h2>" + table(
        ("date", "symbol", "prediction", "p(win)", "target", "held", "drawdown", "bundle"),
        rows, "no decision yet")


def orders(d: Dashboard) -> str:
    rows = []
    for r in d.orders:
        qty, filled = r.get("qty"), r.get("filled_qty")
        status = str(r.get("status"))
        css = "bad" if status in ("rejected", "canceled") else ""
        rows.append(f'<tr data-id="{escape(str(r.get("client_order_id")))}">'
                    f'<td>{text(r.get("decided"))}</td>'
                    + cell(text(r.get("symbol")), None, "symbol")
                    + cell(text(r.get("side")), None, "side")
                    + cell(number(qty, 0), qty, "qty")
                    + cell(f'<span class="{css}">{text(status)}</span>', None, "status")
                    + cell(number(filled, 0), filled, "filled_qty")
                    + cell(number(r.get("filled_avg_price"), 4), r.get("filled_avg_price"),
                           "filled_avg_price")
                    + cell(text(r.get("client_order_id")), None, "client_order_id") + "</tr>")
    return f"<h2>Last {len(d.orders)} orders and their fills</h2>" + table(
        ("decided", "symbol", "side", "qty", "status", "filled", "avg price", "client order id"),
        rows, "no order yet")


def latency(d: Dashboard) -> str:
    lat = d.latency
    rows = [(f"p{p}", f"p{p}", f"{number(lat.get(f'p{p}'), 1)} ms", lat.get(f"p{p}"))
            for p in PERCENTILES]
    rows += [("max", "max", f"{number(lat.get('max'), 1)} ms", lat.get("max")),
             ("bars timed", "n", text(lat.get("n")), lat.get("n")),
             ("latest bar's lag", "lag_ms", f"{number(lat.get('lag_ms'), 1)} ms",
              lat.get("lag_ms"))]
    note = ('<p class="muted">From <code>latency.csv</code>, which each run appends to as it '
            'ends: arrival of a live bar to the end of its decision.</p>')
    return "<h2>Latency</h2>" + definitions(rows) + note


def retrain(d: Dashboard) -> str:
    r = d.retrain
    bundle = r.get("bundle") or {}
    if not r.get("scheduled"):
        last = '<span class="muted">no retrain yet</span>'
    else:
        last = (f"{text(r.get('last_start'))}: {text(r.get('outcome'))}"
                + (f" ({text(r.get('stamp'))})" if r.get("stamp") else ""))
    return "<h2>Retraining</h2>" + definitions([
        ("last retrain", "retrain", last, None),
        ("bundles traded", "bundles", text(r.get("bundles")), r.get("bundles")),
        ("newest bundle", "newest", f"#{text(bundle.get('id'))} {text(bundle.get('path'))}"
         if bundle else text(None), None),
        ("deciding from", "predict_start", text(bundle.get("predict_start")), None),
        ("gate verdict", "gate", text(r.get("gate")), None)])
