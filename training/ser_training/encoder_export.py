"""The frozen encoder as a TFLite file: what ser-base bundles carry and the Pi runs.

Built once from the pinned weights (it never changes with a retrain: heads do), for any
clip length (the time axis stays dynamic). Three weight forms: float32, float16 (half
the file; computed in float32) and int8 (dynamic range: weights int8, activations
quantised on the fly by the kernels). Which one ships is measured (training/README.md).
"""

from __future__ import annotations

import numpy as np

FORMS = ("float32", "float16", "int8")


def averaged_encoder(arrays: dict[str, np.ndarray], blocks: tuple[int, ...]):
    """A Keras encoder returning the mean of the hidden states of ``blocks`` (counted from
    1); it keeps the blocks up to the highest of them and no more."""
    import keras

    from .whisper_encoder import build_encoder

    if not blocks or min(blocks) < 1:
        raise ValueError(f"blocks must name blocks from 1 up, got {blocks}")
    every = build_encoder(arrays, max(blocks), every_layer=True)
    chosen = [every.outputs[b - 1] for b in blocks]
    out = chosen[0] if len(chosen) == 1 else keras.layers.Average(name="blocks_mean")(chosen)
    return keras.Model(every.inputs, out, name="encoder")


def encoder_tflite(arrays: dict[str, np.ndarray], blocks: tuple[int, ...], form: str = "int8") -> bytes:
    """TFLite bytes of the encoder up to the highest of ``blocks``: (1, T, n_mels) log-mel
    in (T even), (1, T / 2, width) out, the mean of those blocks' hidden states."""
    import tensorflow as tf

    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    model = averaged_encoder(arrays, blocks)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if form != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if form == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()
