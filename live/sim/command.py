"""The ``ensemble-bt sim-server`` command: serve the local Alpaca-protocol replay server.

It loads one or more datasets, serves :func:`live.sim.server.build_app` until SIGINT or
SIGTERM, and prints one line on stdout::

    http://127.0.0.1:PORT trading-stream=ws://127.0.0.1:PORT/stream data-stream=ws://127.0.0.1:PORT/v2/iex

The first word is the REST base URL.  Credentials come from ``APCA_API_KEY_ID`` and
``APCA_API_SECRET_KEY`` (both or neither; neither means ``sim-key`` / ``sim-secret``).  The
defaults are public, so a ``--host`` other than loopback (``0.0.0.0``, a LAN address, a host
name) needs both set.

With ``--state DIR`` the replay is written to ``DIR/sim_state.json`` after every advance and on
exit, and a later start with the same data and ``--from`` resumes from it.  A saved state is
validated in full (:class:`SavedState`) before anything of it is used: a malformed one is
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
import re
import signal
import sys
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensemble_bt.errors import ConfigurationError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from live.sim.faults import SimFaults
    from live.sim.state import SavedState, SimState

STATE_FILE = "sim_state.json"
SNAPSHOT_VERSION = 1
DEFAULT_KEY_ID, DEFAULT_SECRET = "sim-key", "sim-secret"
_TIME_FIELDS = ("submitted_at", "updated_at", "filled_at", "canceled_at", "failed_at")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
#: Characters of a rejected value quoted in a message.
_QUOTE = 80


# ----------------------------------------------------------------------------- inputs
def _check_costs(args: argparse.Namespace) -> None:
    for flag, value in (("--cash", args.cash), ("--commission", args.commission),
                        ("--slippage", args.slippage)):
        if not math.isfinite(value) or value < 0:
            raise ConfigurationError(f"{flag} must be a number >= 0, got {value}")
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be in 0..65535, got {args.port}")


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE else text[:_QUOTE] + "..."


def _check_host(host: str) -> None:
    """An IP address or a host name (``localhost``); brackets, URLs and blanks are refused."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if len(host) > 253 or not _HOSTNAME.match(host):
        raise ConfigurationError(f"--host {_quote(host)} is not an address; fix: pass an IP "
                                 "address or host name, e.g. 127.0.0.1, ::1 or localhost")


def _faults(args: argparse.Namespace) -> SimFaults:
    from live.sim.faults import SimFaults

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
    from backtests.datasets import load_datasets

    return load_datasets(specs)


def _credentials(host: str) -> tuple[str, str, bool]:
    """Key and secret from the environment; the flag says whether the defaults are used.

    The defaults are printed at start and written in the docs: anyone who can reach a
    non-loopback ``host`` could trade on the replay with them, so such a bind needs both set.
    """
    from live.aiothread import is_loopback
    from live.alpaca.keys import KEY_ENV, SECRET_ENV, credentials_from_env

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
        where = "" if existing == folder else f": {_quote(str(existing))}"
        raise ConfigurationError(f"--state {_quote(text)}{where} is not a directory; fix: pass "
                                 "a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigurationError(f"--state {_quote(text)}: {existing} is not writable; fix: "
                                 "pass a writable directory")
    return folder


@contextlib.contextmanager
def _state_dir_created(folder: Path | None) -> Any:
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


# ------------------------------------------------------------------------ persistence
def data_fingerprint(state: SimState) -> str:
    """sha256 over the replayed symbols and their aligned bars."""
    import hashlib

    import pandas as pd

    digest = hashlib.sha256()
    for symbol in state.symbols:
        digest.update(symbol.encode())
        digest.update(pd.util.hash_pandas_object(state.feeds[symbol], index=True).to_numpy())
    return digest.hexdigest()


def _order_dict(order: Any) -> dict[str, Any]:
    import dataclasses

    out = dataclasses.asdict(order)
    for name in _TIME_FIELDS:
        out[name] = None if out[name] is None else out[name].isoformat()
    return out


def state_snapshot(state: SimState, start: date | None,
                   fingerprint: str | None = None) -> dict[str, Any]:
    """What ``--state`` saves: identity (symbols, start, data hash) and the replay's progress.

    ``fingerprint`` is :func:`data_fingerprint` of ``state`` when the caller has it already.
    """
    return {"version": SNAPSHOT_VERSION, "symbols": list(state.symbols),
            "start": None if start is None else start.isoformat(),
            "data_sha256": fingerprint or data_fingerprint(state), "index": state.index,
            "day": state.current_day.date().isoformat(), "cash": state.cash,
            "last_equity": state.last_equity,
            "positions": {s: {"qty": p.qty, "cost_basis": p.cost_basis}
                          for s, p in state.open_positions().items()},
            "orders": [_order_dict(order) for order in state.orders]}


def write_snapshot(folder: Path, snapshot: dict[str, Any]) -> Path:
    """Write ``folder/sim_state.json`` atomically, as strict JSON (NaN and infinity as null)."""
    from ensemble_bt.jsonio import dumps, write_text_atomic

    path = folder / STATE_FILE
    write_text_atomic(path, dumps(snapshot, indent=1))
    return path


