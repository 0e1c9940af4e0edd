"""Scheduled retraining of the paper daemon's bundle, in a background process.

Every ``every_days`` calendar days the daemon exports one symbol's journaled bars to a CSV and
starts ``ensemble-bt train`` on them in its own session, so the daemon never blocks on it.
Each bar it calls :meth:`Retrainer.poll`; a run that exited 0 has its ``.partial`` folder
renamed into a finished bundle, which the daemon swaps in at the next decision.  A run the
walk-forward gate refused (exit code 2) or that failed is logged and removed; the current
bundle keeps trading.  The child never sees the broker credentials.

Layout under the state directory::

    <state>/retrain/last.json             the schedule: first_day, last_start, outcome
    <state>/retrain/bars_<SYMBOL>.csv     the bars the latest run trained on
    <state>/retrain/train_<stamp>.log     stdout and stderr of each run
    <state>/bundles/<stamp>.partial/      a run in progress: never loaded
    <state>/bundles/<stamp>/              a finished bundle (the newest ``keep`` are kept)

``<stamp>`` is the UTC start time, ``YYYYMMDDTHHMMSSZ``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from ensemble_bt import jsonio
from ensemble_bt.errors import BundleError, DataError
from live.session.journal import Journal
from models.artifacts import read_manifest

RETRAIN_DIR = "retrain"
BUNDLES_DIR = "bundles"
LAST_FILE = "last.json"
PARTIAL = ".partial"
GATE_REFUSED = 2  # the CLI's exit code for a stop error, GateRefused included
STOP_WAIT_S = 10.0
CSV_COLUMNS = ("date", "open", "high", "low", "close", "volume")
# The child needs no broker or HTTP credentials; it must never inherit them.
SECRET_ENV_PREFIXES = ("APCA_",)
SECRET_ENV_NAMES = frozenset({"ENSEMBLE_BT_HTTP_TOKEN"})
_STAMP = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


class RetrainConfig(BaseModel):
    """When and how the paper daemon retrains its bundle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    every_days: int | None = Field(None, ge=1, description="calendar days between retrains; "
                                                           "null disables retraining")
    keep: int = Field(3, ge=1, description="finished bundles kept under the state directory")
    symbol: str | None = Field(None, description="whose journaled bars to train on; null is "
                                                 "the daemon's first symbol")
    min_bars: int = Field(600, ge=300, description="skip a retrain with fewer journaled bars")
    config: str | None = Field(None, description="backtest YAML passed to `train --config` "
                                                 "(models, stack, ...)")
    skip_gate: bool = Field(False, description="install a bundle the walk-forward gate refused "
                                               "(recorded in its manifest)")


def export_bars(journal_path: Path, symbol: str, csv_path: Path,
                end: pd.Timestamp | None = None) -> int:
    """Write one symbol's journaled bars as a CSV that ``load_dataset`` reads.

    Parameters
    ----------
    journal_path : pathlib.Path
        The daemon's ``journal.sqlite``; opened read-only (:class:`~live.session.journal.Journal`).
    symbol : str
        Whose bars to export.
    csv_path : pathlib.Path
        Destination; replaced atomically, so a reader never sees half a file.
    end : pandas.Timestamp | None
        Export bars up to and including this day; None exports all.

    Returns
    -------
    int
        Rows written (bars, oldest first).

    Raises
    ------
    DataError
        The journal is missing, unreadable or not an ensemble-bt journal.
    """
    journal_path, csv_path = Path(journal_path), Path(csv_path)
    if not journal_path.is_file():
        raise DataError(f"{journal_path}: no journal to export bars from")
    last = "9999-12-31" if end is None else pd.Timestamp(end).date().isoformat()
    try:
        journal = Journal(journal_path, readonly=True)
        try:
            rows = journal.symbol_bars(symbol, last)
        finally:
            journal.close()
    except sqlite3.Error as exc:
        raise DataError(f"{journal_path}: cannot read bars ({exc})") from None
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = csv_path.with_name(f".{csv_path.name}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)  # csv writes repr(float): prices round-trip exactly
    os.replace(tmp, csv_path)
    return len(rows)


def child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) without credentials, for the training child."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items()
            if not k.startswith(SECRET_ENV_PREFIXES) and k not in SECRET_ENV_NAMES}


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line), "")


