"""One-off device check: the XGBoost CUDA path end to end, from a probe to a bundle manifest.

Run on a machine with a GPU: ``python -m benchmarks.gpu_check OUT_DIR``.  It fits the default
stack with ``device="auto"`` on generated AR(1) bars, saves a bundle, prints the manifest's
``devices`` line, and times the same fit on CPU for comparison.  Needs only ``models/`` and
its learner libraries (no backtrader), so it runs where the project is not installed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from backtests.synthetic import ar1_returns
from models.artifacts import save_bundle
from models.devices import resolve_devices
from models.features import FEATURE_NAMES, build_features
from models.metrics import information_coefficient
from models.stacking import StackedEnsemble
from models.targets import forward_log_return


def main(out: Path) -> None:
    ohlcv = ar1_returns(n=5000, seed=11)
    X = build_features(ohlcv).to_numpy()
    y = forward_log_return(ohlcv["close"], 1).to_numpy()
    train, test = np.arange(100, 4000), np.arange(4001, 4999)
    results = {}
    for label, devices in (("auto", resolve_devices("auto")), ("cpu", resolve_devices("cpu"))):
        start = time.perf_counter()
        model = StackedEnsemble(feature_names=FEATURE_NAMES, purge=1, devices=devices)
        model.fit(X[train], y[train])
        seconds = time.perf_counter() - start
        ic = information_coefficient(model.predict(X[test]), y[test])
        results[label] = {"devices": devices, "fit_seconds": round(seconds, 3), "test_ic": ic}
        if label == "auto":
            save_bundle(out / "bundle", model, feature_names=list(FEATURE_NAMES), horizon=1,
                        devices=devices)
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    print("manifest devices:", json.dumps(manifest["devices"]))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu-check"))
