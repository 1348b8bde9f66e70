"""Pictures of results: confusion matrices and learning curves (PNG, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .corpora import EMOTIONS


def confusion_png(matrix: Sequence[Sequence[int]], path: Path, title: str) -> Path:
    """Row-normalised colours with counts written in; rows are the true emotion."""
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
            ax.text(j, i, f"{int(m[i, j])}", ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
