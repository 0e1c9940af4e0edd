"""The paper daemon's lifecycle: open or resume a state directory, run, stop cleanly.

A new state directory gets a journal (:mod:`live.session.journal`) with the session's fixed facts:
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

One daemon per state directory: :func:`claim_state` holds an exclusive ``flock`` on
``<state>/daemon.lock`` for the process's life (the kernel drops it on ``kill -9``, so a
restart is never blocked by a stale lock).  A start that fails before the journal is written
leaves the directory as it was: a directory it created is removed, and the lock file gets its
previous bytes back.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import backtrader as bt
import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from loguru import logger

from ensemble_bt.errors import BrokerError, BundleError, ConfigurationError, DataError
from ensemble_bt.jsonio import loads
from live.alpaca.store import AlpacaStore
from live.monitor.status import write_status
from live.session.config import PaperConfig, shown_url
from live.session.exports import LatencyRecorder, check_session, export_session
from live.session.journal import JOURNAL_FILE, SESSION_KEY, Journal
from live.session.recorder import JournalRecorder
from live.session.retrain import Retrainer
from models.artifacts import MANIFEST, load_bundle, sha256_file, training_end
from models.features import FEATURE_NAMES
from models.signal import VintageSignal, bars_needed
from models.vintages import fixed_vintage
from strategies.analyzers import RunRecorder
from strategies.sizers import KellySizer
from strategies.strategy import EnsembleStrategy

FAR_FUTURE = pd.Timestamp("2200-01-01")
FIXED_KEYS = ("symbols", "strategy_id", "horizon")
LOCK_FILE = "daemon.lock"
#: Tries, 10 ms apart, before a held lock counts as another daemon's: outlasts the instant
#: for which a starting daemon's :func:`probe_lock` holds it shared.
LOCK_TRIES = 50
KEY_REFUSED = (401, 403)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ------------------------------------------------------------------ the lock
def _try_lock(fd: int, mode: int) -> str | None:
    """None once ``flock(fd, mode)`` is taken, else the holder's pid from the lock file."""
    for _ in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            time.sleep(0.01)
    return os.pread(fd, 32, 0).decode("ascii", "replace").strip()


def _in_use(folder: Path, holder: str) -> ConfigurationError:
    who = f"pid {holder}" if holder.isdigit() else "another process"
    return ConfigurationError(f"--state {folder}: state directory in use by {who} (a running "
                              "ensemble-bt paper); stop it first, or use another --state "
                              "directory")


def probe_lock(folder: Path) -> None:
    """Refuse a state directory whose daemon is running, without writing anything.

    Raises
    ------
    ConfigurationError
        Another process holds the lock: "state directory in use by pid N".
    """
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file (or no directory): nobody runs here
    try:
        holder = _try_lock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)
    if holder is not None:
        raise _in_use(folder, holder)


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return those created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_dirs(missing)
        raise ConfigurationError(f"--state {folder}: cannot create it ({exc.strerror})") from None
    return missing


def _remove_dirs(created: list[Path]) -> None:
    for path in created:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (or gone): something else lives there now


class StateClaim:
    """The exclusive lock on a state directory (see :func:`claim_state`)."""

    def __init__(self) -> None:
        self.committed = False

    def commit(self) -> None:
        """The journal is written: from now on a failure leaves the directory as it is."""
        self.committed = True


