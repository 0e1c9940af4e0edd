"""Strict JSON in and out: every JSON file the project writes parses with any JSON parser.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which ``jq``, browsers and most
parsers reject.  Everything written goes through :func:`dumps`: non-finite floats become
``null``, numpy scalars and arrays become Python numbers and lists, dates become ISO text, and
``allow_nan=False`` makes a slip raise instead of writing a non-standard file.  :func:`loads`
is the matching strict reader for untrusted files (bundles, journals, snapshots): it refuses
``NaN``/``Infinity`` and nesting too deep for Python's parser, both as ValueError.

It lives in ``models`` because every package may use it and it imports no engine.
"""

from __future__ import annotations

import json
import math
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as None and numpy/date values as plain JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``value`` (see the module docstring); ``kwargs`` go to json.dumps."""
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)


class NonStandardNumber(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a JSON text: no standard parser reads them."""


def _refuse_constant(name: str) -> float:
    raise NonStandardNumber(f"{name} is not valid JSON")


def loads(text: str | bytes) -> Any:
    """Parse strict JSON.

    Raises
    ------
    NonStandardNumber
        The text holds ``NaN``, ``Infinity`` or ``-Infinity``.
    ValueError
        Anything else that is not JSON, including nesting deeper than Python's parser goes
        (which raises RecursionError on its own).
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    A reader (or a crash) never sees half a file.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, value: Any, indent: int | None = 2) -> None:
    """Write ``value`` as strict JSON (with a trailing newline), atomically."""
    write_text_atomic(path, dumps(value, indent=indent) + "\n")
