"""How well the published arousal and valence follow the truth (issue 29).

The daemon's arousal and valence are the class probabilities weighting each class's place
on the plane (ser_edge.recognition.affect). The truth of a labelled clip is its class's
place; RAVDESS's "normal" intensity sits closer to neutral on the arousal axis than its
"strong" one (NORMAL_INTENSITY), other corpora's acting counts as strong. BAVED rates
arousal only (low, neutral, high: corpora.BAVED_AROUSAL). Agreement is Lin's concordance
correlation (CCC), which a constant offset or a squashed scale lowers, with Pearson's r
beside it; each head is scored on speakers and corpora it never trained on.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_edge.recognition.affect import AXES as PUBLISHED_AXES
from ser_edge.recognition.affect import PLACES, places

from .corpora import EMOTIONS, Clip

NORMAL_INTENSITY = 0.75
"""Arousal of RAVDESS's normal-intensity clips, as a share of the class's (strong) place."""

AXES = tuple(key for key, *_ in PUBLISHED_AXES)
"""The axes' keys, in the order the daemon publishes them (recognition.affect.AXES)."""


def target(label: str, corpus: str, intensity: str | None) -> tuple[float, float]:
    """True (arousal, valence) of a clip labelled ``label``."""
    arousal, valence = PLACES[label]
    return (arousal * NORMAL_INTENSITY if corpus == "ravdess" and intensity == "normal" else arousal), valence


def targets(clips: Sequence[Clip]) -> np.ndarray:
    """(clips, 2) true arousal and valence of labelled clips."""
    return np.array([target(c.label, c.corpus, c.intensity) for c in clips], dtype=np.float64).reshape(-1, 2)


def heard_affect(truth: Sequence[tuple[float, float]], utterances: Sequence[np.ndarray]) -> dict:
    """Agreement of what the daemon publishes for clips (each clip's utterances' score rows:
    the mean of their places) with their truth; a clip with no utterance publishes nothing
    and is counted in ``unheard``."""
    heard = [i for i, rows in enumerate(utterances) if len(rows)]
    pred = np.array([from_scores(utterances[i]).mean(axis=0) for i in heard]).reshape(-1, 2)
    report = affect_report(pred, np.asarray(truth, np.float64)[heard].reshape(-1, 2))
    return report | {"unheard": len(utterances) - len(heard)}


def from_scores(scores: np.ndarray) -> np.ndarray:
    """(clips, 2) arousal and valence the daemon publishes for rows of the eight classes' scores."""
    return np.asarray(scores, np.float64) @ places(EMOTIONS)


def ccc(pred: np.ndarray, true: np.ndarray) -> float:
    """Lin's concordance correlation coefficient: 1 only when pred equals true."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    cov = np.mean((pred - pred.mean()) * (true - true.mean()))
    denominator = pred.var() + true.var() + (pred.mean() - true.mean()) ** 2
    return float(2 * cov / denominator) if denominator > 0 else float("nan")


def agreement(pred: np.ndarray, true: np.ndarray) -> dict:
    """CCC, Pearson's r and the means of predicted and true values of one axis."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    r = float(np.corrcoef(pred, true)[0, 1]) if pred.std() > 0 and true.std() > 0 else float("nan")
    return {"ccc": round(ccc(pred, true), 4), "pearson": round(r, 4), "n": len(true),
            "mean_predicted": round(float(pred.mean()), 4), "mean_true": round(float(true.mean()), 4)}  # fmt: skip


def affect_report(pred: np.ndarray, true: np.ndarray) -> dict:
    """Agreement on each axis whose truth is known (a NaN truth: not rated on that axis)."""
    out = {}
    for i, axis in enumerate(AXES):
        known = ~np.isnan(true[:, i])
        if known.sum() > 1:
            out[axis] = agreement(pred[known, i], true[known, i])
    return out


def class_means(pred: np.ndarray, labels: Sequence[str]) -> dict[str, list[float]]:
    """Mean predicted (arousal, valence) of each true class: where the model puts it on the plane."""
    labels = np.asarray(labels)
    return {c: pred[labels == c].mean(axis=0).round(3).tolist() for c in EMOTIONS if (labels == c).any()}


