"""The decision stage: an utterance's scores become an emotion, or nothing.

Policy: the utterance's score vector is the mean of its windows' softmax outputs (the
training rule), so it sums to 1. The winning emotion is reported when its score reaches
``model.threshold``; otherwise the utterance is counted as undecided, no event is sent
and the state topic says ``uncertain`` (UNCERTAIN), so a dashboard does not keep showing
the last confident answer. With eight classes, chance is 0.125: the default 0.3 drops the
utterances on which the model is clearly torn (edge/docs/daemon.md: what a threshold
buys, measured on held-out speakers).

Every utterance also gets its arousal and valence (recognition.affect), read from the same
scores, whether or not it reaches the threshold; None for a model whose labels have no
place on the arousal-valence plane.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ser_edge.gate.vad import Utterance
from ser_edge.recognition.affect import affect, places
from ser_edge.recognition.base_model import BaseModel
from ser_edge.recognition.bundle import UNCERTAIN
from ser_edge.recognition.model import EmotionModel
from ser_edge.recognition.scoring import utterance_score


@dataclass(frozen=True)
class Recognition:
    start: float
    """UNIX time of the utterance's first sample."""
    end: float
    """UNIX time just after its last sample."""
    scores: dict[str, float]
    emotion: str
    confidence: float
    emitted: bool
    """The confidence reached the threshold: this becomes an event."""
    inference_ms: float
    """Front end plus model time for this utterance."""
    arousal: float | None
    """Calm (-1) to agitated (1), from the scores; None when the model's labels have no places."""
    valence: float | None
    """Negative (-1) to positive (1), likewise."""

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def state(self) -> str:
        """What the state topic says: the emotion, or ``uncertain`` below the threshold."""
        return self.emotion if self.emitted else UNCERTAIN


def decide(scores: np.ndarray, labels: tuple[str, ...], threshold: float) -> tuple[str, float, bool]:
    """(emotion, confidence, emit?) under the threshold policy."""
    best = int(np.argmax(scores))
    confidence = float(scores[best])
    return labels[best], confidence, confidence >= threshold


def arousal_valence(labels: tuple[str, ...], scores: np.ndarray) -> tuple[float | None, float | None]:
    """The utterance's (arousal, valence) to 3 decimals (finer is noise), or (None, None)."""
    where = places(labels)
    if where is None:
        return None, None
    arousal, valence = affect(scores, where)
    return round(arousal, 3), round(valence, 3)


def judge(labels: tuple[str, ...], scores: np.ndarray, start: float, end: float, threshold: float,
          began: float) -> Recognition:  # fmt: skip
    """An utterance's scores under the threshold policy; ``began`` is when its processing began (perf_counter)."""
    elapsed = (time.perf_counter() - began) * 1000
    emotion, confidence, emit = decide(scores, labels, threshold)
    named = {label: round(float(s), 4) for label, s in zip(labels, scores, strict=True)}
    return Recognition(start, end, named, emotion, round(confidence, 4), emit, elapsed,
                       *arousal_valence(labels, scores))  # fmt: skip


def recognise(model: EmotionModel | BaseModel, utterance: Utterance, threshold: float) -> Recognition:
    """Front end (or encoder), model and decision for one utterance."""
    began = time.perf_counter()
    scores = model.scores(model.inputs(utterance))
    return judge(model.bundle.labels, scores, utterance.start, utterance.end, threshold, began)


def recognise_features(model: EmotionModel, features: np.ndarray, start: float, end: float,
                       threshold: float, began: float | None = None) -> Recognition:  # fmt: skip
    """Model and decision for an utterance whose front end ran already (here, from
    ``began``, or on a serial node)."""
    began = time.perf_counter() if began is None else began
    return judge(model.bundle.labels, model.utterance_scores(features), start, end, threshold, began)


def recognise_scores(model: EmotionModel, raw: np.ndarray, start: float, end: float, threshold: float) -> Recognition:
    """The decision for an utterance a node scored itself: raw int8 outputs, one row per window."""
    began = time.perf_counter()
    return judge(model.bundle.labels, utterance_score(model.dequantise(raw)), start, end, threshold, began)
