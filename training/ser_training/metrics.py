"""Scores of an emotion classifier over utterances: pure functions of labels and predictions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .corpora import EMOTIONS


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n: int = len(EMOTIONS)) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    m = np.zeros((n, n), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def report(y_true: np.ndarray, y_pred: np.ndarray, speakers: Sequence[str]) -> dict:
    """WA, UAR, macro-F1, confusion matrix, per-class precision/recall/F1, per-speaker accuracy.

    UAR and macro-F1 average over the classes present in y_true.
    """
    m = confusion(y_true, y_pred)
    support = m.sum(axis=1)
    predicted = m.sum(axis=0)
    tp = np.diag(m).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    speakers_arr = np.asarray(speakers)
    per_speaker = {
        s: float(np.mean(y_true[speakers_arr == s] == y_pred[speakers_arr == s])) for s in sorted(set(speakers))
    }
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else float("nan"),
        "uar": float(np.nanmean(recall[present])),
        "macro_f1": float(np.mean(f1[present])),
        "confusion": m.tolist(),
        "classes": {
            EMOTIONS[i]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in range(len(EMOTIONS))
            if present[i]
        },
        "per_speaker": per_speaker,
    }


def format_report(r: dict) -> str:
    lines = [f"accuracy {r['accuracy']:.3f}  UAR {r['uar']:.3f}  macro-F1 {r['macro_f1']:.3f}  (n={r['n']})"]
    lines.append(f"{'class':>10} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>5}")
    for name, c in r["classes"].items():
        lines.append(f"{name:>10} {c['precision']:9.3f} {c['recall']:7.3f} {c['f1']:6.3f} {c['support']:5d}")
    lines.append("per speaker: " + "  ".join(f"{s} {a:.2f}" for s, a in r["per_speaker"].items()))
    return "\n".join(lines)


def cv_table(results: dict[str, dict]) -> str:
    """Markdown table of cross-validation results (name -> cv.json contents)."""
    rows = [
        "| model | params | int8 KB | arena KB | float acc | float UAR | int8 acc | int8 UAR | int8 F1 | int8 folds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        size = r.get("model", {})
        fl, q = r["pooled"]["float"], r["pooled"]["int8"]
        folds = " ".join(f"{f['int8']['accuracy']:.2f}" for f in r["folds"])
        rows.append(
            f"| {name} | {size.get('parameters', '?')} | {size.get('tflite_bytes', 0) / 1024:.1f} | "
            f"{size.get('tflm_arena_bytes', 0) / 1024:.1f} | {fl['accuracy']:.3f} | {fl['uar']:.3f} | "
            f"{q['accuracy']:.3f} | {q['uar']:.3f} | {q['macro_f1']:.3f} | {folds} |"
        )
    return "\n".join(rows)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their counts."""
    if confidence.size == 0:
        return float("nan")
    edges = np.minimum((np.asarray(confidence) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = edges == b
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / confidence.size)


def device_report(labels: np.ndarray, utterances: Sequence[np.ndarray], classes: Sequence[int] | None = None) -> dict:
    """Scores of what a device would publish for labelled clips.

    ``utterances[i]`` holds one score row per utterance the gate found in clip i (8 scores
    each). Every utterance is one answer labelled with its clip's emotion; a clip with no
    utterance is one "missed" answer, which counts as wrong. ``classes`` restricts the
    answer to those emotions (argmax over their scores, confidence renormalised over
    them), as cross-corpus protocols with fewer classes do; by default all eight.
    """
    classes = list(range(len(EMOTIONS))) if classes is None else list(classes)
    k = len(classes)
    truth, predicted, confidence = [], [], []
    missed = np.zeros(k, dtype=np.int64)
    for label, rows in zip(labels, utterances, strict=True):
        row = classes.index(int(label))
        if len(rows) == 0:
            missed[row] += 1
            continue
        scores = np.asarray(rows, dtype=np.float64)[:, classes]
        scores = scores / np.maximum(scores.sum(axis=1, keepdims=True), 1e-12)
        truth += [row] * len(scores)
        predicted += scores.argmax(axis=1).tolist()
        confidence += scores.max(axis=1).tolist()
    truth_a, pred_a, conf_a = np.array(truth, dtype=np.int64), np.array(predicted, dtype=np.int64), np.array(confidence)
    m = np.zeros((k, k + 1), dtype=np.int64)
    np.add.at(m, (truth_a, pred_a), 1)
    m[:, k] = missed
    support = m.sum(axis=1)
    tp = np.diag(m[:, :k]).astype(float)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(k), where=present)
    answered = m[:, :k].sum(axis=0)
    precision = np.divide(tp, answered, out=np.zeros(k), where=answered > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=precision + recall > 0)
    shares = answered / max(answered.sum(), 1)
    names = [EMOTIONS[c] for c in classes]
    correct = pred_a == truth_a
    return {
        "classes": names,
        "clips": len(labels),
        "utterances": len(truth_a),
        "missed": int(missed.sum()),
        "accuracy": float(tp.sum() / max(support.sum(), 1)),
        "uar": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "ece": expected_calibration_error(conf_a, correct),
        "confusion": m.tolist(),
        "confusion_columns": [*names, "missed"],
        "shares": {n: float(s) for n, s in zip(names, shares, strict=True)},
        "max_share": {"class": names[int(shares.argmax())], "share": float(shares.max())},
    }


