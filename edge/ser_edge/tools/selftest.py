"""`ser-edge selftest`: can this device do its job? For operators and deployment health gates.

Checks, each reported on one line: the config is valid; its model bundle loads and
recognises a known clip as the expected emotion (through the daemon's own stages); when
asked, the broker holds this device's retained availability ``online`` and its stats say
the broker accepts its events (the running daemon is connected and delivering); and a
probe published with the device's credentials comes back (the broker takes and routes
what this device publishes).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ser_edge.delivery.discovery import Topics
from ser_edge.delivery.publisher import mqtt_client, refusal
from ser_edge.pipeline import recognise_file
from ser_edge.preflight import check_bundle
from ser_edge.settings import Settings


class SelftestError(ValueError):
    """A check that failed; the message says which and why."""


def check_model(settings: Settings, clip: Path, expect: str) -> str:
    model = check_bundle(settings.model.bundle, settings)
    b = model.bundle
    found = recognise_file(clip, model, settings.gate, 0.0)
    if not found:
        raise SelftestError(f"model {b.name} {b.version}: no speech found in {clip}")
    best = max(found, key=lambda r: r.seconds)
    if best.emotion != expect:
        raise SelftestError(
            f"model {b.name} {b.version}: {clip.name} recognised as {best.emotion} {best.confidence:.2f}, "
            f"expected {expect}"
        )
    return f"model {b.name} {b.version} ({b.sha256[:12]}): {clip.name} -> {best.emotion} {best.confidence:.2f}"


class _Session:
    """A short MQTT session with the device's own broker settings and credentials: what
    the running daemon can do, the self-test can check."""

    def __init__(self, settings: Settings, topics: list[str], timeout: float) -> None:
        m = self.mqtt = settings.mqtt
        self.timeout = timeout
        self.client = mqtt_client(m, f"ser-edge-selftest-{settings.device.id}")
        self.messages: dict[str, list[bytes]] = {t: [] for t in topics}
        self.refusal = ""
        self.changed = threading.Condition()
        self.client.on_connect = self._connected
        self.client.on_message = self._message

    def start(self) -> None:
        """Connect (set any further callbacks before this)."""
        m = self.mqtt
        try:
            self.client.connect(m.host, m.port, m.keepalive_s)
        except OSError as e:
            raise SelftestError(f"broker {m.host}:{m.port}: cannot connect ({e})") from None
        self.client.loop_start()

    def _connected(self, client, _u, _flags, reason, _props) -> None:
        if reason.is_failure:
            self._note(refusal=refusal(self.mqtt, reason))
            return
        for topic in self.messages:
            client.subscribe(topic, qos=1)

    def _message(self, _c, _u, message) -> None:
        self._note(message=message)

    def _note(self, refusal: str = "", message=None) -> None:
        with self.changed:
            self.refusal = refusal or self.refusal
            if message is not None and message.topic in self.messages:
                self.messages[message.topic].append(message.payload)
            self.changed.notify_all()

    def wait(self, done: Callable[[], bool]) -> None:
        """Until ``done`` or the timeout; a refused connection is a failure at once."""
        with self.changed:
            self.changed.wait_for(lambda: done() or bool(self.refusal), self.timeout)
            if self.refusal:
                raise SelftestError(self.refusal)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def check_availability(settings: Settings, timeout: float) -> str:
    """The retained availability the running daemon keeps on the broker, and its last
    stats: ``online``, and not a broker that refuses its events."""
    topics = Topics.of(settings.mqtt, settings.device.id)
    m = settings.mqtt
    session = _Session(settings, [topics.availability, topics.stats], timeout)
    session.start()
    try:
        session.wait(lambda: bool(session.messages[topics.availability] and session.messages[topics.stats]))
    finally:
        session.close()
    got = session.messages[topics.availability]
    if not got:
        raise SelftestError(f"{topics.availability}: nothing retained on {m.host}:{m.port} within {timeout:g} s")
    if got[-1] != b"online":
        raise SelftestError(f"{topics.availability} is {got[-1].decode(errors='replace')!r}, not 'online'")
    stats = session.messages[topics.stats]
    try:
        refusing = json.loads(stats[-1]).get("delivery_error", "") if stats else ""
    except (ValueError, AttributeError):
        refusing = ""
    if refusing:
        raise SelftestError(f"the broker refuses this device's events ({refusing}); they wait in its spool")
    return f"{topics.availability} = online on {m.host}:{m.port}"


def check_delivery(settings: Settings, timeout: float) -> str:
    """A probe published as the device publishes (its credentials, QoS 1) to
    ``<base>/<id>/selftest``, acknowledged without a failure code and received back by a
    subscriber: the broker takes this device's messages and routes them."""
    topic = Topics.of(settings.mqtt, settings.device.id).selftest
    m = settings.mqtt
    probe = json.dumps({"probe": uuid.uuid4().hex, "time": time.time()}).encode()
    session = _Session(settings, [topic], timeout)
    acked: list = []
    session.client.on_publish = lambda _c, _u, _mid, reason, _p: acked.append(reason) or session._note()
    session.client.on_subscribe = lambda c, *_: c.publish(topic, probe, qos=1)
    session.start()
    try:
        session.wait(lambda: bool(acked) and (acked[0].is_failure or probe in session.messages[topic]))
    finally:
        session.close()
    if acked and acked[0].is_failure:
        raise SelftestError(f"{topic}: the broker refused the probe ({acked[0]})")
    if probe not in session.messages[topic]:
        seen = "acknowledged but not received back" if acked else "not acknowledged"
        raise SelftestError(f"{topic}: a probe published on {m.host}:{m.port} was {seen} within {timeout:g} s")
    return f"{topic}: a probe was published, acknowledged and received back on {m.host}:{m.port}"
