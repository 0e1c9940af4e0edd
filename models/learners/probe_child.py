"""Read one native model in a throwaway process: the child half of :mod:`models.learners.probe`.

Run as ``python -I -S probe_child.py`` with a JSON header line on standard input (``kind``,
``library``: the path of the shared library the parent loaded, ``size``), then the model's
bytes.  It imports nothing beyond the standard library and calls the library's C API through
``ctypes``, so it starts in a few tens of milliseconds.  It answers one line on standard output:

- ``ok``: the library read the model, its trees point only inside themselves, and it predicted
  on a few rows;
- ``error <text>``: the library refused the model with an error of its own, which the parent's
  own load reports again;
- ``bad <text>``: the library read it, but its trees are inconsistent (a child outside the
  tree, a node reached twice, a split on a feature the model lacks).

A crash, an abort or a hang answers nothing: the parent reads that as the verdict.
"""

from __future__ import annotations

import ctypes
import json
import random
import sys
from typing import Any

MAX_FEATURES = 100_000  # beyond any model this project writes; a corrupt count stops here
PROBE_ROWS = 64


class Refused(Exception):
    """The library returned an error code."""


class Inconsistent(Exception):
    """The model loaded but its trees do not hold together."""


def probe_rows(n_features: int) -> Any:
    """Row-major float rows: random values at several scales, then zeros and large values."""
    rng = random.Random(0)
    values = [rng.gauss(0.0, 10.0 ** rng.randint(-3, 3)) for _ in range(PROBE_ROWS * n_features)]
    values += [0.0] * n_features + [1e30] * n_features + [-1e30] * n_features
    return (ctypes.c_float * len(values))(*values), PROBE_ROWS + 3


def check_xgboost_tree(t: int, tree: dict, n_features: int) -> None:
    """Walk tree ``t`` from its root: every child inside the tree, every node reached once (no
    cycle), every split on one of the model's features."""
    n = int(tree["tree_param"]["num_nodes"])
    left, right, split = tree["left_children"], tree["right_children"], tree["split_indices"]
    columns = ("left_children", "right_children", "split_indices", "split_conditions",
               "default_left")
    if n < 1 or any(len(tree[c]) != n for c in columns):
        raise Inconsistent(f"tree {t}: its node arrays are not all {n} long")
    seen: set[int] = set()
    stack = [0]
    while stack:
        node = stack.pop()
        if node in seen:
            raise Inconsistent(f"tree {t}: node {node} is reached twice")
        seen.add(node)
        if left[node] == -1 and right[node] == -1:
            continue
        if not (0 <= left[node] < n and 0 <= right[node] < n):
            raise Inconsistent(f"tree {t}: node {node} points outside the tree")
        if not 0 <= split[node] < n_features:
            raise Inconsistent(f"tree {t}: node {node} splits on feature {split[node]}, the "
                               f"model has {n_features}")
        stack += [left[node], right[node]]


def check_xgboost_json(doc: dict) -> None:
    learner = doc["learner"]
    n_features = int(learner["learner_model_param"]["num_feature"])
    for t, tree in enumerate(learner["gradient_booster"]["model"]["trees"]):
        check_xgboost_tree(t, tree, n_features)


def check_lightgbm_json(doc: dict) -> None:
    n_features = int(doc["max_feature_idx"]) + 1
    for t, info in enumerate(doc["tree_info"]):
        nodes = [info["tree_structure"]]
        while nodes:
            node = nodes.pop()
            if "split_feature" in node:
                if not 0 <= int(node["split_feature"]) < n_features:
                    raise Inconsistent(f"tree {t} splits on feature {node['split_feature']}, "
                                       f"the model has {n_features}")
                nodes += [node["left_child"], node["right_child"]]


def checked(lib: Any, code: int) -> None:
    """Refused, with the library's own first line, when a C API call returned an error."""
    if code != 0:
        last_error = lib.LGBM_GetLastError if lib.kind == "lightgbm" else lib.XGBGetLastError
        last_error.restype = ctypes.c_char_p
        raise Refused(last_error().decode(errors="replace").splitlines()[0][:300])


