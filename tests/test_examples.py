"""The subscriber examples match real events: the Home Assistant automations' triggers
and conditions use what the daemon publishes (the Node-RED flow runs in a real Node-RED:
test_subscribers.py)."""

from __future__ import annotations

import json

import yaml

from ser_edge.audio.audio_io import read_audio
from ser_edge.delivery.discovery import Topics
from ser_edge.delivery.events import event_payload, stamped
from ser_edge.gate.vad import Utterance
from ser_edge.recognition.bundle import load_bundle
from ser_edge.recognition.decision import recognise
from ser_edge.recognition.model import EmotionModel
from ser_edge.settings import MqttSettings
from tests.conftest import REPO, SAMPLES

EXAMPLES = REPO / "deploy" / "examples"
SHIPPED = REPO / "deploy" / "models" / "ser-tiny"


def _events() -> list[dict]:
    model = EmotionModel(load_bundle(SHIPPED))
    out = []
    for seq, path in enumerate(SAMPLES[3:5], start=1):
        r = recognise(model, Utterance(read_audio(path), 1e9, 1e9 + 4), 0.3)
        out.append(json.loads(event_payload(r, seq, "kitchen-pi", "m", "1")))
    return out


def test_home_assistant_automations_match_the_events() -> None:
    entity, raw = yaml.safe_load((EXAMPLES / "home-assistant-automation.yaml").read_text())
    (trigger,) = entity["triggers"]
    assert trigger["trigger"] == "state" and trigger["not_from"] == ["unavailable"]
    assert trigger["not_to"] == ["unavailable", "unknown"]
    assert trigger["entity_id"] == "event.kitchen_emotion_event"  # device "Kitchen", entity "Emotion event"
    conditions = " ".join(c["value_template"] for c in entity["conditions"])
    assert "delayed_s" in conditions and "attributes.id" in conditions
    (trigger,) = raw["triggers"]
    assert trigger["topic"] == Topics.of(MqttSettings(), "kitchen-pi").event
    assert trigger["payload"] in load_bundle(SHIPPED).labels
    assert trigger["value_template"] == "{{ value_json.emotion }}"
    angry = [e for e in _events() if e["emotion"] == "angry"]
    assert angry and all("confidence" in e and "end" in e for e in angry)


def test_an_event_is_stamped_with_how_late_it_goes_out() -> None:
    (event, _) = _events()  # its utterance ended at 1e9 + 4
    out = json.loads(stamped(json.dumps(event), 1e9 + 4 + 480.04))
    assert out["delayed_s"] == 480.0 and {k: v for k, v in out.items() if k != "delayed_s"} == event
    assert json.loads(stamped(json.dumps(event), 1e9))["delayed_s"] == 0.0  # a fast replay's future end
    for odd in ('{"seq": 1, "emotion": "calm"}', '{"end": 5}', '{"end": "yesterday"}', "[1]", "not json"):
        assert stamped(odd, 1e9) == odd  # spooled by another version: sent as it is, delivery goes on


def test_the_device_names_its_board_where_the_device_tree_does(tmp_path) -> None:
    from ser_edge.daemon import board_model
    from ser_edge.delivery.discovery import DEVICE_KIND, discovery_payload

    tree = tmp_path / "model"
    tree.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")  # as /proc/device-tree/model reads
    topics = Topics.of(MqttSettings(), "kitchen-pi")
    device = json.loads(discovery_payload("kitchen-pi", "Kitchen", topics, ("angry",), board_model(tree)))["dev"]
    assert device["hw"] == "Raspberry Pi 4 Model B Rev 1.4" and device["mdl"] == DEVICE_KIND
    bare = json.loads(discovery_payload("kitchen-pi", "Kitchen", topics, ("angry",), board_model(tmp_path / "no")))
    assert "hw" not in bare["dev"]
