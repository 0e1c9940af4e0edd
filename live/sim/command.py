"""The ``ensemble-bt sim-server`` command: serve the local Alpaca-protocol replay server.

It loads one or more datasets, serves :func:`live.sim.server.build_app` until SIGINT or
SIGTERM, and prints one line on stdout::

    http://127.0.0.1:PORT trading-stream=ws://127.0.0.1:PORT/stream data-stream=ws://127.0.0.1:PORT/v2/iex

The first word is the REST base URL.  Credentials come from ``APCA_API_KEY_ID`` and
``APCA_API_SECRET_KEY`` (both or neither; neither means ``sim-key`` / ``sim-secret``).  The
defaults are public, so a ``--host`` other than loopback (``0.0.0.0``, a LAN address, a host
name) needs both set.

With ``--state DIR`` the replay is written to ``DIR/sim_state.json`` after every advance and on
exit, and a later start with the same data and ``--from`` resumes from it
(:mod:`live.sim.snapshot`).  A saved state is validated in full
(:class:`live.sim.snapshot.SavedState`) before anything of it is used: a malformed one is
refused and left as it is.

Every refusal happens before anything is written: the state directory is created only once
the server listens.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from aiohttp import web
from loguru import logger

from backtests.datasets import load_datasets
from ensemble_bt.errors import ConfigurationError, DataError
from live.aiothread import HOSTNAME, RunningServer, is_loopback
from live.alpaca.keys import KEY_ENV, SECRET_ENV, credentials_from_env
from live.sim.appkeys import ADVANCE_HOOKS_KEY, STATE_KEY
from live.sim.faults import SimFaults
from live.sim.params import QUOTE_LIMIT, quote
from live.sim.server import build_app, serve
from live.sim.snapshot import (
    STATE_FILE,
    data_fingerprint,
    load_snapshot,
    restore_state,
    state_snapshot,
    write_snapshot,
)
from live.sim.state import SimState

DEFAULT_KEY_ID, DEFAULT_SECRET = "sim-key", "sim-secret"


# ----------------------------------------------------------------------------- inputs
def _check_costs(args: argparse.Namespace) -> None:
    for flag, value in (("--cash", args.cash), ("--commission", args.commission),
                        ("--slippage", args.slippage)):
        if not math.isfinite(value) or value < 0:
            raise ConfigurationError(f"{flag} must be a number >= 0, got {value}")
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be in 0..65535, got {args.port}")


def _check_host(host: str) -> None:
    """An IP address or a host name (``localhost``); brackets, URLs and blanks are refused."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if len(host) > 253 or not HOSTNAME.match(host):
        raise ConfigurationError(f"--host {quote(host)} is not an address; fix: pass an IP "
                                 "address or host name, e.g. 127.0.0.1, ::1 or localhost")


def _faults(args: argparse.Namespace) -> SimFaults:
    try:
        return SimFaults(drop_stream_after=args.drop_stream_after,
                         drop_stream_every=args.drop_stream_every, auth_delay=args.auth_delay,
                         error_rate=args.error_rate, error_status=args.error_status,
                         reject_every=args.reject_every)
    except ValueError as exc:
        message = str(exc)
        for name in ("drop_stream_after", "drop_stream_every", "auth_delay", "error_rate",
                     "error_status", "reject_every"):
            message = message.replace(name, "--" + name.replace("_", "-"))
        raise ConfigurationError(message) from None


def _feeds(specs: list[str]) -> dict[str, pd.DataFrame]:
    """Every ``--data``'s bars by symbol; each flag is a list of its own (``store:A,B``)."""
    frames: dict[str, pd.DataFrame] = {}
    for spec in specs:
        for symbol, frame in load_datasets([spec]).items():
            if symbol in frames:
                raise DataError(f"--data names symbol {symbol} twice; list each symbol once "
                                "(rename a file if two share a name)")
            frames[symbol] = frame
    return frames


def _credentials(host: str) -> tuple[str, str, bool]:
    """Key and secret from the environment; the flag says whether the defaults are used.

    The defaults are printed at start and written in the docs: anyone who can reach a
    non-loopback ``host`` could trade on the replay with them, so such a bind needs both set.
    """
    keys = credentials_from_env(default=(DEFAULT_KEY_ID, DEFAULT_SECRET))
    if not keys.from_env and not is_loopback(host):
        raise ConfigurationError(f"--host {host} is not loopback: the default keys are public; "
                                 f"fix: set {KEY_ENV} and {SECRET_ENV}")
    return keys.key_id, keys.secret, not keys.from_env


