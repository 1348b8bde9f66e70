"""The reliability issue's rows about nodes and odd files, each named after the behaviour
it fixes, through the real daemon (``python -m ser_edge run``) or ``ser-edge classify``,
a real Mosquitto, real files, and a node on a real pseudo-terminal: the emulator, or
``PtyNode``, which writes whatever frames a test wants with the protocol's own encoder."""

from __future__ import annotations

import json
import os
import re
import select
import struct
import subprocess
import sys
import time
import tty
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_edge.audio.audio_io import read_audio
from ser_edge.audio.sources import ReplaySource
from ser_edge.frontend import compute_features
from ser_edge.gate.speech_gate import make_gate
from ser_edge.link.protocol import Deframer, Message, MessageType, encode
from ser_edge.recognition.bundle import load_bundle
from ser_edge.settings import GateSettings, SourceSettings
from ser_edge.tools.localbroker import LocalBroker
from tests.conftest import peak_rss_mb
from tests.daemon_harness import SHIPPED, Daemon, Subscriber, event_samples, write_config
from tests.test_node_link import EMULATOR, ENERGY, SPEED

#: A frame of AUDIO as the node sends it: 5 frames of 20 ms.
AUDIO_SAMPLES = 1600
#: PROTOCOL.md: at most 5 lines a second of anything a node makes the Pi log.
NODE_LINES_PER_S = 5


class PtyNode:
    """A node that is nothing but a pseudo-terminal linked at ``link``: it sends what the
    test tells it to, and reads (and drops) what the Pi sends, as a node would."""

    def __init__(self, link: Path) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # bytes, not lines
        os.set_blocking(self.master, False)
        link.symlink_to(os.ttyname(self.slave))
        self.seq = 0
        self._deframer = Deframer()

    def wait_config(self, timeout: float = 30) -> None:
        """Until the Pi has opened the port and sent CONFIG (opening it flushes what came before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m.type == MessageType.CONFIG for m in self._deframer.feed(self._read(0.1))):
                return
        raise TimeoutError("no CONFIG from the daemon")

    def _read(self, timeout: float) -> bytes:
        return os.read(self.master, 4096) if select.select([self.master], [], [], timeout)[0] else b""

    def send(self, kind: MessageType, payload: bytes) -> None:
        self.seq = (self.seq + 1) & 0xFFFF
        data = b"\0" + encode(Message(kind, self.seq, payload))
        while data:
            self._read(0)  # the Pi's heartbeats must not fill the other direction
            if not select.select([], [self.master], [], 5)[1]:
                raise TimeoutError("the daemon stopped reading the port")
            data = data[os.write(self.master, data) :]

    def hello(self, **fields: object) -> None:
        """HELLO of a node in audio mode (which needs no hashes), ``fields`` replaced."""
        hello = {"firmware": "pty", "frontend": "", "model": "", "speech_model": "", "modes": ["audio"],
                 "mode": "audio", "speech": False, "uptime_ms": 1000} | fields  # fmt: skip
        self.send(MessageType.HELLO, json.dumps(hello).encode())

    def play(self, pcm: np.ndarray, speed: float = SPEED) -> None:
        """AUDIO frames of pcm, paced ``speed`` times faster than real time."""
        start = time.monotonic()
        for i in range(0, pcm.size, AUDIO_SAMPLES):
            time.sleep(max(0.0, start + i / 16000 / speed - time.monotonic()))
            self.send(MessageType.AUDIO, pcm[i : i + AUDIO_SAMPLES].astype("<i2").tobytes())

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def _serial(link: Path, mode: str) -> str:
    return f"{{kind: serial, serial: {{port: {link}, mode: {mode}, link_timeout_s: 3, retry_s: 0.2}}}}"


def _speech() -> np.ndarray:
    """A clip the shipped model makes an event of, and a second of silence after it."""
    return np.concatenate([read_audio(event_samples()[0]), np.zeros(16000, np.int16)])


def _link_errors(sub: Subscriber) -> int:
    """The link's damaged or impossible frames so far, as the last stats message says."""
    return max([json.loads(p)["link_errors"] for p in sub.on("/stats")] or [0])


