"""The publisher's network loop survives what kills paho's own thread (issue 13)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from paho.mqtt import publish

from ser_edge.delivery.publisher import Publisher
from ser_edge.delivery.spool import Spool
from ser_edge.settings import DeviceSettings, MqttSettings
from ser_edge.tools.localbroker import LocalBroker
from tests.daemon_harness import Subscriber


def test_an_exception_in_the_network_loop_is_logged_and_delivery_goes_on(tmp_path: Path, caplog) -> None:
    """A callback that raises ends paho's loop_forever (paho re-raises it); with paho's own
    thread that was a silent outage: READY, connected in name, nothing sent."""
    with LocalBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.port, "ser/test/event")
        spool = Spool(tmp_path / "spool.sqlite", 100)
        p = Publisher(MqttSettings(host="127.0.0.1", port=broker.port), DeviceSettings(id="test"), spool)
        original = p._client.on_message
        failures = []

        def fails_once(client, userdata, message) -> None:
            if not failures:
                failures.append(message.topic)
                raise RuntimeError("a callback bug")
            original(client, userdata, message)

        p._client.on_message = fails_once
        p.start()
        try:
            assert p.connected.wait(10)
            deadline = time.monotonic() + 10
            while not failures and time.monotonic() < deadline:
                # Again until it lands: one sent before the publisher's SUBACK is not delivered.
                publish.single("homeassistant/status", "online", hostname="127.0.0.1", port=broker.port)
                time.sleep(0.2)
            seq = spool.add(lambda n: json.dumps({"seq": n}))
            p.event_added(seq, time.monotonic())
            assert sub.wait(lambda s: [e["seq"] for e in s.events()] == [seq], 15)
            deadline = time.monotonic() + 10
            while len(spool) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(spool) == 0  # acknowledged and forgotten
        finally:
            p.stop()
            sub.close()
    assert failures == ["homeassistant/status"]
    assert any("the MQTT network loop failed (RuntimeError: a callback bug); restarting it" in r.message
               for r in caplog.records)  # fmt: skip
