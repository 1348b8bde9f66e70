"""Fitting one model, and scoring utterances with it (float or int8) by the shared rule."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ser_edge.recognition.scoring import silence_row, utterance_score

from .config import Config
from .corpora import EMOTIONS, Clip
from .dataset import FeatureBank, evaluation_windows, label_index, training_windows
from .distil import Answers, teacher_targets
from .int8 import dequantise_scores, tflite_outputs
from .models import build


def normalisation(clips: Sequence[Clip], bank: FeatureBank) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and variance over the training clips' own frames only."""
    rows = np.concatenate([bank.originals[c.path] for c in clips]).astype(np.float64)
    return rows.mean(axis=0), np.maximum(rows.var(axis=0), 1e-6)


def balanced_weights(main: Sequence[Clip], extra: Sequence[Clip], extra_share: float) -> dict[tuple[str, int], float]:
    """A loss weight per (corpus, emotion) so that, in an average epoch (all of ``main``,
    ``extra_share`` of ``extra``), every emotion weighs the same and, within an emotion,
    every corpus that has it weighs the same: no corpus's mix of emotions becomes the
    model's prior (a corpus without calm cannot teach "this voice is never calm").
    Mean weight 1; with one corpus, inverse class frequency."""
    expected: dict[tuple[str, int], float] = {}
    for clips, share in ((main, 1.0), (extra, extra_share)):
        for c in clips:
            key = (c.corpus, EMOTIONS.index(c.label))
            expected[key] = expected.get(key, 0.0) + share
    corpora_with = {k: sum(1 for _, kk in expected if kk == k) for _, k in expected}
    total = sum(expected.values())
    return {key: total / (len(corpora_with) * corpora_with[key[1]] * n) for key, n in expected.items()}


def mixup(x: np.ndarray, targets: np.ndarray, weights: np.ndarray, alpha: float, rng: np.random.Generator):
    """Each example blended with a random partner of the same set at a Beta(alpha, alpha)
    share (Zhang et al. 2018): a smoother decision between emotions than one-hot targets."""
    share = rng.beta(alpha, alpha, len(x)).astype(np.float32)
    partner = rng.permutation(len(x))

    def blend(a: np.ndarray) -> np.ndarray:
        s = share.reshape(-1, *[1] * (a.ndim - 1))
        return s * a + (1 - s) * a[partner]

    return blend(x), blend(targets), blend(weights)


def fit(cfg: Config, train: Sequence[Clip], validation: Sequence[Clip], bank: FeatureBank, verbose: int = 0,
        teacher: Answers | None = None):  # fmt: skip
    """A Keras 3 model trained on ``train`` with early stopping and checkpointing on
    ``validation``; returns (model, history). With ``teacher`` (a teacher's answers,
    distil.py) the targets blend them with the human labels (cfg.distil)."""
    import keras

    Progress = _progress_callback()
    keras.utils.set_random_seed(cfg.train.seed)
    frames, pad = cfg.window.frames, silence_row(cfg.frontend)
    model = build(keras, cfg.model, frames, cfg.frontend.n_features, *normalisation(train, bank))
    onehot = np.eye(len(EMOTIONS), dtype=np.float32)
    rng = np.random.default_rng(cfg.train.seed)
    main = [c for c in train if c.corpus == validation[0].corpus] if validation else list(train)
    extra = [c for c in train if c.corpus != validation[0].corpus] if validation else []
    n_extra = len(extra) if cfg.train.extra_per_epoch is None else min(cfg.train.extra_per_epoch, len(extra))
    weights = balanced_weights(main, extra, n_extra / max(len(extra), 1))
    batch = cfg.train.batch_size

    class Epochs(keras.utils.PyDataset):
        """Every clip of the evaluation corpus plus a fresh draw of the extra corpora, each
        as a new rendering and crop, every epoch."""

        def __init__(self) -> None:
            super().__init__()
            self.on_epoch_end()

        def __len__(self) -> int:
            return -(-(len(main) + n_extra) // batch)

        def on_epoch_end(self) -> None:
            drawn = [extra[i] for i in rng.choice(len(extra), n_extra, replace=False)] if n_extra else []
            clips = rng.permutation(np.array(main + drawn, dtype=object))
            y = label_index(clips)
            self.w = np.array([weights[c.corpus, k] for c, k in zip(clips, y, strict=True)], dtype=np.float32)
            self.x = training_windows(clips, bank, frames, pad, rng, cfg.train.p_original).astype(np.float32)
            self.t = onehot[y] if teacher is None else teacher_targets(teacher, clips, onehot[y], cfg.distil)
            if cfg.train.mixup > 0:
                self.x, self.t, self.w = mixup(self.x, self.t, self.w, cfg.train.mixup, rng)

        def __getitem__(self, i: int):
            part = slice(i * batch, (i + 1) * batch)
            return self.x[part], self.t[part], self.w[part]

    val_x, owners = evaluation_windows(validation, bank, frames, cfg.window.hop, pad)
    val_y = onehot[label_index(validation)[owners]]
    steps = -(-(len(main) + n_extra) // batch) * cfg.train.epochs
    rate = (keras.optimizers.schedules.CosineDecay(cfg.train.learning_rate, steps)
            if cfg.train.schedule == "cosine" else cfg.train.learning_rate)  # fmt: skip
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing),
        metrics=["accuracy"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        best = str(Path(tmp) / "best.weights.h5")
        callbacks = [Progress(cfg.train.epochs)]
        if cfg.train.schedule == "plateau":
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                               patience=cfg.train.reduce_lr_patience))  # fmt: skip
        if cfg.train.select == "best":
            callbacks += [
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.train.early_stopping_patience),
                keras.callbacks.ModelCheckpoint(best, monitor="val_accuracy", save_best_only=True,
                                                save_weights_only=True),
            ]  # fmt: skip
        history = model.fit(
            Epochs(), validation_data=(val_x.astype(np.float32), val_y), epochs=cfg.train.epochs,
            callbacks=callbacks, verbose=verbose,
        )  # fmt: skip
        if cfg.train.select == "best":
            model.load_weights(best)
    record = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    if cfg.train.calibrate:
        record["temperature"] = calibrate(model, val_x, owners, label_index(validation))
    return model, record


