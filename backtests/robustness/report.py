"""``report.html`` of a robustness grid, with its four charts also written as PNG files.

Charts are drawn on bare ``Figure`` objects with the Agg canvas (never ``pyplot``), like
:mod:`backtests.report`; the HTML embeds them as base64 so it stands alone.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from backtests.report import PAGE_STYLE
from ensemble_bt import jsonio

CHARTS = {
    "sharpe_heatmap.png": "Sharpe by symbol and cost (mean over windows and sizings)",
    "equity_curves.png": "Equity of every cell, normalised to 1 at its window's start",
    "sharpe_histogram.png": "Out-of-sample Sharpe across cells",
    "pbo_logits.png": "PBO: logits of the in-sample best cell's out-of-sample rank",
}


def write_report(folder: Path, runs: pd.DataFrame, equities: Sequence[np.ndarray],
                 summary: Mapping[str, Any], logits: Mapping[str, np.ndarray]) -> None:
    """Write the four PNGs and ``report.html`` (last: its presence marks a finished report)."""
    pngs = {
        "sharpe_heatmap.png": _heatmap(runs),
        "equity_curves.png": _equity_curves(runs, equities),
        "sharpe_histogram.png": _sharpe_histogram(runs),
        "pbo_logits.png": _logit_histogram(logits),
    }
    for name, png in pngs.items():
        (folder / name).write_bytes(png)
    (folder / "report.html").write_text(_html(runs, summary, pngs), encoding="utf-8")


def _figure(width: float = 9, height: float = 5) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _heatmap(runs: pd.DataFrame) -> bytes:
    table = runs.pivot_table(index="symbol", columns="cost", values="sharpe", aggfunc="mean",
                             sort=False)
    fig = _figure(2 + 1.2 * table.shape[1], 1.5 + 0.5 * table.shape[0])
    ax = fig.subplots()
    values = table.to_numpy(dtype=np.float64)
    bound = max(float(np.nanmax(np.abs(values))), 1e-9) if np.isfinite(values).any() else 1.0
    image = ax.imshow(values, cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [f"{c * 1e4:g} bps" for c in table.columns])
    ax.set_yticks(range(table.shape[0]), [str(s) for s in table.index])
    for (i, j), value in np.ndenumerate(values):
        ax.text(j, i, "n/a" if np.isnan(value) else f"{value:.2f}", ha="center", va="center")
    ax.set_xlabel("cost per side")
    ax.set_title(CHARTS["sharpe_heatmap.png"])
    fig.colorbar(image, ax=ax, label="Sharpe")
    return _png(fig)


def _equity_curves(runs: pd.DataFrame, equities: Sequence[np.ndarray]) -> bytes:
    fig = _figure()
    ax = fig.subplots()
    windows = list(dict.fromkeys(runs["window"]))
    colours = {w: f"C{i % 10}" for i, w in enumerate(windows)}
    for window, equity in zip(runs["window"], equities, strict=True):
        curve = np.asarray(equity, dtype=np.float64)
        if len(curve) and np.isfinite(curve[0]) and curve[0] > 0:
            ax.plot(curve / curve[0], color=colours[window], lw=0.6, alpha=0.5)
    for window in windows:
        ax.plot([], [], color=colours[window], label=f"window {window}")
    ax.axhline(1.0, color="black", lw=0.5)
    ax.set_xlabel("trading days since the window's first bar")
    ax.set_ylabel("equity / initial equity")
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    ax.set_title(CHARTS["equity_curves.png"])
    return _png(fig)


def _sharpe_histogram(runs: pd.DataFrame) -> bytes:
    fig = _figure()
    ax = fig.subplots()
    sharpe = runs["sharpe"].to_numpy(dtype=np.float64)
    sharpe = sharpe[np.isfinite(sharpe)]
    ax.hist(sharpe, bins=max(5, min(40, len(sharpe) // 2)), color="tab:blue", alpha=0.7)
    if len(sharpe):
        ax.axvline(float(np.median(sharpe)), color="black", lw=1, label="median")
        ax.legend()
    ax.set_xlabel("annualised Sharpe of the cell")
    ax.set_ylabel("cells")
    ax.set_title(CHARTS["sharpe_histogram.png"])
    return _png(fig)


def _logit_histogram(logits: Mapping[str, np.ndarray]) -> bytes:
    fig = _figure()
    ax = fig.subplots()
    if logits:
        for window, values in logits.items():
            finite = values[np.isfinite(values)]
            ax.hist(finite, bins=30, alpha=0.5, label=f"window {window}")
        ax.axvline(0.0, color="black", lw=1)
        ax.legend()
        ax.set_xlabel("logit of the relative out-of-sample rank (< 0: overfit)")
        ax.set_ylabel("CSCV combinations")
    else:
        ax.text(0.5, 0.5, "PBO not available", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title(CHARTS["pbo_logits.png"])
    return _png(fig)


def _table(rows: Mapping[str, Mapping[str, Any]], first: str) -> str:
    if not rows:
        return ""
    columns = list(next(iter(rows.values())))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (first, *columns))
    body = "\n".join(
        "<tr><th>" + html.escape(str(key)) + "</th>"
        + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in columns) + "</tr>"
        for key, row in rows.items())
    return f"<table><tr>{head}</tr>\n{body}\n</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if value is None:
        return "n/a"
    if isinstance(value, Mapping | list):
        return html.escape(jsonio.dumps(value))
    return html.escape(str(value))


def _html(runs: pd.DataFrame, summary: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    headline = {k: summary.get(k) for k in ("n_cells", "share_beating_buy_hold_sharpe", "dsr",
                                            "n_trials", "best_cell")}
    headline["pbo_mean"] = summary.get("pbo", {}).get("mean")
    facts = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>"
                      for k, v in headline.items())
    images = "\n".join(
        f"<h2>{html.escape(CHARTS[name])}</h2>\n<img alt=\"{html.escape(CHARTS[name])}\" "
        f"src=\"data:image/png;base64,{base64.b64encode(png).decode('ascii')}\">"
        for name, png in pngs.items())
    sections = "\n".join(
        f"<h2>{title}</h2>\n{_table(summary.get(key, {}), first)}"
        for key, title, first in (("by_symbol", "By symbol", "symbol"),
                                  ("by_cost", "By cost per side", "cost"),
                                  ("by_window", "By window", "window"),
                                  ("by_sizing", "By sizing", "sizing")))
    pbo = _table(summary.get("pbo", {}).get("by_window", {}), "window")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Robustness: {len(runs)} cells</title>
<style>
{PAGE_STYLE}</style>
</head>
<body>
<h1>Robustness: {len(runs)} cells</h1>
<table>
{facts}
</table>
<h2>PBO by window</h2>
{pbo}
{sections}
{images}
</body>
</html>
"""
