"""Train one deep vintage on the GPU (mixed precision) and on the CPU; print both times.

Run on a machine with a CUDA GPU and TensorFlow: ``python -m benchmarks.gpu_deep_check``.
Synthetic planted-signal features (AR(1), phi 0.2), the learners' default sizes.
"""

from __future__ import annotations

import json
import time

import numpy as np

from backtests.synthetic import ar1_returns
from models.features import build_features
from models.learners.deep import LSTMLearner, XLSTMLearner
from models.metrics import information_coefficient
from models.targets import forward_log_return


def main() -> None:
    import tensorflow as tf

    ohlcv = ar1_returns(n=3000, seed=11)
    X = build_features(ohlcv).to_numpy()
    y = forward_log_return(ohlcv["close"], 1).to_numpy()
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    X, y = X[ok], y[ok]
    train, test = slice(0, 2000), slice(2000, None)
    out = {"gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
           "tensorflow": tf.__version__}
    for cls in (LSTMLearner, XLSTMLearner):
        for device in ("cuda", "cpu"):
            learner = cls(device=device, seed=0)
            start = time.perf_counter()
            learner.fit(X[train], y[train])
            seconds = time.perf_counter() - start
            ic = information_coefficient(learner.predict(X[test]), y[test])
            out[f"{cls.__name__}:{device}"] = {"fit_s": round(seconds, 2),
                                               "device_used": learner.device_used_,
                                               "test_ic": round(float(ic), 4)}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
