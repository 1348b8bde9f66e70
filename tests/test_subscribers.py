"""The shipped subscriber examples in the real clients, against the real daemon and a real
Mosquitto on loopback. Node-RED (4.1, npm): the flow file as shipped (broker address
aside), read back from Node-RED's own log through a capture copy (tests/nodered/). Home
Assistant (2025.4): the MQTT integration added as a user adds it, the device and entities
read from its registries and states, the shipped automations run with counters for
actions (tests/homeassistant/)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import numpy as np
import paho.mqtt.publish as publish
import pytest
import soundfile as sf
import yaml

from ser_edge.delivery.discovery import Topics
from ser_edge.delivery.events import iso_utc
from ser_edge.recognition.bundle import load_bundle
from ser_edge.settings import MqttSettings
from ser_edge.tools.localbroker import LocalBroker
from tests.conftest import REPO, SAMPLES
from tests.daemon_harness import SHIPPED, Daemon, classify, event_samples, write_config
from tests.homeassistant.harness import HomeAssistant
from tests.nodered.harness import FLOW, NodeRed, capture_copy, editor_defaults

EXAMPLES = REPO / "deploy" / "examples"

SHIPPED_FLOW = json.loads(FLOW.read_text())
BASE = "home/ser"  # a changed mqtt.base_topic: the flow follows its tab's variables
TOPICS = {"SER_EVENT_TOPIC": f"{BASE}/+/event", "SER_AVAILABILITY_TOPIC": f"{BASE}/+/availability"}


def _nodes(kind: str) -> list[dict]:
    return [n for n in SHIPPED_FLOW if n["type"] == kind]


def test_the_flow_file_has_every_field_the_editor_writes() -> None:
    """As exported from Node-RED 4.1's editor: every property its node types define, the
    session settings visible on the broker node, the topics in the tab's variables."""
    defaults = editor_defaults()
    for node in SHIPPED_FLOW:
        if node["type"] == "tab":
            continue
        missing = set(defaults[node["type"]]) - set(node)
        assert not missing, f"{node['type']} {node.get('name')!r} lacks {sorted(missing)}"
    (broker,) = _nodes("mqtt-broker")
    assert broker["clientid"] == "${SER_MQTT_CLIENT_ID}" and broker["sessionExpiry"] == "${SER_MQTT_SESSION_EXPIRY}"
    assert broker["cleansession"] is False and broker["autoUnsubscribe"] is False
    (tab,) = _nodes("tab")
    variables = {v["name"]: v["value"] for v in tab["env"]}
    default = Topics.of(MqttSettings(), "+")
    assert variables["SER_EVENT_TOPIC"] == default.event
    assert variables["SER_AVAILABILITY_TOPIC"] == default.availability
    assert {n["topic"] for n in _nodes("mqtt in")} == {"${SER_EVENT_TOPIC}", "${SER_AVAILABILITY_TOPIC}"}


def _event(device: str, emotion: str, delayed_s: float = 0.0, **affect: float) -> dict:
    """A made-up event; ``affect``: its arousal and valence, when it has them."""
    now = time.time()
    return {"schema": 1, "id": str(uuid.uuid4()), "seq": 1, "device": device, "event_type": emotion,
            "emotion": emotion, "confidence": 0.9, "scores": {emotion: 0.9}, **affect, "start": iso_utc(now - 3),
            "end": iso_utc(now - delayed_s), "duration_s": 3.0, "model": {"name": "m", "version": "1"},
            "delayed_s": delayed_s}  # fmt: skip


@pytest.fixture
def broker(tmp_path: Path):
    with LocalBroker(tmp_path / "broker", persistent=True) as b:
        yield b


