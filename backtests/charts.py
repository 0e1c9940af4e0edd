"""Charts as inline SVG, drawn by matplotlib on the server.

The daemon's page (:mod:`live.monitor.page`) and the results index
(:mod:`backtests.index`) embed the SVG text, so a browser needs nothing from the
internet to show them.  Only matplotlib's object API is used (``Figure`` with the SVG
canvas, never ``pyplot``): it keeps no global state, so the endpoint's thread can draw while
the daemon runs.

Long series are thinned to at most :data:`MAX_POINTS` points before drawing, keeping each
chunk's first, lowest and highest values, so a drawdown's trough survives the thinning.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

#: The most points drawn per line; a page with years of bars stays small and fast.
MAX_POINTS = 1200
SIZE = (9.0, 3.0)
MARGINS = {"left": 0.1, "right": 0.985, "top": 0.95, "bottom": 0.11}
COLORS = ("#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bf8700", "#0a7c86", "#cf222e",
          "#57606a")

matplotlib.rcParams["svg.hashsalt"] = "ensemble-bt"  # stable ids: the same data, the same SVG


def thin(series: pd.Series, max_points: int = MAX_POINTS) -> pd.Series:
    """``series`` with at most about ``max_points`` points, its extremes kept."""
    n = len(series)
    if n <= max_points:
        return series
    chunk = int(np.ceil(n / (max_points / 3)))
    keep: set[int] = {n - 1}
    values = series.to_numpy(float)
    for start in range(0, n, chunk):
        part = values[start:start + chunk]
        finite = np.where(np.isfinite(part), part, np.nan)
        if np.isnan(finite).all():
            keep.add(start)
            continue
        keep.update((start, start + int(np.nanargmin(finite)), start + int(np.nanargmax(finite))))
    return series.iloc[sorted(keep)]


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=SIZE, dpi=100)
    FigureCanvasSVG(fig)
    # Fixed margins, wide enough for seven-digit tick labels: matplotlib's tight layout would
    # measure every label first, a third of the drawing time of a page's charts.
    fig.subplots_adjust(**MARGINS)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, color="#d0d7de", linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _svg(fig: Figure) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG goes inline
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)


def _empty(ax: object, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes,
            color="#57606a")
    ax.set_xticks([])
    ax.set_yticks([])


def equity_svg(equity: pd.DataFrame) -> str:
    """Equity against its high-water mark, one point per decided bar."""
    fig, ax = _figure()
    if equity.empty:
        _empty(ax, "no decided bar yet")
    else:
        ax.plot(thin(equity["high_water"]), color="#8c959f", linewidth=1.0,
                linestyle="--", label="high-water mark")
        ax.plot(thin(equity["equity"]), color=COLORS[0], linewidth=1.4, label="equity")
        ax.legend(loc="upper left", frameon=False, fontsize=8)
        ax.set_ylabel("account value")
    return _svg(fig)


def drawdown_svg(equity: pd.DataFrame, trigger: float | None, halt: float | None = None) -> str:
    """Drawdown from the high-water mark, the breaker's thresholds and the bars it tripped."""
    fig, ax = _figure()
    if equity.empty:
        _empty(ax, "no decided bar yet")
        return _svg(fig)
    drawdown = -thin(equity["drawdown"].astype(float)) * 100.0
    ax.fill_between(drawdown.index, drawdown.to_numpy(), 0.0, color=COLORS[1], alpha=0.25,
                    linewidth=0)
    ax.plot(drawdown, color=COLORS[1], linewidth=1.0, label="drawdown")
    for level, name, style in ((trigger, "breaker trips", "--"), (halt, "halt", ":")):
        if level is not None:
            ax.axhline(-level * 100.0, color="#24292f", linestyle=style, linewidth=1.0,
                       label=f"{name} ({level:.0%})")
    trips = equity["trips"].astype(int).diff().fillna(0) > 0
    if trips.any():
        hit = equity.loc[trips, "drawdown"].astype(float)
        ax.scatter(hit.index, -hit.to_numpy() * 100.0, color="#24292f", zorder=3, s=18,
                   marker="v", label="trip")
    ax.set_ylabel("drawdown %")
    ax.legend(loc="lower left", frameon=False, fontsize=8)
    return _svg(fig)


def curves_svg(curves: Mapping[str, pd.Series], title: str = "") -> str:
    """Several equity curves together, each rebased to 1 at its first point."""
    fig, ax = _figure()
    drawn = 0
    for k, (name, series) in enumerate(curves.items()):
        series = series.dropna()
        if series.empty or not np.isfinite(series.iloc[0]) or series.iloc[0] == 0:
            continue
        ax.plot(thin(series / series.iloc[0]), color=COLORS[k % len(COLORS)], linewidth=1.2,
                label=name)
        drawn += 1
    if not drawn:
        _empty(ax, "no equity curve")
    else:
        ax.set_ylabel("growth of 1")
        ax.legend(loc="upper left", frameon=False, fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return _svg(fig)