class Retrainer:
    """Starts, watches and stops the background retraining of one paper session.

    Parameters
    ----------
    state_dir : pathlib.Path
        The session's state directory (see the module docstring for what goes under it).
    cfg : RetrainConfig
        The schedule and training options.
    horizon : int
        The session's label horizon; every retrained bundle predicts it.
    symbol : str
        Whose journaled bars to train on (the config's ``symbol`` or the first symbol).
    python : str
        Interpreter that runs ``-m ensemble_bt.cli train``.
    """

    def __init__(self, state_dir: Path, cfg: RetrainConfig, horizon: int, symbol: str,
                 python: str = sys.executable) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.cfg = cfg
        self.horizon = int(horizon)
        self.symbol = symbol
        self.python = python
        self.work_dir = self.state_dir / RETRAIN_DIR
        self.bundles_dir = self.state_dir / BUNDLES_DIR
        self._proc: subprocess.Popen[bytes] | None = None
        self._stamp: str | None = None
        self._log: Path | None = None
        self._sweep_partials()

    # --------------------------------------------------------------- schedule
    @property
    def running(self) -> bool:
        """Whether a training child is running (or has exited and not been polled yet)."""
        return self._proc is not None

    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.work_dir / LAST_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return {}

    def _save_state(self, **updates: Any) -> None:
        state = {**self._state(), **updates}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        jsonio.write_json(self.work_dir / LAST_FILE, state)

    def due(self, day: pd.Timestamp) -> bool:
        """Whether to start a retrain on ``day``.

        True when retraining is enabled, no run is in progress and ``every_days`` calendar
        days have passed since the last start, or, before any start, since the first day this
        was asked (persisted, so a restarted daemon does not retrain at once).
        """
        if self.cfg.every_days is None or self.running:
            return False
        today = pd.Timestamp(day).normalize()
        state = self._state()
        anchor = state.get("last_start") or state.get("first_day")
        if anchor is None:
            self._save_state(first_day=today.date().isoformat())
            return False
        return (today - pd.Timestamp(anchor)).days >= self.cfg.every_days

    # ---------------------------------------------------------------- running
    def _new_stamp(self) -> str:
        base = stamp = _utc_stamp()
        n = 1
        while (self.bundles_dir / stamp).exists() or (self.bundles_dir / (stamp + PARTIAL)
                                                      ).exists():
            n += 1
            stamp = f"{base}-{n}"
        return stamp

    def command(self, day: pd.Timestamp, data: Path, out: Path) -> list[str]:
        """The ``ensemble-bt train`` command line of one run."""
        cmd = [self.python, "-m", "ensemble_bt.cli", "--log-level", "WARNING", "train",
               "--data", str(data), "--end", pd.Timestamp(day).date().isoformat(),
               "--out", str(out), "--horizon", str(self.horizon)]
        if self.cfg.config is not None:
            cmd += ["--config", str(Path(self.cfg.config).expanduser().resolve())]
        if self.cfg.skip_gate:
            cmd.append("--skip-gate")
        return [*cmd, "--no-progress"]

    def start(self, day: pd.Timestamp, journal_path: Path) -> bool:
        """Export the bars through ``day`` and start training on them in the background.

        Returns
        -------
        bool
            True when a run started.  False when one is already running, when there are
            fewer than ``min_bars`` journaled bars, or when the export or the launch failed
            (logged; retraining is optional, so it never stops the daemon).  Every attempt
            but the first case counts as a start for :meth:`due`.
        """
        if self.running:
            logger.warning("retrain: a run is already in progress; not starting another")
            return False
        today = pd.Timestamp(day).normalize()
        self._save_state(last_start=today.date().isoformat())
        data = self.work_dir / f"bars_{self.symbol}.csv"
        try:
            rows = export_bars(journal_path, self.symbol, data, end=today)
        except (DataError, OSError) as exc:
            logger.warning("retrain: cannot export the bars of {}: {}", self.symbol, exc)
            self._save_state(outcome="failed")
            return False
        if rows < self.cfg.min_bars:
            logger.info("retrain: skipped on {}: {} has {} journaled bars, min_bars is {}",
                        today.date(), self.symbol, rows, self.cfg.min_bars)
            self._save_state(outcome="skipped")
            return False
        return self._launch(today, data, rows)

    def _launch(self, today: pd.Timestamp, data: Path, rows: int) -> bool:
        stamp = self._new_stamp()
        log = self.work_dir / f"train_{stamp}.log"
        self.bundles_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(today, data, self.bundles_dir / (stamp + PARTIAL))
        try:
            with open(log, "wb") as sink:
                self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=sink,
                                              stderr=subprocess.STDOUT, env=child_env(),
                                              start_new_session=True)
        except OSError as exc:
            logger.warning("retrain: cannot start {} ({})", self.python, exc)
            self._save_state(outcome="failed")
            return False
        self._stamp, self._log = stamp, log
        self._save_state(outcome="running", stamp=stamp)
        logger.info("retrain: started {} on {} bars of {} through {} (pid {}, log {})",
                    stamp, rows, self.symbol, today.date(), self._proc.pid, log)
        return True

    def poll(self, protect: set[Path] | None = None) -> Path | None:
        """Check the run without blocking; the new bundle's path once one has finished.

        Parameters
        ----------
        protect : set[pathlib.Path] | None
            Bundles that pruning must keep (the one trading now), see :meth:`prune`.

        Returns
        -------
        pathlib.Path | None
            The finished bundle, once, after a run exits 0; None while running, with no run,
            or after a refused or failed run (logged with its log file, partial removed).
        """
        if self._proc is None:
            return None
        code = self._proc.poll()
        if code is None:
            return None
        stamp, log = str(self._stamp), self._log
        self._proc = self._stamp = self._log = None
        if code != 0:
            return self._failed(stamp, code, log)
        partial, final = self.bundles_dir / (stamp + PARTIAL), self.bundles_dir / stamp
        try:
            gate = read_manifest(partial).get("gate", {})
        except BundleError as exc:
            logger.warning("retrain: {} exited 0 but its bundle is unusable ({}); see {}",
                           stamp, exc, log)
            self._remove_partial(stamp)
            self._save_state(outcome="failed")
            return None
        partial.rename(final)
        self._save_state(outcome="installed")
        logger.info("retrain: {} is ready at {} (walk-forward gate {})", stamp, final,
                    "skipped" if gate.get("skipped") else "passed")
        self.prune(protect)
        return final

    def _failed(self, stamp: str, code: int, log: Path | None) -> None:
        self._remove_partial(stamp)
        if code == GATE_REFUSED:
            self._save_state(outcome="refused")
            logger.warning("retrain: {} refused, the current bundle keeps trading: {} (log {})",
                           stamp, _last_line(log) if log else "", log)
        else:
            self._save_state(outcome="failed")
            logger.warning("retrain: {} failed with exit code {}; see {}", stamp, code, log)
        return None

    def stop(self) -> None:
        """Terminate a running child (SIGTERM, then SIGKILL after 10 s) and drop its output."""
        if self._proc is None:
            return
        proc, stamp = self._proc, str(self._stamp)
        self._proc = self._stamp = self._log = None
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        self._remove_partial(stamp)
        self._save_state(outcome="stopped")
        logger.info("retrain: stopped {} (pid {})", stamp, proc.pid)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], signum: int) -> None:
        # The child leads its own session, so its group holds it and only what it started.
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    # ---------------------------------------------------------------- folders
    def _remove_partial(self, stamp: str) -> None:
        for name in (stamp + PARTIAL, f".{stamp}{PARTIAL}.staging"):  # save_bundle's staging
            shutil.rmtree(self.bundles_dir / name, ignore_errors=True)

    def _sweep_partials(self) -> None:
        """Remove what runs of an earlier daemon left half-written."""
        if not self.bundles_dir.is_dir():
            return
        for path in self.bundles_dir.iterdir():
            if path.name.endswith((PARTIAL, f"{PARTIAL}.staging")):
                logger.info("retrain: removing {} left by an interrupted run", path)
                shutil.rmtree(path, ignore_errors=True)

    def bundles(self) -> list[Path]:
        """Finished bundles under ``<state>/bundles``, oldest first."""
        if not self.bundles_dir.is_dir():
            return []
        return sorted((p for p in self.bundles_dir.iterdir()
                       if p.is_dir() and _STAMP.match(p.name)), key=lambda p: p.name)

    def prune(self, protect: set[Path] | None = None) -> list[Path]:
        """Delete finished bundles beyond the newest ``keep``, never one in ``protect``.

        Parameters
        ----------
        protect : set[pathlib.Path] | None
            Bundles to keep whatever their age: at least the one trading now.  A resumed
            session reloads every bundle its journal lists, so pass all of them to keep the
            state directory resumable.

        Returns
        -------
        list[pathlib.Path]
            The bundles deleted.
        """
        keep = {Path(p).resolve() for p in (protect or set())}
        removed = []
        for path in self.bundles()[:-self.cfg.keep]:
            if path.resolve() in keep:
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            logger.info("retrain: pruned old bundle {}", path)
        return removed
