"""Scoring a finished bundle on labelled clips, exactly as the daemon will score audio."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_edge.frontend import FrontendConfig
from ser_edge.recognition.scoring import silence_row, utterance_score

from .corpora import EMOTIONS, Clip
from .dataset import evaluation_windows, featurise, label_index
from .int8 import dequantise_scores, tflite_outputs
from .metrics import report


def evaluate_bundle(bundle: Path, clips: Sequence[Clip]) -> dict:
    manifest = json.loads((bundle / "manifest.json").read_text())
    fe = FrontendConfig.from_dict(manifest["frontend"]["config"])
    model = (bundle / "model.tflite").read_bytes()
    scoring = manifest["scoring"]
    bank = featurise(clips, fe, None, workers=1, label="featurising")
    windows, owners = evaluation_windows(clips, bank, scoring["window_frames"], scoring["hop_frames"], silence_row(fe))
    scores = dequantise_scores(model, tflite_outputs(model, windows))
    utterance = np.stack([utterance_score(scores[owners == i]) for i in range(len(clips))])
    labels = manifest["labels"]
    predicted = np.array([EMOTIONS.index(labels[i]) for i in utterance.argmax(axis=1)])
    return report(label_index(clips), predicted, [c.speaker for c in clips])
