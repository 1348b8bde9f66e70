"""Whisper's audio encoder in Keras: the project's own implementation, loaded with the
pinned weights (whisper_weights.py) and checked against CTranslate2 in the tests.

    log-mel (T, 80) -> conv k3 -> GELU -> conv k3 stride 2 -> GELU -> + sinusoids
                    -> N pre-norm transformer blocks -> (final layer norm)

Emotion lives in the middle blocks (shared/docs/field-notes.md), so a model keeps only
the first ``layers`` blocks and can return each block's output. Any clip length works:
the encoder runs on the clip's real length, never padded to Whisper's 30 s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

LN_EPSILON = 1e-5


@dataclass(frozen=True)
class WhisperDims:
    """The shape of a Whisper encoder, read off its weights."""

    n_mels: int
    width: int
    """d_model: channels of every block."""
    heads: int
    ffn: int
    """Hidden units of each block's feed-forward layer."""
    blocks: int
    """Blocks in the checkpoint."""
    max_frames: int
    """Encoder positions (1500 = 30 s)."""

    @classmethod
    def of(cls, arrays: dict[str, np.ndarray]) -> WhisperDims:
        width, n_mels, _ = arrays["conv1/weight"].shape
        blocks = 1 + max(int(m[1]) for k in arrays if (m := re.match(r"layer_(\d+)/", k)))
        return cls(
            n_mels=int(n_mels),
            width=int(width),
            heads=int(arrays["num_heads"]),
            ffn=int(arrays["layer_0/ffn/linear_0/weight"].shape[0]),
            blocks=blocks,
            max_frames=int(arrays["position_encodings/encodings"].shape[0]),
        )


class Positions(keras.layers.Layer):
    """Adds the first T rows of the fixed sinusoidal position table to a (B, T, C) input."""

    def __init__(self, table: np.ndarray, **kwargs) -> None:
        super().__init__(**kwargs)
        self.table = np.asarray(table, np.float32)

    def call(self, x):
        return x + ops.convert_to_tensor(self.table)[None, : ops.shape(x)[1]]

    def compute_output_shape(self, shape):
        return shape


class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention with one fused query/key/value projection (as the weights
    store it) and an output projection."""

    def __init__(self, width: int, heads: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.width, self.heads = width, heads
        self.qkv = keras.layers.Dense(3 * width, name="qkv")
        self.out = keras.layers.Dense(width, name="out")

    def build(self, shape):
        self.qkv.build(shape)
        self.out.build(shape)

    def call(self, x):
        b, t = ops.shape(x)[0], ops.shape(x)[1]
        dh = self.width // self.heads
        qkv = ops.reshape(self.qkv(x), (b, t, 3, self.heads, dh))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # (3, B, H, T, dh)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / np.sqrt(dh).astype(np.float32))
        mixed = ops.reshape(ops.transpose(ops.matmul(attention, v), (0, 2, 1, 3)), (b, t, self.width))
        return self.out(mixed)

    def compute_output_shape(self, shape):
        return shape


class Block(keras.layers.Layer):
    """x + attention(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, width: int, heads: int, ffn: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="attention_norm")
        self.attention = SelfAttention(width, heads, name="attention")
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="ffn_norm")
        self.ffn_in = keras.layers.Dense(ffn, activation=_gelu, name="ffn_in")
        self.ffn_out = keras.layers.Dense(width, name="ffn_out")

    def build(self, shape):
        for layer in (self.attention_norm, self.attention, self.ffn_norm, self.ffn_in):
            layer.build(shape)
        self.ffn_out.build((*shape[:-1], self.ffn_in.units))

    def call(self, x):
        x = x + self.attention(self.attention_norm(x))
        return x + self.ffn_out(self.ffn_in(self.ffn_norm(x)))

    def compute_output_shape(self, shape):
        return shape


def _gelu(x):
    return keras.activations.gelu(x, approximate=False)


def build_encoder(arrays: dict[str, np.ndarray], layers: int | None = None, every_layer: bool = False,
                  final_norm: bool = False) -> keras.Model:  # fmt: skip
    """A Keras encoder on (batch, frames, n_mels) log-mels with the first ``layers`` blocks
    (None: all) of the checkpoint ``arrays``. Returns the last kept block's output, or with
    ``every_layer`` a list of every kept block's output; ``final_norm`` applies the
    checkpoint's closing layer norm (what CTranslate2 returns when every block is kept)."""
    cfg = WhisperDims.of(arrays)
    layers = cfg.blocks if layers is None else layers
    if not 1 <= layers <= cfg.blocks:
        raise ValueError(f"layers must be 1..{cfg.blocks}, got {layers}")
    mels = keras.Input((None, cfg.n_mels), name="log_mel")
    conv1 = keras.layers.Conv1D(cfg.width, 3, padding="same", activation=_gelu, name="conv1")
    pad = keras.layers.ZeroPadding1D(1, name="conv2_pad")
    conv2 = keras.layers.Conv1D(cfg.width, 3, strides=2, padding="valid", activation=_gelu, name="conv2")
    x = Positions(arrays["position_encodings/encodings"], name="positions")(conv2(pad(conv1(mels))))
    blocks = [Block(cfg.width, cfg.heads, cfg.ffn, name=f"block_{i}") for i in range(layers)]
    outputs = []
    for block in blocks:
        x = block(x)
        outputs.append(x)
    final = keras.layers.LayerNormalization(epsilon=LN_EPSILON, name="final_norm") if final_norm else None
    if final is not None:
        outputs[-1] = final(outputs[-1])
    model = keras.Model(mels, outputs if every_layer else outputs[-1], name=f"whisper_encoder_{layers}")
    _load(model, arrays, blocks, final)
    return model


def _load(model: keras.Model, a: dict[str, np.ndarray], blocks: list[Block], final) -> None:
    """Copies the checkpoint into the Keras layers (convolutions stored (out, in, k),
    dense layers (out, in): both transposed)."""

    def f32(name: str) -> np.ndarray:
        return a[name].astype(np.float32)

    for conv in ("conv1", "conv2"):
        model.get_layer(conv).set_weights([f32(f"{conv}/weight").transpose(2, 1, 0), f32(f"{conv}/bias")])
    for i, block in enumerate(blocks):
        p = f"layer_{i}/"
        block.attention_norm.set_weights([f32(p + "self_attention/layer_norm/gamma"),
                                          f32(p + "self_attention/layer_norm/beta")])  # fmt: skip
        block.attention.qkv.set_weights([f32(p + "self_attention/linear_0/weight").T,
                                         f32(p + "self_attention/linear_0/bias")])  # fmt: skip
        block.attention.out.set_weights([f32(p + "self_attention/linear_1/weight").T,
                                         f32(p + "self_attention/linear_1/bias")])  # fmt: skip
        block.ffn_norm.set_weights([f32(p + "ffn/layer_norm/gamma"), f32(p + "ffn/layer_norm/beta")])
        block.ffn_in.set_weights([f32(p + "ffn/linear_0/weight").T, f32(p + "ffn/linear_0/bias")])
        block.ffn_out.set_weights([f32(p + "ffn/linear_1/weight").T, f32(p + "ffn/linear_1/bias")])
    if final is not None:
        final.set_weights([f32("layer_norm/gamma"), f32("layer_norm/beta")])
