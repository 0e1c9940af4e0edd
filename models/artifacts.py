"""Model bundles: native model files plus a ``manifest.json`` that is verified on load.

The manifest records the sha256 of every file, the feature names in order, the horizon, the
training window, target statistics, validation metrics, the gate's verdict, the devices used
and library versions.  Nothing is pickled, and every JSON file is strict (``null``, never
``NaN``: :mod:`ensemble_bt.jsonio`).

Loading (:func:`verify_bundle`, then :func:`load_bundle`) refuses, with a one-line
:class:`BundleError`:

- a manifest that is not strict JSON or breaks :class:`Manifest` (types, dates, versions);
- a file in the bundle that the manifest does not list (a folder included), and a listed
  file that is missing or is not a plain file;
- a file whose sha256 differs from the manifest's;
- a file the model reads (:meth:`StackedEnsemble.files_needed`) that the manifest does not
  list, and a file its library cannot parse;
- a feature list or horizon that differs from the caller's.

The models are built from the very bytes that were hashed, so a file swapped after the check
is never loaded.  A library version that differs only warns (as scikit-learn does when
unpickling across versions).  Bundles saved before strict JSON may hold ``NaN`` in their
manifest: they are refused with a message that says to retrain them.
"""

from __future__ import annotations

import hashlib
import platform
import re
import shutil
from collections.abc import Mapping, Sequence
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from loguru import logger
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ensemble_bt import jsonio
from ensemble_bt.errors import BundleError
from models.learners.base import BundleFiles, brief
from models.stacking import StackedEnsemble

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
#: A manifest is a few kilobytes; anything near this is not one (and is not read into memory).
MAX_MANIFEST_BYTES = 4 << 20
_LIBRARIES = ("ensemble-bt", "xgboost", "lightgbm", "scikit-learn", "numpy", "tensorflow",
              "keras")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _quote(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso_date(text: str) -> str:
    try:
        if _ISO_DATE.fullmatch(text):
            date.fromisoformat(text)
            return text
    except ValueError:
        pass
    raise ValueError(f"{_quote(text)} is not a date (YYYY-MM-DD)")


def _is_plain_name(name: object) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..", MANIFEST)
            and Path(name).name == name and "\\" not in name)


def _plain_name(name: str) -> str:
    if not _is_plain_name(name):
        raise ValueError(f"{_quote(name)} is not the name of a file inside the bundle")
    return name


