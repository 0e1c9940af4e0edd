"""The ``ensemble-bt sim-server`` command: serve the local Alpaca-protocol replay server.

It loads one or more datasets, serves :func:`live.sim_server.build_app` until SIGINT or
SIGTERM, and prints one line on stdout::

    http://127.0.0.1:PORT trading-stream=ws://127.0.0.1:PORT/stream data-stream=ws://127.0.0.1:PORT/v2/iex

The first word is the REST base URL.  Credentials come from ``APCA_API_KEY_ID`` and
``APCA_API_SECRET_KEY`` (both or neither; neither means ``sim-key`` / ``sim-secret``).

With ``--state DIR`` the replay is written to ``DIR/sim_state.json`` after every advance and on
exit, and a later start with the same data and ``--from`` resumes from it.

Module level imports stay light: the CLI imports this module to build its parser.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import ConfigurationError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from live.sim_faults import SimFaults
    from live.sim_state import SimState

STATE_FILE = "sim_state.json"
SNAPSHOT_VERSION = 1
DEFAULT_PORT = 8765
DEFAULT_KEY_ID, DEFAULT_SECRET = "sim-key", "sim-secret"
_TIME_FIELDS = ("submitted_at", "updated_at", "filled_at", "canceled_at", "failed_at")


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sim-server`` subcommand to the CLI's subparsers and return it."""
    sp = subparsers.add_parser("sim-server", help="local Alpaca-protocol server replaying "
                               "daily bars (REST and websockets)")
    sp.add_argument("--data", action="append", required=True, metavar="D",
                    help="embedded name or CSV/Parquet path; repeat for more symbols")
    sp.add_argument("--from", dest="start", type=_iso_date, metavar="DATE",
                    help="first replayed session (earlier bars are history)")
    sp.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    sp.add_argument("--host", default="127.0.0.1", help="interface to bind")
    sp.add_argument("--state", metavar="DIR", help="persist and resume the replay here")
    sp.add_argument("--cash", type=float, default=100_000.0, help="starting cash")
    sp.add_argument("--commission", type=float, default=0.0, help="fraction of notional")
    sp.add_argument("--slippage", type=float, default=0.0, help="fraction of the open")
    sp.add_argument("--partial-fills", action="store_true",
                    help="fill every order in two executions")
    sp.add_argument("--drop-stream-after", type=int, metavar="N",
                    help="fault: close the market-data stream instead of sending bar N+1")
    sp.add_argument("--drop-stream-every", type=int, metavar="N",
                    help="fault: close the market-data stream again every N bars sent")
    sp.add_argument("--auth-delay", type=float, default=0.0, metavar="S",
                    help="fault: seconds before answering websocket auth")
    sp.add_argument("--error-rate", type=float, default=0.0, metavar="R",
                    help="fault: fraction of REST requests answered with --error-status")
    sp.add_argument("--error-status", type=_statuses, default=(429,),
                    help="fault: 429, 500 or 503, or a comma list drawn per failure")
    sp.add_argument("--reject-every", type=int, metavar="N",
                    help="fault: reject every N-th submitted order")
    return sp


# ----------------------------------------------------------------------------- inputs
def _check_costs(args: argparse.Namespace) -> None:
    for flag, value in (("--cash", args.cash), ("--commission", args.commission),
                        ("--slippage", args.slippage)):
        if not math.isfinite(value) or value < 0:
            raise ConfigurationError(f"{flag} must be a number >= 0, got {value}")
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be in 0..65535, got {args.port}")


def _statuses(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a status or a comma list of "
                                         "statuses") from None


def _faults(args: argparse.Namespace) -> SimFaults:
    from live.sim_faults import SimFaults

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
    from backtests.datasets import load_dataset

    feeds: dict[str, pd.DataFrame] = {}
    for spec in specs:
        frame = load_dataset(spec)
        symbol = str(frame.attrs.get("symbol") or Path(spec).stem).upper()
        if symbol in feeds:
            raise ConfigurationError(f"--data {spec}: symbol {symbol} is given twice; fix: pass "
                                     "each symbol once")
        feeds[symbol] = frame
    return feeds


def _credentials() -> tuple[str, str, bool]:
    """Key and secret from the environment; the flag says whether the defaults are used."""
    key_id = os.environ.get("APCA_API_KEY_ID", "")
    secret = os.environ.get("APCA_API_SECRET_KEY", "")
    if key_id and secret:
        return key_id, secret, False
    if key_id or secret:
        raise ConfigurationError("APCA_API_KEY_ID and APCA_API_SECRET_KEY: only one is set; "
                                 "fix: set both, or neither for the sim defaults")
    return DEFAULT_KEY_ID, DEFAULT_SECRET, True


def _state_dir(text: str | None) -> Path | None:
    if text is None:
        return None
    folder = Path(text).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"--state {text}: cannot create directory ({exc.strerror}); "
                                 "fix: pass a writable directory") from None
    if not os.access(folder, os.W_OK):
        raise ConfigurationError(f"--state {text}: directory is not writable; fix: pass a "
                                 "writable directory")
    return folder


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
    """Write ``folder/sim_state.json`` atomically (temporary file, then ``os.replace``)."""
    path = folder / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(snapshot, indent=1))
    os.replace(tmp, path)
    return path


