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


def robustness_png(t: dict, path: Path, title: str) -> Path:
    """The robustness harness at a glance: accuracy against SNR for each RT60 (clean as a
    line), against input gain, and on each held-out corpus."""
    p, cond = t["protocol"], t["conditions"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.2, 1, 1.3]})
    ax = axes[0]
    if "clean" in cond:
        clean = 100 * cond["clean"]["accuracy"]
        for rt60 in p["rt60_s"]:
            acc = [100 * cond[f"RT60 {rt60:g} s, SNR {s:g} dB"]["accuracy"] for s in p["snr_db"]]
            ax.plot(p["snr_db"], acc, "o-", label=f"RT60 {rt60:g} s")
        ax.axhline(clean, color="k", ls="--", label=f"clean {clean:.1f} %")
        ax.axhline(100 / len(EMOTIONS), color="grey", ls=":", label="chance")
        ax.set_xlabel("SNR (dB)")
        ax.invert_xaxis()
        ax.legend(fontsize=8)
        gains = [100 * cond[f"gain {g:+g} dB"]["accuracy"] for g in p["gains_db"]]
        axes[1].plot(p["gains_db"], gains, "o-")
        axes[1].axhline(clean, color="k", ls="--")
        axes[1].set_xlabel("input gain (dB)")
    ax.set_ylabel("accuracy, 8 classes (%)")
    ax.set_title("simulated rooms, talker 1-4 m")
    axes[1].set_title("input level")
    for a in axes[:2]:
        a.set_ylim(0, 100)
        a.grid(alpha=0.3)
    corpora = list(t["corpora"])
    x = np.arange(len(corpora))
    ua = [100 * t["corpora"][c].get("4-class", t["corpora"][c]["own classes"])["uar"] for c in corpora]
    top = [100 * t["corpora"][c]["8-way"]["max_share"]["share"] for c in corpora]
    axes[2].bar(x - 0.2, ua, 0.4, label="UA, 4 classes (own classes where fewer)")
    axes[2].bar(x + 0.2, top, 0.4, label="share of the most answered class, 8-way")
    axes[2].axhline(25, color="grey", ls=":")
    axes[2].set_xticks(x, corpora)
    axes[2].set_ylim(0, 100)
    axes[2].set_title("corpora never trained on")
    axes[2].legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def shares_png(t: dict, path: Path, title: str) -> Path:
    """Which emotions the device answers under each condition: a model that collapses onto
    one class shows one colour taking the bar."""
    rows = [(name, r["shares"]) for name, r in t["conditions"].items()]
    rows += [(f"{c} (8-way)", e["8-way"]["shares"]) for c, e in t["corpora"].items()]
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(rows) + 1.5))
    left = np.zeros(len(rows))
    colours = plt.get_cmap("tab10")
    for k, emotion in enumerate(EMOTIONS):
        share = np.array([100 * s.get(emotion, 0.0) for _, s in rows])
        ax.barh(range(len(rows)), share, left=left, color=colours(k), label=emotion)
        left += share
    ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(35, color="k", ls=":", lw=0.8)
    ax.set_xlabel("share of answers (%)")
    ax.set_xlim(0, 100)
    ax.legend(ncol=8, fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.set_title(title, pad=28)
    return _save(fig, path)


def reliability_png(r: dict, path: Path, title: str, default: float = 0.3) -> Path:
    """What ``model.threshold`` means (``r``: metrics.reliability): the reliability diagram
    (accuracy against mean top score per bin, the diagonal is perfect calibration, bar
    widths follow the utterances in the bin) and, per threshold, the share of published
    events that are right and the share of utterances published."""
    fig, (diagram, sweep) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = [b for b in r["bins"] if b["utterances"]]
    most = max((b["utterances"] for b in bins), default=1)
    for b in bins:
        width = (b["high"] - b["low"]) * (0.25 + 0.75 * b["utterances"] / most)
        diagram.bar((b["low"] + b["high"]) / 2, b["accuracy"], width=width, color="tab:blue", alpha=0.7)
        diagram.plot(b["confidence"], b["accuracy"], "k.", ms=5)
    diagram.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    diagram.set_xlim(0, 1)
    diagram.set_ylim(0, 1)
    diagram.set_xlabel("top score of the utterance")
    diagram.set_ylabel("share right")
    diagram.set_title(f"reliability diagram ({r['utterances']} utterances)")
    diagram.legend(loc="upper left", fontsize=8)
    rows = [x for x in r["thresholds"] if x["published"] is not None]
    ts = [x["threshold"] for x in rows]
    sweep.plot(ts, [100 * x["published"] for x in rows], "o-", label="utterances published (events)")
    sweep.plot(ts, [100 * x["right"] if x["right"] is not None else np.nan for x in rows], "s-",
               label="published events that are right")  # fmt: skip
    sweep.axvline(default, color="k", ls=":", lw=0.8)
    sweep.text(default, 50, f" default {default:g}", fontsize=8)
    sweep.set_xlabel("model.threshold (under it: state uncertain, no event)")
    sweep.set_ylabel("%")
    sweep.set_ylim(0, 100)
    sweep.grid(alpha=0.3)
    sweep.legend(loc="lower left", fontsize=8)
    sweep.set_title("what a threshold buys")
    fig.suptitle(title)
    return _save(fig, path)


def affect_png(means: dict[str, Sequence[float]], places: dict[str, Sequence[float]], path: Path, title: str) -> Path:
    """The arousal-valence plane: each class's place (the truth, hollow) and where a model's
    answers on that class land on average (filled), joined by an arrow."""
    fig, ax = plt.subplots(figsize=(6, 6))
    colours = plt.get_cmap("tab10")
    for i, (label, (arousal, valence)) in enumerate(means.items()):
        ta, tv = places[label]
        ax.scatter(tv, ta, s=90, facecolors="none", edgecolors=colours(i))
        ax.scatter(valence, arousal, s=50, color=colours(i), label=label)
        ax.annotate("", (valence, arousal), (tv, ta), arrowprops={"arrowstyle": "->", "color": colours(i)})
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("valence (negative - positive)")
    ax.set_ylabel("arousal (calm - agitated)")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)