def test_node_red_runs_the_shipped_flow_and_delivers_across_its_restart(tmp_path: Path, broker: LocalBroker) -> None:
    red = NodeRed(tmp_path / "node-red", capture_copy(SHIPPED_FLOW, broker.port, TOPICS), client_id="nr-test")
    files = list(event_samples())
    heard, heard_while_down = classify(files), classify(files[:2])
    expected, while_down = [x["emotion"] for x in heard], [x["emotion"] for x in heard_while_down]
    heated = sorted(x["emotion"] for x in heard if x["arousal"] >= 0.5)
    assert 0 < len(heated) < len(expected)  # the premise: some voices heated, not all
    extra = f"  base_topic: {BASE}\n"
    red.start()
    try:
        daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, files=files, extra=extra))
        assert daemon.wait(60) == 0, daemon.log

        def routed() -> list[str]:
            return red.debug("angry voice") + red.debug("other emotions")

        assert red.wait(lambda: len(routed()) == len(expected), 20), red.log()[-3000:]
        got = [line.split(": ", 1)[1].split(" (")[0] for line in routed()]
        assert sorted(got) == sorted(expected)
        assert all(": angry (" in line for line in red.debug("angry voice"))
        assert not any(": angry (" in line for line in red.debug("other emotions"))
        # arousal >= 0.5 (issue 29, part 2): those voices also leave by the heated output, whatever the emotion
        assert red.wait(lambda: len(red.debug("heated voice")) == len(heated), 5), red.log()[-2000:]
        assert sorted(line.split(": ", 1)[1].split(" (")[0] for line in red.debug("heated voice")) == heated
        # headless, the node status is what people glance at: the last emotion, and the device's state
        last = "drop repeats, split late, format: test: " + expected[-1]
        assert red.wait(lambda: last in " ".join(red.debug("status")))
        assert red.wait(lambda: red.debug("device availability")[-1:] == ["test is offline"]), red.log()[-2000:]
        assert "test is online" in red.debug("device availability")

        # Node-RED goes down; the device goes on publishing; Node-RED comes back: the broker
        # kept its persistent session, and the events arrive.
        red.stop()
        again = Daemon(write_config(tmp_path / "c2.yaml", broker.port, files=files[:2], extra=extra))
        assert again.wait(60) == 0, again.log
        red.start()
        assert red.wait(lambda: len(routed()) == len(expected) + len(while_down), 20), red.log(since_start=True)[-3000:]

        # a repeat after the restart is still dropped (the dedupe list is in the file store);
        # a late event goes to the backlog output, not to the automation's
        seen = _event("test", "angry")
        late = _event("test", "sad", delayed_s=480)
        for e in (seen, seen, late):
            publish.single(f"{BASE}/test/event", json.dumps(e), qos=1, hostname="127.0.0.1", port=broker.port)
        assert red.wait(lambda: red.debug("backlog (delivered late)"), 20), red.log(since_start=True)[-3000:]
        assert red.debug("backlog (delivered late)") == [f"test: sad (90 %) at {late['end']} (delivered late)"]
        assert len(red.debug("angry voice")) == (expected + while_down).count("angry") + 1

        # the heated route's edge: 0.5 goes, 0.499 does not, nor an angry event without arousal
        # (a model without it); the last, 0.9, marks the end (one flow: messages keep their order)
        edge = [_event("test", "surprised", arousal=0.5, valence=0.4),
                _event("test", "happy", arousal=0.499, valence=0.7),
                _event("test", "angry"),
                _event("test", "fearful", arousal=0.9, valence=-0.6)]  # fmt: skip
        for e in edge:
            publish.single(f"{BASE}/test/event", json.dumps(e), qos=1, hostname="127.0.0.1", port=broker.port)
        before = len(heated) + sum(x["arousal"] >= 0.5 for x in heard_while_down)
        assert red.wait(lambda: len(red.debug("heated voice")) == before + 2, 20), red.log(since_start=True)[-3000:]
        assert red.debug("heated voice")[before:] == [f"test: {e['emotion']} (90 %) at {e['end']}" for e in edge[::3]]
        assert "TypeError" not in red.log()
    finally:
        red.stop()