def _mismatch(snapshot: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return [key for key in ("version", "symbols", "start", "data_sha256")
            if snapshot.get(key) != expected[key]]


def _malformed(path: Path, problem: str) -> ConfigurationError:
    return ConfigurationError(f"{path}: malformed replay state: {problem}; fix: delete it to "
                              "start over")


def _validated(snapshot: dict[str, Any], path: Path) -> SavedState:
    """The snapshot's shape, checked in full: types, ranges, unique order ids."""
    from pydantic import ValidationError

    from live.sim.state import SavedState

    try:
        return SavedState.model_validate(snapshot)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        message = first["msg"].removeprefix("Value error, ")
        raise _malformed(path, f"{where[:_QUOTE]}: {message[:_QUOTE]} (got "
                               f"{_quote(first.get('input'))})") from None


def _check_fits(state: SimState, saved: SavedState, path: Path) -> None:
    """The saved index, day and symbols must name bars and symbols of this replay."""
    index = saved.index
    if index >= len(state.calendar) or state.calendar[index].date().isoformat() != saved.day:
        raise _malformed(path, f"index {index} and day {saved.day} do not match the data")
    unknown = ({order.symbol for order in saved.orders} | set(saved.positions)) - set(
        state.symbols)
    if unknown:
        raise _malformed(path, f"symbols {_quote(sorted(unknown))} are not replayed")


def restore_state(state: SimState, snapshot: dict[str, Any], start: date | None,
                  path: Path) -> None:
    """Resume ``state`` from a snapshot saved with the same data and start.

    Everything is checked before ``state`` is touched, so a refusal leaves it as it was.

    Raises
    ------
    ConfigurationError
        The snapshot was saved with other data, symbols or ``--from``, or is malformed (a
        wrong type, a non-finite number, a negative index, an unknown symbol ...).
    """
    from live.sim.state import SimPosition

    differs = _mismatch(snapshot, state_snapshot(state, start))
    if differs:
        raise ConfigurationError(f"{path}: saved with other {', '.join(differs)} than this run; "
                                 "fix: pass the same --data and --from, or another --state")
    saved = _validated(snapshot, path)
    _check_fits(state, saved, path)
    state.index, state.cash, state.last_equity = saved.index, saved.cash, saved.last_equity
    state.orders = [order.to_order() for order in saved.orders]
    state.positions.update({symbol: SimPosition(p.qty, p.cost_basis)
                            for symbol, p in saved.positions.items()})


def _load_snapshot(path: Path) -> dict[str, Any] | None:
    """The saved replay as a dict, ``None`` when there is none; strict JSON only."""
    from ensemble_bt.jsonio import loads

    if not path.exists():
        return None
    if not path.is_file():
        raise ConfigurationError(f"{path}: not a file; fix: remove it or pass another --state")
    try:
        snapshot = loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigurationError(f"{path}: unreadable replay state ({str(exc)[:_QUOTE]}); fix: "
                                 "delete it to start over") from None
    if not isinstance(snapshot, dict):
        raise ConfigurationError(f"{path}: replay state is not a JSON object; fix: delete it")
    return snapshot


# -------------------------------------------------------------------------------- run
def _build(args: argparse.Namespace, key_id: str, secret: str) -> Any:
    from live.sim.server import build_app

    faults = _faults(args)
    feeds = _feeds(args.data)
    try:
        return build_app(feeds, key_id=key_id, secret=secret, start=args.start, cash=args.cash,
                         commission=args.commission, slippage=args.slippage,
                         partial_fills=args.partial_fills, faults=faults)
    except ValueError as exc:
        where = f"--from {args.start}: " if args.start and "start" in str(exc) else "--data: "
        raise DataError(f"{where}{exc}") from None


def _persist(app: Any, folder: Path | None, start: date | None,
             ) -> tuple[Callable[[SimState], None] | None, bool]:
    """Resume from ``folder``'s snapshot.

    Returns the saver (also run after every advance) and whether a snapshot was resumed.
    """
    from live.sim.server import ADVANCE_HOOKS_KEY, STATE_KEY

    if folder is None:
        return None, False
    state = app[STATE_KEY]
    snapshot = _load_snapshot(folder / STATE_FILE)
    if snapshot is not None:
        restore_state(state, snapshot, start, folder / STATE_FILE)
    fingerprint = data_fingerprint(state)

    def save(current: SimState) -> None:
        try:
            write_snapshot(folder, state_snapshot(current, start, fingerprint))
        except OSError as exc:  # a failed save must not stop the replay
            from loguru import logger

            logger.error("sim-server: cannot save {}: {}", folder / STATE_FILE, exc)

    app[ADVANCE_HOOKS_KEY].append(save)
    return save, snapshot is not None


def _serve(app: Any, host: str, port: int) -> Any:
    from live.sim.server import serve

    try:
        return serve(app, host=host, port=port)
    except (RuntimeError, TimeoutError) as exc:
        reason = str(exc.__cause__ or exc)[:_QUOTE]
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


def _announce(server: Any, defaults: bool, resumed: bool, out: Callable[[str], None]) -> None:
    """The URL line, then (on stderr) what a user should know; logged only once listening."""
    out(f"{server.url} trading-stream={server.ws_url}/stream "
        f"data-stream={server.ws_url}/v2/iex")
    if resumed:
        from loguru import logger

        from live.sim.server import STATE_KEY

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
                from live.sim.server import STATE_KEY

                save(app[STATE_KEY])
    return 0
