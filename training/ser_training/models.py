"""The three model families, built from a ModelConfig.

Every model takes a window of int8 front-end rows as float values (q, not dequantised),
normalises them with per-column statistics of the training speakers, and ends in a
softmax over the eight emotions. ``keras`` is a parameter: Keras 3 for training,
tf_keras (legacy Keras 2) to export the LSTM, which only it converts to the fused int8
UNIDIRECTIONAL_SEQUENCE_LSTM op.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .config import ModelConfig
from .corpora import EMOTIONS


def _bn(k: ModuleType):
    """Batch norm whose moving statistics settle within an epoch or two: with ~50 steps
    per epoch, Keras's default momentum (0.99) left them far from the batch statistics
    and the first epochs' models predicted one class for everything."""
    return k.layers.BatchNormalization(momentum=0.9)


def _ds_cnn_trunk(k: ModuleType, x, m: ModelConfig):
    """Everything before the pooling: the first convolution and the separable blocks."""
    L = k.layers
    x = L.Reshape((*x.shape[1:], 1))(x)
    x = L.Conv2D(m.filters, m.first_kernel, strides=m.first_stride, padding="same", use_bias=False)(x)
    x = L.ReLU()(_bn(k)(x))
    for _ in range(m.blocks):
        x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = L.ReLU()(_bn(k)(x))
        x = L.Conv2D(m.filters, 1, use_bias=False)(x)
        x = L.ReLU()(_bn(k)(x))
    return x


def _ds_cnn(k: ModuleType, x, m: ModelConfig):
    L = k.layers
    x = _ds_cnn_trunk(k, x, m)
    # Pooling layers over the whole map rather than global pooling: they convert to
    # AVERAGE_POOL_2D / MAX_POOL_2D, which CMSIS-NN runs on the node, where TFLite
    # Micro's MEAN is a reference kernel costing 3.3 M instructions per window.
    whole = tuple(x.shape[1:3])
    pooled = L.AveragePooling2D(whole)(x)
    if m.pool == "average_max":
        pooled = L.Concatenate()([pooled, L.MaxPooling2D(whole)(x)])
    return L.Dropout(m.dropout)(L.Flatten()(pooled))


def _cnn(k: ModuleType, x, m: ModelConfig):
    """The starting point's Conv1D network, as a baseline."""
    L = k.layers
    for filters, kernel in ((256, 5), (128, 3), (64, 3)):
        x = L.Conv1D(filters, kernel, padding="same")(x)
        x = L.ReLU()(_bn(k)(x))
        x = L.MaxPooling1D(2)(x)
    x = L.Dense(1024, activation="relu")(L.Flatten()(x))
    return L.Dropout(0.5)(x)


def _cnn_lstm(k: ModuleType, x, m: ModelConfig):
    L = k.layers
    for _ in range(2):
        x = L.Conv1D(m.filters, 5, padding="same", use_bias=False)(x)
        x = L.ReLU()(_bn(k)(x))
        x = L.MaxPooling1D(2)(x)
    x = L.LSTM(m.lstm_units)(x)
    return L.Dropout(m.dropout)(x)


BUILDERS = {"ds_cnn": _ds_cnn, "cnn": _cnn, "cnn_lstm": _cnn_lstm}


def _conv_classifier(keras, x):
    """The Dense classifier as a 1 x 1 convolution on the pooled features."""
    x = keras.layers.Reshape((1, 1, x.shape[-1]))(x)
    x = keras.layers.Conv2D(len(EMOTIONS), 1, activation="softmax", name="scores")(x)
    return keras.layers.Reshape((len(EMOTIONS),))(x)


def _pooled_conv_classifier(keras, x, m: ModelConfig):
    """ds_cnn with a plain average: the 1 x 1 classifier in front of the pool (the same
    function: the average of a linear map is the linear map of the average). TFLite's
    optimised CONV_2D on a 1 x 1 input rounds an output one step away from the reference
    kernels, and so from TFLite Micro, now and then; on the full map it takes the path
    every other pointwise convolution takes, which matches."""
    L = keras.layers
    x = _ds_cnn_trunk(keras, x, m)
    logits = L.AveragePooling2D(tuple(x.shape[1:3]))(L.Conv2D(len(EMOTIONS), 1, name="scores")(x))
    return L.Softmax()(L.Reshape((len(EMOTIONS),))(logits))


def build(
    keras: ModuleType, m: ModelConfig, frames: int, columns: int, mean: np.ndarray, variance: np.ndarray,
    batch_size: int | None = None, conv_classifier: bool = False,
):  # fmt: skip
    """The network; ``conv_classifier`` (for export) makes the final layer a 1x1 CONV_2D
    with the Dense layer's weights: TFLite quantises a Dense per channel, and Arduino
    builds of TFLite Micro (Chirale_TensorFlowLite 2.0.0) apply one channel's scale to
    every channel of a per-channel FULLY_CONNECTED; per-channel convolutions they get right."""
    if m.kind not in BUILDERS:
        raise ValueError(f"model.kind: unknown model {m.kind!r}; choose from {', '.join(BUILDERS)}")
    inputs = keras.Input((frames, columns), batch_size=batch_size, name="features")
    x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
    if m.window_mean:
        x = keras.layers.Subtract()([x, keras.layers.GlobalAveragePooling1D(keepdims=True)(x)])
    if conv_classifier and m.kind == "ds_cnn" and m.pool == "average":
        return keras.Model(inputs, _pooled_conv_classifier(keras, x, m), name=m.kind)
    x = BUILDERS[m.kind](keras, x, m)
    if conv_classifier:
        outputs = _conv_classifier(keras, x)
    else:
        outputs = keras.layers.Dense(len(EMOTIONS), activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name=m.kind)
