"""``ensemble-bt report RESULTS_DIR``: ``RESULTS_DIR/index.html``, every run inside side by side.

The runs are found by :func:`backtests.index_runs.find_runs` (backtests, portfolio backtests,
robustness batches and paper sessions).  The page holds:

- a table of their headline figures (from each ``summary.json``; a paper session's from its
  exports), sortable by any column with a click, each run linked to its ``report.html``;
- for each set of symbols, the equity curves of the runs that traded it, drawn together and
  rebased to 1 (matplotlib SVG, :mod:`backtests.charts`).

Everything is inline, so the page opens from disk with no internet.  The file is written
atomically, and only after every run was read: a refused input writes nothing.

Examples
--------
>>> write_index(Path("results"))                    # doctest: +SKIP
PosixPath('results/index.html')
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from backtests.charts import curves_svg
from backtests.index_runs import Run, find_runs
from ensemble_bt.jsonio import write_text_atomic

INDEX_FILE = "index.html"
#: Columns of the table: (key, header, format); format is "pct", "num", "int" or "text".
COLUMNS = (("kind", "kind", "text"), ("symbols", "symbols", "text"),
           ("start", "start", "text"), ("end", "end", "text"), ("bars", "bars", "int"),
           ("strategy_return", "return", "pct"), ("buy_hold_return", "buy & hold", "pct"),
           ("alpha", "alpha", "pct"), ("sharpe", "Sharpe", "num"),
           ("max_drawdown", "max drawdown", "pct"), ("n_trades", "trades", "int"),
           ("n_cells", "cells", "int"), ("dsr", "DSR", "num"), ("pbo", "PBO", "num"),
           ("leakage_audit", "leakage audit", "text"))

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:20px;color:#24292f}
h1{font-size:20px}h2{font-size:16px;margin-top:24px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th:first-child,td:first-child,th.text,td.text{text-align:left}
th{background:#f6f8fa;cursor:pointer;user-select:none}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
.neg{color:#cf222e}.muted{color:#57606a}svg{max-width:100%;height:auto}
"""

SCRIPT = """
document.querySelectorAll("#runs th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = document.querySelector("#runs tbody");
    var asc = !th.classList.contains("asc");
    document.querySelectorAll("#runs th").forEach(function (h) { h.className = h.dataset.kind; });
    th.className = th.dataset.kind + (asc ? " asc" : " desc");
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var v = row.cells[col].dataset.sort;
      if (th.dataset.kind !== "text") { return v === "" ? NaN : parseFloat(v); }
      return v;
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (th.dataset.kind !== "text") {
        if (isNaN(x)) { return isNaN(y) ? 0 : 1; }
        if (isNaN(y)) { return -1; }
        return asc ? x - y : y - x;
      }
      return asc ? x.localeCompare(y) : y.localeCompare(x);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def format_cell(value: Any, kind: str) -> tuple[str, str]:
    """``(html, sort key)`` of one figure."""
    if kind == "text":
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
        return ("&mdash;" if shown in (None, "") else escape(str(shown)),
                escape("" if shown is None else str(shown)))
    number = _number(value)
    if number is None:
        return "&mdash;", ""
    shown = {"pct": f"{number * 100:.2f}%", "num": f"{number:.3f}",
             "int": f"{number:,.0f}"}[kind]
    css = ' class="neg"' if number < 0 and kind == "pct" else ""
    return f"<span{css}>{shown}</span>", repr(number)


def _row(root: Path, run: Run) -> str:
    rel = run.path.relative_to(root).as_posix()
    report = run.path / "report.html"
    name = (f'<a href="{escape(rel)}/report.html">{escape(rel)}</a>' if report.is_file()
            else escape(rel))
    cells = [f'<td class="text" data-field="run" data-sort="{escape(rel)}">{name}</td>']
    for key, _, kind in COLUMNS:
        html, sort = format_cell(run.figures.get(key, run.kind if key == "kind" else None),
                                 kind)
        css = ' class="text"' if kind == "text" else ""
        cells.append(f'<td{css} data-field="{key}" data-sort="{sort}">{html}</td>')
    return f'<tr data-run="{escape(rel)}">{"".join(cells)}</tr>'


def _charts(root: Path, runs: list[Run]) -> str:
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for run in runs:
        if run.equity is not None and run.symbols:
            name = f"{run.kind}: {run.path.relative_to(root).as_posix()}"
            groups.setdefault(run.symbols, {})[name] = run.equity
    parts = []
    for symbols, curves in sorted(groups.items()):
        label = ", ".join(symbols)
        parts.append(f'<h2>Equity curves: {escape(label)}</h2><div class="chart" '
                     f'data-symbols="{escape(label)}" data-curves="{len(curves)}">'
                     f"{curves_svg(curves)}</div>")
    return "".join(parts) or '<p class="muted">No run has an equity curve.</p>'


def render_index(root: Path, runs: list[Run], now: datetime | None = None) -> str:
    """The page's HTML for ``runs`` found under ``root``."""
    head = '<th class="text" data-kind="text">run</th>' + "".join(
        f'<th class="{kind if kind == "text" else "num"}" data-kind="{kind}">'
        f"{escape(header)}</th>" for _, header, kind in COLUMNS)
    rows = "".join(_row(root, run) for run in runs)
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ensemble-bt '
            f"results: {escape(root.name)}</title><style>{STYLE}</style></head><body>"
            f"<h1>ensemble-bt results: {escape(root.name)}</h1>"
            f'<p class="muted">{len(runs)} runs, written {escape(stamp)}. Click a column to '
            f"sort.</p>"
            f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
            f"{_charts(root, runs)}<script>{SCRIPT}</script></body></html>\n")


def write_index(root: Path) -> Path:
    """Write ``root/index.html`` for every run under ``root`` and return its path.

    Raises
    ------
    ConfigurationError
        ``root`` is not a folder or holds no run; nothing is written.
    DataError
        A run's ``summary.json`` or ``session.json`` is corrupt; nothing is written.
    """
    root = Path(root)
    runs = find_runs(root)
    target = root / INDEX_FILE
    write_text_atomic(target, render_index(root, runs))
    return target
