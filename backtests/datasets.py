"""Datasets: the embedded symbols, user CSV/Parquet files, the local store, and the one
validation gate.

Every loader returns the same shape: a tz-naive, normalised ``DatetimeIndex`` named ``date``,
float64 columns ``open, high, low, close, volume`` in that order, and ``attrs["symbol"]`` and
``attrs["source"]``.  :func:`validate_ohlcv` checks every frame; a violation raises
:class:`~ensemble_bt.errors.DataError` with one line naming the source, the row, the rule and
the fix.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import importlib
import importlib.util
import os
import stat
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

from backtests.sessions import session_dates
from backtests.store import (
    PREFIX,
    BarStore,
    expand_specs,
    is_store_spec,
    store_root,
    store_symbols,
)
from ensemble_bt.errors import DataError
from ensemble_bt.yamlio import short_repr

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICES: list[str] = ["open", "high", "low", "close"]
EMBEDDED: dict[str, str] = {  # canonical name -> the package that ships it
    **dict.fromkeys(("AAPL", "IBM", "MSFT", "GOOG"), "bokeh-sampledata"),
    **dict.fromkeys(("SP500", "NASDAQ"), "arch"),
}
REL_TOL = 1e-9  # relative slack on OHLC ordering, for float rounding
# No listed share has traded above 1e6 (BRK.A is about 7e5): a price above 1e9 is a unit or
# parsing error, and squaring prices near 1e308 in the features would overflow.
MAX_PRICE = 1e9
MAX_VOLUME = 1e15
_SUFFIXES = (".csv", ".parquet")
_EMPTY_FIX = "supply daily OHLCV bars"
_FORMS = (
    f"pass an embedded name ({', '.join(EMBEDDED)}), a path to a .csv or .parquet file, "
    "or store:SYMBOL (bars fetched with `ensemble-bt data fetch SYMBOL`)"
)
_ALIASES: dict[str, tuple[str, ...]] = {  # header (lower-cased, spaces -> _) -> field
    "date": ("date", "timestamp", "time", "datetime"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
    "adj_close": ("adj_close", "adjclose", "adjusted_close"),
}


def load_dataset(spec: str, adjust: bool = True) -> pd.DataFrame:
    """Load a daily OHLCV dataset.

    Parameters
    ----------
    spec : str
        An embedded name (case-insensitive, see :data:`EMBEDDED`), a path to a ``.csv`` or
        ``.parquet`` file, or ``store:SYMBOL``: a symbol of the local store
        (:func:`backtests.store.store_root`: ``$ENSEMBLE_BT_STORE``, else ``data/``).
    adjust : bool, default True
        When the data has an adjusted close, scale open/high/low/close by
        ``adj_close / close`` and divide volume by it (split and dividend adjustment).

    Returns
    -------
    pandas.DataFrame
        Validated bars; ``attrs`` holds ``symbol`` and ``source``.

    Raises
    ------
    DataError
        Unknown name, missing or unreadable file, or a validation rule broken.
    """
    text = spec.strip()
    if is_store_spec(text):
        return load_stored(text)
    if text.lower().startswith("alpaca:"):
        raise DataError(f"{short_repr(spec, 80)}: Alpaca bars are read from the local store; "
                        "fix: `ensemble-bt data fetch SYMBOL`, then pass store:SYMBOL")
    if text.upper() in EMBEDDED:
        return _embedded(text.upper(), adjust).copy()
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    kind = _path_kind(path)
    if kind == "file" and suffix in _SUFFIXES:
        return _load_file(path, adjust)
    if kind == "file":
        raise DataError(f"{spec}: unsupported file type {suffix or '(none)'!r}; fix: {_FORMS}")
    if kind is not None:
        raise DataError(f"{short_repr(spec)}: {kind}, not a data file; fix: {_FORMS}")
    what = "file not found" if suffix in _SUFFIXES or os.sep in text else "unknown dataset"
    raise DataError(f"{what}: {short_repr(spec)}; fix: {_FORMS}")


def _path_kind(path: Path) -> str | None:
    """``"file"`` for a regular file, None when nothing is there, else what is there."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR):
            return None  # no file can have that name
        return "a symlink loop" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a socket or device"