def _mismatch(snapshot: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return [key for key in ("version", "symbols", "start", "data_sha256")
            if snapshot.get(key) != expected[key]]


def restore_state(state: SimState, snapshot: dict[str, Any], start: date | None,
                  path: Path) -> None:
    """Resume ``state`` from a snapshot saved with the same data and start.

    Raises
    ------
    ConfigurationError
        The snapshot was saved with other data, symbols or ``--from``, or is malformed.
    """
    import pandas as pd

    from live.sim_state import SimOrder, SimPosition

    differs = _mismatch(snapshot, state_snapshot(state, start))
    if differs:
        raise ConfigurationError(f"{path}: saved with other {', '.join(differs)} than this run; "
                                 "fix: pass the same --data and --from, or another --state")
    try:
        index = int(snapshot["index"])
        if not 0 <= index < len(state.calendar) or (
                state.calendar[index].date().isoformat() != snapshot["day"]):
            raise ValueError(f"index {index} and day {snapshot.get('day')} do not match the data")
        orders = [SimOrder(**{k: (pd.Timestamp(v) if k in _TIME_FIELDS and v else v)
                              for k, v in raw.items()}) for raw in snapshot["orders"]]
        positions = {s: SimPosition(float(p["qty"]), float(p["cost_basis"]))
                     for s, p in snapshot["positions"].items()}
        cash, last_equity = float(snapshot["cash"]), float(snapshot["last_equity"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"{path}: malformed replay state ({exc}); fix: delete it to "
                                 "start over") from None
    state.index, state.cash, state.last_equity, state.orders = index, cash, last_equity, orders
    state.positions.update(positions)


def _load_snapshot(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        snapshot = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: unreadable replay state ({exc}); fix: delete it to "
                                 "start over") from None
    if not isinstance(snapshot, dict):
        raise ConfigurationError(f"{path}: replay state is not a JSON object; fix: delete it")
    return snapshot


# -------------------------------------------------------------------------------- run
def _build(args: argparse.Namespace, key_id: str, secret: str) -> Any:
    from live.sim_server import build_app

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
             ) -> Callable[[SimState], None] | None:
    """Resume from ``folder``'s snapshot; return the saver, also run after every advance."""
    from live.sim_server import ADVANCE_HOOKS_KEY, STATE_KEY

    if folder is None:
        return None
    state = app[STATE_KEY]
    snapshot = _load_snapshot(folder / STATE_FILE)
    if snapshot is not None:
        restore_state(state, snapshot, start, folder / STATE_FILE)
        from loguru import logger

        logger.info("sim-server resumed from {} at {}", folder / STATE_FILE,
                    state.current_day.date())
    fingerprint = data_fingerprint(state)

    def save(current: SimState) -> None:
        try:
            write_snapshot(folder, state_snapshot(current, start, fingerprint))
        except OSError as exc:  # a failed save must not stop the replay
            from loguru import logger

            logger.error("sim-server: cannot save {}: {}", folder / STATE_FILE, exc)

    app[ADVANCE_HOOKS_KEY].append(save)
    return save


def _serve(app: Any, host: str, port: int) -> Any:
    from live.sim_server import serve

    try:
        return serve(app, host=host, port=port)
    except (RuntimeError, TimeoutError) as exc:
        reason = exc.__cause__ or exc
        raise ConfigurationError(f"--port {port}: cannot listen on {host}:{port} ({reason}); "
                                 "fix: pick a free port, or 0 for any") from None


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


def _announce(server: Any, defaults: bool, out: Callable[[str], None]) -> None:
    out(f"{server.url} trading-stream={server.ws_url}/stream "
        f"data-stream={server.ws_url}/v2/iex")
    if defaults:
        sys.stderr.write("ensemble-bt: sim-server: APCA_API_KEY_ID/APCA_API_SECRET_KEY not "
                         f"set; accepting key {DEFAULT_KEY_ID!r}, secret {DEFAULT_SECRET!r}\n")


def run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Run ``ensemble-bt sim-server`` until SIGINT/SIGTERM; returns the exit code (0).

    ``out`` is the CLI's stdout writer: it gets the one line with the server's URLs.

    Raises
    ------
    ConfigurationError, DataError
        Bad arguments, data, state directory or port; the CLI prints one line and exits 2.
    """
    _check_costs(args)
    key_id, secret, defaults = _credentials()
    folder = _state_dir(args.state)
    app = _build(args, key_id, secret)
    save = _persist(app, folder, args.start)
    with _StopSignal() as stop:
        server = _serve(app, args.host, args.port)
        try:
            _announce(server, defaults, out)
            stop.wait()
        finally:
            server.stop()
            if save is not None:
                from live.sim_server import STATE_KEY

                save(app[STATE_KEY])
    return 0
