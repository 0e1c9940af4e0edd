"""What every base learner shares: the purged validation split, input checks, and files.

A saved model is read through :class:`BundleFiles`: from a directory, or from bytes that
:func:`models.artifacts.load_bundle` has already checked against the manifest, so that what is
loaded is exactly what was verified.  Every learner declares the files it reads
(:meth:`Learner.file_names`), and a file the native library cannot parse is refused with a
:class:`BundleError` naming it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
from loguru import logger

from ensemble_bt import jsonio
from ensemble_bt.errors import BundleError, ConfigurationError, NotFittedError

T = TypeVar("T")
_XGB_PREFIX = re.compile(r"^\[[\d:]+\] \S+?:\d+: ")


_INSTALL = "pip install 'ensemble-bt[deep]'"


def tensorflow_available() -> bool:
    """True when both ``tensorflow`` and ``keras`` can be imported (checked without importing)."""
    for name in ("tensorflow", "keras"):
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def missing_tensorflow_message(name: str) -> str:
    return (f"model {name!r} needs TensorFlow, which is not importable here: "
            f"install ensemble-bt[deep] ({_INSTALL}) or drop {name} from --models")


def purged_tail_split(n_rows: int, val_fraction: float, purge: int) -> tuple[slice, slice]:
    """Split ``n_rows`` time-ordered rows into a training head and a validation tail.

    Parameters
    ----------
    n_rows : int
        Number of rows, oldest first.
    val_fraction : float
        Share of rows in the validation tail, in (0, 0.5].
    purge : int
        Rows dropped between head and tail; equal to the label horizon so that no training
        label ends inside the validation period.

    Returns
    -------
    (slice, slice)
        Training rows and validation rows.
    """
    n_val = max(int(round(n_rows * val_fraction)), 20)
    n_train = n_rows - n_val - purge
    if n_train < 50:
        raise ConfigurationError(
            f"too few training rows ({n_rows}) for a purged validation tail of {n_val} rows "
            f"and a purge of {purge}: increase min_train"
        )
    return slice(0, n_train), slice(n_rows - n_val, n_rows)


def _as_matrix(X: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(X, dtype=np.float64))


def check_xy(X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` as float arrays, after the checks every learner's ``fit`` makes."""
    X = _as_matrix(X)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(y):
        raise ConfigurationError(
            f"X must be 2-D with one row per label; got {X.shape}, {y.shape}")
    if not np.isfinite(y).all():
        raise ConfigurationError("y holds NaN or inf: drop unlabeled rows before fit")
    return X, y


def brief(exc: BaseException, limit: int = 160) -> str:
    """The first line of ``exc``'s message, cut to ``limit`` characters, for a one-line error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def native_stderr_to_debug_log() -> Iterator[None]:
    """Move what is written to file descriptor 2 meanwhile into the debug log.

    Native libraries write there directly, past Python: TensorFlow's C++ start-up lines, and
    LightGBM's ``[LightGBM] [Fatal]`` line before it raises.  Left alone they turn a CLI's
    one-line error into several.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                logger.debug("native: {}", line)


