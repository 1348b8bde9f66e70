"""The daemon's settings: frozen dataclasses, one per stage, read from
/etc/ser-edge/config.yaml by ``configfile`` (deploy/config/config.example.yaml documents
every key). Defaults are what a Pi with a USB microphone and a local broker needs."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path

from ser_edge.configfile import check, load

MACHINE_ID = Path("/etc/machine-id")
MAX_DEVICE_ID = 64
"""device.id's longest: it goes into every topic and the MQTT client id."""
MAX_TOPIC_PREFIX = 200
"""base_topic's and discovery_prefix's longest (MQTT allows 65,535 bytes for a whole packet's topic)."""


def _default_device_id(machine_id: Path = MACHINE_ID) -> str:
    """The host name plus 6 hex digits derived from the machine id: every Raspberry Pi OS
    install is called "raspberrypi", and two devices with one id take over each other's
    MQTT session forever. The machine id itself stays private (hashed, as systemd advises)."""
    host = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().lower()).strip("-") or "ser-edge"
    try:
        secret = machine_id.read_text().strip()
    except OSError:
        return host
    return f"{host}-{hashlib.sha256(b'ser-edge:' + secret.encode()).hexdigest()[:6]}" if secret else host


@dataclass(frozen=True)
class DeviceSettings:
    id: str = ""
    """Identifies this device in topics and Home Assistant; default: the host name plus 6 hex
    digits from /etc/machine-id (unique per machine, stable across reboots)."""
    name: str = ""
    """Human-readable name shown in Home Assistant; default: "Emotion sensor <id>"."""

    def __post_init__(self) -> None:
        if self.id and not re.fullmatch(r"[A-Za-z0-9_-]+", self.id):
            raise ValueError(f"id {self.id!r} may only contain letters, digits, '_' and '-'")
        if len(self.id) > MAX_DEVICE_ID:  # it is in every topic and the MQTT client id
            raise ValueError(f"id is {len(self.id)} characters long; at most {MAX_DEVICE_ID}")
        object.__setattr__(self, "id", self.id or _default_device_id())
        object.__setattr__(self, "name", self.name or f"Emotion sensor {self.id}")


@dataclass(frozen=True)
class SerialSettings:
    port: str = "/dev/ttyACM0"
    """The node's serial device (a /dev/serial/by-id/ name survives re-enumeration)."""
    mode: str = field(default="features", metadata=check(choices=("audio", "features", "results")))
    """audio: the node streams PCM and the Pi does everything; features: the node runs gate
    and front end, the Pi the model; results: the node runs the model too."""
    baud: int = field(default=115200, metadata=check(1200, 4_000_000))
    """Line speed (USB CDC ignores it; real UARTs need 921600 for audio mode)."""
    link_timeout_s: float = field(default=5.0, metadata=check(1, 600))
    """Silence from the node after which the port is closed and opened again."""
    retry_s: float = field(default=1.0, metadata=check(0.1, 60))
    """Wait between attempts to open a missing port (node unplugged)."""


@dataclass(frozen=True)
class SourceSettings:
    kind: str = field(default="microphone", metadata=check(choices=("microphone", "replay", "serial")))
    """microphone (PyAudio), replay (audio files, e.g. for demos and tests) or serial (an Arduino node)."""
    device: str = ""
    """Microphone: input device name (substring) or index; empty: the system default."""
    files: tuple[Path, ...] = ()
    """Replay: audio files or directories of them, played in order."""
    realtime: bool = True
    """Replay: pace the audio as if it were live; false plays it as fast as possible."""
    loop: bool = False
    """Replay: start again after the last file, forever (soak tests, demo kiosks)."""
    gap_s: float = field(default=1.0, metadata=check(0, 60))
    """Replay: silence inserted between files."""
    chunk_ms: int = field(default=100, metadata=check(10, 1000))
    """Audio handed to the pipeline per read."""
    reopen_s: float = field(default=1.0, metadata=check(0.01, 600))
    """A live source (microphone, serial) that fails is reopened after this, then twice as long each time ..."""
    reopen_attempts: int = field(default=5, metadata=check(0, 100))
    """... this many times in a row; then the daemon exits 69 (EX_UNAVAILABLE) for systemd to restart it."""
    dead_after_s: float = field(default=10.0, metadata=check(1, 3600))
    """Warn that the microphone is dead after this long of all-zero or flat input."""
    queue_s: float = field(default=5.0, metadata=check(1, 600))
    """Audio buffered between capture and processing; beyond it frames are dropped and counted."""
    serial: SerialSettings = field(default_factory=SerialSettings)
    """Serial: the node's port and mode."""

    def __post_init__(self) -> None:
        if self.kind == "replay" and not self.files:
            raise ValueError("files must list audio files or directories when kind is replay")


