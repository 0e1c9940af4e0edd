"""Which device each learner library can use here, found by probing, not by guessing.

- XGBoost: ``device="cuda"`` when a tiny training run on CUDA keeps its device (a build or
  machine without a GPU falls back to CPU and says so in its config), else ``"cpu"``.
- LightGBM: ``device_type="gpu"`` only when its GPU build trains a tiny model, else ``"cpu"``.

Probes run once per process.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from typing import Literal

import numpy as np
from loguru import logger

DeviceChoice = Literal["auto", "cpu", "cuda"]


@lru_cache(maxsize=1)
def xgboost_cuda_available() -> bool:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    data = xgb.DMatrix(rng.random((64, 3)), label=rng.random(64))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            booster = xgb.train({"device": "cuda", "tree_method": "hist", "verbosity": 0},
                                data, num_boost_round=1)
        device = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
    except Exception as exc:  # any failure means "not usable here"
        logger.debug("xgboost CUDA probe failed: {}", exc)
        return False
    return device.startswith("cuda")


@lru_cache(maxsize=1)
def lightgbm_gpu_available() -> bool:
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    try:
        lgb.train({"device_type": "gpu", "verbosity": -1},
                  lgb.Dataset(rng.random((64, 3)), label=rng.random(64)), num_boost_round=1)
    except Exception as exc:  # no GPU build, no OpenCL device, no driver
        logger.debug("lightgbm GPU probe failed: {}", exc)
        return False
    return True


def resolve_devices(choice: DeviceChoice = "auto") -> dict[str, str]:
    """Device per learner library: ``{"xgb": "cuda"|"cpu", "lgbm": "gpu"|"cpu"}``.

    ``cpu`` forces CPU; ``cuda`` and ``auto`` use a GPU where its probe succeeds (``cuda`` logs
    a warning when none answers).
    """
    if choice == "cpu":
        devices = {"xgb": "cpu", "lgbm": "cpu"}
    else:
        devices = {"xgb": "cuda" if xgboost_cuda_available() else "cpu",
                   "lgbm": "gpu" if lightgbm_gpu_available() else "cpu"}
        if choice == "cuda" and devices["xgb"] == "cpu":
            logger.warning("device 'cuda' requested but no CUDA device answered; using CPU")
    logger.info("learner devices: xgboost={}, lightgbm={}", devices["xgb"], devices["lgbm"])
    return devices
