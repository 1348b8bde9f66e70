"""An Arduino node on a serial port as the daemon's source (deploy/arduino/PROTOCOL.md).

On opening the port the Pi sends CONFIG (the mode and its own gate settings, so node and
Pi cut speech the same way); the node answers with HELLO, which is checked against the
running bundle. From then on the node's frames become the pipeline's input: audio chunks
(audio mode), an utterance's feature rows (features mode) or its window scores (results
mode). Damaged frames, and frames whose numbers are out of range, are counted and
skipped; a gap in the sequence numbers drops the utterance it hit (or, for audio, tells
the gate to start afresh) and is counted, as does closing the port or linking again. A
read error or ``link_timeout_s`` of silence closes the port, which is then reopened
every ``retry_s``: unplugging and replugging the node needs nothing from anyone. What
the node makes the Pi log is escaped and rate-limited (``NodeLog``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from ser_edge.audio.sources import SAMPLE_RATE, Chunk
from ser_edge.link.protocol import (
    Deframer,
    FrameError,
    Message,
    MessageType,
    NodeMismatch,
    check_hello,
    config_payload,
    encode,
    parse_features,
    parse_result,
    printable,
)
from ser_edge.recognition.bundle import Bundle
from ser_edge.settings import SerialSettings

log = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
"""The Pi's heartbeat to a linked node; the node gives up after 5 s without one."""
LOG_LINES = 5
"""Lines a node can make the Pi log per LOG_INTERVAL_S; the rest are counted."""
LOG_INTERVAL_S = 1.0


@dataclass(frozen=True)
class NodeUtterance:
    """An utterance the node cut: its feature rows (features mode) or its raw window scores (results mode)."""

    start: float
    """UNIX time of its first sample (the node's clock, mapped when the link came up)."""
    end: float
    features: np.ndarray | None = None
    """(rows, columns) int8."""
    scores: np.ndarray | None = None
    """(windows, labels) int8, the model's raw outputs."""


@dataclass(frozen=True)
class NodeSpeech:
    """gate.kind speech on a node in features mode: the node runs the speech gate."""

    sha256: str
    """The speech gate model's hash, which the node's must match."""
    rule: tuple[int, int, int, int]
    """int8 threshold, min_windows, of_windows, hangover (CONFIG's speech block)."""


@dataclass(frozen=True)
class AudioGap:
    """AUDIO frames went missing: the gate must not join the audio on both sides."""


@dataclass
class LinkStats:
    """The link's figures, published in the stats topic with a ``link_`` prefix."""

    state: str = "closed"
    """closed, waiting (for the node's HELLO), linked or refused."""
    frames: int = 0
    """Good frames received."""
    errors: int = 0
    """Damaged frames dropped (bad CRC or COBS, truncated, malformed payload)."""
    lost: int = 0
    """Frames missing from the sequence numbers."""
    utterances_lost: int = 0
    """Utterances dropped because a later piece of their features arrived without the earlier ones."""
    reconnects: int = 0
    """Times the port was closed after an error or silence and opened again."""
    node: str = ""
    """The linked node's firmware, front end and model."""

    def as_dict(self) -> dict:
        return {f"link_{k}": v for k, v in asdict(self).items()}


class NodeLog:
    """The Pi's log lines caused by the node (its LOG frames, bad frames, refused HELLOs):
    at most LOG_LINES per LOG_INTERVAL_S and then one line counting the rest, so a node
    flooding the port cannot flood the log (one wrote 8.5 MB of it in 5 s)."""

    def __init__(self, port: str) -> None:
        self.port = port
        self._since = time.monotonic()
        self._lines = self._suppressed = 0

    def say(self, level: int, text: str, *args: object) -> bool:
        """Log ``text % args`` after ``serial <port>: `` unless the interval's lines are used
        up; whether it was logged."""
        self.tick()
        if self._lines >= LOG_LINES:
            self._suppressed += 1
            return False
        self._lines += 1
        log.log(level, "serial %s: " + text, self.port, *args)
        return True

    def tick(self) -> None:
        """Ends an interval that is over, saying how many lines it held back."""
        now = time.monotonic()
        if now - self._since < LOG_INTERVAL_S:
            return
        if self._suppressed:
            log.warning("serial %s: %d more lines about the node not logged (at most %d per %g s)", self.port,
                        self._suppressed, LOG_LINES, LOG_INTERVAL_S)  # fmt: skip
        self._since, self._lines, self._suppressed = now, 0, 0


