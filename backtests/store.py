"""The local bar store: daily bars fetched from Alpaca, one Parquet file per symbol.

Layout of a store folder (``--store DIR``, else ``$ENSEMBLE_BT_STORE``, else ``data/``)::

    index.json                       every symbol's file, sha256 and provenance (strict JSON)
    bars/AAPL_<sha256[:16]>.parquet  date, open, high, low, close, volume: one row per session

The index is the commit point.  A write stages each new file under a name of its own (its
content hash), then replaces ``index.json`` atomically, then removes the files the index no
longer names.  A writer killed at any moment leaves the previous index, and every file it
names, as they were; what it staged is removed by the next write.  Writers take an exclusive
lock on ``DIR/.lock``, so two fetches into one store never lose each other's symbols.

This module owns the folder: paths, the index, atomic Parquet writes and verified reads.  The
validation of the bars themselves is :func:`backtests.datasets.validate_ohlcv`'s, which
reads a stored symbol through here (``store:AAPL``); fetching is ``live.datastore``'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from loguru import logger
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ensemble_bt.errors import ConfigurationError, DataError
from ensemble_bt.jsonio import dumps, loads, write_text_atomic
from ensemble_bt.yamlio import short_repr

STORE_ENV = "ENSEMBLE_BT_STORE"
DEFAULT_STORE = "data"
INDEX_FILE = "index.json"
BARS_DIR = "bars"
LOCK_FILE = ".lock"
PREFIX = "store:"
INDEX_VERSION = 1
BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
#: A ticker as Alpaca writes it (``AAPL``, ``BRK.B``): it names a file, so nothing else.
SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")
_BAR_FILE = r"[A-Z0-9][A-Z0-9.\-]{0,15}_[0-9a-f]{16}\.parquet"
_FILE = rf"^{BARS_DIR}/{_BAR_FILE}$"
#: What a write leaves behind in each folder if it is killed: only these are ever removed.
_LEFTOVERS = {".": re.compile(rf"^\.{re.escape(INDEX_FILE)}\.\d+\.tmp$"),
              BARS_DIR: re.compile(rf"^{_BAR_FILE}$|^\.{_BAR_FILE}\.\d+\.tmp$")}
_FETCH_FIX = "fix: run `ensemble-bt data fetch SYMBOL` into it, or pass another --store"

_Day = Annotated[date, Field(strict=False)]
_Text = Annotated[str, Field(min_length=1, max_length=512)]


class StoreEntry(BaseModel):
    """One stored symbol: its file and where its bars came from.

    ``start``/``end`` are the range the bars were requested for; ``first``/``last`` the
    sessions the file holds; ``missing`` the sessions of the exchange calendar between them
    that the source had no bar for (reported, never filled in).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Annotated[str, Field(pattern=_FILE)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    rows: Annotated[int, Field(ge=1)]
    first: _Day
    last: _Day
    missing: tuple[_Day, ...] = ()
    source: _Text
    url: _Text
    feed: Literal["iex", "sip"]
    adjustment: Literal["all", "split", "raw"]
    start: _Day
    end: _Day
    fetched_at: AwareDatetime
    updated_at: AwareDatetime | None = None


class StoreIndex(BaseModel):
    """``index.json``: the format's name and version, and the entry of every symbol."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["ensemble-bt store"] = "ensemble-bt store"
    version: Literal[1] = INDEX_VERSION
    symbols: dict[Annotated[str, Field(pattern=SYMBOL.pattern)], StoreEntry] = {}


# ------------------------------------------------------------------------------ names
def store_root(folder: str | Path | None = None, environ: Mapping[str, str] | None = None,
               ) -> Path:
    """The store folder: ``folder``, else ``$ENSEMBLE_BT_STORE``, else ``data/``."""
    env = os.environ if environ is None else environ
    return Path(folder or env.get(STORE_ENV) or DEFAULT_STORE).expanduser()


def check_symbol(text: str, what: str = "symbol") -> str:
    """``text`` upper-cased when it is a ticker; :class:`ConfigurationError` otherwise."""
    symbol = text.strip().upper()
    if not SYMBOL.match(symbol):
        raise ConfigurationError(f"{what} {short_repr(text, 60)} is not a ticker; fix: pass "
                                 "symbols such as AAPL or BRK.B (letters, digits, '.', '-')")
    return symbol


def store_symbols(spec: str) -> list[str]:
    """The symbols of a ``store:A,B`` spec, upper-cased.

    Raises
    ------
    DataError
        An empty list or a name that is not a ticker.
    """
    names = [part.strip() for part in spec.strip()[len(PREFIX):].split(",")]
    if not any(names):
        raise DataError(f"{short_repr(spec, 80)}: no symbol after '{PREFIX}'; fix: name one, "
                        "e.g. store:AAPL")
    try:
        return [check_symbol(name, "name") for name in names if name]
    except ConfigurationError as exc:
        raise DataError(f"{short_repr(spec, 80)}: {exc}") from None


def is_store_spec(spec: str) -> bool:
    """Whether ``spec`` names stored symbols (``store:AAPL``)."""
    return spec.strip().lower().startswith(PREFIX)


def expand_specs(specs: Sequence[str]) -> list[str]:
    """One dataset spec per symbol: ``store:A,B`` becomes ``store:A``, ``store:B``.

    ``specs`` is one comma list, whether or not the caller has split it at its commas
    already: a ``store:`` prefix also covers the ticker names that follow it
    (``["store:AAPL", "MSFT"]`` is two stored symbols), up to a name with a prefix, a
    suffix or a path separator of its own.  Other specs pass unchanged.
    """
    out: list[str] = []
    in_store = False
    for spec in specs:
        names = [part.strip() for part in spec.split(",")]
        if is_store_spec(spec):
            in_store = True
            out += [f"{PREFIX}{symbol}" for symbol in store_symbols(spec)]
        elif in_store and all(_ticker(name) for name in names):
            out += [f"{PREFIX}{name.upper()}" for name in names]
        else:
            in_store = False
            out.append(spec)
    return out


def _ticker(name: str) -> bool:
    """A ticker, not a file name (``BRK.B`` is one, ``prices.csv`` is not)."""
    return bool(SYMBOL.match(name.upper())) and not name.lower().endswith((".csv", ".parquet"))


# ---------------------------------------------------------------------- Parquet bytes
def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Bars as the Parquet file the store keeps: ``date`` (date32) and float64 OHLCV."""
    days = pd.DatetimeIndex(frame.index).to_numpy().astype("datetime64[D]")
    columns = {"date": pa.array(days, type=pa.date32())}
    for name in BAR_COLUMNS:
        columns[name] = pa.array(frame[name].to_numpy(dtype="float64"), type=pa.float64())
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue().to_pybytes()


def frame_from_parquet(data: bytes, source: str) -> pd.DataFrame:
    """The bars of a stored file, indexed by ``date`` (not validated here).

    Raises
    ------
    DataError
        The bytes are not a Parquet file with the store's columns.
    """
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{source}: not a readable Parquet file ({exc}); {_FETCH_FIX}") from None
    if table.column_names != ["date", *BAR_COLUMNS]:
        raise DataError(f"{source}: columns {table.column_names[:8]} are not the store's "
                        f"(date, {', '.join(BAR_COLUMNS)}); {_FETCH_FIX}")
    dates = np.asarray(table.column("date").to_numpy(zero_copy_only=False),
                       dtype="datetime64[D]")
    index = pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="date")
    values = {name: table.column(name).to_numpy().astype("float64") for name in BAR_COLUMNS}
    return pd.DataFrame(values, index=index)


