"""Read a native model in a child process before this process loads it.

XGBoost and LightGBM trust the model files they read.  On a corrupt one (bytes changed, and
the bundle's sha256 updated to match) they can crash with a segmentation fault, or abort from
a failed check, taking the whole process past any exception handler: a traceback-free exit
139 or 134 instead of the one-line bundle error.  So the bytes are first read, dumped and
predicted on by :mod:`models.learners.probe_child`, a standard-library script that calls the
same shared library through ``ctypes`` in a throwaway process (about 40 ms).  Only bytes it
survived, with trees that point only inside themselves, reach the library here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import lightgbm
import xgboost

CHILD = Path(__file__).with_name("probe_child.py")
TIMEOUT_S = 120.0
LIBRARIES = {
    # the shared library each package loaded (private names: the packages expose no path)
    "xgboost": lambda: xgboost.core._LIB._name,
    "lightgbm": lambda: lightgbm.basic._LIB._name,
}
NAMES = {"xgboost": "XGBoost", "lightgbm": "LightGBM"}


def _how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"it crashed with {signal.Signals(-returncode).name}"
        except ValueError:
            return f"it was killed by signal {-returncode}"
    return f"it exited {returncode}"


def check_native(kind: str, raw: bytes) -> None:
    """Raise ValueError when reading ``raw`` would crash ``kind``'s library here, or when its
    trees point outside themselves; return when it reads, or fails in the library's own words
    (the caller's load then raises them).

    ``kind`` is ``"xgboost"`` or ``"lightgbm"``.
    """
    header = json.dumps({"kind": kind, "library": LIBRARIES[kind](), "size": len(raw)})
    try:
        done = subprocess.run([sys.executable, "-I", "-S", str(CHILD)],
                              input=header.encode() + b"\n" + raw, capture_output=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ValueError(f"{NAMES[kind]} was still reading it after {TIMEOUT_S:.0f} s in a "
                         "test process") from None
    answer = done.stdout.decode(errors="replace").strip()
    if done.returncode != 0 or not answer:
        raise ValueError(f"{NAMES[kind]} cannot read it safely: {_how_it_ended(done.returncode)} "
                         "in a test process")
    if answer.startswith("bad "):
        raise ValueError(f"{NAMES[kind]} reads it but {answer[4:]}")