FOUR_CLASSES = ("angry", "happy", "neutral", "sad")
"""EmoBox's cross-corpus class set, for corpora without all eight."""


def corpus_reports(y: np.ndarray, utterances: Sequence[np.ndarray]) -> dict:
    """Reports of one corpus's clips (``utterances``: as device_report's): 8-way, on the
    corpus's own classes when it has fewer than eight, and on the four EmoBox classes
    where it has them."""
    y, rows = np.asarray(y), list(utterances)
    own = sorted(set(np.asarray(y).tolist()))
    out = {"8-way": device_report(y, rows)}
    if len(own) < len(EMOTIONS):
        out["own classes"] = device_report(y, rows, own)
    four = [EMOTIONS.index(c) for c in FOUR_CLASSES]
    if set(four) <= set(own):
        keep = np.isin(y, four)
        out["4-class"] = device_report(y[keep], [r for r, k in zip(rows, keep, strict=True) if k], four)
    return out


RELIABILITY_THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""The thresholds (``model.threshold``) a reliability table reports; 0.3 is the daemon's default."""


def reliability(labels: np.ndarray, utterances: Sequence[np.ndarray],
                thresholds: Sequence[float] = RELIABILITY_THRESHOLDS, bins: int = 10) -> dict:  # fmt: skip
    """What the daemon's threshold means on labelled clips (``utterances``: as device_report's).

    Each utterance is one answer: the daemon publishes an event when its top score reaches
    the threshold ``t`` and the state ``uncertain`` otherwise. Per threshold: the utterances
    published (``published``: their share of all utterances) and the share of those events
    that name the clip's emotion (``right``: None when none is published). ``bins``: the
    reliability diagram, utterances by top score in equal-width bins, with their accuracy
    and mean top score. A clip the gate missed has no utterance, so it is in neither
    (``missed`` counts them; device_report scores them as wrong)."""
    top, right, missed = [], [], 0
    for label, rows in zip(labels, utterances, strict=True):
        scores = np.asarray(rows, dtype=np.float64).reshape(-1, len(EMOTIONS))
        missed += len(scores) == 0
        top += scores.max(axis=1).tolist()
        right += (scores.argmax(axis=1) == int(label)).tolist()
    top_a, right_a = np.array(top), np.array(right, dtype=bool)
    n = len(top_a)
    table = []
    for t in thresholds:
        sent = top_a >= t
        k = int(sent.sum())
        table.append({"threshold": float(t), "events": k, "published": k / n if n else None,
                      "right": float(right_a[sent].mean()) if k else None})  # fmt: skip
    which = np.minimum((top_a * bins).astype(int), bins - 1)
    diagram = []
    for b in range(bins):
        inside = which == b
        m = int(inside.sum())
        diagram.append({"low": b / bins, "high": (b + 1) / bins, "utterances": m,
                        "accuracy": float(right_a[inside].mean()) if m else None,
                        "confidence": float(top_a[inside].mean()) if m else None})  # fmt: skip
    return {"clips": len(labels), "utterances": n, "missed": int(missed), "thresholds": table, "bins": diagram}


def format_reliability(r: dict, default: float = 0.3) -> str:
    """The threshold table as Markdown: at threshold t, the share of published events that
    are right and the share of utterances published."""
    lines = ["| threshold | events right | utterances published | events |", "|---|---|---|---|"]
    for row in r["thresholds"]:
        mark = " (default)" if abs(row["threshold"] - default) < 1e-9 else ""
        right = "n/a" if row["right"] is None else f"{100 * row['right']:.1f} %"
        published = "n/a" if row["published"] is None else f"{100 * row['published']:.1f} %"
        lines.append(f"| {row['threshold']:g}{mark} | {right} | {published} | {row['events']} of {r['utterances']} |")
    return "\n".join(lines)
