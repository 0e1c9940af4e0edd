"""The daemon's page: ``GET /`` (HTML) and ``GET /dashboard.json`` (its panels, refreshed).

``GET /`` renders every panel of :mod:`live.monitor.panels` on the server, charts included
(matplotlib SVG, :mod:`backtests.charts`).  A small inline script then fetches
``/dashboard.json`` every :data:`~live.monitor.page_assets.REFRESH_S` seconds and swaps in
the panels that changed, so the page stays current without a reload.  The charts are sent
again only when a new bar was decided (``?charts=<version>``), and drawn once per bar for
all clients (:class:`ChartCache`).

Both routes read the state directory (:func:`live.monitor.dashboard_data.read_dashboard`),
so the page is right whether the daemon is deciding, between bars, stopped or finished; they
sit behind the same host guard and bearer check as ``/status``
(:func:`live.monitor.http.build_app` registers them with :func:`add_page_routes`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web
from loguru import logger

from backtests.charts import drawdown_svg, equity_svg
from ensemble_bt.errors import StopError
from live.monitor import panels
from live.monitor.dashboard_data import Dashboard, read_dashboard
from live.monitor.page_assets import CSP, FRAME, REFRESH_S, SCRIPT, STYLE
from live.monitor.replies import error_json

HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class ChartCache:
    """The latest charts of one state directory, redrawn only when a bar was decided."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._charts: tuple[str, str] = ("", "")

    def get(self, d: Dashboard) -> tuple[str, str]:
        key = d.version
        with self._lock:
            if key == self._key:
                return self._charts
        charts = (equity_svg(d.equity), drawdown_svg(d.equity, d.thresholds.get("trigger"),
                                                     d.thresholds.get("halt")))
        with self._lock:
            self._key, self._charts = key, charts
        return charts


def charts_version(d: Dashboard) -> str:
    return "-".join(str(part) for part in d.version)


def fragments(d: Dashboard, cache: ChartCache, with_charts: bool = True) -> dict[str, str]:
    """Each panel's HTML, by element id; ``charts`` only with ``with_charts``."""
    out = {"summary": panels.summary(d), "account": panels.account(d),
           "positions": panels.positions(d), "latency": panels.latency(d),
           "retrain": panels.retrain(d), "decisions": panels.decisions(d),
           "orders": panels.orders(d)}
    if with_charts:
        out["charts"] = panels.charts(*cache.get(d))
    out["title"] = escape(", ".join(map(str, d.status.get("symbols") or [])) or "session")
    return out


def render_page(d: Dashboard, cache: ChartCache) -> str:
    """The whole page, every panel filled in."""
    parts = fragments(d, cache)
    return FRAME % {**parts, "style": STYLE, "refresh_s": REFRESH_S,
                    "charts_version": escape(charts_version(d)),
                    "script": SCRIPT % {"refresh_ms": REFRESH_S * 1000}}


def dashboard_json(d: Dashboard, cache: ChartCache, known_charts: str) -> dict[str, Any]:
    """The refresh body: changed-chart-aware fragments, and the status for scripts."""
    version = charts_version(d)
    return {"charts_version": version, "status": d.status,
            "fragments": fragments(d, cache, with_charts=known_charts != version)}


def error_page(status: int, message: str) -> web.Response:
    body = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ensemble-bt"
            f" paper</title></head><body><h1>ensemble-bt paper</h1><p>{escape(message)}</p>"
            "</body></html>")
    return web.Response(text=body, status=status, content_type="text/html", headers=HEADERS)


def add_page_routes(app: web.Application, state_dir: Path) -> None:
    """Register ``GET /`` and ``GET /dashboard.json`` for ``state_dir`` on ``app``."""
    cache = ChartCache()

    def unreadable(exc: Exception) -> str:
        if isinstance(exc, sqlite3.Error):
            logger.warning("status endpoint: the page cannot read the journal: {}", exc)
            return "the journal cannot be read right now"
        return str(exc).replace(str(state_dir), "<state>")

    async def get_page(request: web.Request) -> web.Response:
        try:
            d = await asyncio.to_thread(read_dashboard, state_dir)
            html = await asyncio.to_thread(render_page, d, cache)
        except (StopError, sqlite3.Error) as exc:
            return error_page(503, unreadable(exc))
        return web.Response(text=html, content_type="text/html", headers=HEADERS)

    async def get_json(request: web.Request) -> web.Response:
        known = request.query.get("charts", "")
        try:
            d = await asyncio.to_thread(read_dashboard, state_dir)
            body = await asyncio.to_thread(dashboard_json, d, cache, known)
        except (StopError, sqlite3.Error) as exc:
            return error_json(503, unreadable(exc))
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    app.router.add_get("/", get_page, allow_head=False)
    app.router.add_get("/dashboard.json", get_json, allow_head=False)