def load_stored(spec: str, store: BarStore | None = None) -> pd.DataFrame:
    """The validated bars of one stored symbol (``store:AAPL``).

    Raises
    ------
    DataError
        A list of symbols, a symbol not in the store, an altered file, or bars that break a
        validation rule.
    """
    symbols = store_symbols(spec)
    if len(symbols) != 1:
        raise DataError(f"{short_repr(spec, 80)} names {len(symbols)} symbols where one dataset "
                        f"is expected; fix: pass one, e.g. {PREFIX}{symbols[0]}")
    store = store or BarStore(store_root())
    frame, entry = store.read(symbols[0])
    source = f"{PREFIX}{symbols[0]}"
    validate_ohlcv(frame, f"{source} ({store.root / entry.file})")
    return _finalise(frame, False, symbols[0], source)


def load_datasets(specs: Sequence[str], flag: str = "--data",
                  adjust: bool = True) -> dict[str, pd.DataFrame]:
    """Load several datasets, keyed by symbol, in the order given.

    ``specs`` is one comma list (see :func:`backtests.store.expand_specs`):
    ``store:AAPL,MSFT`` loads two stored symbols.

    Raises
    ------
    DataError
        A dataset cannot be loaded, or two of them have the same symbol (two files with one
        name, or a name given twice); ``flag`` names the option in the message.
    """
    frames: dict[str, pd.DataFrame] = {}
    given: dict[str, str] = {}
    for spec in expand_specs(specs):
        frame = load_dataset(spec, adjust)
        symbol = str(frame.attrs.get("symbol") or spec).upper()
        if symbol in frames:
            raise DataError(f"{flag} lists {short_repr(given[symbol], 80)} and "
                            f"{short_repr(spec, 80)}, both symbol {symbol}; list each symbol "
                            "once (rename a file if two share a name)")
        frames[symbol], given[symbol] = frame, spec
    return frames


def list_datasets(store: BarStore | None = None) -> list[dict[str, object]]:
    """Describe the embedded datasets (adjusted), then the symbols of ``store`` if given.

    Each row has name (``store:AAPL`` for a stored symbol), source, start, end (ISO dates)
    and bars.  Stored symbols are described from the store's index.
    """
    frames = [_embedded(name, True) for name in EMBEDDED]
    rows: list[dict[str, object]] = [
        {"name": f.attrs["symbol"], "source": f.attrs["source"], "bars": len(f),
         "start": f.index[0].date().isoformat(), "end": f.index[-1].date().isoformat()}
        for f in frames
    ]
    index = store.read_index() if store is not None else None
    for symbol, entry in (index.symbols.items() if index is not None else ()):
        rows.append({"name": f"{PREFIX}{symbol}", "bars": entry.rows,
                     "source": f"{store.root} ({entry.feed}, {entry.adjustment})",
                     "start": entry.first.isoformat(), "end": entry.last.isoformat()})
    return rows


def data_hash(df: pd.DataFrame) -> str:
    """Return the sha256 (hex) of a frame's index, column names and float64 values."""
    digest = hashlib.sha256()
    dates = pd.DatetimeIndex(df.index).as_unit("ns").asi8
    digest.update(np.ascontiguousarray(dates, dtype="<i8").tobytes())
    digest.update("\x1f".join(map(str, df.columns)).encode())
    digest.update(np.ascontiguousarray(df.to_numpy(dtype="float64"), dtype="<f8").tobytes())
    return digest.hexdigest()


