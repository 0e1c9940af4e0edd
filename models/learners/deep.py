"""TensorFlow/Keras 3 sequence learners (``lstm``, ``xlstm``) with the GBMs' interface.

TensorFlow is imported lazily, inside ``fit`` and ``load``: ``models`` works without it, and
naming a deep learner without it raises a one-line :class:`ConfigurationError` that says
``install ensemble-bt[deep]``.

Training discipline (the earlier TF models collapsed to constant one-signed predictions):

- **Causal windows.** Row ``t`` is predicted from the window of rows ``t-seq_len+1 .. t`` of
  the matrix it is given, so it never sees a later row.  The first ``seq_len-1`` rows of a
  matrix have no full history; their windows are padded by repeating the matrix's first row.
  Callers therefore pass ``context_rows`` (``seq_len - 1``) earlier rows in front of the rows
  they want and drop that many predictions: the walk-forward folds
  (:func:`models.walkforward.out_of_fold`), the batch signal and the streaming signal
  (:class:`models.signal.VintageSignal`) all do, so every predicted bar sees its real
  history, and a bar predicted alone (paper trading) gets the same window as in a batch.
- **Trainers are reused.** Tracing the training step is most of a CPU fit (about 5 of 7
  s), and every vintage retrains the same architecture, so one compiled model per
  architecture is kept (:data:`_TRAINERS`).  Each fit loads the seeded initial weights (and
  dropout seed states) into it, resets its optimizer to its start state, trains, and copies
  the weights out to a model of its own: a fit on a reused trainer equals a fit on a new one
  bit for bit (tests/test_deep.py), and later fits take about half the time.
- **Inference** runs through one ``tf.function`` per model with an unknown batch size (no
  retracing), about 2 ms per streamed bar on CPU.  Batch and one-row calls run different
  float32 kernels: they agree to about 1e-7 of the prediction's scale, not bit for bit (the
  GBMs agree exactly).
- **Scaling.** Features are standardised with a StandardScaler fitted on the training head
  only (not the validation tail).  Targets are de-meaned and divided by their std on the
  same rows; the offset and scale are stored and saved, and predictions are mapped back.
- **Early stopping** on the purged validation tail of
  :func:`models.learners.base.purged_tail_split`, restoring the best epoch's weights.
- **Collapse monitor.** After training, the std of the predictions on the validation tail is
  compared with the target's (:func:`models.metrics.variance_collapse`); below
  ``collapse_fraction`` the learner sets ``collapsed_ = True`` and logs a warning, and a stack
  gives it weight 0 (:class:`models.stacking.StackedEnsemble`).
- **Reproducible.** ``keras.utils.set_random_seed(seed)`` and
  ``tf.config.experimental.enable_op_determinism()``; CPU runs are float32, mixed precision
  (``mixed_float16``) is used only when ``device="cuda"`` and TensorFlow sees a GPU.

Loss: ``mse`` is the default; the experiment behind that choice is in benchmarks/RESULTS.md
("Deep sequence learners", "Loss choice").

Saved as ``<name>.keras`` (Keras' native zip: config + weights, no pickle) plus
``<name>.params.json`` (parameters, scaler, target offset and scale, collapse verdict).
"""

from __future__ import annotations

import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger

from ensemble_bt.errors import ConfigurationError
from models.learners.base import (
    BundleFiles,
    Learner,
    _as_matrix,
    check_xy,
    missing_tensorflow_message,
    native_stderr_to_debug_log,
    purged_tail_split,
)
from models.metrics import information_coefficient, sign_imbalance, variance_collapse

LOSSES = ("mse", "directional_huber")


def _import_tf(name: str) -> tuple[Any, Any]:
    """``(tensorflow, keras)``, or a ConfigurationError naming the extra to install."""
    tf, keras = sys.modules.get("tensorflow"), sys.modules.get("keras")
    if tf is not None and keras is not None:  # imported before (None: hidden by a test)
        return tf, keras
    try:
        with native_stderr_to_debug_log():
            import keras
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe prints here, once
    except ImportError:
        raise ConfigurationError(missing_tensorflow_message(name)) from None
    return tf, keras


