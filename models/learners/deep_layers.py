"""Keras 3 layers and networks of the sequence learners (imported by :mod:`models.learners.deep`).

This module imports Keras at import time; :mod:`models.learners.deep` imports it lazily, inside
fit and load, so that ``models`` works without TensorFlow.  Every custom layer is registered
under the ``ensemble_bt`` package so that ``.keras`` files load without pickling anything.

- :class:`SLSTMCell`: the sLSTM cell of Beck et al. (2024), "xLSTM: Extended Long Short-Term
  Memory", eqs. (8)-(17): exponential input gate, sigmoid forget gate taken in log space,
  a normaliser state ``n`` and the stabiliser state ``m`` that keeps ``exp`` from overflowing.
- :func:`build_lstm`: LSTM encoder + LayerNorm, Pre-LN Transformer blocks, zero-init output.
- :func:`build_xlstm`: input projection, residual sLSTM blocks (pre-LN sLSTM, then a pre-LN
  gated MLP), zero-init output.
"""

from __future__ import annotations

import keras
from keras import layers, ops

_PACKAGE = "ensemble_bt"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SLSTMCell(layers.Layer):
    """One sLSTM step with exponential gating and a stabiliser state.

    States ``[h, c, n, m]``.  With pre-activations ``z~, i~, f~, o~`` from ``W x + R h + b``::

        m_t = max(log f_t + m_{t-1}, i~_t)           (log f_t = log sigmoid(f~_t))
        i'_t = exp(i~_t - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)
        c_t = f'_t c_{t-1} + i'_t tanh(z~_t),  n_t = f'_t n_{t-1} + i'_t
        h_t = sigmoid(o~_t) * c_t / n_t

    The stabilised gates give the same ``h`` as the raw ``exp`` gates (the factor
    ``exp(m_t)`` cancels in ``c / n``) without overflow.
    """

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.state_size = [units, units, units, units]
        self.output_size = units

    def build(self, input_shape) -> None:
        d = input_shape[-1]
        self.kernel = self.add_weight(shape=(d, 4 * self.units), name="kernel",
                                      initializer="glorot_uniform")
        self.recurrent_kernel = self.add_weight(shape=(self.units, 4 * self.units),
                                                name="recurrent_kernel",
                                                initializer="orthogonal")
        # Forget-gate bias starts positive (remember by default), as in the paper's code.
        self.bias = self.add_weight(
            shape=(4 * self.units,), name="bias",
            initializer=keras.initializers.Constant(
                [0.0] * (2 * self.units) + [3.0] * self.units + [0.0] * self.units))

    def call(self, inputs, states):
        h, c, n, m = states
        pre = ops.matmul(inputs, self.kernel) + ops.matmul(h, self.recurrent_kernel) + self.bias
        z_pre, i_pre, f_pre, o_pre = ops.split(pre, 4, axis=-1)
        log_f = -ops.softplus(-f_pre)  # log sigmoid(f~)
        m_new = ops.maximum(log_f + m, i_pre)
        i_gate = ops.exp(i_pre - m_new)
        f_gate = ops.exp(log_f + m - m_new)
        c_new = f_gate * c + i_gate * ops.tanh(z_pre)
        n_new = f_gate * n + i_gate
        h_new = ops.sigmoid(o_pre) * c_new / ops.maximum(n_new, 1e-6)
        return h_new, [h_new, c_new, n_new, m_new]

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LastStep(layers.Layer):
    """The last time step of a sequence: ``(batch, time, d) -> (batch, d)``."""

    def call(self, inputs):
        return inputs[:, -1, :]


def _mlp(x, units: int, name: str):
    h = layers.LayerNormalization(name=f"{name}_ln")(x)
    h = layers.Dense(2 * units, activation="gelu", name=f"{name}_up")(h)
    h = layers.Dense(units, name=f"{name}_down")(h)
    return layers.Add(name=f"{name}_res")([x, h])


def _head(x, l2: float):
    x = layers.LayerNormalization(name="head_ln")(LastStep(name="last")(x))
    reg = keras.regularizers.L2(l2) if l2 > 0 else None
    # Zero-initialised output: the untrained network predicts the (de-meaned) mean, 0.
    return layers.Dense(1, kernel_initializer="zeros", kernel_regularizer=reg,
                        dtype="float32", name="out")(x)


def build_lstm(seq_len: int, n_features: int, units: int, n_blocks: int, n_heads: int,
               dropout: float, l2: float) -> keras.Model:
    """LSTM encoder (+ linear input skip), LayerNorm, Pre-LN Transformer blocks, zero-init Dense."""
    inp = keras.Input((seq_len, n_features), name="window")
    # The encoder adds a linear skip of the input to the LSTM states: without it the weak
    # signal in the last row had to cross the LSTM first, and early stopping ended at epoch 0.
    x = layers.Add(name="encoder_res")([
        layers.LSTM(units, return_sequences=True, name="encoder")(inp),
        layers.Dense(units, name="proj")(inp)])
    x = layers.LayerNormalization(name="encoder_ln")(x)
    for b in range(n_blocks):
        h = layers.LayerNormalization(name=f"attn{b}_ln")(x)
        h = layers.MultiHeadAttention(n_heads, key_dim=max(units // n_heads, 4),
                                      dropout=dropout, name=f"attn{b}")(
            h, h, use_causal_mask=True)
        x = layers.Add(name=f"attn{b}_res")([x, h])
        x = _mlp(x, units, f"mlp{b}")
    return keras.Model(inp, _head(x, l2), name="lstm")


def build_xlstm(seq_len: int, n_features: int, units: int, n_blocks: int, n_heads: int,
                dropout: float, l2: float) -> keras.Model:
    """Input projection, ``n_blocks`` residual sLSTM blocks, zero-init Dense.

    ``n_heads`` is unused (the paper's block-diagonal heads are one full head here).
    """
    inp = keras.Input((seq_len, n_features), name="window")
    x = layers.Dense(units, name="proj")(inp)
    for b in range(n_blocks):
        h = layers.LayerNormalization(name=f"slstm{b}_ln")(x)
        h = layers.RNN(SLSTMCell(units), return_sequences=True, name=f"slstm{b}")(h)
        if dropout > 0:
            h = layers.Dropout(dropout, name=f"slstm{b}_drop")(h)
        x = layers.Add(name=f"slstm{b}_res")([x, h])
        x = _mlp(x, units, f"mlp{b}")
    return keras.Model(inp, _head(x, l2), name="xlstm")


def directional_huber(delta: float, penalty: float):
    """Huber loss plus ``penalty * relu(-y * pred)``: a cost on predictions of the wrong sign,
    growing with how far they are on the wrong side (a smooth stand-in for
    ``sign(pred) != sign(y)``, whose gradient is zero almost everywhere)."""
    huber = keras.losses.Huber(delta=delta, reduction=None)

    def loss(y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        wrong = ops.relu(-y_true * y_pred)
        return huber(y_true, y_pred) + penalty * ops.mean(wrong, axis=-1)

    return loss


BUILDERS = {"lstm": build_lstm, "xlstm": build_xlstm}