def _default_gate_bundle() -> Path:
    """The speech gate's bundle ships inside the package (ser_edge/gate/bundle), so a wheel
    install has it; SER_GATE_BUNDLE points elsewhere."""
    return Path(os.environ.get("SER_GATE_BUNDLE", Path(__file__).resolve().parent / "gate" / "bundle"))


@dataclass(frozen=True)
class GateSettings:
    kind: str = field(default="speech", metadata=check(choices=("energy", "speech")))
    """energy: every utterance the energy gate cuts is scored for emotion; speech: only the
    stretches the speech gate's model hears as a voice (music, fans, doors and clicks are
    dropped; TV and radio dialogue is speech and passes)."""
    speech_bundle: Path = field(default_factory=_default_gate_bundle)
    """The speech gate's model bundle (kind speech)."""
    speech_threshold: float = field(default=0.8, metadata=check(0, 0.996))  # int8 P(speech) tops at 255/256
    """A 1 s window (one every 0.2 s) is speech when its P(speech) reaches this (kind speech)."""
    speech_min_windows: int = field(default=3, metadata=check(1, 16))
    """Speech starts when this many of the last speech_of_windows windows are speech (kind speech)."""
    speech_of_windows: int = field(default=3, metadata=check(1, 16))
    """The n of that k-of-n rule (kind speech; at most 16, as on the node)."""
    speech_hangover_ms: int = field(default=400, metadata=check(0, 5000))
    """Speech ends after this long of windows below the threshold (kind speech)."""
    wake_db: float = field(default=6.0, metadata=check(1, 60))
    """Kind speech: the energy stage wakes the model when a frame is this far above the
    noise floor (start_db is for kind energy); low, so speech at 0 dB SNR wakes it."""
    wake_stop_db: float = field(default=3.0, metadata=check(0, 60))
    """Kind speech: ... and stays awake while frames stay this far above it."""
    engine: str = field(default="energy", metadata=check(choices=("energy", "webrtcvad")))
    """energy (fixed-point energy + zero crossings) or webrtcvad (needs the webrtcvad package)."""
    start_db: float = field(default=12.0, metadata=check(1, 60))
    """Speech starts when frame energy is this far above the noise floor."""
    stop_db: float = field(default=6.0, metadata=check(0, 60))
    """... and continues while it stays this far above it (hysteresis)."""
    floor_db: float = field(default=-96.0, metadata=check(-96, 0))
    """Lowest noise floor, dB relative to full scale (the floor starts at the first frame's
    level and adapts from there); quieter frames carry no signal. At -96 a frame of last-bit
    noise (about -93 dBFS) is still signal, so a quiet talker whose pauses fall to the last
    bit still opens the gate."""
    max_zcr: float = field(default=0.5, metadata=check(0, 1))
    """Frames crossing zero more often than this (per sample) are hiss, not voice."""
    webrtcvad_mode: int = field(default=2, metadata=check(0, 3))
    """webrtcvad aggressiveness."""
    onset_ms: int = field(default=60, metadata=check(20, 1000))
    """Voiced time needed to open an utterance."""
    hangover_ms: int = field(default=500, metadata=check(0, 5000))
    """Unvoiced time that closes an utterance."""
    preroll_ms: int = field(default=300, metadata=check(0, 2000))
    """Audio kept from before the onset."""
    min_utterance_ms: int = field(default=500, metadata=check(0, 60000))
    """Shorter utterances are ignored (clicks, coughs)."""
    max_utterance_ms: int = field(default=8000, metadata=check(500, 120000))
    """Longer speech is cut into utterances of this length."""

    def __post_init__(self) -> None:
        if self.stop_db > self.start_db:
            raise ValueError(f"stop_db ({self.stop_db:g}) must not exceed start_db ({self.start_db:g})")
        if self.wake_stop_db > self.wake_db:
            raise ValueError(f"wake_stop_db ({self.wake_stop_db:g}) must not exceed wake_db ({self.wake_db:g})")
        if self.speech_min_windows > self.speech_of_windows:
            raise ValueError(f"speech_min_windows ({self.speech_min_windows}) must not exceed speech_of_windows "
                             f"({self.speech_of_windows})")  # fmt: skip
        if self.min_utterance_ms >= self.max_utterance_ms:
            raise ValueError("min_utterance_ms must be below max_utterance_ms")


def default_bundle(source: SourceSettings) -> Path:
    """$SER_BUNDLE, else the checkout's shipped model for this source: ser-base where the Pi
    has the audio (microphone, replay, a node in audio mode), ser-tiny for a node in
    features or results mode (its rows or scores are all the Pi gets)."""
    if "SER_BUNDLE" in os.environ:
        return Path(os.environ["SER_BUNDLE"])
    rows_only = source.kind == "serial" and source.serial.mode in ("features", "results")
    return Path(__file__).resolve().parents[2] / "deploy/models" / ("ser-tiny" if rows_only else "ser-base")