def open_port(s: SerialSettings):
    import serial  # pyserial

    return serial.serial_for_url(s.port, baudrate=s.baud, timeout=0.1, write_timeout=1.0)


class SerialSource:
    """Iterates Chunk, NodeUtterance and AudioGap items until ``stop`` is set."""

    def __init__(
        self, s: SerialSettings, gate: tuple[int, ...], bundle: Callable[[], Bundle], stop: threading.Event,
        opener: Callable = open_port, speech: NodeSpeech | None = None,
    ) -> None:  # fmt: skip
        self.settings = s
        self.stats = LinkStats()
        self.config = b""
        self.speech: NodeSpeech | None = None
        self._relink = threading.Event()
        self.configure(gate, speech)
        self.bundle = bundle
        self._stop = stop
        self._opener = opener
        self.refusal = ""
        self.alive_at = time.monotonic()
        """When the reading loop last went round (each read or retry): the watchdog's proof of life."""
        self.node_log = NodeLog(s.port)

    def __iter__(self) -> Iterator[Chunk | NodeUtterance | AudioGap]:
        outage = ""
        while not self._stop.is_set():
            try:
                port = self._opener(self.settings)
            except (OSError, ValueError) as e:  # pyserial's SerialException is an OSError
                if str(e) != outage:
                    log.warning("serial %s: cannot open (%s); retrying every %g s", self.settings.port, e,
                                self.settings.retry_s)  # fmt: skip
                    outage = str(e)
                self._pause(self.settings.retry_s)
                continue
            outage = ""
            log.info("serial %s: open; configuring the node for %s mode", self.settings.port, self.settings.mode)
            try:
                yield from self._session(port)
            except OSError as e:
                log.warning("serial %s: %s; reopening", self.settings.port, e)
            finally:
                port.close()
                self.stats.state = "closed"
            if self.settings.mode == "audio":
                yield AudioGap()  # what the gate holds must not be joined to the next link's audio
            if not self._stop.is_set():
                self.stats.reconnects += 1
                self._pause(self.settings.retry_s)

    def _pause(self, seconds: float) -> None:
        """Wait before trying the port again, showing life every second meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            self._stop.wait(min(left, 1.0))
            self.alive_at = time.monotonic()

    def configure(self, gate: tuple[int, ...], speech: NodeSpeech | None = None) -> None:
        """New gate settings or a new model (SIGHUP): the node is configured and its HELLO
        checked again, so it never runs on stale settings or against another model."""
        self.speech = speech if self.settings.mode == "features" else None
        rule = self.speech.rule if self.speech else None
        # Each frame also starts with a delimiter, so line noise before it costs only itself.
        self.config = b"\0" + encode(Message(MessageType.CONFIG, 0, config_payload(self.settings.mode, gate, rule)))
        self._relink.set()

    def _session(self, port) -> Iterator[Chunk | NodeUtterance | AudioGap]:
        session = _Session(self, port)
        last_heard = next_beat = time.monotonic()
        self._relink.set()
        while not self._stop.is_set():
            if self._relink.is_set():
                self._relink.clear()
                port.write(self.config)
                self.stats.state = "waiting"
            data = port.read(4096)
            self.node_log.tick()
            now = self.alive_at = time.monotonic()
            before = session.deframer.errors
            for message in session.deframer.feed(data):
                last_heard = now
                yield from session.handle(message)
            self.stats.errors += session.deframer.errors - before
            if now - last_heard > self.settings.link_timeout_s:
                raise OSError(f"no word from the node for {self.settings.link_timeout_s:g} s")
            if self.stats.state == "linked" and now >= next_beat:
                port.write(b"\0" + encode(Message(MessageType.HEARTBEAT, 0, b"\0\0\0\0")))
                next_beat = now + HEARTBEAT_S

    def refuse(self, reason: str) -> None:
        self.stats.state = "refused"
        # The node beacons every second: say it once (at the next beacon if the log limit held it back).
        if reason != self.refusal and self.node_log.say(logging.ERROR, "node refused: %s", reason):
            self.refusal = reason


class _Session:
    """One opening of the port: sequence numbers, clock mapping, a half-received utterance."""

    def __init__(self, source: SerialSource, port) -> None:
        self.source, self.port = source, port
        self.stats = source.stats
        self.mode = source.settings.mode
        self.deframer = Deframer()
        self.seq: int | None = None
        self.offset = 0.0  # UNIX time = offset + node ms / 1000
        self.samples = 0  # audio received since the link came up
        self.pieces: list[np.ndarray] = []

    def handle(self, m: Message) -> Iterator[Chunk | NodeUtterance | AudioGap]:
        self.stats.frames += 1
        if m.type == MessageType.HELLO:
            self.seq = m.seq
            yield from self.hello(m.payload)
            return
        lost = 0 if self.seq is None else (m.seq - self.seq - 1) & 0xFFFF
        self.seq = m.seq
        if lost:
            self.stats.lost += lost
            yield from self.gap()
        if self.stats.state != "linked":
            return
        try:
            if m.type == MessageType.AUDIO and self.mode == "audio":
                yield self.audio(m.payload)
            elif m.type == MessageType.FEATURES and self.mode == "features":
                yield from self.features(m.payload)
            elif m.type == MessageType.RESULT and self.mode == "results":
                start, end, raw = parse_result(m.payload, len(self.source.bundle().labels))
                yield NodeUtterance(self.time(start), self.time(end), scores=raw.copy())
            elif m.type == MessageType.LOG:
                text = printable(m.payload.decode("utf-8", "replace"))
                self.source.node_log.say(logging.WARNING, "node says: %s", text)
        except FrameError as e:
            self.stats.errors += 1
            self.source.node_log.say(logging.WARNING, "dropped a frame: %s", e)

    def hello(self, payload: bytes) -> Iterator[AudioGap]:
        b = self.source.bundle()
        try:
            speech = self.source.speech
            hello = check_hello(payload, self.mode, b.frontend.hash, b.sha256, speech.sha256 if speech else "")
        except NodeMismatch as e:
            self.source.refuse(str(e))
            return
        if hello.get("mode") != self.mode:  # a node that booted, or one the last Pi set up differently
            self.port.write(self.source.config)
            return
        self.offset = time.time() - hello.get("uptime_ms", 0) / 1000
        self.samples, self.pieces = 0, []
        self.stats.state = "linked"
        firmware, frontend, model = (printable(hello.get(k, ""), 80) for k in ("firmware", "frontend", "model"))
        self.stats.node = f"firmware {firmware}, front end {frontend}, model {model}"
        self.source.refusal = ""
        log.info("serial %s: node linked in %s mode (%s)", self.source.settings.port, self.mode, self.stats.node)
        if self.mode == "audio":
            yield AudioGap()  # a node that linked again (rebooted, reconfigured) starts a new stream

    def gap(self) -> Iterator[AudioGap]:
        if self.mode == "audio":
            yield AudioGap()
        elif self.pieces:
            self.pieces = []
            self.stats.utterances_lost += 1

    def time(self, node_ms: int) -> float:
        return self.offset + node_ms / 1000

    def audio(self, payload: bytes) -> Chunk:
        if len(payload) % 2:
            raise FrameError(f"AUDIO payload of {len(payload)} bytes is not whole samples")
        pcm = np.frombuffer(payload, "<i2").astype(np.int16)
        chunk = Chunk(pcm, self.offset + self.samples / SAMPLE_RATE)
        self.samples += pcm.size
        return chunk

    def features(self, payload: bytes) -> Iterator[NodeUtterance]:
        piece = parse_features(payload, self.source.bundle().frontend.n_features)
        have = sum(len(p) for p in self.pieces)
        if piece.first != have:  # the start of this utterance was lost
            self.pieces = []
            if piece.first:
                self.stats.utterances_lost += 1
                return
        self.pieces.append(piece.rows)
        if have + len(piece.rows) >= piece.total:
            rows = np.concatenate(self.pieces)
            self.pieces = []
            yield NodeUtterance(self.time(piece.start_ms), self.time(piece.end_ms), features=rows)