def read_xgboost(lib: Any, raw: bytes) -> None:
    u64 = ctypes.c_uint64
    handle = ctypes.c_void_p()
    checked(lib, lib.XGBoosterCreate(None, u64(0), ctypes.byref(handle)))
    checked(lib, lib.XGBoosterLoadModelFromBuffer(handle, raw, u64(len(raw))))
    size, text = u64(), ctypes.c_char_p()
    checked(lib, lib.XGBoosterSaveModelToBuffer(handle, b'{"format": "json"}', ctypes.byref(size),
                                                ctypes.byref(text)))
    check_xgboost_json(json.loads(ctypes.string_at(text, size.value)))
    n_features = u64()
    checked(lib, lib.XGBoosterGetNumFeature(handle, ctypes.byref(n_features)))
    if not 0 < n_features.value <= MAX_FEATURES:
        raise Inconsistent(f"it claims {n_features.value} features")
    rows, n_rows = probe_rows(n_features.value)
    matrix = ctypes.c_void_p()
    checked(lib, lib.XGDMatrixCreateFromMat(rows, u64(n_rows), u64(n_features.value),
                                            ctypes.c_float(float("nan")), ctypes.byref(matrix)))
    out_len, out = u64(), ctypes.POINTER(ctypes.c_float)()
    checked(lib, lib.XGBoosterPredict(handle, matrix, 0, 0, 0, ctypes.byref(out_len),
                                      ctypes.byref(out)))


def lightgbm_text(lib: Any, call: Any) -> bytes:
    """A string LightGBM writes into a caller's buffer: asked for its length, then fetched."""
    needed = ctypes.c_int64()
    checked(lib, call(ctypes.c_int64(0), ctypes.byref(needed), None))
    buffer = ctypes.create_string_buffer(needed.value + 1)
    checked(lib, call(ctypes.c_int64(needed.value + 1), ctypes.byref(needed), buffer))
    return buffer.value


def read_lightgbm(lib: Any, raw: bytes) -> None:
    handle, iterations = ctypes.c_void_p(), ctypes.c_int()
    checked(lib, lib.LGBM_BoosterLoadModelFromString(ctypes.c_char_p(raw),
                                                     ctypes.byref(iterations),
                                                     ctypes.byref(handle)))
    classes = ctypes.c_int()
    checked(lib, lib.LGBM_BoosterGetNumClasses(handle, ctypes.byref(classes)))
    # the Python package reads the parameters section on every load
    json.loads(lightgbm_text(lib, lambda *a: lib.LGBM_BoosterGetLoadedParam(handle, *a)))
    check_lightgbm_json(json.loads(lightgbm_text(
        lib, lambda *a: lib.LGBM_BoosterDumpModel(handle, 0, -1, 0, *a))))
    n_features = ctypes.c_int()
    checked(lib, lib.LGBM_BoosterGetNumFeature(handle, ctypes.byref(n_features)))
    if not 0 < n_features.value <= MAX_FEATURES:
        raise Inconsistent(f"it claims {n_features.value} features")
    rows, n_rows = probe_rows(n_features.value)
    out_len = ctypes.c_int64()
    checked(lib, lib.LGBM_BoosterCalcNumPredict(handle, ctypes.c_int(n_rows), 0, 0, -1,
                                                ctypes.byref(out_len)))
    if not 0 < out_len.value <= n_rows * 1000:
        raise Inconsistent(f"it would write {out_len.value} predictions for {n_rows} rows")
    out = (ctypes.c_double * out_len.value)()
    checked(lib, lib.LGBM_BoosterPredictForMat(
        handle, rows, 0, ctypes.c_int32(n_rows), ctypes.c_int32(n_features.value), 1, 0, 0, -1,
        b"num_threads=1", ctypes.byref(out_len), out))


def verdict(lib: Any, read: Any, raw: bytes) -> str:
    """The one-line answer for the parent (see the module docstring)."""
    try:
        read(lib, raw)
    except Refused as exc:
        return f"error {exc}"
    except Inconsistent as exc:
        return f"bad {exc}"
    except (KeyError, TypeError, ValueError, IndexError) as exc:  # the dump is not the usual shape
        return f"bad it does not read back whole ({type(exc).__name__}: {exc})"
    return "ok"


def main() -> None:
    header = json.loads(sys.stdin.buffer.readline())
    raw = sys.stdin.buffer.read(int(header["size"]))
    lib = ctypes.CDLL(header["library"])
    lib.kind = header["kind"]
    read = {"xgboost": read_xgboost, "lightgbm": read_lightgbm}[header["kind"]]
    sys.stdout.write(verdict(lib, read, raw) + "\n")  # the protocol's answer, not a log line


if __name__ == "__main__":
    main()