def temperature_fit(logits: np.ndarray, owners: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature minimising the NLL of utterance scores (the mean of their
    windows' softmax, the daemon's rule), searched on a log grid from 0.25 to 8."""
    best, best_nll = 1.0, np.inf
    counts = np.bincount(owners, minlength=len(labels))[:, None]
    for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 81)):
        z = logits / t
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        utterance = np.zeros((len(labels), logits.shape[1]))
        np.add.at(utterance, owners, p)
        utterance /= np.maximum(counts, 1)
        nll = -np.mean(np.log(np.maximum(utterance[np.arange(len(labels)), labels], 1e-12)))
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best


def calibrate(model, windows: np.ndarray, owners: np.ndarray, labels: np.ndarray) -> float:
    """Temperature scaling fitted on the validation speakers, folded into the last layer
    (its weights and bias divided by T); returns T."""
    import keras

    scores = model.get_layer("scores")
    kernel, bias = scores.get_weights()
    before = keras.Model(model.input, scores.input).predict(windows.astype(np.float32), batch_size=256, verbose=0)
    t = temperature_fit(before @ kernel + bias, owners, labels)
    scores.set_weights([kernel / t, bias / t])
    return t


def _progress_callback():
    import keras

    class Progress(keras.callbacks.Callback):
        """One line per epoch with the elapsed time and an ETA (early stopping may end sooner)."""

        def __init__(self, epochs: int) -> None:
            super().__init__()
            self.epochs = epochs

        def on_train_begin(self, logs=None) -> None:
            self.start = time.time()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            done, elapsed = epoch + 1, time.time() - self.start
            eta = elapsed / done * (self.epochs - done)
            logs = logs or {}
            print(
                f"  epoch {done}/{self.epochs}: accuracy {logs.get('accuracy', 0):.3f}, "
                f"val {logs.get('val_accuracy', 0):.3f}; {elapsed:.0f} s elapsed, ETA {eta:.0f} s",
                flush=True,
            )

    return Progress


def utterance_scores(
    score_windows: Callable[[np.ndarray], np.ndarray], clips: Sequence[Clip], bank: FeatureBank, cfg: Config
) -> np.ndarray:
    """(n_clips, 8) mean window scores, the same rule as the daemon's."""
    windows, owners = evaluation_windows(clips, bank, cfg.window.frames, cfg.window.hop, silence_row(cfg.frontend))
    scores = score_windows(windows)
    return np.stack([utterance_score(scores[owners == i]) for i in range(len(clips))])


def keras_scorer(model) -> Callable[[np.ndarray], np.ndarray]:
    return lambda w: model.predict(w.astype(np.float32), batch_size=256, verbose=0)


def int8_scorer(model_bytes: bytes) -> Callable[[np.ndarray], np.ndarray]:
    return lambda w: dequantise_scores(model_bytes, tflite_outputs(model_bytes, w))
