"""``ensemble-bt data``: keep Alpaca's daily bars in the local store, and list them.

- :func:`fetch` downloads whole symbols: every complete session from ``start`` to ``end``.
- :func:`update` asks only for the bars after each symbol's last stored session, plus that
  session itself.  If that one overlapping bar differs from the stored one, a split or a
  dividend has re-adjusted the history since: the symbol is fetched whole again, and the
  command says so.
- :func:`listing` describes the store from its index, without a request.

A session is complete once Alpaca's calendar says it closed, by Alpaca's clock: while the
market is open, today's partial bar is never stored.  Bars pass the loaders' validation
(:func:`backtests.datasets.validate_ohlcv`) before anything is written, and every write is
one atomic commit of the store (:meth:`backtests.store.BarStore.writing`).  Sessions of the
calendar that the source has no bar for are recorded in the index and reported, never
filled in.

The store is :mod:`backtests.store`'s; Alpaca is :mod:`live.alpaca.history`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from loguru import logger
from tqdm import tqdm

from backtests.datasets import COLUMNS, validate_ohlcv
from backtests.store import BarStore, StoreEntry, StoreIndex
from ensemble_bt.errors import DataError
from live.alpaca.history import AlpacaHistory, Session, request_window
from live.alpaca.keys import credentials_from_env

#: The first date of Alpaca's calendar: without ``--start``, a fetch asks for all history.
DEFAULT_START = date(1970, 1, 1)
SOURCE = "alpaca"
Out = Callable[[str], None]


@dataclass(frozen=True)
class FetchPlan:
    """What ``data fetch`` asks for: symbols (checked tickers), a date range (``None``: all
    history, up to the last complete session), a feed and an adjustment."""

    symbols: tuple[str, ...]
    start: date | None
    end: date | None
    feed: str
    adjustment: str


def open_history(data_url: str | None) -> AlpacaHistory:
    """Alpaca's history with the keys of the environment (refused, naming the variables,
    when they are not set)."""
    keys = credentials_from_env()
    return AlpacaHistory(keys.key_id, keys.secret, data_url=data_url)


# ------------------------------------------------------------------------------ helpers
def _complete(history: AlpacaHistory, start: date, end: date, now: pd.Timestamp,
              ) -> list[Session]:
    """The sessions from ``start`` to ``end`` that have closed by ``now`` (Alpaca's clock):
    while the market is open, today's session is not one of them."""
    sessions = history.sessions(start, min(end, now.date()))
    complete = [s for s in sessions if s.close <= now]
    if len(complete) < len(sessions):
        logger.info("market open: the bar of {} is partial and is not stored",
                    sessions[-1].day if sessions else now.date())
    return complete


@contextlib.contextmanager
def _progress(symbols: Sequence[str], enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr (a terminal only) over the symbols of a multi-symbol request."""
    show = None if enabled and len(symbols) > 1 else True
    with tqdm(total=len(symbols), unit="symbol", desc="bars", disable=show, leave=False) as bar:

        def on_page(done: int, bars: int) -> None:
            bar.n = done
            bar.set_postfix(bars=bars, refresh=False)
            bar.refresh()

        yield on_page


def _checked(frame: pd.DataFrame | None, symbol: str, plan: tuple[str, str], first: date,
             last: date) -> pd.DataFrame:
    """The complete sessions of one symbol's bars, validated like a CSV's."""
    feed, adjustment = plan
    if frame is not None:
        frame = frame[(frame.index >= pd.Timestamp(first)) & (frame.index <= pd.Timestamp(last))]
    if frame is None or frame.empty:
        raise DataError(f"{symbol}: no bars from {first} to {last} on the {feed} feed; fix: "
                        "pick dates the source has bars for (Alpaca's begin in 2016)")
    validate_ohlcv(frame, f"{SOURCE}:{symbol} ({feed}, {adjustment})")
    return frame


def _download(history: AlpacaHistory, symbols: Sequence[str], plan: tuple[str, str],
              first: date, sessions: list[Session], now: pd.Timestamp,
              progress: bool) -> dict[str, pd.DataFrame]:
    """Whole symbols from ``first`` to the last of ``sessions``, validated."""
    start, end = request_window(first, sessions[-1], now)
    with _progress(symbols, progress) as on_page:
        raw = history.bars(symbols, start, end, *plan, on_page=on_page)
    return {s: _checked(raw.get(s), s, plan, first, sessions[-1].day) for s in symbols}


def missing_sessions(frame: pd.DataFrame, sessions: list[Session]) -> tuple[date, ...]:
    """Sessions of the calendar within the frame's span that it has no bar for: reported,
    never filled in."""
    first, last = frame.index[0].date(), frame.index[-1].date()
    have = set(pd.DatetimeIndex(frame.index).date)
    return tuple(s.day for s in sessions if first <= s.day <= last and s.day not in have)


def _describe(symbol: str, entry: StoreEntry, verb: str) -> str:
    line = (f"{symbol}: {verb} {entry.rows} session{'s' * (entry.rows != 1)} "
            f"{entry.first}..{entry.last} "
            f"({entry.feed}, {entry.adjustment})")
    if entry.missing:
        shown = ", ".join(d.isoformat() for d in entry.missing[:3])
        more = ", ..." if len(entry.missing) > 3 else ""
        line += (f"; {len(entry.missing)} sessions missing at the source ({shown}{more}): "
                 "reported, not filled in")
    return line


def _utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC").floor("s")


# -------------------------------------------------------------------------------- fetch
def fetch(store: BarStore, history: AlpacaHistory, plan: FetchPlan, out: Out,
          progress: bool = True) -> None:
    """Fetch ``plan.symbols`` whole into ``store``; ``out`` gets one line per symbol, then
    the store folder.

    Raises
    ------
    ConfigurationError
        Keys refused (401/403).
    DataError
        A malformed store index, an unknown symbol, no complete session or no bars in the
        range, or bars that break a validation rule.  Nothing is written.
    HistoryUnavailable
        The source cannot be reached or keeps failing.  Nothing is written.
    """
    store.read_index()  # a malformed index stops the fetch before any request
    history.check_symbols(plan.symbols)
    now = history.now()
    first = plan.start or DEFAULT_START
    sessions = _complete(history, first, plan.end or now.date(), now)
    if not sessions:
        raise DataError(f"no complete session from {first} to {plan.end or now.date()} on "
                        "Alpaca's calendar; fix: pick past dates")
    kind = (plan.feed, plan.adjustment)
    frames = _download(history, plan.symbols, kind, first, sessions, now, progress)
    provenance = dict(source=SOURCE, url=history.data_url, feed=plan.feed,
                      adjustment=plan.adjustment, start=first, end=sessions[-1].day,
                      fetched_at=_utc_now())
    with store.writing() as writer:
        entries = {s: writer.put(s, frame, missing=missing_sessions(frame, sessions), **provenance)
                   for s, frame in frames.items()}
    for symbol, entry in entries.items():
        out(_describe(symbol, entry, "stored"))
    out(str(store.root))


# ------------------------------------------------------------------------------- update
def _chosen(store: BarStore, index: StoreIndex, symbols: Sequence[str]) -> list[str]:
    if not index.symbols:
        raise DataError(f"the store {store.root} holds no symbols; fix: ensemble-bt data fetch "
                        f"SYMBOL --store {store.root}")
    for symbol in symbols:
        store.entry(symbol, index)  # refuses a symbol that is not stored
    return list(dict.fromkeys(symbols)) if symbols else list(index.symbols)


def _same_bar(stored: pd.DataFrame, fresh: pd.DataFrame | None, day: date) -> bool:
    """Whether the source's bar of ``day`` is the stored one (to float rounding)."""
    stamp = pd.Timestamp(day)
    if fresh is None or stamp not in fresh.index or stored.index[-1] != stamp:
        return False
    mine = stored[list(COLUMNS)].to_numpy(dtype="float64")[-1]
    theirs = fresh[list(COLUMNS)].to_numpy(dtype="float64")[fresh.index.get_loc(stamp)]
    return bool(np.allclose(mine, theirs, rtol=1e-9, atol=0.0))


#: What an append keeps of a symbol's entry (the rest is the file's, or this update's).
_KEPT = {"source", "feed", "adjustment", "start", "fetched_at"}


@dataclass
class _Update:
    """What one update writes: frames with their provenance, and what to say."""

    frames: dict[str, tuple[pd.DataFrame, dict[str, Any]]]
    lines: list[str]
    refetch: list[str]


def _append(store: BarStore, history: AlpacaHistory, symbols: list[str], index: StoreIndex,
            sessions: list[Session], now: pd.Timestamp, result: _Update) -> None:
    """Ask each group of symbols for the bars from its last stored session on; append the
    new ones, or mark the symbol for a refetch when the overlapping bar changed."""
    last = sessions[-1]
    groups: dict[tuple[str, str, date], list[str]] = {}
    for symbol in symbols:
        entry = index.symbols[symbol]
        if entry.last >= last.day:
            result.lines.append(f"{symbol}: up to date (last session {entry.last})")
            continue
        groups.setdefault((entry.feed, entry.adjustment, entry.last), []).append(symbol)
    for (feed, adjustment, since), group in groups.items():
        raw = history.bars(group, *request_window(since, last, now), feed, adjustment)
        for symbol in group:
            stored, entry = store.read(symbol)
            if not _same_bar(stored, raw.get(symbol), since):
                result.refetch.append(symbol)
                result.lines.append(f"{symbol}: the stored bar of {since} differs from the "
                                    "source's now (a split or dividend re-adjusted the "
                                    f"history): fetched {symbol} whole again")
                continue
            new = _checked(raw.get(symbol), symbol, (feed, adjustment), since, last.day)
            new = new[new.index > pd.Timestamp(since)]
            frame = pd.concat([stored, new])
            validate_ohlcv(frame, f"{SOURCE}:{symbol} ({feed}, {adjustment})")
            later = [s for s in sessions if s.day > since]
            missing = tuple(entry.missing) + missing_sessions(frame, later)
            result.frames[symbol] = (frame, {**entry.model_dump(include=_KEPT), "url":
                                             history.data_url, "end": last.day,
                                             "missing": missing, "updated_at": _utc_now()})
            result.lines.append(f"{symbol}: +{len(new)} session{'s' * (len(new) != 1)} "
                                f"({new.index[0].date()}..{new.index[-1].date()})" if len(new)
                                else f"{symbol}: up to date (last session {since})")


def _refetch(history: AlpacaHistory, index: StoreIndex, now: pd.Timestamp, last: Session,
             result: _Update, progress: bool) -> None:
    """Fetch the re-adjusted symbols whole again, as they were first requested."""
    groups: dict[tuple[str, str, date], list[str]] = {}
    for symbol in result.refetch:
        entry = index.symbols[symbol]
        groups.setdefault((entry.feed, entry.adjustment, entry.start), []).append(symbol)
    for (feed, adjustment, start), group in groups.items():
        sessions = [s for s in history.sessions(start, last.day) if s.close <= now]
        frames = _download(history, group, (feed, adjustment), start, sessions, now, progress)
        for symbol, frame in frames.items():
            stamp = _utc_now()
            result.frames[symbol] = (frame, {
                "source": SOURCE, "url": history.data_url, "feed": feed,
                "adjustment": adjustment, "start": start, "end": last.day, "fetched_at": stamp,
                "updated_at": stamp, "missing": missing_sessions(frame, sessions)})


def update(store: BarStore, history: AlpacaHistory, symbols: Sequence[str], out: Out,
           progress: bool = True) -> None:
    """Bring ``symbols`` (default: every stored one) up to the last complete session.

    ``out`` gets one line per symbol (appended sessions, up to date, or fetched whole again
    after a re-adjustment), then the store folder.

    Raises
    ------
    ConfigurationError, DataError, HistoryUnavailable
        As :func:`fetch`; also a symbol that is not stored, or an empty store.
    """
    index = store.read_index()
    chosen = _chosen(store, index, symbols)
    now = history.now()
    oldest = min(index.symbols[s].last for s in chosen)
    sessions = _complete(history, oldest, now.date(), now)
    result = _Update({}, [], [])
    if sessions:
        _append(store, history, chosen, index, sessions, now, result)
    else:
        result.lines += [f"{s}: up to date (the source has no later complete session)"
                         for s in chosen]
    if result.refetch:
        _refetch(history, index, now, sessions[-1], result, progress)
    if result.frames:
        with store.writing() as writer:
            for symbol, (frame, provenance) in result.frames.items():
                writer.put(symbol, frame, **provenance)
    for line in result.lines:
        out(line)
    out(str(store.root))


# --------------------------------------------------------------------------------- list
def listing(store: BarStore) -> list[str]:
    """``data list``: a header and one row per stored symbol (from the index alone)."""
    index = store.read_index()
    if not index.symbols:
        return [f"{store.root}: no stored symbols; fetch some with `ensemble-bt data fetch "
                "SYMBOL`"]
    width = max(6, *(len(s) for s in index.symbols))
    lines = [f"{'symbol':<{width}}  {'first':<10}  {'last':<10}  {'rows':>6}  {'feed':<4}  "
             f"{'adjustment':<10}  {'fetched at':<20}  missing"]
    for symbol, e in index.symbols.items():
        fetched = pd.Timestamp(e.fetched_at).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{symbol:<{width}}  {e.first.isoformat():<10}  {e.last.isoformat():<10}  "
                     f"{e.rows:>6}  {e.feed:<4}  {e.adjustment:<10}  {fetched:<20}  "
                     f"{len(e.missing)}")
    return lines
