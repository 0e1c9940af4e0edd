"""The paper daemon's lifecycle: open or resume a state directory, run, stop cleanly.

A new state directory gets a journal (:mod:`live.journal`) with the session's fixed facts:
symbols, first decision day, history start, costs, sizing and starting account.  A directory
that already has one is *resumed*:

- the bundles it traded are reloaded (each checked against its manifest hash);
- the breaker and high-water mark come back from the last journaled bar;
- bars up to the last decided one only replay the strategy's lagged statistics, so every bar
  is decided once;
- the broker reconciles cash, positions, open orders and fills made while the daemon was down
  before the first new bar, and never resends a ``client_order_id`` the broker knows.

SIGTERM or SIGINT lets the current bar finish, then the daemon flushes, closes its sockets and
exits 0.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd
from loguru import logger

from live.alpaca_store import AlpacaStore
from live.journal import JOURNAL_FILE, Journal
from live.paper_config import PaperConfig
from live.recorder import JournalRecorder, write_status
from live.retrain import Retrainer
from live.session_files import LatencyRecorder, export_session
from models.artifacts import MANIFEST, load_bundle, sha256_file
from models.errors import BundleError, ConfigurationError
from models.features import FEATURE_NAMES
from models.signal import VintageSignal, bars_needed
from models.vintages import fixed_vintage
from sizing.sizers import KellySizer
from strategies.analyzers import RunRecorder
from strategies.strategy import EnsembleStrategy

FAR_FUTURE = pd.Timestamp("2200-01-01")
SESSION_KEY = "session"
FIXED_KEYS = ("symbols", "strategy_id", "horizon")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def open_state(path: Path) -> tuple[Path, bool]:
    """``(folder, resuming)``: a new or empty folder, or one holding a journal to resume."""
    if (path / JOURNAL_FILE).is_file():
        return path, True
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigurationError(f"--state {path}: not empty and holds no journal; choose a "
                                 "new directory or the state directory of a session")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"--state {path}: cannot create it ({exc.strerror})") from None
    return path, False


def check_history(model: object, history_days: int, source: str | Path) -> None:
    """Refuse a bundle whose first decision would lack history.

    Its prediction of a bar reads :func:`models.signal.bars_needed` bars (the features'
    look-back, plus a sequence learner's earlier rows); they must fit in the ``history_days``
    calendar days the feeds backfill, counted at 1.5 calendar days per trading day
    (weekends and holidays).
    """
    bars = bars_needed(model)
    need = math.ceil(bars * 1.5)
    if history_days < need:
        raise ConfigurationError(f"{source}: a prediction reads {bars} bars of history, more "
                                 f"than history_days {history_days} holds; set history_days "
                                 f"to {need} or more")


def check_journal_bundles(journal: Journal) -> None:
    """Every bundle the session traded must be there, unchanged."""
    for row in journal.bundles():
        manifest = Path(row["path"]) / MANIFEST
        if not manifest.is_file():
            raise BundleError(f"{row['path']}: a bundle this session traded is gone; restore "
                              "it to resume")
        if sha256_file(manifest) != row["manifest_sha256"]:
            raise BundleError(f"{row['path']}: the bundle changed since the session traded it "
                              "(manifest hash differs); restore it to resume")


def journal_signal(journal: Journal, horizon: int) -> VintageSignal:
    """One vintage per journaled bundle, each predicting from its ``predict_start``."""
    check_journal_bundles(journal)
    vintages = []
    for row in journal.bundles():
        model, manifest = load_bundle(Path(row["path"]), feature_names=FEATURE_NAMES,
                                      horizon=horizon)
        vintages.append(fixed_vintage(model, manifest, row["path"], horizon=horizon,
                                      predict_start=pd.Timestamp(row["predict_start"]),
                                      predict_end=FAR_FUTURE))
    return VintageSignal(vintages)


def new_session(journal: Journal, store: AlpacaStore, cfg: PaperConfig,
                manifest_sha: str) -> dict[str, Any]:
    """Journal the fixed facts of a new session and its first bundle."""
    trade_start = store.clock_day()
    account = store.trading.get_account()
    positions = {p.symbol: float(p.qty) for p in store.trading.get_all_positions()}
    session = {
        "symbols": list(cfg.symbols), "strategy_id": cfg.strategy_id, "horizon": cfg.horizon,
        "trade_start": trade_start.date().isoformat(),
        "history_start": (trade_start - pd.Timedelta(days=cfg.history_days)).date().isoformat(),
        "commission": cfg.commission, "slippage": cfg.slippage,
        "allocations": cfg.checked_allocations(), "sizing": cfg.sizing.model_dump(mode="json"),
        "initial_cash": float(account.cash), "initial_positions": positions,
        "replay": store.replay, "created": now_iso(),
    }
    journal.set_meta(SESSION_KEY, session)
    journal.add_bundle(str(cfg.bundle), manifest_sha, session["trade_start"], now_iso())
    return session


def resumed_session(journal: Journal, cfg: PaperConfig) -> dict[str, Any]:
    """The journaled session, checked against the config that resumes it."""
    session = journal.get_meta(SESSION_KEY)
    if session is None:
        raise ConfigurationError(f"{journal.path}: the journal holds no session; use a new "
                                 "--state directory")
    current = {"symbols": list(cfg.symbols), "strategy_id": cfg.strategy_id,
               "horizon": cfg.horizon}
    for key in FIXED_KEYS:
        if session[key] != current[key]:
            raise ConfigurationError(f"the config's {key} {current[key]!r} differs from the "
                                     f"session's {session[key]!r}; resume with the same config "
                                     "or use a new --state directory")
    return session


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

    def __init__(self, cfg: PaperConfig, store: AlpacaStore, folder: Path, resuming: bool,
                 manifest_sha: str) -> None:
        self.cfg, self.store, self.folder = cfg, store, folder
        self.journal = Journal(folder / JOURNAL_FILE)
        if resuming:
            self.session = resumed_session(self.journal, cfg)
        else:
            self.session = new_session(self.journal, store, cfg, manifest_sha)
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
        if pd.Timestamp(manifest["training_window"]["end"]) >= predict_start:
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
                                          strategy_id=cfg.strategy_id, journal=self.journal))
        cerebro.addsizer(KellySizer, allocations=self.session["allocations"])
        cerebro.addstrategy(
            EnsembleStrategy, signals=dict.fromkeys(self.session["symbols"], self.signal),
            horizon=cfg.horizon, trade_start=live_from.date(), sizing=cfg.sizing,
            breaker_state=self.journal.breaker_state(),
            resume_after=self.resume_after.date() if self.resume_after is not None else None)
        cerebro.addanalyzer(RunRecorder, _name="recorder")
        cerebro.addanalyzer(LatencyRecorder, _name="latency", live_from=live_from)
        cerebro.addanalyzer(JournalRecorder, _name="journal", journal=self.journal,
                            state_dir=self.folder, live_from=live_from,
                            resume_after=self.resume_after, status=self.status_fields,
                            bundle_of=self.bundle_of, on_bar=self.after_bar)
        return cerebro

    def run(self) -> Path:
        cerebro = self.build()
        logger.info("paper session {} from {} ({}), state in {}{}",
                    ",".join(self.session["symbols"]), self.trade_start.date(),
                    "replay server" if self.store.replay else "Alpaca paper", self.folder,
                    f"; resuming after {self.resume_after.date()}" if self.resume_after
                    is not None else "")
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
            return json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            return {}
