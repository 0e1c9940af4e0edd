"""Tampered bundles through the real ``ensemble-bt`` command: exit 2, one line, nothing written.

The shared planted bundle (tests/bundles.py) is the input; each case copies it into its
working folder, tampers with the copy, and runs ``backtest --bundle`` (or ``paper --bundle``)
on it with :func:`tests.badinput.assert_refused`, which also checks that no results
directory, paper state or change to the bundle appears.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from models.artifacts import MANIFEST
from tests.badinput import assert_refused, sample


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / MANIFEST).read_text())


def _write_manifest(bundle: Path, manifest: dict) -> None:
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        manifest = _manifest(bundle)
        change(manifest)
        _write_manifest(bundle, manifest)
    return edit


def _replace(name: str, content: Callable[[Path], bytes]) -> Callable[[Path], None]:
    """Replace ``name`` and update its sha256 in the manifest, as a careless fix would."""
    def replace(bundle: Path) -> None:
        (bundle / name).write_bytes(content(bundle))
        manifest = _manifest(bundle)
        manifest["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
        _write_manifest(bundle, manifest)
    return replace


def xgb_child_outside_the_tree(bundle: Path) -> bytes:
    """The first tree's root sends its left branch to node 2**31 - 1: XGBoost loads that, then
    a prediction reads past the tree and the process dies of SIGSEGV."""
    raw = bytearray((bundle / "xgb.ubj").read_bytes())
    at = raw.index(b"left_children[$l#L") + len(b"left_children[$l#L") + 8  # past the count
    raw[at:at + 4] = (2**31 - 1).to_bytes(4, "big")
    return bytes(raw)


def lgbm_parameter_line_edited(bundle: Path) -> bytes:
    """One ':' of the parameters section typed as '=': LightGBM's Python package dies of
    SIGSEGV reading it back on load."""
    text = (bundle / "lgbm.txt").read_text()
    assert "[min_data_in_bin: " in text
    return text.replace("[min_data_in_bin: ", "[min_data_in_bin= ", 1).encode()


def stack_edited_and_unlisted(bundle: Path) -> None:
    """The issue's case: weights set to [-50, 0] and stack.json dropped from the manifest."""
    state = json.loads((bundle / "stack.json").read_text())
    state["meta"]["weights"] = [-50, 0]
    (bundle / "stack.json").write_text(json.dumps(state))
    _edit(lambda m: m["files"].pop("stack.json"))(bundle)


def stack_unlisted_and_gone(bundle: Path) -> None:
    (bundle / "stack.json").unlink()
    _edit(lambda m: m["files"].pop("stack.json"))(bundle)


def nan_in_manifest(bundle: Path) -> None:
    """What manifests held before strict JSON when the walk-forward WFE was undefined."""
    text = json.dumps({**_manifest(bundle), "wfe": float("nan")}, indent=2)
    (bundle / MANIFEST).write_text(text)


CASES = {
    "stack.json edited and unlisted": (stack_edited_and_unlisted, ["stack.json", "not list"]),
    "an unlisted extra file": (lambda b: (b / "notes.txt").write_text("x"),
                               ["notes.txt", "not list", "remove it"]),
    "a folder inside the bundle": (lambda b: (b / "old").mkdir(), ["old", "a folder"]),
    "a listed file missing": (lambda b: (b / "lgbm.params.json").unlink(),
                              ["lgbm.params.json", "missing"]),
    "stack.json neither listed nor there": (stack_unlisted_and_gone,
                                            ["stack.json", "does not list it"]),
    "xgb.ubj replaced by LightGBM text, hash updated": (
        _replace("xgb.ubj", lambda b: (b / "lgbm.txt").read_bytes()),
        ["xgb.ubj", "not a readable XGBoost model"]),
    "lgbm.txt replaced by other text, hash updated": (
        _replace("lgbm.txt", lambda b: b"tree\nversion=v4\nend of trees\n"),
        ["lgbm.txt", "not a readable LightGBM model"]),
    "xgb.ubj with a child outside its tree, hash updated": (
        _replace("xgb.ubj", xgb_child_outside_the_tree),
        ["xgb.ubj", "not a readable XGBoost model", "node 0 points outside the tree"]),
    "lgbm.txt that crashes LightGBM, hash updated": (
        _replace("lgbm.txt", lgbm_parameter_line_edited),
        ["lgbm.txt", "not a readable LightGBM model", "SIGSEGV"]),
    "a manifest nested 100000 deep": (
        lambda b: (b / MANIFEST).write_text("[" * 100_000), ["manifest.json", "nested"]),
    "NaN in the manifest": (nan_in_manifest, ["manifest.json", "NaN", "retrain"]),
    "a training window ending 'soon'": (
        _edit(lambda m: m["training_window"].__setitem__("end", "soon")),
        ["training_window.end", "'soon'", "not a date"]),
    "files as a list": (_edit(lambda m: m.__setitem__("files", sorted(m["files"]))),
                        ["manifest.json", "files", "dictionary"]),
}


@pytest.mark.parametrize("case", sample(CASES, "stack.json edited and unlisted"))
def test_backtest_of_a_tampered_bundle_is_refused(case, planted, planted_bundle, tmp_path):
    tamper, needles = CASES[case]
    copy = Path(shutil.copytree(planted_bundle, tmp_path / "bundle"))
    tamper(copy)
    line = assert_refused(["backtest", "--data", str(planted), "--bundle", str(copy),
                           "--horizon", "1", "--out", str(tmp_path / "results")],
                          tmp_path, *needles)
    assert str(copy) in line


@pytest.mark.parametrize("case", sample(["stack.json edited and unlisted",
                                         "xgb.ubj replaced by LightGBM text, hash updated"],
                                        "stack.json edited and unlisted"))
def test_paper_with_a_tampered_bundle_is_refused(case, planted, planted_bundle, tmp_path):
    tamper, needles = CASES[case]
    copy = Path(shutil.copytree(planted_bundle, tmp_path / "bundle"))
    tamper(copy)
    config = tmp_path / "paper.yaml"
    config.write_text(f"bundle: {copy}\nhorizon: 1\n")
    assert_refused(["paper", "--config", str(config), "--replay", str(planted),
                    "--from", "2006-03-01", "--max-bars", "5", "--state", str(tmp_path / "s")],
                   tmp_path, *needles)
