"""The threshold policy: an utterance becomes an event only when its best score reaches it."""

from __future__ import annotations

import numpy as np
import pytest

from ser_edge.recognition.decision import UNCERTAIN, decide, judge

LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


@pytest.mark.parametrize(
    ("threshold", "emit"), [(0.4, True), (np.nextafter(0.4, 0), True), (np.nextafter(0.4, 1), False)]
)
def test_at_below_and_above_the_threshold(threshold: float, emit: bool) -> None:
    scores = np.array([0.1, 0.05, 0.05, 0.1, 0.4, 0.1, 0.1, 0.1])
    assert decide(scores, LABELS, threshold) == ("angry", 0.4, emit)


def test_the_winner_is_reported_even_when_not_emitted() -> None:
    scores = np.full(8, 0.125)
    scores[6] += 0.01
    scores[0] -= 0.01
    emotion, confidence, emit = decide(scores, LABELS, 0.3)
    assert (emotion, emit) == ("disgust", False) and confidence == pytest.approx(0.135)


def test_below_the_threshold_the_state_is_uncertain_and_the_winner_kept() -> None:
    """Issue 29: the state topic says `uncertain` rather than keep the last confident answer."""
    scores = np.array([0.1, 0.05, 0.05, 0.1, 0.4, 0.1, 0.1, 0.1])
    low, high = judge(LABELS, scores, 0, 1, 0.5, 0), judge(LABELS, scores, 0, 1, 0.4, 0)
    assert (low.state, low.emotion, low.emitted) == (UNCERTAIN, "angry", False)
    assert (high.state, high.emotion, high.emitted) == ("angry", "angry", True)


def test_home_assistant_lists_uncertain_among_the_emotion_sensor_options() -> None:
    import json

    from ser_edge.delivery.discovery import Topics, discovery_payload

    cmps = json.loads(discovery_payload("k", "Kitchen", Topics("ser/k"), LABELS))["cmps"]
    assert cmps["ser_edge_k_emotion"]["options"] == [*LABELS, "uncertain"]
    assert cmps["ser_edge_k_event"]["event_types"] == list(LABELS)  # an event is never uncertain
