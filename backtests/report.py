"""``report.png`` and ``report.html`` for one run's results directory.

The chart is drawn on a bare ``Figure`` with the Agg canvas, never through ``pyplot``, so
writing a report neither needs a display nor changes the process-wide matplotlib backend.
The HTML page embeds the PNG as base64 and so stands alone when copied or mailed.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from loguru import logger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ensemble_bt import jsonio

REQUIRED_COLUMNS = ("equity", "drawdown", "position_weight")
# Shown as signed percentages: fractions where 2.63 means +263 %.
RETURN_KEYS = frozenset({"strategy_return", "buy_hold_return", "benchmark_return", "alpha",
                         "cagr", "max_drawdown", "return_contribution"})
# Shown as unsigned percentages: shares in [0, 1].
SHARE_KEYS = frozenset({"direction_accuracy", "exposure"})


def write_report(out_dir: Path, equity: pd.DataFrame, summary: Mapping[str, Any], *,
                 weights: pd.DataFrame | None = None, symbols: pd.DataFrame | None = None,
                 note: str | None = None) -> None:
    """Write ``report.png`` and ``report.html`` into a results directory.

    Parameters
    ----------
    out_dir : Path
        The run's results directory; created if missing.
    equity : pandas.DataFrame
        Indexed by date, with columns ``equity``, ``drawdown`` (<= 0) and
        ``position_weight``; ``benchmark`` (buy-and-hold equity on the same capital) is
        plotted when present.
    summary : Mapping
        The run's summary (the ``summary.json`` keys). ``symbol``, ``start`` and ``end``
        make the title; every key is listed in the HTML table.
    weights : pandas.DataFrame | None
        A portfolio's held account weights, date x symbol: drawn stacked under the rest.
    symbols : pandas.DataFrame | None
        A portfolio's ``symbols.csv``: listed in the HTML after the summary.
    note : str | None
        One sentence shown above the tables (a portfolio's rank IC against momentum).

    Raises
    ------
    ValueError
        If a required column is missing from ``equity``.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in equity.columns]
    if missing:
        raise ValueError(f"equity frame lacks columns {missing}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = _title(summary)
    png = _render_png(equity, title, weights)
    (out_dir / "report.png").write_bytes(png)
    before = f"<p>{html.escape(note)}</p>\n" if note else ""
    after = _symbols_table(symbols) if symbols is not None else ""
    # HTML last: its presence marks a finished report.
    (out_dir / "report.html").write_text(_render_html(title, png, summary, before, after),
                                         encoding="utf-8")
    logger.debug("report written to {}", out_dir)


def _title(summary: Mapping[str, Any]) -> str:
    symbol = summary.get("symbol", "")
    start, end = summary.get("start", ""), summary.get("end", "")
    period = f"{start} \u2013 {end}" if start or end else ""
    return " ".join(str(part) for part in (symbol, period) if part) or "Backtest report"


def _render_png(equity: pd.DataFrame, title: str, weights: pd.DataFrame | None = None) -> bytes:
    fig = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ratios = [3, 1, 1] + ([2] if weights is not None else [])
    axes = fig.subplots(len(ratios), 1, sharex=True, gridspec_kw={"height_ratios": ratios})
    ax_eq, ax_dd, ax_w = axes[:3]
    idx = equity.index

    ax_eq.plot(idx, equity["equity"], label="strategy", color="tab:blue", lw=1.2)
    curves = [equity["equity"]]
    if "benchmark" in equity.columns:
        ax_eq.plot(idx, equity["benchmark"], label="buy & hold", color="tab:gray", lw=1.0)
        curves.append(equity["benchmark"])
    values = pd.concat(curves).dropna()
    if len(values) and (values > 0).all():
        ax_eq.set_yscale("log")
    ax_eq.set_ylabel("equity")
    ax_eq.legend(loc="upper left")
    ax_eq.set_title(title)

    dd = equity["drawdown"].astype(float)
    ax_dd.fill_between(idx, dd, 0.0, color="tab:red", alpha=0.4, lw=0)
    ax_dd.set_ylabel("drawdown")
    ax_dd.yaxis.set_major_formatter(lambda y, _pos: f"{y:.0%}")

    ax_w.step(idx, equity["position_weight"], where="post", color="tab:green", lw=1.0)
    ax_w.axhline(0.0, color="black", lw=0.5)
    ax_w.set_ylabel("position weight")

    if weights is not None:
        _stacked_weights(axes[3], weights)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _stacked_weights(ax: Any, weights: pd.DataFrame) -> None:
    """Held account weight per symbol, stacked (longs above zero, shorts below)."""
    values = weights.fillna(0.0)
    labels = [str(c) for c in values.columns]
    ax.stackplot(values.index, *(values[c].clip(lower=0.0) for c in values.columns),
                 labels=labels, alpha=0.8, lw=0)
    shorts = values.clip(upper=0.0)
    if (shorts < 0).any().any():
        ax.stackplot(values.index, *(shorts[c] for c in values.columns), alpha=0.8, lw=0)
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_ylabel("weight by symbol")
    ax.legend(loc="upper left", ncol=min(len(labels), 8), fontsize="small")


def _symbols_table(symbols: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in symbols.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(_format_value(str(c), v))}</td>"
                         for c, v in row.items()) + "</tr>"
        for _, row in symbols.iterrows())
    return f"<h2>Per symbol</h2>\n<table>\n<tr>{head}</tr>\n{body}\n</table>\n"


def _format_value(key: str, value: Any) -> str:
    if isinstance(value, bool | numbers.Integral) or value is None:
        return str(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            return "n/a" if math.isnan(value) else str(value)
        if key in RETURN_KEYS:
            return f"{value:+.2%}"
        if key in SHARE_KEYS:
            return f"{value:.2%}"
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4f}"
    if isinstance(value, Mapping | list | tuple):
        return jsonio.dumps(value, default=str)
    return str(value)


#: The CSS of every HTML report (this one and the robustness batch's).
PAGE_STYLE = """body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; }
th { text-align: left; font-weight: normal; color: #555; }
td { text-align: right; font-family: monospace; }
img { max-width: 100%; }
"""


def _render_html(title: str, png: bytes, summary: Mapping[str, Any], before: str = "",
                 after: str = "") -> str:
    rows = "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_format_value(str(k), v))}</td></tr>"
        for k, v in summary.items()
    )
    img = base64.b64encode(png).decode("ascii")
    t = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{t}</title>
<style>
{PAGE_STYLE}</style>
</head>
<body>
<h1>{t}</h1>
<img alt="equity, drawdown and position weight" src="data:image/png;base64,{img}">
{before}<table>
{rows}
</table>
{after}</body>
</html>
"""
