"""The runs of a results directory, for its index (:mod:`backtests.index`).

A run is a folder under ``RESULTS_DIR`` (at any depth; a run's own folders are not searched)
holding:

- ``summary.json`` and ``runs.csv``: a robustness batch;
- ``summary.json``: a backtest (a portfolio one when it lists ``symbols``);
- ``journal.sqlite`` or ``session.json``: a paper session, whose figures come from its
  exported ``equity.csv`` and ``orders.csv`` (a session still running has none yet).

A missing folder, a folder without any run, or a ``summary.json`` / ``session.json`` that is
not a JSON object is a :class:`~ensemble_bt.errors.StopError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ensemble_bt.errors import ConfigurationError, DataError
from ensemble_bt.jsonio import loads

#: How deep below RESULTS_DIR runs are looked for.
MAX_DEPTH = 4


@dataclass
class Run:
    """One run of the results directory: where it is, what it is, its headline figures."""

    path: Path
    kind: str
    figures: dict[str, Any]
    equity: pd.Series | None = None
    symbols: tuple[str, ...] = field(default_factory=tuple)


def _json_object(path: Path) -> dict[str, Any]:
    try:
        raw = loads(path.read_bytes())
    except ValueError as exc:
        raise DataError(f"{path}: corrupt JSON ({str(exc)[:160]}); fix or remove it") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: corrupt JSON (an object was expected, found "
                        f"{type(raw).__name__}); fix or remove it")
    return raw


def _equity(path: Path) -> pd.Series | None:
    """``equity.csv``'s equity by date, None when missing or unreadable (the run still lists)."""
    try:
        frame = pd.read_csv(path, usecols=["date", "equity"], parse_dates=["date"])
    except (OSError, ValueError, KeyError):
        return None
    series = pd.Series(frame["equity"].to_numpy(float), index=frame["date"]).dropna()
    return series if len(series) else None


def paper_figures(folder: Path, session: dict[str, Any], equity: pd.Series | None
                  ) -> dict[str, Any]:
    """A paper session's headline figures, from its exports."""
    out: dict[str, Any] = {"symbols": session.get("symbols")}
    if equity is not None and len(equity) > 1:
        values = equity.to_numpy(float)
        returns = np.diff(values) / values[:-1]
        sd = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
        out.update(start=str(equity.index[0].date()), end=str(equity.index[-1].date()),
                   bars=len(equity), strategy_return=values[-1] / values[0] - 1.0,
                   sharpe=float(np.mean(returns) / sd * math.sqrt(252)) if sd > 0 else None,
                   max_drawdown=float(np.min(values / np.maximum.accumulate(values) - 1.0)))
    try:
        orders = pd.read_csv(folder / "orders.csv", usecols=["size"])
        out["n_trades"] = int((orders["size"].fillna(0) > 0).sum())
    except (OSError, ValueError, KeyError):
        pass
    return out


def read_run(folder: Path) -> Run | None:
    """The run in ``folder``, or None when it holds none."""
    if (folder / "summary.json").is_file():
        summary = _json_object(folder / "summary.json")
        if (folder / "runs.csv").is_file():
            grid = summary.get("grid") if isinstance(summary.get("grid"), dict) else {}
            names = grid.get("data") or list(grid.get("universes") or {})
            pbo = summary.get("pbo")
            figures = {**summary, "symbols": names,
                       "pbo": pbo.get("mean") if isinstance(pbo, dict) else pbo}
            return Run(folder, "robustness", figures, None, tuple(map(str, names)))
        symbols = summary.get("symbols") or [summary.get("symbol")]
        kind = "portfolio" if summary.get("symbols") else "backtest"
        return Run(folder, kind, {**summary, "symbols": symbols}, _equity(folder / "equity.csv"),
                   tuple(map(str, symbols)))
    if (folder / "journal.sqlite").is_file() or (folder / "session.json").is_file():
        session = (_json_object(folder / "session.json")
                   if (folder / "session.json").is_file() else {})
        equity = _equity(folder / "equity.csv")
        figures = paper_figures(folder, session, equity)
        return Run(folder, "paper", figures, equity, tuple(map(str, figures["symbols"] or ())))
    return None


def find_runs(root: Path) -> list[Run]:
    """Every run under ``root``, in path order.

    Raises
    ------
    ConfigurationError
        ``root`` is not a folder, or holds no run.
    DataError
        A run's ``summary.json`` or ``session.json`` is corrupt.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigurationError(f"{root}: no such results directory")
    runs: list[Run] = []
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        run = read_run(folder)
        if run is not None:
            runs.append(run)
            continue
        if depth < MAX_DEPTH:
            stack += [(child, depth + 1) for child in sorted(folder.iterdir(), reverse=True)
                      if child.is_dir() and not child.is_symlink()
                      and not child.name.startswith(".")]
    if not runs:
        raise ConfigurationError(f"{root}: no run inside (no summary.json or paper session); "
                                 "pass the --out folder of backtest, robustness or paper")
    return sorted(runs, key=lambda r: str(r.path))