def _utterance_seconds(log: str) -> list[float]:
    """The length of every utterance the daemon recognised, event or not."""
    found = re.findall(r"\(([\d.]+) s utterance\)|utterance ([\d.]+) s:", log)
    return [float(a or b) for a, b in found]


# -- row 6 ------------------------------------------------------------------------------


def test_a_node_with_an_absurd_clock_is_refused_and_the_daemon_runs_on(tmp_path: Path) -> None:
    """uptime_ms 1e300 once crashed delivery (OverflowError on the event's time), -1e17
    and NaN too: each HELLO is now refused in one line, the audio after it ignored, and a
    sane node that follows gets its event, stamped now."""
    link = tmp_path / "ttyNODE"
    node = PtyNode(link)
    speech = _speech()
    with LocalBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.port)
        daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, source=_serial(link, "audio")))
        try:
            node.wait_config()
            for uptime in (float("nan"), -1e17, 1e300):
                node.hello(uptime_ms=uptime)
                node.play(speech)  # would be an event at an impossible time, were the node linked
            node.hello(uptime_ms=5000)
            node.play(speech)
            assert sub.wait(lambda s: len(s.events()) >= 1, 20), daemon.log
            assert daemon.process.poll() is None, daemon.log
        finally:
            daemon.stop()
            node.close()
        sub.close()
    for shown in ("nan", "-1e+17", "1e+300"):
        line = f"node refused: node sent a HELLO with uptime_ms {shown}, not a whole number of ms from 0 to 4294967295"
        assert daemon.log.count(line) == 1, daemon.log
    assert "Traceback" not in daemon.log and "audio source failed" not in daemon.log, daemon.log
    [event] = sub.events()
    end = datetime.fromisoformat(event["end"].replace("Z", "+00:00")).timestamp()
    assert abs(end - time.time()) < 60, event


def test_node_utterances_with_impossible_numbers_are_dropped_and_counted(tmp_path: Path) -> None:
    """FEATURES that end before they start, or whose rows run past the utterance's total,
    were taken as they came (an event each); now each is a dropped frame, counted in
    link_errors and said in one line, and the node's next sound utterance is an event."""
    fe = load_bundle(SHIPPED).frontend
    gate = make_gate(GateSettings(kind="energy"))
    [u] = gate.push(read_audio(event_samples()[0]), 0.0) + gate.flush()
    rows = compute_features(u.pcm, cfg=fe)  # what a node in features mode sends for the clip
    n = len(rows)
    link = tmp_path / "ttyNODE"
    node = PtyNode(link)
    with LocalBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.port)
        config = write_config(tmp_path / "c.yaml", broker.port, source=_serial(link, "features"), extra=ENERGY)
        daemon = Daemon(config)
        try:
            node.wait_config()
            node.hello(frontend=fe.hash, modes=["audio", "features"], mode="features")
            assert daemon.wait_log("node linked in features mode", 10), daemon.log
            for start, end, total in ((5000, 1000, n), (1000, 1000 + 20 * n, n - 1), (1000, 1000 + 20 * n, n)):
                node.send(MessageType.FEATURES, struct.pack("<IIHH", start, end, total, 0) + rows.tobytes())
            assert sub.wait(lambda s: len(s.events()) >= 1 and _link_errors(s) >= 2, 20), daemon.log
        finally:
            daemon.stop()
            node.close()
        sub.close()
    assert len(sub.events()) == 1 and _link_errors(sub) == 2, (sub.events(), daemon.log)
    assert "dropped a frame: FEATURES utterance ends at 1000 ms, before its start at 5000 ms" in daemon.log
    assert f"dropped a frame: FEATURES rows 0 to {n} lie beyond the utterance's {n - 1}" in daemon.log


# -- row 10 -----------------------------------------------------------------------------


