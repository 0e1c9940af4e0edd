"""Pooled features: each symbol's own features, plus their rank and z-score across symbols.

A *cross-section* is the set of symbols that have a bar on a date and complete features there
(every column of :func:`models.features.build_features` finite).  Only those rows exist in a
pooled panel: they are the rows a pooled model trains on and predicts.  For every per-symbol
feature that can differ between symbols, two columns are added:

- ``cs_rank_<name>``: its average rank among the cross-section, scaled to ``[0, 1]``
  (``rank / (n - 1)``: the lowest is 0, the highest 1, ties share their mean rank);
- ``cs_z_<name>``: ``(x - mean) / std`` over the cross-section (population std, ddof 0),
  0.0 when the cross-section is flat (std within rounding of 0).

With one symbol in the cross-section a rank or z-score says nothing: the rank is 0.5 and the
z-score 0.0 (:data:`LONE_RANK`, :data:`LONE_Z`), the values of a symbol in the middle.  The
calendar features (day of week, month) are the same for every symbol on a date, so they get no
cross-sectional columns (theirs would be constants).

A date's cross-sectional values depend on that date's rows only, computed in a numba loop with
a fixed summation order (``+ - * /`` and ``sqrt`` only), so a date's row comes out bit for bit
the same whether the whole history is computed at once (the batch path) or that date alone
from each symbol's last ``LOOKBACK`` bars (the streaming path).

This module never imports backtrader.
"""

from __future__ import annotations

import numba
import numpy as np

from models.features import FEATURE_NAMES

__all__ = ["CALENDAR_FEATURES", "CS_SOURCE_NAMES", "LONE_RANK", "LONE_Z", "PANEL_FEATURE_NAMES",
           "panel_rows"]

#: Per-symbol features that are the same for every symbol on a date.
CALENDAR_FEATURES: tuple[str, ...] = ("day_of_week", "month", "month_sin", "month_cos")
#: The per-symbol features that get a cross-sectional rank and z-score, in order.
CS_SOURCE_NAMES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in CALENDAR_FEATURES)
#: A pooled row: the per-symbol features, then every ``cs_rank_``, then every ``cs_z_``.
PANEL_FEATURE_NAMES: tuple[str, ...] = (
    *FEATURE_NAMES,
    *(f"cs_rank_{n}" for n in CS_SOURCE_NAMES),
    *(f"cs_z_{n}" for n in CS_SOURCE_NAMES),
)
#: Rank and z-score of a symbol alone in its cross-section.
LONE_RANK: float = 0.5
LONE_Z: float = 0.0

_CS_COLUMNS = np.array([FEATURE_NAMES.index(n) for n in CS_SOURCE_NAMES], dtype=np.int64)
_FLAT_TOLERANCE: float = 1e-12


@numba.njit(cache=True)
def _average_ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks of ``x``; a group of ties shares the mean of its positions."""
    order = np.argsort(x, kind="mergesort")
    n = x.shape[0]
    out = np.empty(n)
    i = 0
    while i < n:
        j = i
        while j + 1 < n and x[order[j + 1]] == x[order[i]]:
            j += 1
        for q in range(i, j + 1):
            out[order[q]] = 0.5 * (i + j)
        i = j + 1
    return out


@numba.njit(cache=True)
def _mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and population std (ddof 0), two-pass, summed left to right."""
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        total += x[i]
    mean = total / n
    squares = 0.0
    for i in range(n):
        dev = x[i] - mean
        squares += dev * dev
    return mean, np.sqrt(squares / n)


@numba.njit(cache=True)
def _rank_z(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scaled ranks and z-scores of one cross-section's values."""
    n = x.shape[0]
    if n < 2:
        return np.full(n, LONE_RANK), np.full(n, LONE_Z)
    rank = _average_ranks(x) / (n - 1)
    mean, std = _mean_std(x)
    z = np.zeros(n)
    if std > _FLAT_TOLERANCE * (1.0 + abs(mean)):
        for i in range(n):
            z[i] = (x[i] - mean) / std
    return rank, z


@numba.njit(cache=True)
def _cross_section(values: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank and z of ``values[t, :, k]`` over the symbols ``present[t]``, date by date.

    ``values`` is ``(dates, symbols, columns)``; cells outside the cross-section stay NaN.
    """
    n_dates, n_symbols, n_cols = values.shape
    rank = np.full(values.shape, np.nan)
    z = np.full(values.shape, np.nan)
    for t in range(n_dates):
        members = np.flatnonzero(present[t])
        for k in range(n_cols):
            r, s = _rank_z(values[t, members, k].copy())
            for i in range(members.shape[0]):
                rank[t, members[i], k] = r[i]
                z[t, members[i], k] = s[i]
    return rank, z


def panel_rows(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pooled rows of a cube of per-symbol features.

    Parameters
    ----------
    cube : np.ndarray
        ``(dates, symbols, len(FEATURE_NAMES))`` float64: each symbol's
        :func:`~models.features.build_features` row on each date, NaN where it has no bar.

    Returns
    -------
    (date_idx, symbol_idx, X)
        For every cell in a cross-section (all features finite), date-major and in symbol
        order within a date: its date and symbol positions, and its row of
        :data:`PANEL_FEATURE_NAMES` (float64, all finite).
    """
    cube = np.asarray(cube, dtype=np.float64)
    present = np.isfinite(cube).all(axis=2)
    rank, z = _cross_section(np.ascontiguousarray(cube[:, :, _CS_COLUMNS]), present)
    t, j = np.nonzero(present)
    X = np.concatenate([cube[t, j], rank[t, j], z[t, j]], axis=1)
    return t, j, np.ascontiguousarray(X)