def validate_ohlcv(df: pd.DataFrame, source: str) -> None:
    """Check bars against every data rule; return quietly or raise on the first violation.

    Parameters
    ----------
    df : pandas.DataFrame
        Bars with a ``DatetimeIndex`` and columns ``open, high, low, close, volume`` (an
        ``adj_close`` column, when present, is checked for NaN and sign too).
    source : str
        Where the bars came from (a file path or dataset name), quoted in the message.

    Raises
    ------
    DataError
        One line: source, 1-based data row and its date, the rule, and the fix.
    """
    if len(df) == 0:
        raise DataError(f"{source}: empty file: no data rows; fix: {_EMPTY_FIX}")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{source}: missing required column '{missing[0]}'; fix: add it")
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError(f"{source}: index is not a DatetimeIndex; fix: index the bars by date")
    cols = [c for c in (*COLUMNS, "adj_close") if c in df.columns]
    values = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64") for c in cols}
    for mask, describe, fix in _rules(df.index, values):
        hits = np.flatnonzero(mask)
        if hits.size:
            row, when = int(hits[0]), df.index[hits[0]]
            day = "NaT" if pd.isna(when) else when.date().isoformat()
            raise DataError(f"{source}: data row {row + 1} ({day}): {describe(row)}; fix: {fix}")


Rule = tuple[np.ndarray, Callable[[int], str], str]  # (violation mask, rule text at row, fix)


def _rules(index: pd.DatetimeIndex, v: dict[str, np.ndarray]) -> Iterator[Rule]:
    """Yield the rules in checking order, lazily: a rule sees only data the earlier ones passed."""
    yield np.asarray(index.isna()), lambda r: "missing or unparseable date", "use YYYY-MM-DD"
    nan = {c: np.isnan(x) for c, x in v.items()}
    yield (np.logical_or.reduce(list(nan.values())),
           lambda r: f"missing or non-numeric {_col_at(nan, r)} (NaN)", "fill in or drop the bar")
    inf = {c: np.isinf(x) for c, x in v.items()}
    yield (np.logical_or.reduce(list(inf.values())),
           lambda r: f"infinite {_col_at(inf, r)} ({v[_col_at(inf, r)][r]})",
           "fill in or drop the bar")
    huge = {c: np.abs(x) > (MAX_VOLUME if c == "volume" else MAX_PRICE) for c, x in v.items()}
    yield (np.logical_or.reduce(list(huge.values())),
           lambda r: f"absurd {_col_at(huge, r)} ({v[_col_at(huge, r)][r]:.6g}, above "
                     f"{MAX_VOLUME if _col_at(huge, r) == 'volume' else MAX_PRICE:.0e})",
           "check the file's units and scaling; correct or drop the bar")
    stamps = index.asi8
    yield (np.r_[False, stamps[1:] < stamps[:-1]],
           lambda r: f"dates not sorted ascending (after {index[r - 1].date().isoformat()})",
           "sort the rows by date, oldest first")
    yield (np.asarray(index.duplicated()), lambda r: "duplicate date",
           "keep one bar per date (resample intraday bars to daily)")
    bad = {c: x <= 0 for c, x in v.items() if c != "volume"}
    yield (np.logical_or.reduce(list(bad.values())),
           lambda r: f"non-positive {_col_at(bad, r)} ({v[_col_at(bad, r)][r]})",
           "prices must be > 0; correct or drop the bar")
    yield v["volume"] < 0, lambda r: f"negative volume ({v['volume'][r]})", "volume must be >= 0"
    high, low = v["high"], v["low"]
    top, bottom = np.maximum(v["open"], v["close"]), np.minimum(v["open"], v["close"])
    fix = "high/low must bracket open and close; correct the bar"
    yield (high < low - REL_TOL * np.abs(low), lambda r: f"high < low ({high[r]} < {low[r]})",
           "check for swapped high/low columns")
    yield (high < top - REL_TOL * np.abs(top),
           lambda r: f"high < max(open, close) ({high[r]} < {top[r]})", fix)
    yield (low > bottom + REL_TOL * np.abs(bottom),
           lambda r: f"low > min(open, close) ({low[r]} > {bottom[r]})", fix)


def _col_at(masks: dict[str, np.ndarray], row: int) -> str:
    return next(c for c, mask in masks.items() if mask[row])


def _map_columns(raw: pd.DataFrame, source: str) -> dict[str, Hashable]:
    found: dict[str, Hashable] = {}
    for col in raw.columns:
        key = str(col).strip().lower().replace(" ", "_").replace("-", "_")
        field = next((f for f, names in _ALIASES.items() if key in names), None)
        if field is not None and field not in found:
            found[field] = col
    required = [*COLUMNS] if isinstance(raw.index, pd.DatetimeIndex) else ["date", *COLUMNS]
    for field in required:
        if field not in found:
            spellings = ", ".join(_ALIASES[field])
            raise DataError(f"{source}: missing required column '{field}'; "
                            f"fix: add it (accepted spellings, any case: {spellings})")
    return found