IsoDate = Annotated[str, AfterValidator(_iso_date)]
FileName = Annotated[str, AfterValidator(_plain_name)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class TrainingWindow(BaseModel):
    """Dates of the first training row and of the bar where the last training label ends."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    start: IsoDate
    end: IsoDate
    rows: int = Field(ge=1)
    last_row: IsoDate | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TrainingWindow:
        if self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


class Manifest(BaseModel):
    """The keys of ``manifest.json`` that loading and its callers rely on.

    Other keys (walk-forward report, gate, target statistics...) are kept as written.
    ``null`` in ``holdout_dir_acc`` or ``train_positive_pct`` is a number training could not
    compute (NaN).
    """

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)

    schema_version: int
    kind: Literal["stacked-ensemble"]
    files: dict[FileName, Sha256]
    feature_names: list[str]
    horizon: int = Field(ge=1)
    training_window: TrainingWindow | None = None
    holdout_dir_acc: float | None = None
    train_positive_pct: float | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    gate: dict[str, Any] | None = None

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"{value} is not {SCHEMA_VERSION}: another version of ensemble-bt "
                             "wrote this bundle")
        return value


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of Python and of every library a bundle's predictions depend on."""
    found = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _where(loc: Sequence[int | str]) -> str:
    """``('files', 'xgb.ubj')`` as ``files['xgb.ubj']``, ``('training_window', 'end')`` as
    ``training_window.end``."""
    text = ""
    for part in loc:
        if part == "[key]":
            text += " (a key)"
        elif isinstance(part, str) and part.isidentifier():
            text += f".{part}" if text else part
        else:
            text += f"[{_quote(part, 40)}]"
    return text or "the manifest"


def _schema_problem(exc: ValidationError) -> str:
    """The first schema error as ``key.path: problem``, quoting a rejected value briefly."""
    error = exc.errors(include_url=False)[0]
    where = _where(error["loc"])
    problem = error["msg"].removeprefix("Value error, ")
    if error["type"] not in ("value_error", "missing"):
        problem += f", got {_quote(error['input'])}"
    return f"{where}: {problem}"


def _checked(manifest: Any, path: Path) -> dict[str, Any]:
    """``manifest`` after :class:`Manifest`'s checks, with a null rate read back as NaN."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: holds a JSON {type(manifest).__name__}, not an object; "
                          "retrain the bundle")
    try:
        Manifest.model_validate(manifest)
    except ValidationError as exc:
        raise BundleError(f"{path}: {_schema_problem(exc)}; retrain the bundle") from None
    # Callers do arithmetic on these two; NaN is what training could not compute.
    return {**manifest, **{k: float("nan") for k in ("holdout_dir_acc", "train_positive_pct")
                           if k in manifest and manifest[k] is None}}


def _read_manifest_file(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise BundleError(f"{directory}: no {MANIFEST}; train a bundle with "
                          f"`ensemble-bt train --data D --out {directory}`")
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB, not a "
                              "manifest; retrain the bundle")
        manifest = jsonio.loads(path.read_bytes())
    except jsonio.NonStandardNumber as exc:
        raise BundleError(f"{path}: {exc} (bundles saved before strict JSON wrote NaN for a "
                          "missing number); retrain the bundle") from None
    except ValueError as exc:
        raise BundleError(f"{path}: not valid JSON ({brief(exc)}); retrain the bundle") from None
    except OSError as exc:
        raise BundleError(f"{path}: unreadable ({exc.strerror})") from None
    return _checked(manifest, path)


def _check_listing(directory: Path, listed: Mapping[str, str]) -> None:
    """The bundle holds its manifest and exactly the listed files, all plain files."""
    for name in listed:
        path = directory / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise BundleError(f"{path}: listed in {MANIFEST} but not a plain file; restore it "
                              "or retrain the bundle")
        if not path.is_file():
            raise BundleError(f"{path}: listed in {MANIFEST} but missing; restore it or "
                              "retrain the bundle")
    for path in sorted(directory.iterdir()):
        if path.name != MANIFEST and path.name not in listed:
            kind = "a folder" if path.is_dir() and not path.is_symlink() else "a file"
            raise BundleError(f"{path}: {kind} that {MANIFEST} does not list, so it cannot be "
                              "verified; a bundle holds only the files its manifest lists: "
                              "remove it, or retrain the bundle")


def _verified_files(directory: Path, listed: Mapping[str, str]) -> BundleFiles:
    """Every listed file's bytes, each read once and checked against its sha256."""
    contents = {}
    for name, digest in listed.items():
        path = directory / name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{path}: unreadable ({exc.strerror})") from None
        if hashlib.sha256(raw).hexdigest() != digest:
            raise BundleError(f"{path}: sha256 does not match {MANIFEST} (the file changed "
                              "after training); restore it or retrain the bundle")
        contents[name] = raw
    return BundleFiles(directory, contents)


def verify_bundle(directory: Path) -> tuple[dict[str, Any], BundleFiles]:
    """Check a bundle without loading its models; returns its manifest and verified files.

    The files are the bytes that were hashed; the model must be built from them
    (:meth:`StackedEnsemble.from_files`), not from the directory.
    """
    directory = Path(directory)
    manifest = _read_manifest_file(directory)
    _check_listing(directory, manifest["files"])
    files = _verified_files(directory, manifest["files"])
    files.require(StackedEnsemble.files_needed(StackedEnsemble.read_state(files)))
    return manifest, files


def read_manifest(directory: Path) -> dict[str, Any]:
    """The bundle's manifest, after every check of :func:`verify_bundle`."""
    return verify_bundle(directory)[0]


def _old_files(directory: Path) -> set[str]:
    """Files the previous manifest in ``directory`` listed (plain names only)."""
    try:
        files = jsonio.loads((directory / MANIFEST).read_bytes())["files"]
        return {name for name in files if _is_plain_name(name)}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _manifest_text(directory: Path, fields: Mapping[str, Any], files: dict[str, str]) -> str:
    """The strict JSON text of the manifest, refused if loading would refuse it."""
    manifest = {"schema_version": SCHEMA_VERSION, "kind": "stacked-ensemble", **fields,
                "libraries": library_versions(), "files": files}
    text = jsonio.dumps(manifest, indent=2) + "\n"
    _checked(jsonio.loads(text), directory / MANIFEST)
    return text


def save_bundle(directory: Path, model: StackedEnsemble, **fields: Any) -> Path:
    """Write ``model`` and its manifest into ``directory`` (created or retrained in place).

    The model is written to a staging folder first; its files then replace the bundle's, the
    files of learners that are no longer in the model are removed, and the manifest is
    written last, so an interrupted retrain fails verification instead of loading a mix.
    ``fields`` go into the manifest as given (feature_names, horizon, training_window, ...);
    a manifest that :class:`Manifest` refuses is not written.
    """
    directory = Path(directory)
    staging = directory.with_name(f".{directory.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        written = model.save(staging)
        files = {p.name: sha256_file(p) for p in written}
        text = _manifest_text(directory, fields, files)
        directory.mkdir(parents=True, exist_ok=True)
        stale = _old_files(directory) - set(files)
        (directory / MANIFEST).unlink(missing_ok=True)
        for name in files:
            (staging / name).replace(directory / name)
        for name in stale:
            (directory / name).unlink(missing_ok=True)
            logger.info("removed {} from the bundle: no longer part of the model", name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    jsonio.write_text_atomic(directory / MANIFEST, text)
    strays = sorted(p.name for p in directory.iterdir() if p.name not in {*files, MANIFEST})
    if strays:
        logger.warning("{} holds {} besides the bundle: loading refuses it until they are "
                       "removed", directory, ", ".join(strays[:5]))
    return directory


def check_contract(manifest: dict[str, Any], directory: Path,
                   feature_names: Sequence[str] | None, horizon: int | None) -> None:
    """Refuse a bundle whose features or horizon differ from the caller's pipeline."""
    theirs = list(manifest.get("feature_names", []))
    if feature_names is not None and theirs != list(feature_names):
        ours = list(feature_names)
        diff = next((i for i, (a, b) in enumerate(zip(theirs, ours, strict=False)) if a != b),
                    min(len(theirs), len(ours)))
        have = theirs[diff] if diff < len(theirs) else "(end)"
        want = ours[diff] if diff < len(ours) else "(end)"
        raise BundleError(
            f"{directory}: the bundle's {len(theirs)} features differ from this pipeline's "
            f"{len(ours)} at position {diff} ({_quote(have)} vs {_quote(want)}); retrain the "
            "bundle with this version of ensemble-bt")
    if horizon is not None and manifest.get("horizon") != horizon:
        raise BundleError(
            f"{directory}: the bundle predicts horizon {manifest.get('horizon')} but horizon "
            f"{horizon} was asked for; pass --horizon {manifest.get('horizon')} or retrain")
    ours_lib = library_versions()
    for name, theirs_version in manifest.get("libraries", {}).items():
        if ours_lib.get(name) not in (None, theirs_version):
            logger.warning("bundle {} was saved with {} {}, this is {}: predictions may differ",
                           directory, name, theirs_version[:80], ours_lib.get(name))


def training_end(manifest: dict[str, Any], directory: str | Path) -> pd.Timestamp:
    """The bar where the bundle's last training label ends: it may predict only after it.

    Raises
    ------
    BundleError
        The manifest has no training window (a bundle saved by hand, not by ``train``).
    """
    window = manifest.get("training_window")
    if not isinstance(window, dict) or not {"start", "end", "rows"} <= set(window):
        raise BundleError(f"{directory}: the manifest has no training window; retrain it with "
                          "`ensemble-bt train`")
    return pd.Timestamp(window["end"])


def load_bundle(directory: Path, *, feature_names: Sequence[str] | None = None,
                horizon: int | None = None) -> tuple[StackedEnsemble, dict[str, Any]]:
    """Verify and load a bundle; returns the model and its manifest.

    Raises
    ------
    BundleError
        The bundle fails a check of :func:`verify_bundle`, or its features or horizon differ
        from ``feature_names`` or ``horizon``.
    """
    manifest, files = verify_bundle(directory)
    check_contract(manifest, Path(directory), feature_names, horizon)
    return StackedEnsemble.from_files(files), manifest
