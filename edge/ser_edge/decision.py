"""The decision stage: an utterance's scores become an emotion, or nothing.

Policy: the utterance's score vector is the mean of its windows' softmax outputs (the
training rule), so it sums to 1. The winning emotion is reported when its score reaches
``model.threshold``; otherwise the utterance is counted as undecided and no event is
sent. With eight classes, chance is 0.125: the default 0.3 drops the utterances on which
the model is clearly torn.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .frontend import compute_features
from .model import EmotionModel
from .vad import Utterance


@dataclass(frozen=True)
class Recognition:
    utterance: Utterance
    scores: dict[str, float]
    emotion: str
    confidence: float
    emitted: bool
    """The confidence reached the threshold: this becomes an event."""
    inference_ms: float
    """Front end plus model time for this utterance."""


def decide(scores: np.ndarray, labels: tuple[str, ...], threshold: float) -> tuple[str, float, bool]:
    """(emotion, confidence, emit?) under the threshold policy."""
    best = int(np.argmax(scores))
    confidence = float(scores[best])
    return labels[best], confidence, confidence >= threshold


def recognise(model: EmotionModel, utterance: Utterance, threshold: float) -> Recognition:
    """Front end, model and decision for one utterance."""
    start = time.perf_counter()
    scores = model.utterance_scores(compute_features(utterance.pcm, cfg=model.bundle.frontend))
    elapsed = (time.perf_counter() - start) * 1000
    emotion, confidence, emit = decide(scores, model.bundle.labels, threshold)
    named = {label: round(float(s), 4) for label, s in zip(model.bundle.labels, scores, strict=True)}
    return Recognition(utterance, named, emotion, round(confidence, 4), emit, elapsed)