class BundleFiles:
    """The files of a saved model, by name: read from ``directory``, or served from
    ``verified`` bytes only.

    :func:`models.artifacts.load_bundle` passes the bytes it checked against the manifest's
    sha256, so a loader never reads a file twice or reads one that was not verified; a name
    those bytes lack was not listed in the manifest and is refused.  Without ``verified``
    (``learner.load(directory)``) the files are read from disk as they are.
    """

    def __init__(self, directory: Path, verified: Mapping[str, bytes] | None = None) -> None:
        self.directory = Path(directory)
        self._verified = None if verified is None else dict(verified)

    def path(self, name: str) -> Path:
        """Where ``name`` lies (for messages; never read directly once verified)."""
        return self.directory / name

    def __contains__(self, name: object) -> bool:
        if self._verified is not None:
            return name in self._verified
        return isinstance(name, str) and self.path(name).is_file()

    def _absent(self, name: str) -> BundleError:
        if self._verified is not None:
            return BundleError(f"{self.path(name)}: the model reads it but the bundle's "
                               "manifest.json does not list it; retrain the bundle")
        return BundleError(f"{self.path(name)}: missing; re-save the model")

    def require(self, names: Iterable[str]) -> None:
        """Refuse the first of ``names`` that is not there (before loading anything)."""
        for name in names:
            if name not in self:
                raise self._absent(name)

    def error(self, name: str, problem: str) -> BundleError:
        """The one-line error for ``name``: its path, the problem and the fix."""
        return BundleError(f"{self.path(name)}: {problem}; restore it or retrain the bundle")

    def read(self, name: str) -> bytes:
        """The bytes of ``name``; a BundleError when it is absent (or was not verified)."""
        if self._verified is not None:
            if name not in self._verified:
                raise self._absent(name)
            return self._verified[name]
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            raise self._absent(name) from None
        except OSError as exc:
            raise self.error(name, f"unreadable ({exc.strerror})") from None

    def json(self, name: str) -> dict[str, Any]:
        """The file's strict JSON object (no NaN, bounded nesting)."""
        try:
            value = jsonio.loads(self.read(name))
        except ValueError as exc:
            raise self.error(name, f"not valid JSON ({brief(exc)})") from None
        if not isinstance(value, dict):
            raise self.error(name, f"holds a JSON {type(value).__name__}, not an object")
        return value

    @contextlib.contextmanager
    def reading(self, name: str) -> Iterator[None]:
        """Turn a missing key or a wrong value met while using ``name``'s content into a
        BundleError naming the file, instead of a traceback."""
        try:
            yield
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise self.error(name, f"unexpected content ({type(exc).__name__}: "
                                   f"{brief(exc)})") from None

    def native(self, name: str, what: str, load: Callable[[bytes], T]) -> T:
        """``load(bytes of name)``, with the library's failure turned into a BundleError."""
        raw = self.read(name)
        if not raw:  # XGBoost aborts the process on an empty buffer
            raise self.error(name, f"empty, not {what}")
        try:
            with native_stderr_to_debug_log():
                return load(raw)
        except Exception as exc:  # each library fails in its own way; all mean "not a model"
            raise self.error(name, f"not a readable {what} ({brief(exc)})") from None


class Learner:
    """Shared estimator plumbing: parameters, fit checks and the saved parameter file."""

    name: ClassVar[str] = ""
    #: Suffix of the native model file (``<name><suffix>``).
    model_suffix: ClassVar[str] = ""
    #: Earlier rows a prediction reads (0: each row alone; see ``models.learners.deep``).
    context_rows: ClassVar[int] = 0

    @classmethod
    def file_names(cls) -> tuple[str, str]:
        """The files ``save`` writes and ``load`` reads: the native model, then its parameters."""
        return f"{cls.name}{cls.model_suffix}", f"{cls.name}.params.json"

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters, read from its signature (as scikit-learn does)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {k: getattr(self, k) for k in names}

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(X, y) first")

    def _split(self, X: Any, y: Any) -> tuple[np.ndarray, ...]:
        X, y = check_xy(X, y)
        tr, va = purged_tail_split(len(y), self.val_fraction, self.purge)
        return X[tr], y[tr], X[va], y[va]

    def _write_params(self, directory: Path, **extra: Any) -> Path:
        path = Path(directory) / self.file_names()[1]
        meta = {"params": self.get_params(), "best_iteration": self.best_iteration_, **extra}
        jsonio.write_text_atomic(path, jsonio.dumps(meta, sort_keys=True, indent=1))
        return path

    @classmethod
    def _from_params(cls, files: BundleFiles) -> tuple[Self, dict[str, Any]]:
        """A learner built from its parameter file, and that file's content."""
        name = cls.file_names()[1]
        meta = files.json(name)
        with files.reading(name):
            learner = cls(**dict(meta["params"]))
            learner.best_iteration_ = int(meta["best_iteration"])
        return learner, meta

    @classmethod
    def load(cls, directory: Path) -> Self:
        """The learner saved in ``directory``, read as it is (a bundle is verified first:
        :func:`models.artifacts.load_bundle`)."""
        return cls.from_files(BundleFiles(directory))

    @classmethod
    def from_files(cls, files: BundleFiles) -> Self:
        """The learner from :meth:`file_names` in ``files``."""
        raise NotImplementedError