def _standardise(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Map a raw table onto ``date``-indexed float64 OHLCV (+ ``adj_close`` when present)."""
    found = _map_columns(raw, source)
    stamps = raw[found["date"]] if "date" in found else raw.index
    index = session_dates(pd.Series(stamps), source).as_unit("ns").rename("date")
    fields = [f for f in (*COLUMNS, "adj_close") if f in found]
    data = {f: pd.to_numeric(raw[found[f]], errors="coerce").to_numpy("float64") for f in fields}
    return pd.DataFrame(data, index=index)


def _finalise(frame: pd.DataFrame, adjust: bool, symbol: str, source: str) -> pd.DataFrame:
    """Apply the adjusted-close factor (when asked and present), keep COLUMNS, set attrs.

    Scaling by a positive factor preserves the OHLC ordering, so no second validation is needed.
    """
    out = frame[list(COLUMNS)].copy()
    if adjust and "adj_close" in frame.columns:
        factor = frame["adj_close"] / frame["close"]
        out[PRICES] = out[PRICES].mul(factor, axis=0)
        out["volume"] = out["volume"] / factor
    out.attrs = {"symbol": symbol, "source": source}
    return out


def _load_file(path: Path, adjust: bool) -> pd.DataFrame:
    source = str(path)
    try:
        raw = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: empty file: no data rows; fix: {_EMPTY_FIX}") from None
    except (OSError, ValueError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{source}: cannot read file ({reason}); fix: {_FORMS}") from None
    frame = _standardise(raw, source)
    validate_ohlcv(frame, source)
    return _finalise(frame, adjust, path.stem.upper(), source)


@functools.lru_cache(maxsize=1)
def _bokeh_stocks() -> pd.DataFrame:
    try:
        from bokeh_sampledata import package_path
    except ImportError:
        raise DataError("AAPL/IBM/MSFT/GOOG need the bokeh-sampledata package; "
                        "fix: pip install bokeh-sampledata") from None
    return pd.read_csv(package_path("stocks.csv.gz"))  # Ticker,Date,Open,...,Adj Close


def _arch_raw(module: str) -> pd.DataFrame:
    """Read arch's bundled CSV directly: importing ``arch`` itself costs seconds."""
    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("SP500/NASDAQ need the arch package; fix: pip install arch")
    path = Path(spec.submodule_search_locations[0], "data", module, f"{module}.csv.gz")
    if path.is_file():
        return pd.read_csv(path)
    return importlib.import_module(f"arch.data.{module}").load()  # layout changed: slow path


def _repair_ohlc(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Widen high/low to bracket open/close (embedded vendor data only, never user files)."""
    top = np.maximum(frame["open"], frame["close"])
    bottom = np.minimum(frame["open"], frame["close"])
    bad = (frame["high"] < top) | (frame["low"] > bottom)
    frame["high"], frame["low"] = np.maximum(frame["high"], top), np.minimum(frame["low"], bottom)
    logger.debug("{}: widened high/low on {} of {} bars", source, int(bad.sum()), len(frame))
    return frame


@functools.cache
def _embedded(name: str, adjust: bool) -> pd.DataFrame:
    """Parse, repair and validate one embedded dataset (cached: callers must copy)."""
    if EMBEDDED[name] == "arch":
        raw, source = _arch_raw(name.lower()), f"arch:{name}"
    else:
        stocks = _bokeh_stocks()
        raw = stocks[stocks["Ticker"] == name].reset_index(drop=True)
        source = f"bokeh-sampledata:{name}"
    frame = _repair_ohlc(_standardise(raw, source), source)
    validate_ohlcv(frame, source)
    logger.debug("{}: {} bars {} to {}", source, len(frame), frame.index[0], frame.index[-1])
    return _finalise(frame, adjust, name, source)
