"""On-disk cache of walk-forward predictions, one ``.npz`` per (symbol or universe, window,
model config).

A cost or sizing cell never changes what the models predict, so a grid trains once per
(dataset, window) and every cell of that pair reuses the arrays.  The key is the sha256 of the
data the models saw (:func:`backtests.datasets.data_hash` of the bars up to the window's end),
the first evaluation bar, and :func:`~backtests.robustness.config.prediction_hash`.  A file
that cannot be read, or whose recorded key or dates disagree with the request, is recomputed,
never trusted.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from loguru import logger

# Bump when the meaning of the cached arrays changes (features, vintages, signal).
CACHE_VERSION = 1


@dataclass(frozen=True)
class Predictions:
    """Walk-forward predictions over every bar up to a window's end (NaN before it).

    ``prediction`` is what :meth:`models.signal.VintageSignal.predict_batch` returns and
    ``prior`` what its ``prior_batch`` returns, on ``dates``.
    """

    dates: pd.DatetimeIndex
    prediction: np.ndarray
    prior: np.ndarray
    n_vintages: int
    leakage_audit: str


def cache_key(data_hash: str, start: pd.Timestamp, prediction_hash: str) -> str:
    """The hex key of one (data, first evaluation bar, model config) triple."""
    text = f"v{CACHE_VERSION}|{data_hash}|{start.isoformat()}|{prediction_hash}"
    return hashlib.sha256(text.encode()).hexdigest()


class PredictionCache:
    """``<folder>/<SYMBOL>_<FIRST>-<LAST>_<key>.npz``, written atomically."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, symbol: str, window_label: str, key: str) -> Path:
        safe = "".join(c if c.isalnum() else "-" for c in symbol)
        return self.folder / f"{safe}_{window_label.replace(':', '-')}_{key[:24]}.npz"

    def load(self, path: Path, key: str, dates: pd.DatetimeIndex) -> Predictions | None:
        """The cached predictions, or None when missing, unreadable or stale."""
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                stored_key = str(npz["key"])
                stored_dates = npz["dates"]
                pred = np.asarray(npz["prediction"], dtype=np.float64)
                prior = np.asarray(npz["prior"], dtype=np.float64)
                n_vintages, audit = int(npz["n_vintages"]), str(npz["leakage_audit"])
        except Exception as exc:  # whatever makes a file unreadable means: recompute it
            logger.warning("prediction cache {} is unreadable ({}); recomputing", path.name,
                           type(exc).__name__)
            return None
        expected = dates.as_unit("ns").asi8
        if (stored_key != key or not np.array_equal(stored_dates, expected)
                or pred.shape != expected.shape or prior.shape != expected.shape
                or audit != "pass"):
            logger.warning("prediction cache {} does not match its key; recomputing", path.name)
            return None
        return Predictions(dates, pred, prior, n_vintages, audit)

    def save(self, path: Path, key: str, predictions: Predictions) -> None:
        """Write to a temporary file beside the target, then rename over it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, key=np.array(key), dates=predictions.dates.as_unit("ns").asi8,
                     prediction=predictions.prediction, prior=predictions.prior,
                     n_vintages=np.array(predictions.n_vintages),
                     leakage_audit=np.array(predictions.leakage_audit))
        os.replace(tmp, path)


@dataclass(frozen=True)
class UniversePredictions:
    """A universe's walk-forward predictions: one :class:`Predictions` per symbol.

    ``n_vintages`` counts every vintage behind them (each symbol's, or the pooled fit's), and
    ``leakage_audit`` is the verdict over every (date, symbol) prediction of the window.
    """

    symbols: tuple[str, ...]
    each: tuple[Predictions, ...]
    n_vintages: int
    leakage_audit: str


def universe_cache_key(data_hashes: list[str], start: pd.Timestamp, model_hash: str) -> str:
    """The hex key of one (universe's data, first evaluation session, model config)."""
    return cache_key("+".join(data_hashes), start, model_hash)


def load_universe(path: Path, key: str, dates: dict[str, pd.DatetimeIndex],
                  ) -> UniversePredictions | None:
    """A universe's cached predictions, or None when missing, unreadable or stale.

    ``dates`` holds each symbol's bars up to the window's end, in the universe's order.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            stored = (str(npz["key"]), tuple(str(s) for s in npz["symbols"]),
                      int(npz["n_vintages"]), str(npz["leakage_audit"]))
            arrays = [(npz[f"dates_{i}"], np.asarray(npz[f"prediction_{i}"], dtype=np.float64),
                       np.asarray(npz[f"prior_{i}"], dtype=np.float64))
                      for i in range(len(stored[1]))]
    except Exception as exc:  # whatever makes a file unreadable means: recompute it
        logger.warning("prediction cache {} is unreadable ({}); recomputing", path.name,
                       type(exc).__name__)
        return None
    stored_key, symbols, n_vintages, audit = stored
    fits = stored_key == key and symbols == tuple(dates) and audit == "pass" and all(
        np.array_equal(d, dates[s].as_unit("ns").asi8) and p.shape == d.shape == q.shape
        for s, (d, p, q) in zip(symbols, arrays, strict=True))
    if not fits:
        logger.warning("prediction cache {} does not match its key; recomputing", path.name)
        return None
    each = tuple(Predictions(dates[s], p, q, 0, audit)
                 for s, (_, p, q) in zip(symbols, arrays, strict=True))
    return UniversePredictions(symbols, each, n_vintages, audit)


def save_universe(path: Path, key: str, predictions: UniversePredictions) -> None:
    """Write to a temporary file beside the target, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for i, p in enumerate(predictions.each):
        arrays |= {f"dates_{i}": p.dates.as_unit("ns").asi8, f"prediction_{i}": p.prediction,
                   f"prior_{i}": p.prior}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, key=np.array(key), symbols=np.array(predictions.symbols),
                 n_vintages=np.array(predictions.n_vintages),
                 leakage_audit=np.array(predictions.leakage_audit), **arrays)
    os.replace(tmp, path)
