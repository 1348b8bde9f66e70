"""Arousal and valence (issue 29, part 2): from an utterance's class probabilities, on every
path of the daemon, into the event and state JSON and Home Assistant's discovery."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ser_edge.delivery.discovery import Topics, discovery_payload
from ser_edge.delivery.events import SCHEMA_VERSION, event_payload, state_payload
from ser_edge.recognition.affect import PLACES, places
from ser_edge.recognition.decision import UNCERTAIN, judge

LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def test_a_sure_answer_sits_at_its_class_place() -> None:
    """One class scored 1: the utterance's arousal and valence are that class's place."""
    for i, label in enumerate(LABELS):
        scores = np.eye(len(LABELS))[i]
        r = judge(LABELS, scores, 0, 1, 0.3, 0)
        assert (r.arousal, r.valence) == PLACES[label], label


def test_arousal_and_valence_are_the_probabilities_weighting_the_places() -> None:
    """A torn answer between angry and fearful is below the threshold, yet clearly
    agitated and negative; between happy and sad it is neither, and rounded to 3 decimals."""
    torn = np.zeros(8)
    torn[[4, 5]] = 0.28, 0.27
    torn[0] = 0.45  # neutral sits at the origin: it pulls both towards 0
    r = judge(LABELS, torn, 0, 1, 0.5, 0)
    assert r.state == UNCERTAIN and r.emotion == "neutral"
    assert r.arousal == round(0.28 * 0.59 + 0.27 * 0.60, 3) == 0.327
    assert r.valence == round(0.28 * -0.51 + 0.27 * -0.64, 3) == -0.316
    split = np.zeros(8)
    split[[2, 3]] = 0.5
    r = judge(LABELS, split, 0, 1, 0.3, 0)
    assert (r.arousal, r.valence) == (round((0.48 - 0.27) / 2, 3), round((0.76 - 0.63) / 2, 3))


def test_the_numbers_stay_in_the_square_for_any_scores() -> None:
    rng = np.random.default_rng(29)
    for _ in range(200):
        r = judge(LABELS, rng.dirichlet(np.full(8, 0.3)), 0, 1, 0.3, 0)
        assert -1 <= r.arousal <= 1 and -1 <= r.valence <= 1


@pytest.mark.parametrize("labels", [("speech", "music"), ("angry", "bored"), ("neutral", "calm", "Happy")])
def test_a_model_of_other_labels_has_no_arousal_or_valence(labels: tuple[str, ...]) -> None:
    assert places(labels) is None
    r = judge(labels, np.eye(len(labels))[0], 0, 1, 0.3, 0)
    assert (r.arousal, r.valence) == (None, None)


def test_the_places_are_computed_once_per_model_and_shared_read_only() -> None:
    where = places(LABELS)
    assert places(list(LABELS)) is where and places(LABELS[::-1]) is not where
    assert where[4].tolist() == list(PLACES["angry"])
    with pytest.raises(ValueError, match="read-only"):
        where[0, 0] = 1.0


def _by_hand(r) -> tuple[float, float]:
    """The weighted mean of the published scores (rounded to 4 decimals: within 1e-3)."""
    p = np.array([r.scores[label] for label in LABELS])
    return tuple(p @ np.array([PLACES[label] for label in LABELS]) / p.sum())


def test_every_path_of_the_daemon_yields_them() -> None:
    """ser-tiny on audio, on a node's front-end rows and on a node's own int8 answers, and
    ser-base on audio: the angry sample clip is agitated and negative, the calm one calm
    and positive."""
    from ser_edge.audio.audio_io import read_audio
    from ser_edge.gate.vad import Utterance
    from ser_edge.recognition.decision import recognise, recognise_features, recognise_scores
    from ser_edge.recognition.model import load_model
    from tests.conftest import REPO, SAMPLES

    tiny, base = (load_model(REPO / "deploy" / "models" / name) for name in ("ser-tiny", "ser-base"))
    for code, agitated, positive in (("05", True, False), ("02", False, True)):
        clip = next(p for p in SAMPLES if p.name.split("-")[2] == code)
        utterance = Utterance(read_audio(clip), 1e9, 1e9 + 4)
        on_audio = recognise(tiny, utterance, 0.3)
        on_rows = recognise_features(tiny, utterance.features(tiny.bundle.frontend), 1e9, 1e9 + 4, 0.3)
        assert (on_rows.arousal, on_rows.valence) == (on_audio.arousal, on_audio.valence)
        for r in (on_audio, recognise(base, utterance, 0.3)):
            assert (r.arousal > 0.3, r.valence > 0.3) == (agitated, positive), (clip.name, r)
            assert np.allclose((r.arousal, r.valence), _by_hand(r), atol=1e-3)
    # a node in results mode: its int8 answers, two windows, one angry and one fearful
    grid = tiny.dequantise(np.arange(-128, 128).astype(np.int8)[:, None])[:, 0]
    low, high = np.int8(np.argmin(np.abs(grid)) - 128), np.int8(np.argmin(np.abs(grid - 1)) - 128)
    raw = np.full((2, 8), low, np.int8)
    raw[0, 4] = raw[1, 5] = high
    r = recognise_scores(tiny, raw, 1e9, 1e9 + 4, 0.6)
    assert r.state == UNCERTAIN and r.arousal == pytest.approx((0.59 + 0.60) / 2, abs=0.01)
    assert r.valence == pytest.approx((-0.51 - 0.64) / 2, abs=0.01)


# --- the JSON and Home Assistant's discovery -----------------------------------------------------


def _torn(threshold: float, labels: tuple[str, ...] = LABELS):
    """An answer torn between angry (0.4) and fearful (0.35): an event at 0.3, uncertain at 0.5."""
    scores = np.zeros(len(labels))
    scores[[4, 5]] = 0.4, 0.35
    scores[0] = 0.25
    return judge(labels, scores, 1e9, 1e9 + 2, threshold, 0)


def test_the_event_and_both_forms_of_the_state_carry_them() -> None:
    """The numbers are the Recognition's; the uncertain state has them too (a torn answer
    between angry and fearful is still agitated); nothing else of the messages changed."""
    sure, unsure = _torn(0.3), _torn(0.5)
    assert (sure.arousal, sure.valence) == (unsure.arousal, unsure.valence) == (0.446, -0.428)
    event = json.loads(event_payload(sure, 7, "kitchen-pi", "ser-tiny", "0.3.0"))
    assert (event["arousal"], event["valence"], event["schema"]) == (0.446, -0.428, SCHEMA_VERSION)
    time = "2001-09-09T01:46:42.000Z"
    assert json.loads(state_payload(sure, 7)) == {
        "emotion": "angry", "confidence": 0.4, "arousal": 0.446, "valence": -0.428, "time": time, "seq": 7,
    }  # fmt: skip
    assert json.loads(state_payload(unsure, None)) == {
        "emotion": UNCERTAIN, "confidence": 0.4, "best": "angry", "arousal": 0.446, "valence": -0.428,
        "time": time, "seq": None,
    }  # fmt: skip


def test_a_model_without_places_sends_the_messages_it_sent_before() -> None:
    """The keys are left out, not null: schema 1's messages, unchanged (SCHEMA_VERSION stays 1)."""
    labels = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "bored")
    sure, unsure = _torn(0.3, labels), _torn(0.5, labels)
    event = json.loads(event_payload(sure, 7, "k", "m", "1"))
    assert set(event) == {"schema", "id", "seq", "device", "event_type", "emotion", "confidence", "scores", "start",
                          "end", "duration_s", "model"}  # fmt: skip
    assert set(json.loads(state_payload(sure, 7))) == {"emotion", "confidence", "time", "seq"}
    assert set(json.loads(state_payload(unsure, None))) == {"emotion", "confidence", "best", "time", "seq"}


