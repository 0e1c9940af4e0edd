"""One daemon per state directory: the directory's lock, and a claim undone on failure.

:func:`claim_state` holds an exclusive ``flock`` on ``<state>/daemon.lock`` for the process's
life (the kernel drops it on ``kill -9``, so a restart is never blocked by a stale lock).  A
start that fails before the journal is written leaves the directory as it was: a directory it
created is removed, and the lock file gets its previous bytes back.  :func:`probe_lock`
refuses a directory in use without writing anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ensemble_bt.errors import ConfigurationError

LOCK_FILE = "daemon.lock"
#: Tries, 10 ms apart, before a held lock counts as another daemon's: outlasts the instant
#: for which a starting daemon's :func:`probe_lock` holds it shared.
LOCK_TRIES = 50


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