@contextlib.contextmanager
def claim_state(folder: Path) -> Iterator[StateClaim]:
    """Hold the state directory's lock for the ``with`` block; undo the claim on failure.

    Creates ``folder`` when missing, takes an exclusive ``flock`` on ``folder/daemon.lock``
    and writes this process's pid there.  The kernel releases the lock when the process dies,
    ``kill -9`` included.  When the block raises before :meth:`StateClaim.commit`, the lock
    file gets its previous bytes back (or goes, if this call created it) and every directory
    this call created is removed: a failed start leaves no trace.

    Raises
    ------
    ConfigurationError
        The directory cannot be created, or another process holds the lock.
    """
    created = _make_dirs(folder)
    lock = folder / LOCK_FILE
    existed = lock.exists()
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        _remove_dirs(created)
        raise ConfigurationError(f"--state {folder}: cannot open {LOCK_FILE} "
                                 f"({exc.strerror})") from None
    previous = os.pread(fd, 4096, 0) if existed else None
    try:
        holder = _try_lock(fd, fcntl.LOCK_EX)
        if holder is not None:
            raise _in_use(folder, holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        claim = StateClaim()
        try:
            yield claim
        except BaseException:
            if not claim.committed:
                _undo_claim(fd, lock, previous, created)
            raise
    finally:
        os.close(fd)


def _undo_claim(fd: int, lock: Path, previous: bytes | None, created: list[Path]) -> None:
    """Put the lock file and the directories back as they were (the lock is still held)."""
    if previous is None:
        lock.unlink(missing_ok=True)
    else:
        os.ftruncate(fd, 0)
        os.pwrite(fd, previous, 0)
    _remove_dirs(created)


# ---------------------------------------------------------- state and session
def state_session(folder: Path) -> dict[str, Any] | None:
    """The session a state directory holds, or None for a new one; reads, never writes.

    A missing or empty directory, one holding only the lock file, and one whose journal is
    blank (a start killed between creating the journal and writing its session) all start a
    new session.  A journal with a session is checked: it is ours, its facts are complete
    and every bundle it traded is there unchanged.

    Raises
    ------
    ConfigurationError
        ``folder`` is a file, or a directory with other files and no journal.
    DataError, BundleError
        The journal is not ours, is another schema version or is incomplete; a bundle it
        traded is gone or changed.
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigurationError(f"--state {folder}: not a directory")
    path = folder / JOURNAL_FILE
    if path.exists():
        if path.is_file() and path.stat().st_size == 0:
            return None
        journal = Journal(path, readonly=True)
        try:
            if journal.is_blank():
                return None
            session = check_session(journal.get_meta(SESSION_KEY), path)
            check_journal_bundles(journal)
            return session
        finally:
            journal.close()
    if folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir()):
        raise ConfigurationError(f"--state {folder}: not empty and holds no journal; choose a "
                                 "new directory or the state directory of a session")
    return None


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
    if not journal.bundles():
        raise DataError(f"{journal.path}: the journal lists no bundle; use a new --state "
                        "directory")
    vintages = []
    for row in journal.bundles():
        model, manifest = load_bundle(Path(row["path"]), feature_names=FEATURE_NAMES,
                                      horizon=horizon)
        vintages.append(fixed_vintage(model, manifest, row["path"], horizon=horizon,
                                      predict_start=pd.Timestamp(row["predict_start"]),
                                      predict_end=FAR_FUTURE))
    return VintageSignal(vintages)


def session_facts(store: AlpacaStore, cfg: PaperConfig) -> dict[str, Any]:
    """The fixed facts a new session starts from: the account's clock, cash and positions."""
    account = store.trading.get_account()
    trade_start = store.clock_day()
    positions = {p.symbol: float(p.qty) for p in store.trading.get_all_positions()}
    return {
        "symbols": list(cfg.symbols), "strategy_id": cfg.strategy_id, "horizon": cfg.horizon,
        "trade_start": trade_start.date().isoformat(),
        "history_start": (trade_start - pd.Timedelta(days=cfg.history_days)).date().isoformat(),
        "commission": cfg.commission, "slippage": cfg.slippage,
        "allocations": cfg.checked_allocations(), "sizing": cfg.sizing.model_dump(mode="json"),
        "initial_cash": float(account.cash), "initial_positions": positions,
        "replay": store.replay, "created": now_iso(),
    }


def first_contact(store: AlpacaStore, cfg: PaperConfig,
                  session: dict[str, Any] | None) -> dict[str, Any]:
    """Check the keys at the trading endpoint before anything is written.

    Parameters
    ----------
    store : AlpacaStore
        Not started yet: only its REST client is used.
    cfg : PaperConfig
    session : dict | None
        The session to resume, or None for a new one.

    Returns
    -------
    dict
        ``session`` when resuming, else the new session's facts (:func:`session_facts`).

    Raises
    ------
    ConfigurationError
        The endpoint refused the keys (401 or 403).
    BrokerError
        The endpoint cannot be reached or failed otherwise (worth a retry later).
    """
    where = shown_url(store.trading_url)
    try:
        if session is None:
            return session_facts(store, cfg)
        store.trading.get_account()
        return session
    except APIError as exc:
        if exc.status_code in KEY_REFUSED:
            raise ConfigurationError(
                f"{where} refused the keys in APCA_API_KEY_ID / APCA_API_SECRET_KEY (HTTP "
                f"{exc.status_code}); export the keys of this endpoint's account") from None
        raise BrokerError(f"{where} failed at start (HTTP {exc.status_code}: "
                          f"{str(exc)[:120]})") from None
    except requests.RequestException as exc:
        raise BrokerError(f"cannot reach {where} ({type(exc).__name__}); check the network "
                          "and alpaca.trading_url") from None
    except ValueError as exc:  # a reply alpaca-py cannot parse: not Alpaca's trading API
        raise BrokerError(f"{where} did not answer as Alpaca's trading API "
                          f"({type(exc).__name__}); check alpaca.trading_url") from None


def open_journal(folder: Path, cfg: PaperConfig, session: dict[str, Any],
                 manifest_sha: str, resuming: bool) -> Journal:
    """The state directory's journal; a new session's facts and bundle are written first."""
    journal = Journal(folder / JOURNAL_FILE)
    if not resuming:
        journal.start_session(session, str(cfg.bundle), manifest_sha, now_iso())
    return journal


def check_resume(session: dict[str, Any], cfg: PaperConfig) -> None:
    """Refuse a config that differs from the journaled session in a fixed fact."""
    current = {"symbols": list(cfg.symbols), "strategy_id": cfg.strategy_id,
               "horizon": cfg.horizon}
    for key in FIXED_KEYS:
        if session[key] != current[key]:
            raise ConfigurationError(f"the config's {key} {current[key]!r} differs from the "
                                     f"session's {session[key]!r}; resume with the same config "
                                     "or use a new --state directory")


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