def test_home_assistant_gets_two_measurement_sensors_on_the_state_topic() -> None:
    cmps = json.loads(discovery_payload("k", "Kitchen", Topics("ser/k"), LABELS))["cmps"]
    arousal, valence = cmps["ser_edge_k_arousal"], cmps["ser_edge_k_valence"]
    expected = ((arousal, "Arousal", "mdi:lightning-bolt", "calm", "agitated"),
                (valence, "Valence", "mdi:emoticon-happy-outline", "negative", "positive"))  # fmt: skip
    for sensor, name, icon, low, high in expected:
        assert (sensor["p"], sensor["name"], sensor["icon"]) == ("sensor", name, icon)
        assert sensor["state_topic"] == sensor["json_attributes_topic"] == "ser/k/state"
        assert sensor["state_class"] == "measurement" and sensor["suggested_display_precision"] == 2
        assert "unit_of_measurement" not in sensor and "device_class" not in sensor
        assert json.loads(sensor["json_attributes_template"]) == {"min": -1, "max": 1, "low": low, "high": high}
    assert arousal["value_template"] == "{{ value_json.arousal | default(none) }}"
    assert valence["value_template"] == "{{ value_json.valence | default(none) }}"


def test_home_assistant_gets_no_such_sensors_for_a_model_without_places() -> None:
    cmps = json.loads(discovery_payload("k", "Kitchen", Topics("ser/k"), ("speech", "music")))["cmps"]
    assert "ser_edge_k_emotion" in cmps
    assert not {"ser_edge_k_arousal", "ser_edge_k_valence"} & set(cmps)


def test_the_docs_example_event_is_its_scores_weighting_the_places() -> None:
    """edge/docs/daemon.md's example event: its arousal and valence are what the daemon computes from its scores."""
    from tests.conftest import REPO

    text = (REPO / "edge" / "docs" / "daemon.md").read_text()
    (block,) = [b.removeprefix("json\n") for b in text.split("```")[1::2] if '"arousal"' in b]
    event = json.loads(block)
    r = judge(tuple(event["scores"]), np.array(list(event["scores"].values())), 0, 1, 0.3, 0)
    assert (event["arousal"], event["valence"]) == (r.arousal, r.valence)
    assert event["emotion"] == r.emotion and event["confidence"] == r.confidence
