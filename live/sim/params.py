"""What a request to the local Alpaca-protocol server carries: query parameters and JSON body
fields, read and checked.

Each reader refuses a bad value with a :class:`~live.sim.orders.SimRejection` 422 that names
the parameter and quotes the value (cut by :func:`quote`); the JSON the server answers with is
in :mod:`live.sim.wire`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from live.sim.orders import SimRejection

#: Longest ``client_order_id`` Alpaca accepts.
MAX_CLIENT_ORDER_ID = 128
#: Characters of a rejected value quoted in an error message.
QUOTE_LIMIT = 80
# pandas also parses words such as "now" and "today"; a query date must start as ISO 8601 does.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def quote(value: Any) -> str:
    """``repr(value)`` cut to :data:`QUOTE_LIMIT` characters, for an error message."""
    text = repr(value)
    return text if len(text) <= QUOTE_LIMIT else text[:QUOTE_LIMIT] + "..."


def _timestamp(text: str, name: str) -> pd.Timestamp:
    """``text`` as a timestamp; :class:`SimRejection` 422 when it is not an ISO date or time."""
    try:
        if not _ISO_DATE.match(text):
            raise ValueError(text)
        stamp = pd.Timestamp(text)
    except ValueError as exc:  # pandas' parse and out-of-bounds errors are ValueErrors
        raise SimRejection(422, 42210000, f"invalid {name}: {quote(text)}; use an RFC 3339 "
                           "time or a YYYY-MM-DD date") from exc
    return stamp


def parse_time(text: str, name: str = "time") -> pd.Timestamp:
    """An RFC 3339 time or a plain date as a UTC timestamp (naive input is taken as UTC).

    Raises
    ------
    SimRejection
        422 when ``text`` (the query parameter ``name``) is not an ISO date or time.
    """
    stamp = _timestamp(text, name)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def parse_day(text: str, name: str = "date") -> pd.Timestamp:
    """The calendar date of an ISO date or time (its local date when it has an offset).

    Raises
    ------
    SimRejection
        422 when ``text`` (the query parameter ``name``) is not an ISO date or time.
    """
    stamp = _timestamp(text, name)
    return (stamp if stamp.tzinfo is None else stamp.tz_localize(None)).normalize()


def int_param(query: Mapping[str, str], name: str, default: int) -> int:
    """The query parameter ``name`` as an integer, ``default`` when absent or empty.

    Raises
    ------
    SimRejection
        422 when the value is not a whole number.
    """
    try:
        return int(query.get(name) or default)
    except ValueError as exc:
        raise SimRejection(422, 42210000, f"invalid {name}: {query.get(name)!r}") from exc


def float_field(body: dict[str, Any], name: str) -> float | None:
    """``body[name]`` as a finite float (a number or numeric text), or ``None`` when absent.

    Raises
    ------
    SimRejection
        422 when the value is not a number: a boolean, a list, ``"abc"``, ``NaN``, infinity.
    """
    value = body.get(name)
    if value is None:
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(type(value).__name__)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(value)
    except (TypeError, ValueError) as exc:
        raise SimRejection(422, 40010001, f"invalid {name}: {quote(value)}") from exc
    return number


def str_field(body: dict[str, Any], name: str, default: str | None = None,
              max_length: int | None = None) -> str | None:
    """``body[name]`` when it is a string, ``default`` when absent or ``null``.

    Raises
    ------
    SimRejection
        422 when the value is a number, boolean, list or object, or longer than
        ``max_length``.  A stored non-string would break every later listing: alpaca-py's
        models require strings.
    """
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise SimRejection(422, 40010001, f"invalid {name}: {quote(value)} is not a string")
    if max_length is not None and len(value) > max_length:
        raise SimRejection(422, 40010001, f"invalid {name}: longer than {max_length} "
                           "characters")
    return value