@dataclass(frozen=True)
class ModelSettings:
    bundle: Path | None = None
    """Model bundle directory (manifest.json, model.tflite, and encoder.tflite for ser-base);
    default: default_bundle() for the configured source."""
    threshold: float = field(default=0.3, metadata=check(0, 1))
    """Emit an event only when the winning emotion's score reaches this (see docs/daemon.md)."""


@dataclass(frozen=True)
class TlsSettings:
    ca_file: Path | None = None
    """CA certificate that signed the broker's certificate."""
    cert_file: Path | None = None
    """Client certificate, for brokers that require one."""
    key_file: Path | None = None
    """Client certificate's private key."""

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")


@dataclass(frozen=True)
class MqttSettings:
    host: str = "localhost"
    """Broker host name or address."""
    port: int = field(default=1883, metadata=check(1, 65535))
    """Broker port (8883 is usual with TLS)."""
    protocol: str = field(default="5", metadata=check(choices=("5", "3.1.1")))
    """MQTT protocol version."""
    base_topic: str = "ser"
    """Topics are <base_topic>/<device id>/{event,state,availability,stats}."""
    username: str = ""
    """Broker user name; empty: anonymous."""
    password_file: Path | None = None
    """File holding the password (never inline); a relative name is looked up in
    $CREDENTIALS_DIRECTORY (systemd LoadCredential=)."""
    tls: TlsSettings | None = None
    """TLS to the broker; absent: plain TCP."""
    keepalive_s: int = field(default=60, metadata=check(5, 3600))
    """MQTT keepalive."""
    reconnect_max_s: int = field(default=120, metadata=check(1, 3600))
    """Longest wait between reconnection attempts (backoff starts at 1 s)."""
    discovery: bool = True
    """Publish Home Assistant MQTT discovery."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix; its birth message is <prefix>/status."""
    stats_interval_s: int = field(default=60, metadata=check(1, 86400))
    """Period of the stats topic."""

    def __post_init__(self) -> None:
        if not _is_host(self.host):
            raise ValueError(
                f"host {self.host!r} is not a host name or address (dot-separated labels of 1-63 letters, digits, '-')"
            )
        for name in ("base_topic", "discovery_prefix"):
            value = getattr(self, name)
            if not value or any(c in value for c in "#+") or value.startswith("/") or value.endswith("/"):
                raise ValueError(f"{name} {value!r} must be a topic without wildcards or outer slashes")
            if value.startswith("$"):  # $SYS/...: the broker's own; it drops what clients publish there
                raise ValueError(f"{name} {value!r} must not start with '$' (topics the broker keeps for itself)")
            if len(value) > MAX_TOPIC_PREFIX:
                raise ValueError(f"{name} is {len(value)} characters long; at most {MAX_TOPIC_PREFIX}")


def _is_host(host: str) -> bool:
    """A DNS name (RFC 1123 labels) or an IP address: what the network stack accepts."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    label = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")  # "_": docker names resolve
    return 0 < len(host) <= 253 and all(label.fullmatch(x) for x in labels)


def _default_spool() -> Path:
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state or Path.home() / ".local/state/ser-edge") / "spool.sqlite"


@dataclass(frozen=True)
class SpoolSettings:
    path: Path = field(default_factory=_default_spool)
    """SQLite file holding events until the broker acknowledges them; default
    $STATE_DIRECTORY/spool.sqlite under systemd."""
    max_events: int = field(default=10000, metadata=check(10, 10_000_000))
    """When full, the oldest undelivered event is dropped (and counted) for each new one."""


@dataclass(frozen=True)
class Settings:
    device: DeviceSettings = field(default_factory=DeviceSettings)
    """Who this device is."""
    source: SourceSettings = field(default_factory=SourceSettings)
    """Where audio comes from."""
    gate: GateSettings = field(default_factory=GateSettings)
    """How speech is cut into utterances."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """Which model scores them and when an event is emitted."""
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    """Where events go."""
    spool: SpoolSettings = field(default_factory=SpoolSettings)
    """Where events wait for the broker."""

    def __post_init__(self) -> None:
        if self.model.bundle is None:
            object.__setattr__(self, "model", replace(self.model, bundle=default_bundle(self.source)))
        if self.gate.kind == "speech" and self.source.kind == "serial" and self.source.serial.mode == "results":
            raise ValueError("gate.kind speech cannot check a node in results mode (the node scores what its "
                             "energy gate cuts; music would be published): use source.serial.mode features, "
                             "or write gate.kind: energy")  # fmt: skip


def load_settings(path: Path) -> Settings:
    """Settings from a YAML file; ConfigError names the key and line of any problem."""
    return load(path, Settings)
