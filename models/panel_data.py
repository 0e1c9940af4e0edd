"""A pooled panel: every symbol's rows stacked by (date, symbol), with targets and label ends.

The *calendar* is the union of every symbol's sessions.  Each symbol keeps its own bars: its
features come from its own history (:func:`models.features.build_features`), and its label
is its forward log return over ``horizon`` of *its* bars
(:func:`models.targets.forward_log_return`), which ends at the calendar position of its bar
``horizon`` bars later.  The rows are the cells of the cross-sections
(:mod:`models.panel_features`), date-major, symbols in sorted order within a date.

Targets:

- ``raw``: the forward log return;
- ``demeaned``: the forward log return minus that date's mean over the cross-section.  The
  mean uses every symbol of the cross-section, so a demeaned label is known only once all of
  theirs are: it ends at the latest of their label ends, and a date where any of them has no
  label yet (or never will, a history that stops within ``horizon`` bars) has no demeaned
  label at all.

This module never imports backtrader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ensemble_bt.errors import ConfigurationError, DataError
from models.features import FEATURE_NAMES, build_features
from models.panel_features import panel_rows
from models.targets import check_horizon, forward_log_return

__all__ = ["TARGETS", "PanelData", "build_panel", "check_frames"]

Target = Literal["raw", "demeaned"]
TARGETS: tuple[str, ...] = ("raw", "demeaned")


@dataclass(frozen=True)
class PanelData:
    """The pooled rows of a panel, and what the schedule, the fits and the audit need.

    Attributes
    ----------
    symbols : tuple of str
        Sorted symbol names; ``symbol_idx`` indexes them.
    calendar : pd.DatetimeIndex
        The union of every symbol's sessions; ``date_pos`` and ``label_end`` index it.
    date_pos, symbol_idx : np.ndarray of int64
        Per row, its date's calendar position and its symbol's position (rows date-major).
    X : np.ndarray
        ``(rows, len(PANEL_FEATURE_NAMES))`` float64, all finite.
    y : np.ndarray
        Per row, the target (``raw`` or ``demeaned``); NaN where it is not known.
    realised : np.ndarray
        Per row, the raw forward log return (NaN in a symbol's last ``horizon`` bars).
    label_end : np.ndarray of int64
        Per row, the calendar position at whose close ``y`` is known; -1 where ``y`` is NaN.
    """

    symbols: tuple[str, ...]
    calendar: pd.DatetimeIndex
    date_pos: np.ndarray
    symbol_idx: np.ndarray
    X: np.ndarray
    y: np.ndarray
    realised: np.ndarray
    label_end: np.ndarray

    @property
    def width(self) -> int:
        """The most rows any date has (the largest cross-section)."""
        return int(np.bincount(self.date_pos).max()) if len(self.date_pos) else 0

    def grid(self, values: np.ndarray, lo: int = 0, hi: int | None = None) -> pd.DataFrame:
        """Per-row ``values`` as a frame: calendar dates ``[lo, hi)`` by symbols, NaN where no
        row is."""
        hi = len(self.calendar) if hi is None else hi
        out = np.full((hi - lo, len(self.symbols)), np.nan)
        keep = (self.date_pos >= lo) & (self.date_pos < hi)
        out[self.date_pos[keep] - lo, self.symbol_idx[keep]] = values[keep]
        return pd.DataFrame(out, index=self.calendar[lo:hi], columns=list(self.symbols))


def check_frames(frames: Mapping[str, pd.DataFrame]) -> tuple[str, ...]:
    """The sorted symbols of ``frames``, after the checks a panel needs; DataError if not."""
    if not isinstance(frames, Mapping) or not frames:
        raise DataError("a pooled panel needs a mapping of symbol -> OHLCV frame, got none")
    for symbol, frame in frames.items():
        if not isinstance(symbol, str) or not symbol:
            raise DataError(f"panel symbol {symbol!r} is not a non-empty string")
        index = getattr(frame, "index", None)
        if not isinstance(frame, pd.DataFrame) or not isinstance(index, pd.DatetimeIndex):
            raise DataError(f"{symbol}: expected an OHLCV DataFrame with a DatetimeIndex")
        if not (index.is_monotonic_increasing and index.is_unique):
            raise DataError(f"{symbol}: the dates must be sorted and unique; validate the bars")
    zones = {str(f.index.tz) for f in frames.values()}
    if len(zones) > 1:
        raise DataError(f"the panel's dates mix time zones {sorted(zones)}; use UTC-naive dates")
    return tuple(sorted(frames))


def _label_ends(positions: np.ndarray, horizon: int) -> np.ndarray:
    """Calendar position of each bar's label end: its own bar ``horizon`` bars later."""
    out = np.full(len(positions), -1, dtype=np.int64)
    if horizon < len(positions):
        out[:-horizon] = positions[horizon:]
    return out


def _demean(raw: np.ndarray, ends: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, ...]:
    """Demeaned labels and their label ends, date by date over the cross-section."""
    complete = present.any(axis=1) & (np.isfinite(raw) | ~present).all(axis=1)
    count = np.maximum(present.sum(axis=1), 1)
    mean = np.where(present, np.nan_to_num(raw), 0.0).sum(axis=1) / count
    last_end = np.where(present, ends, -1).max(axis=1)
    y = np.where(complete[:, None], raw - mean[:, None], np.nan)
    end = np.where(complete[:, None] & present, last_end[:, None], -1)
    return y, end


def build_panel(frames: Mapping[str, pd.DataFrame], horizon: int,
                target: Target = "raw") -> PanelData:
    """Stack ``frames`` into pooled rows with features, targets and label ends.

    Parameters
    ----------
    frames : Mapping[str, pd.DataFrame]
        Validated OHLCV bars per symbol, each on its own dates.
    horizon : int
        Label horizon, in each symbol's own bars.
    target : {"raw", "demeaned"}
        See the module docstring.

    Raises
    ------
    DataError
        A frame is not an OHLCV frame with sorted, unique dates.
    ConfigurationError
        ``horizon`` or ``target`` is invalid.
    """
    h = check_horizon(horizon)
    if target not in TARGETS:
        raise ConfigurationError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    symbols = check_frames(frames)
    calendar = frames[symbols[0]].index
    for s in symbols[1:]:
        calendar = calendar.union(frames[s].index)
    calendar = pd.DatetimeIndex(calendar, name="date")
    shape = (len(calendar), len(symbols))
    cube = np.full((*shape, len(FEATURE_NAMES)), np.nan)
    raw, ends = np.full(shape, np.nan), np.full(shape, -1, dtype=np.int64)
    for j, s in enumerate(symbols):
        pos = calendar.get_indexer(frames[s].index)
        cube[pos, j] = build_features(frames[s]).to_numpy(dtype=np.float64)
        raw[pos, j] = forward_log_return(frames[s]["close"], h).to_numpy()
        ends[pos, j] = _label_ends(pos, h)
    t, j, X = panel_rows(cube)
    present = np.zeros(shape, dtype=bool)
    present[t, j] = True
    if target == "demeaned":
        y_grid, end_grid = _demean(raw, ends, present)
    else:
        y_grid, end_grid = raw, np.where(np.isfinite(raw), ends, -1)
    return PanelData(symbols=symbols, calendar=calendar, date_pos=t.astype(np.int64),
                     symbol_idx=j.astype(np.int64), X=X, y=y_grid[t, j],
                     realised=raw[t, j], label_end=end_grid[t, j].astype(np.int64))