def test_a_replay_loop_goes_on_past_an_unreadable_file_and_names_it_once(tmp_path: Path) -> None:
    """A loop of one clip and one text file used to end after as many passes as files
    (skips counted per pass), exit 0, and systemd did not restart it."""
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    files = [event_samples()[0], notes]
    source = f"{{kind: replay, files: [{', '.join(map(str, files))}], realtime: false, loop: true}}"
    with LocalBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.port)
        daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, source=source))
        try:
            passes = 2 * len(files)  # one event per pass
            sub.wait(lambda s: len(s.events()) >= passes or daemon.process.poll() is not None, 40)
            assert daemon.process.poll() is None, daemon.log
            assert len(sub.events()) >= passes, daemon.log
        finally:
            daemon.stop()
        sub.close()
    assert [str(notes) in line for line in daemon.log.splitlines()].count(True) == 1, daemon.log
    assert "notes.txt: not a readable audio file" in daemon.log


# -- row 11 -----------------------------------------------------------------------------


def test_a_replug_in_audio_mode_does_not_splice_an_utterance(tmp_path: Path) -> None:
    """The cable pulled halfway through a sentence, the rest of it and then the sentence
    again heard after the replug: the Pi once joined the halves into one utterance
    (link_lost 0); now the gate starts afresh when the port closes and when the node
    links again, so the only utterance longer than the second half is the repeat."""
    clip = event_samples()[0]
    pcm = np.concatenate([c.pcm for c in ReplaySource(SourceSettings(kind="replay", files=(clip,), realtime=False),
                                                      clock=lambda: 0.0)])  # fmt: skip
    gate = make_gate(GateSettings(), load_bundle(SHIPPED))
    [whole] = gate.push(pcm, 0.0) + gate.flush()
    cut = (whole.start + whole.end) / 2  # mid-sentence, seconds into the clip
    link = tmp_path / "ttyNODE"
    with LocalBroker(tmp_path / "broker") as broker:
        daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, source=_serial(link, "audio")))
        try:
            emulator = subprocess.run(
                [sys.executable, str(EMULATOR), "--link", str(link), "--speed", str(SPEED), "--linger", "2",
                 "--replug-after", f"{cut * 16000 / pcm.size:.4f}", str(clip), str(clip)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert emulator.returncode == 0 and "replugged" in emulator.stdout, emulator.stdout + emulator.stderr
        finally:
            daemon.stop()
    assert daemon.log.count("node linked in audio mode") == 2, daemon.log
    longer = [s for s in _utterance_seconds(daemon.log) if s > whole.end - cut + 0.3]
    assert longer == [round(whole.end - whole.start, 1)], daemon.log


# -- row 12 -----------------------------------------------------------------------------


def test_many_channels_at_a_high_rate_are_read_in_bounded_memory(tmp_path: Path) -> None:
    """12 s of 32 channels at 192 kHz peaked at 658 MB: blocks were 10 s of frames, 490 MB
    as float64. Now a block is at most BLOCK_BYTES (8 MB): classify peaks at about 92 MB
    for the mono clip alone here (two models loaded), and a block with its temporaries
    adds about 20, so 150 MB holds with room for another allocator, and is far below what
    frame-sized blocks need. The result is the same recording's at 16 kHz mono."""
    mono = tmp_path / "mono.wav"
    wide = tmp_path / "wide.wav"
    high = soxr.resample(read_audio(event_samples()[0]) / 32768.0, 16000, 192000, "VHQ")
    high = np.pad(high, (0, 12 * 192000 - high.size))
    sf.write(mono, soxr.resample(high, 192000, 16000, "VHQ"), 16000, subtype="PCM_16")
    with sf.SoundFile(wide, "w", 192000, 32, "PCM_16") as f:
        for i in range(0, high.size, 192000):  # a second at a time: the test's own memory stays small
            f.write(np.repeat(high[i : i + 192000, None], 32, axis=1))
    code, out, peak = peak_rss_mb([sys.executable, "-m", "ser_edge", "classify", "--json", str(wide), str(mono)])
    assert code == 0, out
    print(f"classify, 12 s of 32 channels at 192 kHz: peak RSS {peak:.0f} MB")
    assert peak < 150, f"peak RSS {peak:.0f} MB"
    results = json.loads(out)["results"]
    [a] = [r for r in results if r["file"] == str(wide)]
    [b] = [r for r in results if r["file"] == str(mono)]
    assert a["emotion"] == b["emotion"] and abs(a["confidence"] - b["confidence"]) < 0.05, (a, b)
    assert abs(a["start_s"] - b["start_s"]) < 0.05 and abs(a["end_s"] - b["end_s"]) < 0.05, (a, b)


# -- row 13 -----------------------------------------------------------------------------


def test_a_node_must_send_the_whole_model_hash(tmp_path: Path) -> None:
    """HELLO "model": "e" was linked (a prefix of the hash), and made-up scores published.
    A one-character and a 12-character prefix are refused by name; the whole hash links."""
    sha = load_bundle(SHIPPED).sha256
    link = tmp_path / "ttyNODE"
    clip = str(event_samples()[0])
    with LocalBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.port)
        daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, source=_serial(link, "results"), extra=ENERGY))
        try:
            for claim in (sha[:1], sha[:12], sha):
                emulator = subprocess.run(
                    [sys.executable, str(EMULATOR), "--link", str(link), "--bundle", str(SHIPPED), "--speed",
                     str(2 * SPEED), "--linger", "0.5", "--model-sha", claim, clip],
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                refused = f"node refused: node model {claim} is not this bundle's model {sha}"
                if claim != sha:
                    assert refused in daemon.log and sub.events() == [], emulator.stdout + daemon.log
            assert emulator.returncode == 0, emulator.stdout + emulator.stderr
            assert sub.wait(lambda s: len(s.events()) >= 1, 10), daemon.log
        finally:
            daemon.stop()
        sub.close()
    assert daemon.log.count("node refused") == 2 and "node linked in results mode" in daemon.log, daemon.log


# -- row 14 -----------------------------------------------------------------------------


def test_node_log_lines_cannot_forge_or_flood_the_log(tmp_path: Path) -> None:
    """A node's LOG frames once wrote 2,097 forged 'ERROR ser_edge.daemon: FORGED' lines
    and 8.5 MB of log in 5 s. Now each is one escaped, shortened line after "node says: ",
    a few a second, and what was held back is counted; a refusal held back is not lost."""
    link = tmp_path / "ttyNODE"
    node = PtyNode(link)
    forged = "hi\nERROR ser_edge.daemon: FORGED \x1b[31mred\r"
    with LocalBroker(tmp_path / "broker") as broker:
        daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, source=_serial(link, "audio")))
        try:
            node.wait_config()
            node.hello()
            assert daemon.wait_log("node linked in audio mode", 10), daemon.log
            began = time.monotonic()
            node.send(MessageType.LOG, b"x" * 4000)
            for i in range(2000):
                node.send(MessageType.LOG, f"{forged} {i}".encode())
            node.hello(uptime_ms=-1)  # refused while the limit holds lines back ...
            assert daemon.wait_log("more lines about the node not logged", 5), daemon.log
            flooded = time.monotonic() - began
            refused = "node refused: node sent a HELLO with uptime_ms -1"
            for _ in range(3):  # ... and said at one of the next beacons
                node.hello(uptime_ms=-1)
                if daemon.wait_log(refused, 1):
                    break
            assert daemon.process.poll() is None, daemon.log
        finally:
            daemon.stop()
            node.close()
    lines = daemon.log.splitlines()
    assert all("node says: " in line for line in lines if "FORGED" in line), daemon.log
    said = [line.partition("node says: ")[2] for line in lines if "node says: " in line]
    assert said[0] == "x" * 197 + "...", said[0]
    assert all(line.startswith("hi\\nERROR ser_edge.daemon: FORGED \\x1b[31mred\\r ") for line in said[1:]), said
    assert "\x1b" not in daemon.log and "\r" not in daemon.log
    assert 2 <= len(said) <= NODE_LINES_PER_S * (flooded + 2), (len(said), flooded)
    assert len(daemon.log) < 20_000
    assert daemon.log.count(refused) == 1, daemon.log