def test_two_node_red_instances_without_a_client_id_do_not_throw_each_other_off(
    tmp_path: Path, broker: LocalBroker
) -> None:
    flow = capture_copy(SHIPPED_FLOW, broker.port, TOPICS)
    reds = [NodeRed(tmp_path / f"red{i}", flow, client_id=None) for i in (1, 2)]
    try:
        for red in reds:
            red.start()
        time.sleep(6)  # a fixed shared id would have one drop the other within this
        e = _event("kitchen", "happy")
        publish.single(f"{BASE}/kitchen/event", json.dumps(e), qos=1, hostname="127.0.0.1", port=broker.port)
        for red in reds:
            assert red.wait(lambda red=red: red.debug("other emotions"), 20), red.log()[-2000:]
            assert "Disconnected from broker" not in red.log()
    finally:
        for red in reds:
            red.stop()


# --- Home Assistant ------------------------------------------------------------------------------

SHIPPED_AUTOMATIONS = yaml.safe_load((EXAMPLES / "home-assistant-automation.yaml").read_text())
EVENT_ENTITY = "event.kitchen_emotion_event"  # device.name Kitchen, entity "Emotion event"


def _test_automations() -> list[dict]:
    """The shipped automations with their actions replaced by counters (what they did is
    not under test, that they ran is), and one that counts every event the entity fires."""
    out = []
    for automation, counter in zip(SHIPPED_AUTOMATIONS, ("angry_entity", "angry_topic"), strict=True):
        out.append(
            {**automation, "actions": [{"action": "counter.increment", "target": {"entity_id": f"counter.{counter}"}}]}
        )
    by_type = {"entity_id": "counter.type_{{ trigger.to_state.attributes.event_type }}"}
    out.append({"id": "count_events", "alias": "count events", "mode": "queued", "max": 100,
                "triggers": [{"trigger": "state", "entity_id": EVENT_ENTITY, "not_from": ["unavailable"],
                              "not_to": ["unavailable", "unknown"]}],
                "actions": [{"action": "counter.increment", "target": {"entity_id": "counter.events"}},
                            {"action": "counter.increment", "target": by_type}]})  # fmt: skip
    return out


