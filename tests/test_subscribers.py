"""The shipped subscriber examples in the real clients, against the real daemon and a real
Mosquitto on loopback. Node-RED (4.1, npm): the flow file as shipped (broker address
aside), read back from Node-RED's own log through a capture copy (tests/nodered/)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from ser_edge.discovery import Topics
from ser_edge.events import iso_utc
from ser_edge.localbroker import LocalBroker
from ser_edge.settings import MqttSettings
from tests.daemon_harness import Daemon, classify, event_samples, write_config
from tests.nodered.harness import FLOW, NodeRed, capture_copy, editor_defaults

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


def _event(device: str, emotion: str, delayed_s: float = 0.0) -> dict:
    now = time.time()
    return {"schema": 1, "id": str(uuid.uuid4()), "seq": 1, "device": device, "event_type": emotion,
            "emotion": emotion, "confidence": 0.9, "scores": {emotion: 0.9}, "start": iso_utc(now - 3),
            "end": iso_utc(now - delayed_s), "duration_s": 3.0, "model": {"name": "m", "version": "1"},
            "delayed_s": delayed_s}  # fmt: skip


@pytest.fixture
def broker(tmp_path: Path):
    with LocalBroker(tmp_path / "broker", persistent=True) as b:
        yield b


def test_node_red_runs_the_shipped_flow_and_delivers_across_its_restart(tmp_path: Path, broker: LocalBroker) -> None:
    red = NodeRed(tmp_path / "node-red", capture_copy(SHIPPED_FLOW, broker.port, TOPICS), client_id="nr-test")
    files = list(event_samples())
    expected = [x["emotion"] for x in classify(files)]
    while_down = [x["emotion"] for x in classify(files[:2])]
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
