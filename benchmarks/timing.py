"""Timing helpers shared by the fast-path and robustness-grid benchmarks."""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Mean wall seconds of ``repeats`` calls (after a ``gc.collect``) and the last result."""
    gc.collect()
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    return (time.perf_counter() - start) / repeats, result


def ratios(base: list[float], case: list[float]) -> dict:
    """Throughput ratio ``t_base / t_case``: of medians, paired per round, of the best.

    ``paired`` is NaN unless both were timed in the same rounds.
    """
    paired = (statistics.median(b / c for b, c in zip(base, case, strict=True))
              if len(base) == len(case) else math.nan)
    return {"medians": statistics.median(base) / statistics.median(case), "paired": paired,
            "best": min(base) / min(case)}


def goal_text(goal: float | None) -> str:
    """``>= goal`` for a table, or nothing when the ratio has no goal."""
    return f">= {goal:g}" if goal is not None else ""