def test_home_assistant_takes_the_device_and_the_example_automations_act_on_live_events_only(
    tmp_path: Path, broker: LocalBroker
) -> None:
    labels = list(load_bundle(SHIPPED).labels)
    counters = ["angry_entity", "angry_topic", "events"] + [f"type_{label}" for label in labels]
    ha = HomeAssistant(tmp_path / "ha", _test_automations(), counters)
    files = list(event_samples())
    expected = [x["emotion"] for x in classify(files)]
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(3 * 16000, np.int16), 16000)
    ha.start(broker.port)
    try:

        def run(audio: list[Path], realtime: bool = False) -> None:
            config = write_config(tmp_path / "c.yaml", broker.port, files=audio, device="kitchen-pi", realtime=realtime)
            config.write_text(config.read_text().replace("{id: kitchen-pi}", "{id: kitchen-pi, name: Kitchen}"))
            daemon = Daemon(config)
            assert daemon.wait(60) == 0, daemon.log

        run([silence], realtime=True)  # the device's first connection: Home Assistant creates it from discovery
        assert ha.wait(lambda: ha.state(EVENT_ENTITY) is not None), ha.log()[-3000:]
        run(files)

        def count(counter: str) -> int:
            s = ha.state(f"counter.{counter}")
            return int(s["state"]) if s else -1

        assert ha.wait(lambda: count("events") == len(expected)), (count("events"), ha.log()[-3000:])
        # each fired with its own type (event_type = the emotion)
        assert ha.wait(lambda: {e: count(f"type_{e}") for e in labels} == {e: expected.count(e) for e in labels})
        devices, entities = ha.ws({"type": "config/device_registry/list"}, {"type": "config/entity_registry/list"})
        (device,) = [d for d in devices if d["name"] == "Kitchen"]
        assert (device["manufacturer"], device["model"]) == ("ser-edge", "Speech emotion sensor")
        ours = {e["entity_id"]: e for e in entities if e["device_id"] == device["id"]}
        assert EVENT_ENTITY in ours and len(ours) == 13, sorted(ours)  # arousal and valence among them
        states = ha.states()
        # offline at the end of the replay: every entity of the device is unavailable
        assert ha.wait(lambda: all(ha.states()[e]["state"] == "unavailable" for e in ours)), ha.log()[-2000:]
        attributes = {e: states[e]["attributes"] for e in ours}
        by_name = {a.get("friendly_name", "").removeprefix("Kitchen "): a for a in attributes.values()}
        assert by_name["Emotion"]["device_class"] == "enum" and by_name["Emotion"]["options"] == [*labels, "uncertain"]
        assert by_name["Emotion confidence"]["state_class"] == "measurement"
        assert by_name["Dropped events"]["state_class"] == "total_increasing"
        assert by_name["Undelivered events"]["state_class"] == "measurement"
        assert by_name["Last restart"]["device_class"] == "timestamp"
        assert by_name["Emotion event"]["event_types"] == labels

        # live, stale and repeated events against the shipped automations
        def send(e: dict) -> None:
            publish.single("ser/kitchen-pi/event", json.dumps(e), qos=1, hostname="127.0.0.1", port=broker.port)

        publish.single("ser/kitchen-pi/availability", "online", qos=1, retain=True, hostname="127.0.0.1",
                       port=broker.port)  # fmt: skip
        assert ha.wait(lambda: ha.state(EVENT_ENTITY)["state"] != "unavailable")
        # below the threshold the device's state says uncertain (issue 29): one of the sensor's options
        uncertain = {"emotion": "uncertain", "confidence": 0.21, "best": "sad", "time": iso_utc(time.time())}
        publish.single("ser/kitchen-pi/state", json.dumps(uncertain | {"seq": None}), qos=1, retain=True,
                       hostname="127.0.0.1", port=broker.port)  # fmt: skip
        assert ha.wait(lambda: (ha.state("sensor.kitchen_emotion") or {}).get("state") == "uncertain"), ha.log()[-2000:]
        assert float(ha.state("sensor.kitchen_emotion_confidence")["state"]) == 21
        fired, angry = count("events"), (count("angry_entity"), count("angry_topic"))
        assert angry[0] == angry[1] == expected.count("angry")  # live angry replayed events (confidence >= 0.6)
        stale = _event("kitchen-pi", "angry", delayed_s=480)
        send(stale)
        send(_event("kitchen-pi", "happy"))  # a marker: once it is counted, the stale one was seen
        assert ha.wait(lambda: count("events") == fired + 2), ha.log()[-2000:]
        assert ha.state(EVENT_ENTITY)["attributes"]["event_type"] == "happy"
        assert (count("angry_entity"), count("angry_topic")) == angry, "a stale event triggered an automation"
        live = _event("kitchen-pi", "angry")
        send(live)
        assert ha.wait(lambda: (count("angry_entity"), count("angry_topic")) == (angry[0] + 1, angry[1] + 1))
        send(live)  # at-least-once: the same event again
        send(_event("kitchen-pi", "happy"))
        assert ha.wait(lambda: count("events") == fired + 5), ha.log()[-2000:]
        assert count("angry_entity") == angry[0] + 1, "a repeated event triggered the entity automation again"
        assert "[homeassistant.components.mqtt" not in "".join(x for x in ha.log().splitlines() if "ERROR" in x)
    finally:
        ha.stop()


def _heated_trigger() -> list[dict]:
    """The triggers of the README's "the kitchen got heated" example."""
    text = (EXAMPLES / "README.md").read_text()
    (block,) = [b.split("\n", 1)[1] for b in text.split("```")[1::2] if "sensor.kitchen_arousal" in b]
    return yaml.safe_load(block)["triggers"]