# ------------------------------------------------------------------------------ store
class BarStore:
    """One store folder.

    Parameters
    ----------
    root : path
        The folder (see :func:`store_root`); it need not exist until something is written.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.index_path = self.root / INDEX_FILE

    def __repr__(self) -> str:
        return f"BarStore({str(self.root)!r})"

    # ---------------------------------------------------------------- reading
    def read_index(self) -> StoreIndex:
        """The index; empty when the folder or its index does not exist.

        Raises
        ------
        DataError
            The index is not strict JSON or not this store's format.
        """
        try:
            text = self.index_path.read_text()
        except FileNotFoundError:
            return StoreIndex()
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{self.index_path}: cannot read the store index ({exc}); "
                            f"{_FETCH_FIX}") from None
        try:
            return StoreIndex.model_validate(loads(text))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise DataError(f"{self.index_path}: not an ensemble-bt store index ({where}: "
                            f"{first['msg']}); fix: remove it, or pass another --store") from None
        except ValueError as exc:
            raise DataError(f"{self.index_path}: not strict JSON ({exc}); fix: remove it, or "
                            "pass another --store") from None

    def entry(self, symbol: str, index: StoreIndex | None = None) -> StoreEntry:
        """The entry of ``symbol``; :class:`DataError` when it is not stored."""
        index = self.read_index() if index is None else index
        found = index.symbols.get(symbol)
        if found is None:
            held = ", ".join(sorted(index.symbols)[:12]) or "no symbols"
            raise DataError(f"{PREFIX}{symbol}: not in the store {self.root} (it holds {held}); "
                            f"fix: ensemble-bt data fetch {symbol} --store {self.root}")
        return found

    def read(self, symbol: str) -> tuple[pd.DataFrame, StoreEntry]:
        """The stored bars of ``symbol`` (sha256-verified against the index) and its entry.

        Raises
        ------
        DataError
            Not stored, the file is missing, altered or unreadable.
        """
        entry = self.entry(symbol)
        path = self.root / entry.file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{PREFIX}{symbol}: cannot read {path} ({exc.strerror}); "
                            f"fix: ensemble-bt data fetch {symbol} --store {self.root}") from None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise DataError(f"{PREFIX}{symbol}: {path} does not match the sha256 in "
                            f"{self.index_path} (altered); fix: ensemble-bt data fetch {symbol} "
                            f"--store {self.root}")
        return frame_from_parquet(data, str(path)), entry

    # ---------------------------------------------------------------- writing
    @contextlib.contextmanager
    def writing(self) -> Iterator[StoreWriter]:
        """Hold the store's lock; stage files with ``put``; commit the index on exit.

        If the block raises, the index is left as it was and the staged files are removed.
        """
        try:
            (self.root / BARS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"--store {self.root}: cannot create the store folder "
                                     f"({exc.strerror}); fix: pass a writable folder") from None
        with open(self.root / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            writer = StoreWriter(self, self.read_index())
            try:
                yield writer
            except BaseException:
                writer.discard()
                raise
            write_text_atomic(self.index_path, dumps(writer.index().model_dump(mode="json"),
                                                     indent=1) + "\n")
            self._sweep(writer.index())

    def _sweep(self, index: StoreIndex) -> None:
        """Remove files no entry names: replaced versions, and what killed writers staged."""
        kept = {Path(e.file).name for e in index.symbols.values()}
        for folder, pattern in _LEFTOVERS.items():
            for path in (self.root / folder).iterdir():
                if pattern.match(path.name) and path.name not in kept and path.is_file():
                    with contextlib.suppress(OSError):
                        path.unlink()
                        logger.debug("store: removed {}", path)


class StoreWriter:
    """The symbols one write replaces (see :meth:`BarStore.writing`)."""

    def __init__(self, store: BarStore, index: StoreIndex) -> None:
        self.store = store
        self._entries = dict(index.symbols)
        self._old = {Path(e.file).name for e in index.symbols.values()}
        self._staged: list[Path] = []

    def put(self, symbol: str, frame: pd.DataFrame, **provenance: Any) -> StoreEntry:
        """Stage ``symbol``'s bars (already validated) with their provenance.

        ``provenance`` holds the :class:`StoreEntry` fields other than the file's: ``source``,
        ``url``, ``feed``, ``adjustment``, ``start``, ``end``, ``fetched_at``, ``missing``,
        ``updated_at``.
        """
        data = parquet_bytes(frame)
        digest = hashlib.sha256(data).hexdigest()
        name = f"{symbol}_{digest[:16]}.parquet"
        path = self.store.root / BARS_DIR / name
        if not path.is_file():
            tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            if name not in self._old:
                self._staged.append(path)
        days = pd.DatetimeIndex(frame.index)
        entry = StoreEntry(file=f"{BARS_DIR}/{name}", sha256=digest, rows=len(frame),
                           first=days[0].date(), last=days[-1].date(), **provenance)
        self._entries[symbol] = entry
        return entry

    def index(self) -> StoreIndex:
        """The index this write commits."""
        return StoreIndex(symbols=dict(sorted(self._entries.items())))

    def discard(self) -> None:
        """Remove the files this write staged (the index still names the old ones)."""
        for path in self._staged:
            path.unlink(missing_ok=True)