def head_affect(head, embeddings: np.ndarray) -> np.ndarray:
    """(clips, 2) arousal and valence a ser-base bundle's head publishes for pooled embeddings."""
    return from_scores(np.stack([head.head_scores(e) for e in np.asarray(embeddings, np.float32)]))


def summary_line(name: str, report: dict) -> str:
    return f"{name}: " + ", ".join(
        f"{axis} CCC {r['ccc']:.2f} (r {r['pearson']:.2f}, n {r['n']})" for axis, r in report.items()
    )


def evaluate_cv(cfg, cv: Path, workers: int = 2, log=print) -> dict:
    """Arousal and valence of a `ser-train base-cv` folder's heads (folds/<k>/, bundles as
    the daemon loads them) on their own test clips as recorded, pooled over the RAVDESS
    folds and per left-out corpus, and of the RAVDESS-fold heads on BAVED (no head trains
    on it). Writes cv/affect/affect.json and affect.png."""
    from ser_edge.frontend import DEFAULT_CONFIG
    from ser_edge.recognition.model import load_model

    from .config import expand
    from .corpora import baved_arousal
    from .dataset import training_gate
    from .embeddings import embed_clips
    from .plots import affect_png
    from .serbase import embedded_table, encoder_bytes, trials

    results = json.loads((cv / "cv.json").read_text())["trials"]
    table = embedded_table(cfg, workers, log)
    loco = [r["held_out_corpus"] for r in results if r["held_out_corpus"]]
    found = trials(table, cfg, loco)
    if [t.name for t in found] != [r["trial"] for r in results]:
        raise ValueError(f"{cv}: its trials differ from the recipe's; run this with the recipe base-cv used")
    baved = baved_arousal(expand(cfg.data.baved)) if cfg.data.baved and expand(cfg.data.baved).is_dir() else []
    if baved:
        gate = training_gate("speech", DEFAULT_CONFIG)
        recorded = dataclasses.replace(cfg.augment, renderings=0)
        xb = embed_clips([p for p, _, _ in baved], encoder_bytes(cfg), cfg.encoder.level_dbfs, recorded, None,
                         gate, Path(cfg.cache), workers, desc="embedding baved")[:, 0]  # fmt: skip
        baved_true = np.array([[a, np.nan] for _, _, a in baved])
    labels = table.column("label")
    pooled_pred, pooled_true, pooled_labels, out = [], [], [], {"trials": [], "baved": []}
    for k, trial in enumerate(found, start=1):
        head = load_model(cv / "folds" / str(k))
        pred = head_affect(head, table.x[trial.test, 0])
        true = targets([c for c, t in zip(table.clips, trial.test, strict=True) if t])
        report = affect_report(pred, true)
        out["trials"].append({"trial": trial.name, **report})
        log(summary_line(trial.name, report))
        if trial.held_out_corpus is None:
            pooled_pred.append(pred)
            pooled_true.append(true)
            pooled_labels += labels[trial.test].tolist()
            if baved:
                b = affect_report(head_affect(head, xb), baved_true)
                out["baved"].append({"head": trial.name, **b})
                log(summary_line(f"  BAVED ({trial.name}'s head)", b))
    if pooled_pred:
        pred, true = np.concatenate(pooled_pred), np.concatenate(pooled_true)
        out["ravdess_pooled"] = affect_report(pred, true)
        out["ravdess_class_means"] = class_means(pred, pooled_labels)
        log(summary_line("RAVDESS pooled", out["ravdess_pooled"]))
    folder = cv / "affect"
    folder.mkdir(exist_ok=True)
    (folder / "affect.json").write_text(json.dumps(out, indent=1) + "\n")
    if "ravdess_class_means" in out:
        affect_png(out["ravdess_class_means"], PLACES, folder / "affect.png",
                   "RAVDESS held-out speakers: mean published (arousal, valence) per true class")  # fmt: skip
    return out
