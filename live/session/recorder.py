"""The daemon's analyzers: what each bar leaves behind.

Both run as backtrader analyzers, i.e. after ``EnsembleStrategy.next`` for the bar.

- :class:`JournalRecorder` journals the bar of every feed that has one at this close, that
  close's decisions (one per symbol, so a bar is decided once) and the account row with the
  breaker state, in one transaction; then refreshes ``status.json`` (with each symbol's
  latest target and held weight) and gives a finished retraining the chance to swap its
  bundle in for the next decision.
- :class:`LatencyRecorder` times each live bar, from its arrival to the end of the
  strategy's work on it (``latency.csv``, :func:`live.session.exports.export_session`).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import backtrader as bt
import pandas as pd

from live.monitor.status import write_status
from sizing.decisions import DECISION_FIELDS

_TARGET, _HELD = DECISION_FIELDS.index("target_weight"), DECISION_FIELDS.index("held_weight")


class JournalRecorder(bt.Analyzer):
    """Journals every delivered bar and every decided one (see the module docstring).

    Parameters
    ----------
    journal : live.session.journal.Journal
    state_dir : pathlib.Path
    live_from : pandas.Timestamp
        The session's first decision day.
    resume_after : pandas.Timestamp | None
        Bars up to this day were journaled by an earlier run.
    status : Callable[[], dict]
        Returns the status fields the recorder does not know (state, connections, ...).
    bundle_of : Callable[[pandas.Timestamp], tuple[int, str]]
        Id and path of the bundle that decides a day.
    on_bar : Callable[[pandas.Timestamp], None] | None
        Called after each decided bar is committed (bundle swaps).
    slices : dict[str, float] | None
        Each symbol's share of the account, to show its weights in the account too.
    """

    params = (("journal", None), ("state_dir", None), ("live_from", None),
              ("resume_after", None), ("status", None), ("bundle_of", None), ("on_bar", None),
              ("slices", None))

    def start(self) -> None:
        self._pending_bars: list[tuple] = []
        self._seen = 0
        self._live_from = pd.Timestamp(self.p.live_from)
        self._resume = pd.Timestamp(self.p.resume_after) if self.p.resume_after else None
        self._weights: dict[str, dict[str, object]] = {}

    def next(self) -> None:
        strat = self.strategy
        clock = strat.lines.datetime[0]  # the union of the feeds' sessions
        day = pd.Timestamp(bt.num2date(clock).date())
        iso = day.date().isoformat()
        # A feed without a bar at this close keeps its last one: that is not today's bar.
        self._pending_bars += [(d._name, iso, d.open[0], d.high[0], d.low[0], d.close[0],
                                d.volume[0]) for d in strat.datas
                               if len(d) and d.datetime[0] == clock]
        new = strat.decisions[self._seen:]
        self._seen = len(strat.decisions)
        if day < self._live_from or (self._resume is not None and day <= self._resume):
            return  # warm-up or already decided: bars are committed with the next decision
        bundle = self.p.bundle_of(day)
        rows = [(iso, *row[1:], bundle[0]) for row in new]
        self._note_weights(iso, new)
        broker, breaker = strat.broker, strat.breaker
        equity = (iso, broker.getvalue(), broker.getcash(), breaker.high_water,
                  breaker.drawdown, breaker.to_json())
        self.p.journal.record_bar_step(self._pending_bars, rows, equity)
        self._pending_bars = []
        self._status(day, bundle, equity)
        if self.p.on_bar is not None:
            self.p.on_bar(day)

    def _status(self, day: pd.Timestamp, bundle: tuple[int, str], equity: tuple) -> None:
        strat = self.strategy
        arrived = max(d.arrivals.get(day, time.perf_counter()) for d in strat.datas)
        status = {
            "updated": datetime.now(UTC).isoformat(timespec="seconds"), "pid": os.getpid(),
            "state": "running", "last_bar": day.date().isoformat(),
            "positions": {d._name: strat.getposition(d).size for d in strat.datas},
            "equity": equity[1], "cash": equity[2], "high_water": equity[3],
            "drawdown": equity[4], "breaker": json.loads(equity[5]),
            "lag_seconds": round(time.perf_counter() - arrived, 6),
            "weights": self._weights,
            "bundle": {"id": bundle[0], "path": bundle[1]}, **self.p.status(),
        }
        write_status(Path(self.p.state_dir), status)

    def _note_weights(self, iso: str, decisions: list[tuple]) -> None:
        """Each symbol's latest decided weights: of its slice, and of the account."""
        slices = self.p.slices or {}
        for row in decisions:
            share = float(slices.get(row[1], 1.0))
            target, held = float(row[_TARGET]), float(row[_HELD])
            self._weights[row[1]] = {"date": iso, "slice": share, "target_weight": target,
                                     "held_weight": held, "account_target_weight": target * share,
                                     "account_held_weight": held * share}


class LatencyRecorder(bt.Analyzer):
    """Milliseconds from a live bar's arrival to the end of the strategy's ``next``.

    Analyzers run after the strategy, so this covers features, the ensemble's inference,
    sizing and the order submissions of that bar.
    """

    params = (("live_from", None),)

    def start(self) -> None:
        self.rows: list[tuple[pd.Timestamp, float]] = []

    def next(self) -> None:
        now = time.perf_counter()
        day = pd.Timestamp(bt.num2date(self.strategy.datas[0].datetime[0]).date())
        if day < pd.Timestamp(self.p.live_from):
            return
        arrived = max(d.arrivals.get(day, now) for d in self.strategy.datas)
        self.rows.append((day, (now - arrived) * 1000.0))
