"""Reading YAML config files and reporting pydantic errors, shared by every config loader.

The backtest (:mod:`backtests.config`), robustness (:mod:`backtests.robustness_config`) and
paper (:mod:`live.paper_config`) configs all read an optional flat YAML mapping, lay the
command-line overrides over it and turn the first validation error into a one-line
:class:`~models.errors.ConfigurationError`.  This module holds those common steps; each loader
words its own messages.  It imports no learner, so ``live`` can use it cheaply.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from models.errors import ConfigurationError


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; an empty file is an empty mapping.

    Raises
    ------
    ConfigurationError
        The file is missing, is not valid YAML, or its top level is not a mapping.
    """
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigurationError(f"{path}: the top level must be a mapping of keys")
    return dict(loaded or {})


def read_config(path: str | Path | None, overrides: dict[str, Any] | None,
                ) -> tuple[dict[str, Any], str, set[str]]:
    """The YAML file (optional) with the command-line overrides that are set laid over it.

    Parameters
    ----------
    path
        YAML config file, or None for none.
    overrides
        Key -> value from the command line; None values are unset and ignored.

    Returns
    -------
    raw, source, cli_keys
        The merged mapping; ``path`` as text, or ``"command line"`` without a file; the
        keys that came from the command line.

    Raises
    ------
    ConfigurationError
        As :func:`read_yaml`.
    """
    raw = read_yaml(path) if path is not None else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    raw.update(given)
    return raw, str(path) if path is not None else "command line", set(given)


class FirstError(NamedTuple):
    """The first error of a :class:`~pydantic.ValidationError`, ready to word.

    Attributes
    ----------
    kind : str
        pydantic's error type, e.g. ``extra_forbidden``, ``missing``, ``value_error``.
    key : str
        The dotted key, e.g. ``stack.top_k``, or ``(top level)``.
    message : str
        pydantic's message without its ``Value error, `` prefix.
    got : Any
        The rejected input.
    source : str
        ``--flag`` when the key came from the command line, else the source given.
    from_cli : bool
        Whether ``source`` is that ``--flag``.
    """

    kind: str
    key: str
    message: str
    got: Any
    source: str
    from_cli: bool


def first_error(err: ValidationError, source: str,
                cli_keys: Collection[str] = ()) -> FirstError:
    """Pick the first error of ``err`` and where it came from.

    Parameters
    ----------
    err
        The validation failure.
    source
        Where the values came from: the config path or ``"command line"``.
    cli_keys
        Top-level keys set on the command line; an error under one names its ``--flag``.
    """
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    from_cli = bool(loc) and loc[0] in cli_keys
    if from_cli:
        source = f"--{loc[0].replace('_', '-')}"
    return FirstError(first["type"], ".".join(loc) or "(top level)",
                      first["msg"].removeprefix("Value error, "), first.get("input"),
                      source, from_cli)
