"""ser-base's head: pooled encoder embeddings in, eight emotion scores out.

    embedding -> standardise (training statistics) -> dense + GELU -> dropout -> 8 logits

Corpora bring different classes in different shares (only RAVDESS and TESS say
"surprised"; EmoSpeech is mostly "calm"), so training weighs every (corpus, class) cell
equally within its corpus and each corpus by the square root of its size, and the loss is
logit-adjusted (Menon et al. 2021): tau log(prior) is added to the logits while training,
so the head's own scores are balanced over the eight classes. Every epoch each clip is
heard once, as recorded or in one of its renderings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base_config import HeadConfig
from .corpora import EMOTIONS
from .train import temperature_fit

N_CLASSES = len(EMOTIONS)


def sample_weights(corpora: Sequence[str], y: np.ndarray) -> np.ndarray:
    """Weights making each (corpus, class) cell of a corpus weigh the same, and each corpus
    weigh the square root of its clip count; they average 1."""
    corpora = np.asarray(corpora)
    w = np.zeros(len(y))
    for corpus in np.unique(corpora):
        inside = corpora == corpus
        classes, counts = np.unique(y[inside], return_counts=True)
        for c, n in zip(classes, counts, strict=True):
            w[inside & (y == c)] = np.sqrt(inside.sum()) / (len(classes) * n)
    return w * len(w) / w.sum()


def class_prior(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The weighted share of each of the eight classes (0 for a class no clip has)."""
    prior = np.bincount(y, weights=w, minlength=N_CLASSES)
    return prior / prior.sum()


def logit_shift(prior: np.ndarray, tau: float) -> np.ndarray:
    """tau log(prior), added to the logits while training; a class absent from training
    gets the rarest present class's shift (an infinitely negative one would make the head
    answer it everywhere once the shift is gone)."""
    present = prior > 0
    log = np.log(np.where(present, prior, 1.0))
    return (tau * np.where(present, log, log[present].min())).astype(np.float32)


def build_head(width: int, cfg: HeadConfig, mean: np.ndarray, variance: np.ndarray):
    """The Keras head on (batch, width) embeddings, returning logits (layer "scores")."""
    import keras

    x = inp = keras.Input((width,), name="embedding")
    x = keras.layers.Normalization(mean=mean, variance=variance, name="standardise")(x)
    if cfg.hidden:
        x = keras.layers.Dense(cfg.hidden, activation="gelu", name="hidden")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    return keras.Model(inp, keras.layers.Dense(N_CLASSES, name="scores")(x), name="ser_base_head")


def epoch_views(n_views: int, n: int, p_original: float, rng: np.random.Generator) -> np.ndarray:
    """Which view of each of n clips an epoch uses: 0 (as recorded) with p_original, else
    a rendering drawn uniformly."""
    if n_views == 1:
        return np.zeros(n, dtype=np.int64)
    rendering = rng.integers(1, n_views, size=n)
    return np.where(rng.random(n) < p_original, 0, rendering)


def train_head(x: np.ndarray, y: np.ndarray, corpora: Sequence[str], cfg: HeadConfig,
               val: tuple[np.ndarray, np.ndarray] | None = None, log=None):  # fmt: skip
    """A head trained on (clips, views, width) embeddings; with ``val`` (clean embeddings
    and labels of validation speakers) its temperature is fitted there and folded into the
    logits. Returns the model (logits) and a record of the run."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x = np.asarray(x, np.float32)
    w = sample_weights(corpora, y)
    flat = x.reshape(-1, x.shape[-1])
    model = build_head(x.shape[-1], cfg, flat.mean(axis=0), flat.var(axis=0) + 1e-6)
    shift = logit_shift(class_prior(y, w), cfg.logit_adjust)
    smooth = cfg.label_smoothing

    def loss(target, logits):
        onehot = tf.one_hot(tf.cast(tf.reshape(target, [-1]), tf.int32), N_CLASSES)
        onehot = onehot * (1 - smooth) + smooth / N_CLASSES
        return keras.losses.categorical_crossentropy(onehot, logits + shift, from_logits=True)

    steps = int(np.ceil(len(y) / cfg.batch_size)) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps)
    model.compile(keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay), loss=loss)
    history = []
    for epoch in range(cfg.epochs):
        xs = x[np.arange(len(y)), epoch_views(x.shape[1], len(y), cfg.p_original, rng)]
        h = model.fit(xs, y, sample_weight=w, batch_size=cfg.batch_size, epochs=1, shuffle=True, verbose=0)
        history.append(float(h.history["loss"][0]))
        if log and (epoch + 1) % 10 == 0:
            log(f"  epoch {epoch + 1}/{cfg.epochs}: loss {history[-1]:.3f}")
    record = {"loss": history, "prior": class_prior(y, w).round(4).tolist(), "temperature": 1.0}
    if val is not None and cfg.calibrate and len(val[1]):
        record["temperature"] = calibrate_head(model, *val)
    return model, record


def logits(model, x: np.ndarray) -> np.ndarray:
    return model.predict(np.asarray(x, np.float32), batch_size=1024, verbose=0)


def probabilities(model, x: np.ndarray) -> np.ndarray:
    z = logits(model, x)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def calibrate_head(model, x: np.ndarray, y: np.ndarray) -> float:
    """Temperature scaling on validation embeddings, folded into the scores layer; returns T."""
    t = temperature_fit(logits(model, x), np.arange(len(y)), y)
    scores = model.get_layer("scores")
    kernel, bias = scores.get_weights()
    scores.set_weights([kernel / t, bias / t])
    return t


def head_tflite(model) -> bytes:
    """The head with its softmax as a float TFLite model: (1, width) in, (1, 8) scores out."""
    import keras
    import tensorflow as tf

    inp = keras.Input((model.input_shape[-1],), batch_size=1, name="embedding")
    scored = keras.Model(inp, keras.layers.Softmax(name="softmax")(model(inp, training=False)))
    return tf.lite.TFLiteConverter.from_keras_model(scored).convert()