#: Compiled trainers by architecture, with their optimizer's start state (``_trainer``).
_TRAINERS: dict[tuple[Any, ...], tuple[Any, list[np.ndarray]]] = {}


def causal_windows(X: np.ndarray, seq_len: int) -> np.ndarray:
    """``(n, seq_len, f)`` windows; window ``t`` holds rows ``t-seq_len+1 .. t`` of ``X``.

    Positions before row 0 repeat row 0, so every row has a window and none sees a later row.
    """
    offsets = np.arange(-seq_len + 1, 1)
    idx = np.maximum(np.arange(len(X))[:, None] + offsets[None, :], 0)
    return np.ascontiguousarray(X[idx], dtype=np.float32)


class _SequenceLearner(Learner):
    """Shared fit/predict/save of the Keras sequence learners; see the module docstring.

    Parameters
    ----------
    seq_len : int
        Rows in each causal window.
    units : int
        Width of the recurrent and attention layers.
    n_blocks : int
        Transformer blocks (``lstm``) or sLSTM blocks (``xlstm``).
    n_heads : int
        Attention heads (``lstm`` only).
    dropout : float
        Dropout inside the blocks.
    l2 : float
        L2 penalty on the output layer.
    loss : {"directional_huber", "mse"}
        Training loss on standardised targets; ``directional_huber`` is Huber(``huber_delta``)
        plus ``direction_penalty * relu(-y * pred)``.
    learning_rate : float
        Adam learning rate.
    epochs, batch_size, patience
        Epoch cap, minibatch size and early-stopping patience (epochs without a better
        validation loss).
    val_fraction, purge
        The purged validation tail, as in the GBMs.
    collapse_fraction : float
        ``collapsed_`` when prediction std on the validation tail is below this fraction of
        the target's std.
    seed : int
        Seed of weights, shuffling and dropout.
    device : {"cpu", "cuda"}
        ``cuda`` uses TensorFlow's GPU (and mixed precision) when it sees one.
    """

    name = ""
    model_suffix = ".keras"

    def __init__(self, seq_len: int = 16, units: int = 16, n_blocks: int = 1, n_heads: int = 2,
                 dropout: float = 0.0, l2: float = 0.0, loss: str = "mse",
                 huber_delta: float = 1.0, direction_penalty: float = 0.5,
                 learning_rate: float = 2e-3, epochs: int = 12, batch_size: int = 256,
                 patience: int = 3, val_fraction: float = 0.2, purge: int = 5,
                 collapse_fraction: float = 0.01, seed: int = 0, device: str = "cpu") -> None:
        self.seq_len = seq_len
        self.units = units
        self.n_blocks = n_blocks
        self.n_heads = n_heads
        self.dropout = dropout
        self.l2 = l2
        self.loss = loss
        self.huber_delta = huber_delta
        self.direction_penalty = direction_penalty
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.val_fraction = val_fraction
        self.purge = purge
        self.collapse_fraction = collapse_fraction
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        from ensemble_bt.errors import NotFittedError

        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(X, y) first")

    def _scale(self, X: np.ndarray) -> np.ndarray:
        return (X - self.x_mean_) / self.x_scale_

    def _loss_fn(self, keras: Any) -> Any:
        from models.learners.deep_layers import directional_huber

        if self.loss == "mse":
            return keras.losses.MeanSquaredError()
        if self.loss == "directional_huber":
            return directional_huber(self.huber_delta, self.direction_penalty)
        raise ConfigurationError(f"{self.name}: unknown loss {self.loss!r}: choose from "
                                 f"{', '.join(LOSSES)}")

    @property
    def context_rows(self) -> int:
        """Earlier rows a prediction reads: pass them in front of the rows to predict."""
        return self.seq_len - 1

    def _build(self, n_features: int) -> Any:
        from models.learners.deep_layers import BUILDERS

        return BUILDERS[self.name](self.seq_len, n_features, self.units, self.n_blocks,
                                   self.n_heads, self.dropout, self.l2)

    def _trainer(self, keras: Any, n_features: int, gpu: bool) -> Any:
        """A compiled model of this architecture, its optimizer reset to its start state.

        Kept across fits (:data:`_TRAINERS`): tracing the training step is most of a CPU
        fit's cost, and every vintage retrains the same architecture.  The caller loads the
        seeded initial weights into it and copies the trained weights out, so a fit on a
        reused trainer equals one on a new trainer bit for bit (tested).
        """
        key = (self.name, self.seq_len, n_features, self.units, self.n_blocks, self.n_heads,
               self.dropout, self.l2, self.loss, self.huber_delta, self.direction_penalty,
               self.learning_rate, gpu)
        if key not in _TRAINERS:
            trainer = self._build(n_features)
            trainer.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                            loss=self._loss_fn(keras), jit_compile=False)
            trainer.optimizer.build(trainer.trainable_variables)
            _TRAINERS[key] = trainer, [v.numpy() for v in trainer.optimizer.variables]
        trainer, start = _TRAINERS[key]
        for variable, value in zip(trainer.optimizer.variables, start, strict=True):
            variable.assign(value)
        return trainer

    def _raw_predict(self, W: np.ndarray) -> np.ndarray:
        if getattr(self, "_infer", None) is None:  # traced once, for any batch size
            tf, _ = _import_tf(self.name)
            model = self.model_
            spec = tf.TensorSpec([None, self.seq_len, W.shape[2]], tf.float32)
            self._infer = tf.function(lambda w: model(w, training=False),
                                      input_signature=[spec])
        out = [np.asarray(self._infer(W[i:i + 4096]), dtype=np.float64)
               for i in range(0, len(W), 4096)]
        return np.concatenate(out)[:, 0] if out else np.empty(0)

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X: Any, y: Any) -> _SequenceLearner:
        tf, keras = _import_tf(self.name)
        X, y = check_xy(X, y)
        tr, va = purged_tail_split(len(y), self.val_fraction, self.purge)
        self.x_mean_ = X[tr].mean(axis=0)
        scale = X[tr].std(axis=0)  # StandardScaler (ddof=0) on the training head only
        self.x_scale_ = np.where(scale > 0, scale, 1.0)
        self.y_offset_ = float(y[tr].mean())
        self.y_scale_ = float(y[tr].std()) or 1.0
        W = causal_windows(self._scale(X), self.seq_len)
        ys = ((y - self.y_offset_) / self.y_scale_).astype(np.float32)[:, None]

        tf.config.experimental.enable_op_determinism()
        gpu = self.device == "cuda" and bool(tf.config.list_physical_devices("GPU"))
        policy = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy("mixed_float16" if gpu else "float32")
        try:
            with tf.device("/GPU:0" if gpu else "/CPU:0"):
                trainer = self._trainer(keras, X.shape[1], gpu)
                keras.utils.set_random_seed(self.seed)  # after the trainer: a cold cache
                model = self._build(X.shape[1])  # draws no numbers a warm one would not
                for target, source in zip(trainer.variables, model.variables, strict=True):
                    target.assign(source)  # weights and dropout seed states
                stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience,
                                                     restore_best_weights=True)
                history = trainer.fit(W[tr], ys[tr], validation_data=(W[va], ys[va]),
                                      epochs=self.epochs, batch_size=self.batch_size,
                                      shuffle=True, callbacks=[stop], verbose=0)
                model.set_weights(trainer.get_weights())
        finally:
            keras.mixed_precision.set_global_policy(policy)
        val_loss = history.history.get("val_loss", [np.nan])
        self.best_iteration_ = int(np.nanargmin(val_loss)) if np.isfinite(val_loss).any() else 0
        self.model_, self._infer = model, None
        self.n_features_in_ = X.shape[1]
        self.device_used_ = "cuda" if gpu else "cpu"
        # Validation windows keep their context: the rows before the tail (features only).
        self._monitor(self._raw_predict(W[va]) * self.y_scale_ + self.y_offset_, y[va])
        return self

    def _monitor(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Flag a collapse: prediction std on the validation tail vs the target's."""
        collapse = variance_collapse(pred, target, self.collapse_fraction)
        self.diagnostics_ = {
            "val_std_ratio": collapse["std_ratio"],
            "val_positive_share": sign_imbalance(pred)["positive_share"],
            "val_ic": information_coefficient(pred, target),
        }
        self.collapsed_ = bool(collapse["fired"])
        if self.collapsed_:
            logger.warning("{} collapsed: prediction std on the validation tail is {:.4g} of the "
                           "target's (< {}); a stack gives it weight 0", self.name,
                           collapse["std_ratio"], self.collapse_fraction)

    def predict(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = _as_matrix(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ConfigurationError(
                f"{self.name} expects {self.n_features_in_} features, got {X.shape[-1]}")
        raw = self._raw_predict(causal_windows(self._scale(X), self.seq_len))
        return raw * self.y_scale_ + self.y_offset_

    def manifest_fields(self) -> dict[str, Any]:
        """What a bundle manifest records about this learner."""
        self._check_fitted()
        return {"y_offset": self.y_offset_, "y_scale": self.y_scale_,
                "collapsed": self.collapsed_, "best_epoch": self.best_iteration_,
                "device_used": getattr(self, "device_used_", "cpu"),
                **self.diagnostics_, "params": self.get_params()}

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> list[Path]:
        self._check_fitted()
        path = Path(directory) / self.file_names()[0]
        self.model_.save(path)
        params = self._write_params(
            Path(directory), x_mean=self.x_mean_.tolist(), x_scale=self.x_scale_.tolist(),
            y_offset=self.y_offset_, y_scale=self.y_scale_, collapsed=self.collapsed_,
            diagnostics=self.diagnostics_, n_features_in=self.n_features_in_)
        return [path, params]

    @classmethod
    def from_files(cls, files: BundleFiles) -> _SequenceLearner:
        _, keras = _import_tf(cls.name)
        import models.learners.deep_layers  # noqa: F401  (registers the custom layers)

        learner, meta = cls._from_params(files)
        model_file, params_file = cls.file_names()
        learner.model_ = files.native(model_file, "Keras model",
                                      partial(_load_keras, keras, model_file))
        learner._infer = None
        with files.reading(params_file):
            learner.x_mean_ = np.asarray(meta["x_mean"], dtype=np.float64)
            learner.x_scale_ = np.asarray(meta["x_scale"], dtype=np.float64)
            learner.y_offset_ = float(meta["y_offset"])
            learner.y_scale_ = float(meta["y_scale"])
            learner.collapsed_ = bool(meta["collapsed"])
            learner.diagnostics_ = dict(meta["diagnostics"])
            learner.n_features_in_ = int(meta["n_features_in"])
        return learner


def _load_keras(keras: Any, name: str, raw: bytes) -> Any:
    """A Keras model from the bytes of its ``.keras`` file.

    Keras opens a ``.keras`` zip by path only, so the verified bytes are written to a private
    copy: the file the bundle holds is not read a second time.  ``safe_mode`` (the default)
    refuses lambdas and other code in the file.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(raw)
        return keras.saving.load_model(path, compile=False)


class LSTMLearner(_SequenceLearner):
    """LSTM encoder + LayerNorm, Pre-LN Transformer blocks, zero-initialised Dense output."""

    name = "lstm"


class XLSTMLearner(_SequenceLearner):
    """Residual stack of sLSTM blocks (exponential gating, stabiliser state), after Beck et
    al. (2024), with a zero-initialised Dense output."""

    name = "xlstm"


DEEP_CLASSES: dict[str, type[_SequenceLearner]] = {"lstm": LSTMLearner, "xlstm": XLSTMLearner}
