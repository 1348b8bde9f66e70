"""The frozen encoder as a TFLite file: what ser-base bundles carry and the Pi runs.

Built once from the pinned weights (it never changes with a retrain: heads do), for any
clip length (the time axis stays dynamic). Three weight forms: float32, float16 (half
the file; computed in float32) and int8 (dynamic range: weights int8, activations
quantised on the fly by the kernels). Which one ships is measured (training/README.md).
"""

from __future__ import annotations

from pathlib import Path

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


def agreement(tflite: bytes, keras_model, mels: list[np.ndarray]) -> float:
    """The lowest cosine similarity, over ``mels``, between the pooled outputs of the TFLite
    encoder (as ser_edge runs it) and of the float Keras encoder."""
    from ser_edge.recognition.base_model import Encoder, pooled

    encoder = Encoder(tflite, mels[0].shape[-1])
    worst = 1.0
    for mel in mels:
        a, b = pooled(encoder.hidden(mel)), pooled(np.asarray(keras_model(mel))[0])
        worst = min(worst, float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))))
    return worst


MIN_AGREEMENT = {"float32": 0.99999, "float16": 0.9999, "int8": 0.999}
"""The lowest cosine similarity to the float encoder each form may have on real clips."""


def build_checked(cfg, out: Path, clips: list[Path]) -> str:
    """Build the encoder the recipe (base_config.EncoderConfig) names, check it against
    the float Keras encoder on real clips, write it to ``out``; one line on what was done."""
    import hashlib

    from ser_edge.audio.audio_io import read_audio
    from ser_edge.recognition.base_model import encoder_input

    from .whisper_weights import encoder_arrays

    samples = Path(__file__).resolve().parents[2] / "deploy" / "samples"
    clips = clips or sorted(samples.glob("*.flac"))
    if not clips:
        raise FileNotFoundError("no clips to check the encoder on (give --clips)")
    arrays = encoder_arrays(cfg.name)
    data = encoder_tflite(arrays, cfg.blocks, cfg.form)
    mels = [encoder_input(read_audio(c, 16000), cfg.level_dbfs) for c in clips]
    worst = agreement(data, averaged_encoder(arrays, cfg.blocks), mels)
    if worst < MIN_AGREEMENT[cfg.form]:
        raise ValueError(f"the {cfg.form} encoder agrees with the float one only to cosine {worst:.6f}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()[:16]
    return (f"{out}: {cfg.name} blocks {list(cfg.blocks)}, {cfg.form}, {len(data):,} bytes, sha256 {digest}...; "
            f"cosine to the float encoder >= {worst:.6f} on {len(clips)} clips")  # fmt: skip
