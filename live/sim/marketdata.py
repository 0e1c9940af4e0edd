"""What the local server's market-data API serves: each feed's and adjustment's bars.

The replayed bars are the IEX feed's.  ``feed=sip`` serves the same prices with
:data:`SIP_VOLUME_MULTIPLE` times the volume (IEX prints about 2.5% of the consolidated
tape), so a client that asks for one feed and stores another is caught.  ``adjustment``
follows Alpaca: ``raw`` (the default), ``split``, ``dividend``, ``spin-off`` and ``all``,
alone or as a comma list.

Corporate actions are a replay switch (``POST /sim/adjust``, :meth:`BarViews.add_action`):
a split or a cash dividend whose ex-date is the next session.  From then on

- a split of ``r`` divides every price by ``r`` and multiplies volume by ``r``: from the
  ex-date on in ``raw`` bars, and on every bar in split-adjusted ones, so the history a
  client stored before the switch no longer matches;
- a dividend ``d`` scales the prices before the ex-date by ``1 - d / close`` (the close
  before it) in dividend-adjusted bars; raw bars keep them.

Only the REST bars change: fills, positions and the websockets keep the replayed prices.
The switch is not saved by ``sim-server --state``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from live.sim.bars import NEW_YORK, bar_stamp_texts
from live.sim.orders import SimRejection
from live.sim.state import SimState

FEEDS = ("iex", "sip", "delayed_sip")
#: Stream paths (``/v2/{feed}``) that are not a feed of their own serve the IEX bars.
SIP_FEEDS = ("sip", "delayed_sip")
SIP_VOLUME_MULTIPLE = 40.0
ADJUSTMENTS = ("raw", "split", "dividend", "spin-off", "all")
_COLUMNS = ("open", "high", "low", "close", "volume")


def parse_feed(value: str | None) -> str:
    """The ``feed`` query parameter (``iex`` when absent); 400 for anything else."""
    if value is None:
        return "iex"
    if value not in FEEDS:
        raise SimRejection(400, 40010000, f"invalid feed: {value[:40]!r}; one of "
                           f"{', '.join(FEEDS)}")
    return value


def parse_adjustment(value: str | None) -> frozenset[str]:
    """The ``adjustment`` query parameter as a set of ``split``/``dividend``/``spin-off``.

    ``raw`` (the default) is the empty set and ``all`` is every one.  Unknown, empty and
    repeated values are refused with 400, as Alpaca does.
    """
    if value is None:
        return frozenset()
    parts = value.split(",")
    if any(p not in ADJUSTMENTS for p in parts) or len(set(parts)) != len(parts):
        raise SimRejection(400, 40010000, f"invalid adjustment: {value[:40]!r}; one or more "
                           f"of {', '.join(ADJUSTMENTS)}")
    if "all" in parts:
        return frozenset({"split", "dividend", "spin-off"})
    return frozenset(parts) - {"raw"}


def feed_volume(feed: str, volume: float) -> float:
    """A bar's volume on ``feed`` (also a websocket's, ``/v2/{feed}``)."""
    return volume * SIP_VOLUME_MULTIPLE if feed in SIP_FEEDS else volume


@dataclass(frozen=True)
class CorporateAction:
    """A split (``split`` new shares per old one) or a cash ``dividend`` per share, whose
    ex-date is the session at calendar position ``index``."""

    symbol: str
    index: int
    split: float = 1.0
    dividend: float = 0.0


class BarViews:
    """The bars of every feed and adjustment, and the corporate actions they reflect.

    Attributes
    ----------
    actions : list of CorporateAction
        In the order they were switched on.
    bars_served : int
        Bars sent by the REST bars routes so far.
    """

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.actions: list[CorporateAction] = []
        self.bars_served = 0
        stamps = pd.DatetimeIndex(state.calendar).tz_localize(NEW_YORK).tz_convert("UTC")
        self.stamps = stamps
        self._texts = bar_stamp_texts(state.calendar)
        self._cache: dict[tuple[str, str, frozenset[str]], dict[str, np.ndarray]] = {}

    # ------------------------------------------------------------------ actions
    def add_action(self, symbol: str, split: float | None, dividend: float | None,
                   ) -> CorporateAction:
        """Switch on a split or a dividend of ``symbol`` whose ex-date is the next session.

        Raises
        ------
        SimRejection
            404 for a symbol not replayed, 409 on the last bar, 422 for anything but exactly
            one positive number (a dividend also below the last close).
        """
        state = self.state
        symbol = symbol.upper()
        if symbol not in state.feeds:
            raise SimRejection(404, 40410000, f"asset not found: {symbol}")
        if state.finished:
            raise SimRejection(409, 40910000, "replay finished: no next session")
        if (split is None) == (dividend is None):
            raise SimRejection(422, 40010001, "give exactly one of split or dividend")
        value = split if split is not None else dividend
        if value is None or not (math.isfinite(value) and value > 0) or split == 1.0:
            raise SimRejection(422, 40010001, "split or dividend must be a positive number "
                               "(a split other than 1)")
        index = state.index + 1
        if dividend is not None and dividend >= self._raw_close(symbol, index - 1):
            raise SimRejection(422, 40010001, "dividend must be below the last close")
        action = CorporateAction(symbol, index, split=split or 1.0, dividend=dividend or 0.0)
        self.actions.append(action)
        self._cache.clear()
        return action

    def _raw_close(self, symbol: str, position: int) -> float:
        """The close at ``position`` as traded: after every split whose ex-date is due."""
        factor = math.prod(1.0 / a.split for a in self.actions
                           if a.symbol == symbol and a.index <= position)
        return float(self.state.feeds[symbol]["close"].iloc[position]) * factor

    def _factors(self, symbol: str, adjustment: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.state.calendar)
        price, volume = np.ones(n), np.ones(n)
        before_all = np.arange(n)
        for action in (a for a in self.actions if a.symbol == symbol):
            before = before_all < action.index
            if action.split != 1.0:
                scaled = np.ones(n, dtype=bool) if "split" in adjustment else ~before
                price[scaled] /= action.split
                volume[scaled] *= action.split
            if action.dividend and "dividend" in adjustment:
                close = self._raw_close(symbol, action.index - 1)
                price[before] *= 1.0 - action.dividend / close
        return price, volume

    # --------------------------------------------------------------------- bars
    def columns(self, symbol: str, feed: str, adjustment: frozenset[str]) -> dict[str, np.ndarray]:
        """Open, high, low, close, volume and ``vw`` of ``symbol`` over the whole calendar."""
        key = (symbol, feed, adjustment)
        if key not in self._cache:
            frame = self.state.feeds[symbol]
            price, volume = self._factors(symbol, adjustment)
            cols = {c: frame[c].to_numpy(dtype="float64") * price for c in _COLUMNS[:4]}
            cols["volume"] = feed_volume(feed, frame["volume"].to_numpy(dtype="float64") * volume)
            cols["vw"] = (cols["high"] + cols["low"] + cols["close"]) / 3.0
            self._cache[key] = cols
        return self._cache[key]

    def rows(self, symbol: str, positions: np.ndarray, feed: str,
             adjustment: frozenset[str]) -> list[dict[str, Any]]:
        """The daily bars at calendar ``positions`` in the data API's short-key form."""
        cols = {k: v[positions] for k, v in self.columns(symbol, feed, adjustment).items()}
        return self.render([self._texts[p] for p in positions.tolist()], cols)

    def render(self, texts: list[str], cols: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """Bars in the data API's short-key form from their stamps and columns; the volume is
        a whole number of shares, as Alpaca sends it."""
        self.bars_served += len(texts)
        volume = np.rint(cols["volume"]).astype(np.int64).tolist()
        return [{"t": t, "o": o, "h": h, "l": lo, "c": c, "v": v, "n": 0, "vw": vw}
                for t, o, h, lo, c, v, vw in zip(texts, cols["open"].tolist(),
                                                 cols["high"].tolist(), cols["low"].tolist(),
                                                 cols["close"].tolist(), volume,
                                                 cols["vw"].tolist(), strict=True)]

    def visible(self) -> int:
        """How many calendar positions the bars routes may serve: up to the current bar, and
        the next session's while it is under way (``POST /sim/open``)."""
        state = self.state
        return state.index + 1 + int(state.session_open and not state.finished)
