"""The bad-input contract, checked on a real subprocess of the ``ensemble-bt`` command.

A refused input must:

- exit with code 2;
- print exactly one line on stderr, with no traceback, no warning and no log line;
- keep that line short (a rejected value is quoted to about 200 characters at most);
- write nothing: every file under the watched folder is byte-for-byte as before, and no file
  or folder appears.

Each command's corpus is a parametrised test that builds its inputs under ``tmp_path``, then
calls :func:`assert_refused`, which snapshots ``tmp_path``, runs the command with ``tmp_path``
as its working directory and compares.  :func:`assert_bad_input` is the shorter check that
the scenario tests make on a run they started themselves.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

from tests.conftest import run_cli

#: The longest stderr line a refusal may print (the message plus a quoted value), not
#: counting the test's own temporary paths.
MAX_LINE = 500


def sample(cases: Iterable, *fast: object) -> list:
    """``cases`` to parametrise over, each marked slow except the ``fast`` sample.

    Every case runs a command of a second or more: ``pytest -m "not slow"`` runs the sample,
    one or two per command, and the full suite runs them all.  ``fast`` names cases by value
    (a case name) or, for cases that are tuples of arguments, by position.
    """
    cases = list(cases)
    chosen = {i for i, case in enumerate(cases) if case in fast or i in fast}
    assert len(chosen) == len(fast), f"not all of {fast} are cases"

    def param(i: int, case: object) -> object:
        if i in chosen:
            return case
        values = case if isinstance(case, tuple) else (case,)
        return pytest.param(*values, marks=pytest.mark.slow)

    return [param(i, case) for i, case in enumerate(cases)]


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, and for files their size and sha256."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                found[rel] = ("file", path.stat().st_size,
                              hashlib.sha256(path.read_bytes()).hexdigest())
            elif stat.S_ISLNK(mode):
                found[rel] = ("link", os.readlink(path))
            else:
                found[rel] = ("dir" if stat.S_ISDIR(mode) else "other",)
    return found


def _changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    out = [f"new: {k}" for k in sorted(set(after) - set(before))]
    out += [f"gone: {k}" for k in sorted(set(before) - set(after))]
    out += [f"changed: {k}" for k in sorted(set(before) & set(after)) if before[k] != after[k]]
    return out


def assert_refused(args: Sequence[str], cwd: Path, *needles: str,
                   env: Mapping[str, str] | None = None, watch: Path | None = None,
                   timeout: float = 300) -> str:
    """Run the command and check the bad-input contract; return the stderr line.

    Parameters
    ----------
    args
        The command line after ``ensemble-bt``.
    cwd
        Working directory of the run.
    needles
        Substrings the stderr line must contain (case-insensitive).
    env
        Extra environment variables.
    watch
        The folder that must be left exactly as it was (default: ``cwd``).
    """
    watch = watch or cwd
    before = snapshot(watch)
    proc = run_cli(*args, cwd=cwd, env=env, timeout=timeout, text=False)
    stderr = proc.stderr.decode("utf-8", "replace")
    lines = stderr.strip().splitlines()
    context = f"ensemble-bt {' '.join(args)}\nstdout: {proc.stdout[-2000:]!r}\nstderr: {stderr}"
    assert proc.returncode == 2, f"exit {proc.returncode}, not 2\n{context}"
    assert len(lines) == 1, f"{len(lines)} stderr lines, not 1\n{context}"
    assert "Traceback" not in stderr, context
    line = lines[0]
    assert line.startswith("ensemble-bt: error: "), context
    own = len(line.replace(str(cwd), "").replace(str(watch), ""))  # the test's paths aside
    assert own <= MAX_LINE, f"stderr line of {own} characters\n{context[:3000]}"
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in the message\n{context}"
    changes = _changes(before, snapshot(watch))
    assert not changes, f"the refused run wrote to {watch}: {changes[:10]}\n{context}"
    return line


def assert_bad_input(proc: subprocess.CompletedProcess, *needles: str, out: Path) -> None:
    """Exit 2 and one stderr line holding every needle, no traceback, and ``out`` is missing
    or empty (no results directory was left behind)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir()), "a results directory was left behind"
