"""The paper daemon's lifecycle: run a state directory's session, stop cleanly.

A new state directory gets a journal (:mod:`live.session.journal`) with the session's fixed
facts: symbols, first decision day, history start, costs, sizing, portfolio and starting
account.  Cerebro is wired from those facts as ``backtests.portfolio.run_portfolio`` wires a
backtest: the sizer trades each symbol's slice (:func:`live.session.portfolio.session_slices`)
and ``EnsembleStrategy`` gets the same ``portfolio``, so parity can replay it exactly.  A
directory that already has one is *resumed* (:mod:`live.session.startup` decides which):

- the bundles it traded are reloaded (each checked against its manifest hash,
  :func:`live.session.bundles.journal_signal`);
- the breaker and high-water mark come back from the last journaled bar;
- bars up to the last decided one only replay the strategy's lagged statistics, so every bar
  is decided once;
- the broker reconciles cash, positions, open orders and fills made while the daemon was down
  before the first new bar (:mod:`live.alpaca.reconcile`), and never resends a
  ``client_order_id`` the journal holds.

SIGTERM or SIGINT lets the current bar finish, then the daemon flushes, closes its sockets and
exits 0.  One daemon runs per state directory (:mod:`live.session.lock`).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd
from loguru import logger

from ensemble_bt.errors import ConfigurationError
from ensemble_bt.jsonio import loads
from live.alpaca.endpoints import shown_url
from live.alpaca.store import AlpacaStore
from live.monitor.status import write_status
from live.session.bundles import FAR_FUTURE, check_history, journal_signal
from live.session.config import PaperConfig
from live.session.exports import export_session
from live.session.journal import Journal
from live.session.portfolio import session_portfolio, session_slices
from live.session.recorder import JournalRecorder, LatencyRecorder
from live.session.retrain import Retrainer
from live.session.startup import now_iso
from models.artifacts import MANIFEST, load_bundle, sha256_file, training_end
from models.features import FEATURE_NAMES
from models.vintages import fixed_vintage
from strategies.analyzers import RunRecorder
from strategies.sizers import KellySizer
from strategies.strategy import EnsembleStrategy


@contextlib.contextmanager
def stop_on_signals(cerebro: bt.Cerebro) -> Iterator[dict[str, bool]]:
    """SIGTERM/SIGINT ask cerebro to stop after the current bar."""
    flag = {"stopped": False}

    def handler(signum: int, _frame: Any) -> None:
        logger.warning("{} received: finishing the current bar, then stopping",
                       signal.Signals(signum).name)
        flag["stopped"] = True
        cerebro.runstop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def log_file(folder: Path) -> Iterator[None]:
    """Rotated loguru log under the state directory."""
    sink = logger.add(folder / "logs" / "paper.log", rotation="10 MB", retention=5,
                      level="INFO", format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {message}")
    try:
        yield
    finally:
        logger.remove(sink)


class Daemon:
    """One run of the paper daemon over a state directory (see the module docstring)."""

    def __init__(self, cfg: PaperConfig, store: AlpacaStore, folder: Path, journal: Journal,
                 session: dict[str, Any]) -> None:
        self.cfg, self.store, self.folder = cfg, store, folder
        self.journal, self.session = journal, session
        self.signal = journal_signal(self.journal, cfg.horizon)
        last = self.journal.last_decided()
        self.resume_after = pd.Timestamp(last) if last else None
        self.trade_start = pd.Timestamp(self.session["trade_start"])
        self.state = "starting"
        self.retrainer = (Retrainer(folder, cfg.retrain, cfg.horizon,
                                    cfg.retrain.symbol or self.session["symbols"][0])
                          if cfg.retrain.every_days else None)

    # -------------------------------------------------------------- retraining
    def after_bar(self, day: pd.Timestamp) -> None:
        """Start a due retrain; swap a finished one in for the next decision.

        Against a replay server the daemon waits for a running retrain, so a replay gives the
        same decisions however fast training is (the simulated market does not move on).
        """
        retrainer = self.retrainer
        if retrainer is None:
            return
        if retrainer.due(day):
            retrainer.start(day, self.journal.path)
        protect = {Path(row["path"]) for row in self.journal.bundles()}
        path = retrainer.poll(protect)
        while path is None and retrainer.running and self.store.replay:
            time.sleep(0.05)
            path = retrainer.poll(protect)
        if path is not None:
            self.install(path, day + pd.Timedelta(days=1))

    def install(self, path: Path, predict_start: pd.Timestamp) -> None:
        """Trade bundle ``path`` from ``predict_start`` on (journaled first)."""
        model, manifest = load_bundle(path, feature_names=FEATURE_NAMES,
                                      horizon=self.cfg.horizon)
        try:
            check_history(model, self.cfg.history_days, path)
        except ConfigurationError as exc:
            logger.error("retrained bundle not installed: {}", exc)
            return
        if training_end(manifest, path) >= predict_start:
            logger.error("retrained bundle {} overlaps {}: not installed", path,
                         predict_start.date())
            return
        bundle_id = self.journal.add_bundle(str(path), sha256_file(path / MANIFEST),
                                            predict_start.date().isoformat(), now_iso())
        self.signal.add(fixed_vintage(model, manifest, str(path), horizon=self.cfg.horizon,
                                      predict_start=predict_start, predict_end=FAR_FUTURE))
        logger.info("bundle {} ({}) decides from {} on", bundle_id, path, predict_start.date())

    def bundle_of(self, day: pd.Timestamp) -> tuple[int, str]:
        rows = [r for r in self.journal.bundles() if pd.Timestamp(r["predict_start"]) <= day]
        row = rows[-1] if rows else self.journal.bundles()[0]
        return int(row["id"]), str(row["path"])

    def status_fields(self) -> dict[str, Any]:
        store = self.store
        return {"state": self.state, "symbols": self.session["symbols"],
                "replay": bool(self.session["replay"]),
                "connections": {"market_data": store.data_state,
                                "trading_stream": store.trading_state}}

    def build(self) -> bt.Cerebro:
        cfg, store = self.cfg, self.store
        live_from = self.trade_start
        cerebro = bt.Cerebro(stdstats=False, quicknotify=False)
        for symbol in self.session["symbols"]:
            cerebro.adddata(store.getdata(symbol, live_from=live_from,
                                          history_start=pd.Timestamp(
                                              self.session["history_start"])))
        cerebro.setbroker(store.getbroker(commission_rate=self.session["commission"],
                                          strategy_id=cfg.strategy_id, ledger=self.journal))
        slice_of = session_slices(self.session)
        cerebro.addsizer(KellySizer, allocations=slice_of)
        cerebro.addstrategy(
            EnsembleStrategy, signals=dict.fromkeys(self.session["symbols"], self.signal),
            horizon=cfg.horizon, trade_start=live_from.date(), sizing=cfg.sizing,
            portfolio=session_portfolio(self.session),
            breaker_state=self.journal.breaker_state(),
            resume_after=self.resume_after.date() if self.resume_after is not None else None)
        cerebro.addanalyzer(RunRecorder, _name="recorder")
        cerebro.addanalyzer(LatencyRecorder, _name="latency", live_from=live_from)
        cerebro.addanalyzer(JournalRecorder, _name="journal", journal=self.journal,
                            state_dir=self.folder, live_from=live_from,
                            resume_after=self.resume_after, status=self.status_fields,
                            bundle_of=self.bundle_of, on_bar=self.after_bar,
                            slices=slice_of)
        return cerebro

    def run(self) -> Path:
        cerebro = self.build()
        rest, stream = self.cfg.alpaca.trading_endpoints()
        logger.info("paper session {} from {}, state in {}{}",
                    ",".join(self.session["symbols"]), self.trade_start.date(), self.folder,
                    f"; resuming after {self.resume_after.date()}" if self.resume_after
                    is not None else "")
        live = "live" in (rest.kind, stream.kind)
        logger.log("WARNING" if live else "INFO",
                   "{}trading endpoint {} ({}), trading stream {} ({}){}",
                   "REAL MONEY: " if live else "", shown_url(self.store.trading_url), rest.kind,
                   shown_url(self.store.trading_stream_url), stream.kind,
                   "; replay driven by /sim/advance" if self.store.replay else "")
        strat = None
        self.state = "running"
        try:
            with stop_on_signals(cerebro) as flag:
                strat = cerebro.run()[0]
            self.state = "stopped" if flag["stopped"] else "finished"
        except BaseException:
            self.state = "failed"
            raise
        finally:
            self._close(cerebro, strat)
        return self.folder

    def _close(self, cerebro: bt.Cerebro, strat: Any) -> None:
        if self.retrainer is not None:
            self.retrainer.stop()
        if strat is None:
            running = getattr(cerebro, "runningstrats", None)
            strat = running[0] if running else None
        latency = strat.analyzers.latency.rows if strat is not None else []
        broker = self.store.broker
        final = {"state": self.state, "updated": now_iso(), "live_bars_this_run": len(latency),
                 "finished": bool(self.store.finished)}
        if broker is not None:
            final.update({"final_cash": broker.getcash(), "final_equity": broker.getvalue()})
        export_session(self.folder, self.journal, {**self.session, **final}, latency)
        status = self._last_status()
        write_status(self.folder, {**status, **self.status_fields(), "updated": now_iso()})
        self.journal.close()
        logger.info("session {}: {} new bars this run", self.state, len(latency))

    def _last_status(self) -> dict[str, Any]:
        path = self.folder / "status.json"
        try:
            return loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            return {}
