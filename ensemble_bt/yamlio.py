"""Reading YAML config files and reporting pydantic errors, shared by every config loader.

The backtest (:mod:`backtests.config`), robustness (:mod:`backtests.robustness.config`) and
paper (:mod:`live.session.config`) configs all read an optional flat YAML mapping, lay the
command-line overrides over it and turn the first validation error into a one-line
:class:`~ensemble_bt.errors.ConfigurationError`.  This module holds those common steps; each loader
words its own messages.  It imports no learner, so ``live`` can use it cheaply.
"""

from __future__ import annotations

import errno
import stat
from collections.abc import Collection
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from ensemble_bt.errors import ConfigurationError

#: Largest config file read: configs are a few kilobytes; anything bigger is a mistake.
MAX_CONFIG_BYTES = 1 << 20
#: Characters of a rejected value quoted in a message.
QUOTE_LIMIT = 200


def short_repr(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to ``limit`` characters so that a message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases, and with impossible dates reported by line.

    An alias (``*name``) re-uses an anchored node; nested aliases expand exponentially (the
    "billion laughs" bomb), and a config never needs them.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} is not allowed in a config; write the value "
                "out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_checked_timestamp(self, node: yaml.Node) -> Any:
        try:
            return self.construct_yaml_timestamp(node)
        except ValueError as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"{short_repr(node.value)} is not a valid date ({exc})",
                node.start_mark) from None


_ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp",
                              _ConfigLoader.construct_checked_timestamp)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc.__class__.__name__
    where = f" at line {mark.line + 1}" if mark is not None else ""
    return f"not valid YAML{where}: {problem[:QUOTE_LIMIT]}"


def read_text_file(path: str | Path, what: str, limit: int) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    Raises
    ------
    ConfigurationError
        The path is missing, a directory, a FIFO or device, a symlink loop, unreadable, too
        big, or not UTF-8 text; the message says which.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: {what} not found") from None
    except OSError as exc:
        reason = "a symlink loop" if exc.errno == errno.ELOOP else exc.strerror
        raise ConfigurationError(f"{path}: cannot read the {what} ({reason})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigurationError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigurationError(f"{path}: is a FIFO, socket or device, not a {what}")
    if info.st_size > limit:
        raise ConfigurationError(f"{path}: {info.st_size} bytes is too big for a {what} "
                                 f"(at most {limit})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path}: not UTF-8 text (a binary or UTF-16 file?); save the "
                                 f"{what} as UTF-8") from None
    if "\x00" in text:
        raise ConfigurationError(f"{path}: holds NUL bytes: a binary file, not a {what}")
    return text


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; an empty file is an empty mapping.

    Raises
    ------
    ConfigurationError
        The file is missing or not a readable UTF-8 file (:func:`read_text_file`), is not
        valid YAML (aliases and impossible dates included), nests too deeply, or its top
        level is not a mapping.
    """
    text = read_text_file(path, "config file", MAX_CONFIG_BYTES)
    try:
        loaded = yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: no objects
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigurationError(f"{path}: nests too deeply to be a config") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigurationError(f"{path}: the top level must be a mapping of keys")
    return dict(loaded or {})


def load_yaml_value(text: str) -> Any:
    """One YAML scalar or flow value from a command line (safe: no tags, no aliases).

    Raises
    ------
    ValueError
        The text is not valid YAML; the message is one short line.
    """
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # a SafeLoader: no objects
    except yaml.YAMLError as exc:
        raise ValueError(_yaml_problem(exc)) from None
    except RecursionError:
        raise ValueError("nests too deeply") from None


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


class Quoted:
    """A rejected input whose ``repr`` is cut to :data:`QUOTE_LIMIT` characters."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return short_repr(self.value)


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
    got : Quoted
        The rejected input; its ``repr`` is at most about 200 characters.
    source : str
        ``--flag`` when the key came from the command line, else the source given.
    from_cli : bool
        Whether ``source`` is that ``--flag``.
    """

    kind: str
    key: str
    message: str
    got: Quoted
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
    return FirstError(first["type"], ".".join(loc)[:QUOTE_LIMIT] or "(top level)",
                      first["msg"].removeprefix("Value error, ")[:QUOTE_LIMIT],
                      Quoted(first.get("input")), source, from_cli)
