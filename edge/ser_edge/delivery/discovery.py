"""MQTT topics of a device and its Home Assistant discovery message (pure functions).

One device-based discovery message (``<prefix>/device/<id>/config``) declares:
an ``event`` entity firing with the model's labels, an enum ``sensor`` with the last
utterance's emotion (a label, or ``uncertain`` below the threshold), its confidence,
its arousal and valence (when the model's labels have places on that plane), and
diagnostic sensors read from the stats topic. Counters and gauges carry a
``state_class`` so Home Assistant keeps statistics of them (graphs, thresholds); the
device's model is the kind of device, the ML model a diagnostic sensor (its version
changes with every rollout, the device does not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ser_edge import __version__
from ser_edge.recognition.affect import AXES, places
from ser_edge.recognition.bundle import UNCERTAIN
from ser_edge.settings import MqttSettings

DEVICE_KIND = "Speech emotion sensor"
"""The Home Assistant device's model: what the device is."""

#: Numeric diagnostic sensors: (stats key, name, unit, state class, icon). Gauges are
#: ``measurement``; counters since the daemon started are ``total_increasing`` (Home
#: Assistant takes a drop to 0 as a restart).
DIAGNOSTICS = (
    ("latency_p95_ms", "Event latency p95", "ms", "measurement", "mdi:timer-outline"),
    ("cpu_percent", "CPU (% of one core)", "%", "measurement", "mdi:cpu-64-bit"),
    ("spool_depth", "Undelivered events", "events", "measurement", "mdi:tray-full"),
    ("spool_dropped", "Dropped events", "events", "total_increasing", "mdi:tray-remove"),
    ("dropped_frames", "Dropped audio frames", "frames", "total_increasing", "mdi:waveform"),
    ("input_level_db", "Input level", "dB", "measurement", "mdi:microphone"),
)

AXIS_ICONS = {"arousal": "mdi:lightning-bolt", "valence": "mdi:emoticon-happy-outline"}
"""The icon of each axis's sensor (recognition.affect.AXES)."""


@dataclass(frozen=True)
class Topics:
    base: str
    """<base_topic>/<device id>"""

    @classmethod
    def of(cls, mqtt: MqttSettings, device_id: str) -> Topics:
        return cls(f"{mqtt.base_topic}/{device_id}")

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def stats(self) -> str:
        return f"{self.base}/stats"

    @property
    def selftest(self) -> str:
        """Where ``ser-edge selftest --delivery`` sends its probe and reads it back."""
        return f"{self.base}/selftest"


def discovery_topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/device/{device_id}/config"


def axis_sensor(uid: str, topics: Topics, key: str, low: str, high: str) -> dict:
    """A numeric sensor of one axis, read from the state topic. Home Assistant's sensors
    have no minimum or maximum, so the range and what its ends mean are attributes; the
    ``default`` keeps a state without the key (an older daemon's, retained) from logging a
    template error: the sensor reads unknown."""
    attributes = {"min": -1, "max": 1, "low": low, "high": high}
    return {
        "p": "sensor", "name": key.capitalize(), "unique_id": f"{uid}_{key}", "state_topic": topics.state,
        "value_template": f"{{{{ value_json.{key} | default(none) }}}}", "state_class": "measurement",
        "suggested_display_precision": 2, "icon": AXIS_ICONS[key],
        "json_attributes_topic": topics.state, "json_attributes_template": json.dumps(attributes),
    }  # fmt: skip


def discovery_payload(device_id: str, device_name: str, topics: Topics, labels: tuple[str, ...],
                      hardware: str = "") -> str:  # fmt: skip
    """The device-based discovery JSON for Home Assistant; ``hardware``: the board, when
    known (a Raspberry Pi's /proc/device-tree/model)."""
    uid = f"ser_edge_{device_id}"
    components: dict[str, dict] = {
        f"{uid}_event": {
            "p": "event", "name": "Emotion event", "unique_id": f"{uid}_event", "state_topic": topics.event,
            "event_types": list(labels), "icon": "mdi:account-voice",
        },
        f"{uid}_emotion": {
            "p": "sensor", "name": "Emotion", "unique_id": f"{uid}_emotion", "state_topic": topics.state,
            "device_class": "enum", "options": [*labels, UNCERTAIN], "value_template": "{{ value_json.emotion }}",
            "json_attributes_topic": topics.state, "icon": "mdi:emoticon-outline",
        },
        f"{uid}_confidence": {
            "p": "sensor", "name": "Emotion confidence", "unique_id": f"{uid}_confidence",
            "state_topic": topics.state, "unit_of_measurement": "%", "state_class": "measurement",
            "value_template": "{{ (value_json.confidence * 100) | round(0) }}", "icon": "mdi:gauge",
        },
        f"{uid}_started": {
            "p": "sensor", "name": "Last restart", "unique_id": f"{uid}_started", "state_topic": topics.stats,
            "device_class": "timestamp", "value_template": "{{ value_json.started }}",
            "entity_category": "diagnostic", "icon": "mdi:restart",
        },
        f"{uid}_model": {
            "p": "sensor", "name": "Emotion model", "unique_id": f"{uid}_model", "state_topic": topics.stats,
            "value_template": "{{ value_json.model }} {{ value_json.model_version }}",
            "entity_category": "diagnostic", "icon": "mdi:brain",
        },
    }  # fmt: skip
    if places(labels) is not None:
        components.update({f"{uid}_{key}": axis_sensor(uid, topics, key, low, high) for key, low, high in AXES})
    for key, name, unit, state_class, icon in DIAGNOSTICS:
        components[f"{uid}_{key}"] = {
            "p": "sensor", "name": name, "unique_id": f"{uid}_{key}", "state_topic": topics.stats,
            "value_template": f"{{{{ value_json.{key} }}}}", "entity_category": "diagnostic", "icon": icon,
            "unit_of_measurement": unit, "state_class": state_class,
        }  # fmt: skip
    device = {"ids": [uid], "name": device_name, "mf": "ser-edge", "mdl": DEVICE_KIND, "sw": __version__}
    if hardware:
        device["hw"] = hardware
    return json.dumps({
        "dev": device,
        "o": {"name": "ser-edge", "sw": __version__},
        "availability_topic": topics.availability,
        "qos": 1,
        "cmps": components,
    })  # fmt: skip
