"""Pictures of data and results (PNG, headless): confusion matrices, learning curves, and
the evaluation report's figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .corpora import EMOTIONS


def confusion_png(matrix: Sequence[Sequence[int]], path: Path, title: str, normalised: bool = False) -> Path:
    """Row-normalised colours with counts (or, normalised, shares) written in; rows are the true emotion."""
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            text = f"{norm[i, j]:.2f}" if normalised else f"{int(m[i, j])}"
            ax.text(j, i, text, ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_title(title)
    return _save(fig, path)


def curves_png(histories: Sequence[dict], path: Path, title: str) -> Path:
    """Accuracy and loss per epoch, training and validation, one line pair per fold."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, h in enumerate(histories):
        for ax, key in zip(axes, ("accuracy", "loss"), strict=True):
            line = ax.plot(h[key], label=f"fold {i + 1} train")[0]
            ax.plot(h[f"val_{key}"], "--", color=line.get_color(), label=f"fold {i + 1} validation")
    for ax, key in zip(axes, ("accuracy", "loss"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def composition_png(groups: Sequence[tuple[str, str]], counts: np.ndarray, path: Path) -> Path:
    """Clips per emotion, one bar per (corpus, gender) group."""
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(groups)
    for i, ((corpus, gender), row) in enumerate(zip(groups, counts, strict=True)):
        ax.bar(np.arange(len(EMOTIONS)) + i * width, row, width, label=f"{corpus} {gender}")
    ax.set_xticks(np.arange(len(EMOTIONS)) + 0.4 - width / 2, EMOTIONS)
    ax.set_ylabel("clips")
    ax.legend(fontsize=8)
    ax.set_title("dataset composition: corpus x emotion x gender")
    return _save(fig, path)


def example_png(pcm: np.ndarray, logmel: np.ndarray, mfcc: np.ndarray, path: Path, title: str) -> Path:
    """Waveform, int8 log-mel spectrogram and int8 MFCC rows of one clip, on one time axis."""
    fig, axes = plt.subplots(3, 1, figsize=(10, 6.5), sharex=True)
    seconds = np.arange(pcm.size) / 16000
    axes[0].plot(seconds, pcm / 32768, linewidth=0.4)
    axes[0].set_ylabel("amplitude")
    axes[0].set_ylim(-1, 1)
    extent_s = logmel.shape[0] * 0.02
    for ax, rows, label in ((axes[1], logmel, "mel band"), (axes[2], mfcc, "MFCC")):
        image = ax.imshow(rows.T, aspect="auto", origin="lower", cmap="magma", extent=(0, extent_s, 0, rows.shape[1]))
        ax.set_ylabel(label)
        fig.colorbar(image, ax=ax, pad=0.01, label="int8")
    axes[2].set_xlabel("seconds")
    axes[0].set_title(title)
    return _save(fig, path)


def per_speaker_png(speakers: Sequence[str], accuracy: dict[str, Sequence[float]], path: Path) -> Path:
    """Accuracy of each held-out speaker, float and int8 side by side."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    x = np.arange(len(speakers))
    for i, (kind, values) in enumerate(accuracy.items()):
        ax.bar(x + (i - 0.5) * 0.4, values, 0.4, label=kind)
    ax.axhline(1 / len(EMOTIONS), color="grey", linestyle=":", label="chance")
    ax.set_xticks(x, [s.split("/")[-1] for s in speakers])
    ax.set_xlabel("speaker")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return _save(fig, path)


def importance_png(found: dict[str, list[float]], fe, seconds: float, path: Path) -> Path:
    """Occlusion results: score drop per feature column and per time region."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    columns = found["columns"]
    mfcc_only = list(fe.channels) == ["mfcc"]
    names = [f"c{i}" if mfcc_only else str(i) for i in range(len(columns))]
    axes[0].bar(names, columns)
    axes[0].set_title("by MFCC coefficient")
    regions = found["regions"]
    step = seconds / len(regions)
    axes[1].bar([f"{i * step:.1f}" for i in range(len(regions))], regions)
    axes[1].set_title("by time region (start, s)")
    for ax in axes:
        ax.set_ylabel("drop in true-emotion score")
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
