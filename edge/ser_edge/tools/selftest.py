"""`ser-edge selftest`: can this device do its job? For operators and deployment health gates.

Checks, each reported on one line: the config is valid; its model bundle loads and
recognises a known clip as the expected emotion (through the daemon's own stages); and,
when asked, the broker holds this device's retained availability ``online`` (the running
daemon is connected).
"""

from __future__ import annotations

import threading
from pathlib import Path

from ser_edge.delivery.discovery import Topics
from ser_edge.delivery.publisher import mqtt_client
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


def check_availability(settings: Settings, timeout: float) -> str:
    """The retained availability the running daemon keeps on the broker."""
    topic = Topics.of(settings.mqtt, settings.device.id).availability
    m = settings.mqtt
    client = mqtt_client(m, f"ser-edge-selftest-{settings.device.id}")
    got: list[str] = []
    received = threading.Event()

    def on_message(_c, _u, message) -> None:
        got.append(message.payload.decode(errors="replace"))
        received.set()

    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = on_message
    try:
        client.connect(m.host, m.port, m.keepalive_s)
    except OSError as e:
        raise SelftestError(f"broker {m.host}:{m.port}: cannot connect ({e})") from None
    client.loop_start()
    try:
        received.wait(timeout)
    finally:
        client.loop_stop()
        client.disconnect()
    if not got:
        raise SelftestError(f"{topic}: nothing retained on {m.host}:{m.port} within {timeout:g} s")
    if got[-1] != "online":
        raise SelftestError(f"{topic} is {got[-1]!r}, not 'online'")
    return f"{topic} = online on {m.host}:{m.port}"