def _state_dir(text: str | None) -> Path | None:
    """The ``--state`` folder, checked but not created: a refused start must write nothing."""
    if text is None:
        return None
    folder = Path(text).expanduser()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        where = "" if existing == folder else f": {quote(str(existing))}"
        raise ConfigurationError(f"--state {quote(text)}{where} is not a directory; fix: pass "
                                 "a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigurationError(f"--state {quote(text)}: {existing} is not writable; fix: "
                                 "pass a writable directory")
    return folder


@contextlib.contextmanager
def _state_dir_created(folder: Path | None) -> Iterator[None]:
    """Create ``folder``; if the block then raises, remove the (empty) folders it created.

    The port is known to be free only once the server listens, and the server needs the
    folder from its first advance: a start refused at that point must still leave no trace.
    """
    if folder is None:
        yield
        return
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"--state {folder}: cannot create directory ({exc.strerror}); "
                                 "fix: pass a writable directory") from None
    try:
        yield
    except BaseException:
        for path in created:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


# -------------------------------------------------------------------------------- run
def _build(args: argparse.Namespace, key_id: str, secret: str) -> web.Application:
    faults = _faults(args)
    feeds = _feeds(args.data)
    try:
        return build_app(feeds, key_id=key_id, secret=secret, start=args.start, cash=args.cash,
                         commission=args.commission, slippage=args.slippage,
                         partial_fills=args.partial_fills, faults=faults)
    except ValueError as exc:
        where = f"--from {args.start}: " if args.start and "start" in str(exc) else "--data: "
        raise DataError(f"{where}{exc}") from None


def _persist(app: web.Application, folder: Path | None, start: date | None,
             ) -> tuple[Callable[[SimState], None] | None, bool]:
    """Resume from ``folder``'s snapshot.

    Returns the saver (also run after every advance) and whether a snapshot was resumed.
    """
    if folder is None:
        return None, False
    state = app[STATE_KEY]
    snapshot = load_snapshot(folder / STATE_FILE)
    if snapshot is not None:
        restore_state(state, snapshot, start, folder / STATE_FILE)
    fingerprint = data_fingerprint(state)

    def save(current: SimState) -> None:
        try:
            write_snapshot(folder, state_snapshot(current, start, fingerprint))
        except OSError as exc:  # a failed save must not stop the replay
            logger.error("sim-server: cannot save {}: {}", folder / STATE_FILE, exc)

    app[ADVANCE_HOOKS_KEY].append(save)
    return save, snapshot is not None


def _serve(app: web.Application, host: str, port: int) -> RunningServer:
    try:
        return serve(app, host=host, port=port)
    except (RuntimeError, TimeoutError) as exc:
        reason = str(exc.__cause__ or exc)[:QUOTE_LIMIT]
        raise ConfigurationError(f"--host {host} --port {port}: cannot listen ({reason}); fix: "
                                 "pick a free port (0 for any) and an address of this "
                                 "machine") from None


class _StopSignal:
    """SIGINT and SIGTERM set an event instead of raising, while the server runs."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, lambda *_: self.event.set())
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def wait(self) -> None:
        """Block until a signal arrives (polling keeps the main thread responsive)."""
        while not self.event.wait(0.5):
            pass


def _announce(server: RunningServer, defaults: bool, resumed: bool,
              out: Callable[[str], None]) -> None:
    """The URL line, then (on stderr) what a user should know; logged only once listening."""
    out(f"{server.url} trading-stream={server.ws_url}/stream "
        f"data-stream={server.ws_url}/v2/iex")
    if resumed:
        logger.info("sim-server resumed its saved replay at {}",
                    server.app[STATE_KEY].current_day.date())
    if defaults:
        sys.stderr.write("ensemble-bt: sim-server: APCA_API_KEY_ID/APCA_API_SECRET_KEY not "
                         f"set; accepting key {DEFAULT_KEY_ID!r}, secret {DEFAULT_SECRET!r}\n")


def run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Run ``ensemble-bt sim-server`` until SIGINT/SIGTERM; returns the exit code (0).

    ``out`` is the CLI's stdout writer: it gets the one line with the server's URLs.

    Raises
    ------
    ConfigurationError, DataError
        Bad arguments, data, host, keys, saved state, state directory or port; the CLI prints
        one line and exits 2, and nothing has been written.
    """
    _check_costs(args)
    _check_host(args.host)
    key_id, secret, defaults = _credentials(args.host)
    folder = _state_dir(args.state)
    app = _build(args, key_id, secret)
    save, resumed = _persist(app, folder, args.start)
    with _StopSignal() as stop:
        with _state_dir_created(folder):
            server = _serve(app, args.host, args.port)
        try:
            _announce(server, defaults, resumed, out)
            stop.wait()
        finally:
            server.stop()
            if save is not None:
                save(app[STATE_KEY])
    return 0
