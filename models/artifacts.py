"""Model bundles: native model files plus a ``manifest.json`` that is verified on load.

The manifest records the sha256 of every file, the feature names in order, the horizon, the
training window, target statistics, validation metrics, the gate's verdict, the devices used
and library versions.  Loading refuses a missing or altered file, a feature list or horizon
that differs from the caller's, and warns when a library version differs (as scikit-learn
does when unpickling across versions).  Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from loguru import logger

from models.errors import BundleError
from models.stacking import StackedEnsemble

MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
_LIBRARIES = ("ensemble-bt", "xgboost", "lightgbm", "scikit-learn", "numpy", "tensorflow",
              "keras")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _old_files(directory: Path) -> set[str]:
    try:
        return set(json.loads((directory / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def save_bundle(directory: Path, model: StackedEnsemble, **fields: Any) -> Path:
    """Write ``model`` and its manifest into ``directory`` (created or retrained in place).

    The model is written to a staging folder first; its files then replace the bundle's, the
    files of learners that are no longer in the model are removed, and the manifest is
    written last, so an interrupted retrain fails verification instead of loading a mix.
    ``fields`` go into the manifest as given (feature_names, horizon, training_window, ...).
    """
    directory = Path(directory)
    staging = directory.with_name(f".{directory.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        written = model.save(staging)
        files = {p.name: sha256_file(p) for p in written}
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
    manifest = {"schema_version": SCHEMA_VERSION, "kind": "stacked-ensemble", **fields,
                "libraries": library_versions(), "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return directory


def read_manifest(directory: Path) -> dict[str, Any]:
    """The bundle's manifest, with every listed file checked against its sha256."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise BundleError(f"{directory}: no {MANIFEST}; train a bundle with "
                          f"`ensemble-bt train --data D --out {directory}`")
    try:
        manifest = json.loads(path.read_text())
        files = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc}); retrain the bundle") from None
    for name, digest in files.items():
        if Path(name).name != name:
            raise BundleError(f"{path}: file entry {name!r} is not a plain file name")
        target = directory / name
        if not target.is_file():
            raise BundleError(f"{target}: listed in {MANIFEST} but missing; restore it or "
                              "retrain the bundle")
        if sha256_file(target) != digest:
            raise BundleError(f"{target}: sha256 does not match {MANIFEST} (the file changed "
                              "after training); restore it or retrain the bundle")
    return manifest


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
            f"{len(ours)} at position {diff} ({have!r} vs {want!r}); retrain the bundle with "
            "this version of ensemble-bt")
    if horizon is not None and manifest.get("horizon") != horizon:
        raise BundleError(
            f"{directory}: the bundle predicts horizon {manifest.get('horizon')} but horizon "
            f"{horizon} was asked for; pass --horizon {manifest.get('horizon')} or retrain")
    ours_lib = library_versions()
    for name, theirs_version in manifest.get("libraries", {}).items():
        if ours_lib.get(name) not in (None, theirs_version):
            logger.warning("bundle {} was saved with {} {}, this is {}: predictions may differ",
                           directory, name, theirs_version, ours_lib.get(name))


def load_bundle(directory: Path, *, feature_names: Sequence[str] | None = None,
                horizon: int | None = None) -> tuple[StackedEnsemble, dict[str, Any]]:
    """Verify and load a bundle; returns the model and its manifest."""
    manifest = read_manifest(directory)
    check_contract(manifest, Path(directory), feature_names, horizon)
    return StackedEnsemble.load(Path(directory)), manifest
