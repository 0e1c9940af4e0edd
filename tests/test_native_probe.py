"""models.learners.probe: a native model is read in a child process before this one loads it.

The corrupt models here are ones that crash the libraries in-process (checked by hand: exit
139 or 134 past every handler); through the probe each is a ValueError naming what is wrong.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from models.learners import probe
from models.learners.gbm import load_lgbm_booster, load_xgb_booster

LEFT = b"left_children[$l#L"
SPLITS = b"split_indices[$l#L"


@pytest.fixture(scope="module")
def xgb_raw() -> bytes:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    booster = xgb.train({"max_depth": 3, "nthread": 1}, xgb.DMatrix(X, X[:, 0]), 10)
    return bytes(booster.save_raw("ubj"))


@pytest.fixture(scope="module")
def lgbm_raw() -> bytes:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    booster = lgb.train({"verbose": -1, "num_leaves": 7, "num_threads": 1},
                        lgb.Dataset(X, X[:, 0]), 10)
    return booster.model_to_string().encode()


def first_int32(raw: bytes, key: bytes, value: int) -> bytes:
    """``raw`` with the first element of the UBJSON int32 array after ``key`` set to ``value``."""
    at = raw.index(key) + len(key) + 8
    return raw[:at] + value.to_bytes(4, "big", signed=True) + raw[at + 4:]


def test_sound_models_pass_and_load_as_before(xgb_raw, lgbm_raw):
    X = np.random.default_rng(1).normal(size=(20, 5))

    probe.check_native("xgboost", xgb_raw)
    probe.check_native("lightgbm", lgbm_raw)

    assert load_xgb_booster(xgb_raw).inplace_predict(X).shape == (20,)
    assert load_lgbm_booster(lgbm_raw).predict(X).shape == (20,)


@pytest.mark.parametrize("value, needle", [(2**31 - 1, "node 0 points outside the tree"),
                                           (-7, "node 0 points outside the tree"),
                                           (0, "node 0 is reached twice")])
def test_an_xgboost_child_outside_the_tree_or_a_cycle_is_refused(xgb_raw, value, needle):
    with pytest.raises(ValueError, match=needle):
        load_xgb_booster(first_int32(xgb_raw, LEFT, value))


def test_an_xgboost_split_on_a_feature_the_model_lacks_is_refused(xgb_raw):
    with pytest.raises(ValueError, match="node 0 splits on feature 1000, the model has 5"):
        load_xgb_booster(first_int32(xgb_raw, SPLITS, 1000))


def test_a_model_that_crashes_the_library_is_refused_naming_the_signal(lgbm_raw):
    text = lgbm_raw.decode()
    line = text[text.index("split_feature="):text.index("\n", text.index("split_feature="))]
    wrecked = text.replace(line, "split_feature=" + " ".join(["999"] * len(line.split())), 1)

    with pytest.raises(ValueError, match=r"LightGBM cannot read it safely: it crashed with SIG"):
        load_lgbm_booster(wrecked.encode())


def test_a_refusal_in_the_librarys_own_words_is_left_to_the_load(xgb_raw):
    probe.check_native("xgboost", b"{not a model")

    with pytest.raises(ValueError) as refused:
        load_xgb_booster(b"{not a model")
    assert "safely" not in str(refused.value) and "reads it but" not in str(refused.value)


def test_a_child_that_does_not_answer_in_time_is_a_refusal(xgb_raw, monkeypatch):
    monkeypatch.setattr(probe, "TIMEOUT_S", 0.001)

    with pytest.raises(ValueError, match="still reading it after"):
        probe.check_native("xgboost", xgb_raw)
