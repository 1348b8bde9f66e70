"""Arousal and valence: where an utterance sits on the calm-agitated and negative-positive axes.

Automations mostly need "the room got heated" or "someone sounds low", not which of eight
acted categories won. Each category has a place on the arousal-valence plane, from
Mehrabian's pleasure-arousal-dominance table (Russell & Mehrabian 1977; Mehrabian 1995):
anger, fear, joy (happy), sadness and disgust as published; calm is the table's
"relaxed", surprised its "surprised"; neutral is the origin. An utterance's arousal and
valence are the probability-weighted mean of its classes' places, so every model that
scores these categories (ser-base, ser-tiny, a node's own answers) yields both numbers
without a second output; both lie in [-1, 1] (a mean of points in that square). They are
read from the class probabilities, not measured: a voice the model hears as torn between
angry and fearful is still clearly aroused, one torn between happy and angry is not
clearly positive or negative.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

PLACES: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "calm": (-0.46, 0.68),
    "happy": (0.48, 0.76),
    "sad": (-0.27, -0.63),
    "angry": (0.59, -0.51),
    "fearful": (0.60, -0.64),
    "disgust": (0.35, -0.60),
    "surprised": (0.67, 0.40),
}
"""(arousal, valence) of each category: Mehrabian's PAD table, dominance dropped."""

AXES: tuple[tuple[str, str, str], ...] = (("arousal", "calm", "agitated"), ("valence", "negative", "positive"))
"""Each axis: its key in the JSON (events, state) and what -1 and +1 mean, for whatever shows it."""


def places(labels: Sequence[str]) -> np.ndarray | None:
    """(classes, 2) arousal and valence of a model's labels, or None when a label has no
    place on the plane (a model of other categories publishes no arousal or valence).
    Computed once per label set (a model's), not per utterance; the array is read-only
    because every caller shares it."""
    return _places(tuple(labels))


@functools.cache
def _places(labels: tuple[str, ...]) -> np.ndarray | None:
    if not labels or any(label not in PLACES for label in labels):
        return None
    where = np.array([PLACES[label] for label in labels], dtype=np.float64)
    where.setflags(write=False)
    return where


def affect(scores: np.ndarray, where: np.ndarray) -> tuple[float, float]:
    """(arousal, valence) of one utterance: its class scores (summing to 1) weighting the
    classes' places."""
    p = np.asarray(scores, dtype=np.float64)
    arousal, valence = p @ where / max(p.sum(), 1e-12)
    return float(arousal), float(valence)