def test_home_assistant_keeps_the_history_of_arousal_and_valence(tmp_path: Path, broker: LocalBroker) -> None:
    """Issue 29, part 2: the Arousal and Valence sensors exist, take the daemon's state
    (confident or uncertain), have long-term statistics (graphs) and record every value in
    the recorder; the README's numeric trigger fires when the voice gets heated; a retained
    state without the numbers (an older daemon's) reads unknown without a template error."""
    clip = next(p for p in SAMPLES if p.name.split("-")[2] == "05")  # angry
    (heard,) = classify([clip])
    heated = {"id": "heated", "alias": "heated", "mode": "queued", "triggers": _heated_trigger(),
              "actions": [{"action": "counter.increment", "target": {"entity_id": "counter.heated"}}]}  # fmt: skip
    ha = HomeAssistant(tmp_path / "ha", [heated], ["heated"], history=True)
    ha.start(broker.port)
    since = iso_utc(time.time() - 1)
    axes = {"arousal": "sensor.kitchen_arousal", "valence": "sensor.kitchen_valence"}
    try:
        config = write_config(tmp_path / "c.yaml", broker.port, files=[clip], device="kitchen-pi", realtime=True)
        config.write_text(config.read_text().replace("{id: kitchen-pi}", "{id: kitchen-pi, name: Kitchen}"))
        daemon = Daemon(config)
        assert daemon.wait(60) == 0, daemon.log
        assert ha.wait(lambda: all(ha.state(e) for e in axes.values()), 60), ha.log()[-3000:]
        (entries,) = ha.ws({"type": "config/entity_registry/get_entries", "entity_ids": list(axes.values())})
        assert all(e["options"]["sensor"]["suggested_display_precision"] == 2 for e in entries.values()), entries
        (statistics,) = ha.ws({"type": "recorder/list_statistic_ids", "statistic_type": "mean"})
        assert set(axes.values()) <= {s["statistic_id"] for s in statistics}  # long-term statistics: graphs

        def put(state: dict) -> None:
            publish.single("ser/kitchen-pi/state", json.dumps(state), qos=1, retain=True, hostname="127.0.0.1",
                           port=broker.port)  # fmt: skip

        def shows(values: dict) -> bool:
            return all((ha.state(axes[k]) or {}).get("state") == str(v) for k, v in values.items())

        publish.single("ser/kitchen-pi/availability", "online", qos=1, retain=True, hostname="127.0.0.1",
                       port=broker.port)  # fmt: skip
        daemons = {"arousal": heard["arousal"], "valence": heard["valence"]}
        assert ha.wait(lambda: shows(daemons)), (daemons, ha.states())
        for key, low, high in (("arousal", "calm", "agitated"), ("valence", "negative", "positive")):
            a = ha.state(axes[key])["attributes"]  # an unavailable entity shows no attributes of its own
            assert a["friendly_name"] == f"Kitchen {key.capitalize()}" and a["state_class"] == "measurement"
            assert (a["min"], a["max"], a["low"], a["high"]) == (-1, 1, low, high)
            assert a["icon"].startswith("mdi:") and "unit_of_measurement" not in a
        now = iso_utc(time.time())
        calm = {"arousal": -0.42, "valence": 0.61}
        put({"emotion": "calm", "confidence": 0.93, **calm, "time": now, "seq": 2})
        assert ha.wait(lambda: shows(calm)), ha.log()[-2000:]
        time.sleep(1)  # an automation run is queued by now
        fired = int(ha.state("counter.heated")["state"])
        torn = {"arousal": 0.55, "valence": -0.47}  # between angry and fearful: uncertain, yet agitated
        put({"emotion": "uncertain", "confidence": 0.38, "best": "fearful", **torn, "time": now, "seq": None})
        assert ha.wait(lambda: shows(torn)), ha.log()[-2000:]
        assert ha.wait(lambda: int(ha.state("counter.heated")["state"]) == fired + 1), ha.log()[-2000:]

        def recorded(key: str) -> list[float]:
            return [float(s) for s in ha.history(axes[key], since) if s not in ("unavailable", "unknown")]

        for key in axes:
            expected = [daemons[key], calm[key], torn[key]]
            assert ha.wait(lambda key=key, expected=expected: recorded(key)[-3:] == expected), recorded(key)

        put({"emotion": "calm", "confidence": 0.93, "time": now, "seq": 3})  # an older daemon's state
        assert ha.wait(lambda: all(ha.state(e)["state"] == "unknown" for e in axes.values())), ha.log()[-2000:]
        errors = [x for x in ha.log().splitlines() if "ERROR" in x or "Template variable" in x]
        assert not [x for x in errors if "mqtt" in x or "arousal" in x or "valence" in x], errors
    finally:
        ha.stop()
