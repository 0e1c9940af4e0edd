"""Fault switches of the local Alpaca-protocol server: the failures a live client must survive.

:class:`SimFaults` is the frozen, validated switch board.  :class:`FaultInjector` holds the
mutable part (the seeded random stream, the counters) that one server uses, and
:func:`make_fault_middleware` answers REST requests with an error at the configured rate.
The websocket faults (dropped connection, slow auth) live in :mod:`live.sim.streams`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from loguru import logger

from live.sim.wire import error_response

ERROR_BODIES: dict[int, tuple[int, str]] = {
    429: (42910000, "rate limit exceeded"),
    500: (50010000, "internal server error"),
    503: (50310000, "service unavailable"),
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SimFaults:
    """Which failures the server injects; the default injects none.

    Parameters
    ----------
    drop_stream_after : int or None
        After this many bar messages went out over market-data connections, the next bar is
        not sent: the connection it was for is closed instead (once per server).
    drop_stream_every : int or None
        Like ``drop_stream_after``, again every N bars sent: a flaky connection.
    auth_delay : float
        Seconds slept before answering an auth message on either websocket.
    error_rate : float
        Fraction in [0, 1] of trading and data REST requests answered with ``error_status``
        without being processed (``/sim/*`` and websockets are exempt).
    error_status : int or tuple of int
        429, 500 or 503, or several of them: each failed request then draws one.  A 429
        carries ``Retry-After: 0``.
    reject_every : int or None
        The N-th, 2N-th ... submitted order is rejected when it would fill.
    seed : int
        Seed of the random stream that picks the failed requests.

    Raises
    ------
    ValueError
        A value out of range, named with the fix.
    """

    drop_stream_after: int | None = None
    drop_stream_every: int | None = None
    auth_delay: float = 0.0
    error_rate: float = 0.0
    error_status: int | tuple[int, ...] = 429
    reject_every: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.drop_stream_after is not None and not (
                _is_count(self.drop_stream_after) and self.drop_stream_after >= 0):
            raise ValueError(f"drop_stream_after must be a whole number >= 0 or None, "
                             f"got {self.drop_stream_after!r}")
        if self.drop_stream_every is not None and not (
                _is_count(self.drop_stream_every) and self.drop_stream_every >= 1):
            raise ValueError(f"drop_stream_every must be a whole number >= 1 or None, "
                             f"got {self.drop_stream_every!r}")
        if not (isinstance(self.auth_delay, int | float) and math.isfinite(self.auth_delay)
                and self.auth_delay >= 0):
            raise ValueError(f"auth_delay must be seconds >= 0, got {self.auth_delay!r}")
        if not (isinstance(self.error_rate, int | float) and 0.0 <= self.error_rate <= 1.0):
            raise ValueError(f"error_rate must be a fraction in [0, 1], got {self.error_rate!r}")
        statuses = self.statuses()
        if not statuses or any(s not in ERROR_BODIES for s in statuses):
            raise ValueError(f"error_status must be one or more of {sorted(ERROR_BODIES)}, "
                             f"got {self.error_status!r}")
        if self.reject_every is not None and not (
                _is_count(self.reject_every) and self.reject_every >= 1):
            raise ValueError(f"reject_every must be a whole number >= 1 or None, "
                             f"got {self.reject_every!r}")
        if not _is_count(self.seed):
            raise ValueError(f"seed must be a whole number, got {self.seed!r}")


    def statuses(self) -> tuple[int, ...]:
        """The injected HTTP statuses, as a tuple."""
        status = self.error_status
        return tuple(status) if isinstance(status, tuple | list) else (status,)


class FaultInjector:
    """The running side of :class:`SimFaults` for one server.

    Attributes
    ----------
    faults : SimFaults
        The switches.
    errors_injected : int
        REST requests answered with the injected error so far.
    """

    def __init__(self, faults: SimFaults) -> None:
        self.faults = faults
        self.errors_injected = 0
        self._rng = random.Random(faults.seed)

    def should_fail(self) -> bool:
        """Draw whether the next REST request fails (no draw when the rate is 0)."""
        if self.faults.error_rate <= 0.0:
            return False
        return self._rng.random() < self.faults.error_rate

    def error(self) -> web.Response:
        """The injected error response."""
        self.errors_injected += 1
        statuses = self.faults.statuses()
        status = statuses[0] if len(statuses) == 1 else self._rng.choice(statuses)
        code, message = ERROR_BODIES[status]
        headers = {"Retry-After": "0"} if status == 429 else None
        return error_response(status, code, f"{message} (sim fault)", headers=headers)


def make_fault_middleware(injector: FaultInjector, exempt: Callable[[str], bool]) -> Any:
    """Answer non-exempt requests with the injected error at ``injector``'s rate.

    Parameters
    ----------
    injector : FaultInjector
        The server's injector.
    exempt : callable
        ``exempt(path)`` is true for paths never failed (``/sim/*``, websockets).
    """

    @web.middleware
    async def faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not exempt(request.path) and injector.should_fail():
            response = injector.error()
            logger.debug("sim fault: {} {} -> {}", request.method, request.path,
                         response.status)
            return response
        return await handler(request)

    return faults
