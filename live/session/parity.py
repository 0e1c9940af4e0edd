"""Parity: replay a paper session's bars through the backtester and diff the orders.

The backtester gets exactly what the session's journal says it saw: the bars of every symbol
(history included) in the session's listing order, the same bundles from the same days (each
checked by its manifest hash), the same first decision day, costs, sizing, portfolio (slices
and ``portfolio`` wired as a portfolio backtest wires them) and starting cash.  Financing is
off in the replay because a paper account is charged by the venue, not by the strategy's
accounting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from backtests.engine import run_strategy
from ensemble_bt.errors import ConfigurationError
from ensemble_bt.jsonio import write_json
from live.session.bundles import journal_signal
from live.session.exports import load_session
from live.session.journal import JOURNAL_FILE, Journal
from live.session.portfolio import (
    check_weight_basis,
    in_listing_order,
    session_portfolio,
    session_slices,
)
from sizing.config import SizingConfig

EQUITY_TOLERANCE = 1e-6  # relative
ORDER_KEYS = ("decided", "symbol", "side", "size")


@dataclass
class ParityReport:
    """Result of :func:`run_parity`."""

    identical: bool
    paper_orders: int
    backtest_orders: int
    equity_paper: float
    equity_backtest: float
    differences: list[str] = field(default_factory=list)

    @property
    def equity_rel_diff(self) -> float:
        return abs(self.equity_paper - self.equity_backtest) / abs(self.equity_backtest)

    def as_dict(self) -> dict[str, Any]:
        return {"identical": self.identical, "paper_orders": self.paper_orders,
                "backtest_orders": self.backtest_orders, "equity_paper": self.equity_paper,
                "equity_backtest": self.equity_backtest,
                "equity_rel_diff": self.equity_rel_diff, "tolerance": EQUITY_TOLERANCE,
                "first_differences": self.differences}


def _order_keys(rows: pd.DataFrame) -> list[tuple]:
    filled = rows[rows["status"] == "filled"]
    return [(str(r.decided), str(r.symbol), str(r.side), float(r.size))
            for r in filled.itertuples()]


def diff_orders(paper: list[tuple], backtest: list[tuple], limit: int = 5) -> list[str]:
    """The first ``limit`` differences between two order lists, as readable lines."""
    out = []
    for i in range(max(len(paper), len(backtest))):
        mine = paper[i] if i < len(paper) else None
        theirs = backtest[i] if i < len(backtest) else None
        if mine != theirs:
            out.append(f"order {i + 1}: paper {_fmt(mine)} vs backtest {_fmt(theirs)}")
            if len(out) >= limit:
                break
    return out


def _fmt(order: tuple | None) -> str:
    if order is None:
        return "(none)"
    return " ".join(f"{k}={v}" for k, v in zip(ORDER_KEYS, order, strict=True))


def run_parity(folder: str | Path) -> ParityReport:
    """Replay the session in ``folder`` through the backtester; write ``parity.json``.

    The journal is only read.  A journal that is not ours, another schema version, a
    session lacking a fact (``trade_start``, a valid ``sizing``...), or an older session whose
    held weights were over the account (:func:`live.session.portfolio.check_weight_basis`)
    is a one-line :class:`~ensemble_bt.errors.DataError` before anything is written.
    """
    folder = Path(folder)
    session = load_session(folder)
    meta = session.meta
    check_weight_basis(meta, folder / JOURNAL_FILE, "replay")
    if meta.get("initial_positions"):
        raise ConfigurationError(f"{folder}: the session started with open positions "
                                 f"{meta['initial_positions']}; parity needs a flat start")
    trade_start = pd.Timestamp(meta["trade_start"])
    journal = Journal(folder / JOURNAL_FILE, readonly=True)
    try:
        signal = journal_signal(journal, int(meta["horizon"]))
    finally:
        journal.close()
    sizing = SizingConfig.model_validate(meta["sizing"]).model_copy(
        update={"margin_rate": 0.0, "short_borrow_rate": 0.0})
    bars = in_listing_order(session.bars, meta["symbols"])
    analysis = run_strategy(
        bars, dict.fromkeys(bars, signal), horizon=int(meta["horizon"]),
        trade_start=trade_start.date(), sizing=sizing, cash=float(meta["initial_cash"]),
        commission=float(meta["commission"]), slippage=float(meta["slippage"]),
        allocations=session_slices(meta), portfolio=session_portfolio(meta))
    paper = _order_keys(session.orders)
    backtest = _order_keys(pd.DataFrame(analysis["orders"]).reindex(
        columns=["decided", "symbol", "side", "size", "status"]))
    differences = diff_orders(paper, backtest)
    equity_backtest = float(analysis["bars"][-1][1]) if analysis["bars"] else float("nan")
    equity_paper = float(session.equity["equity"].iloc[-1]) if len(session.equity) else float(
        "nan")
    report = ParityReport(identical=False, paper_orders=len(paper),
                          backtest_orders=len(backtest), equity_paper=equity_paper,
                          equity_backtest=equity_backtest, differences=differences)
    report.identical = not differences and report.equity_rel_diff <= EQUITY_TOLERANCE
    if not differences and not report.identical:
        report.differences.append(f"final equity: paper {equity_paper:.6f} vs backtest "
                                  f"{equity_backtest:.6f} (relative {report.equity_rel_diff:.2e})")
    write_json(folder / "parity.json", report.as_dict())
    return report
