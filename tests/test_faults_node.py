"""The reliability issue's rows about nodes and odd files, each named after the behaviour
it fixes, through the real daemon (``python -m ser_edge run``) or ``ser-edge classify``,
a real Mosquitto, real files, and a node on a real pseudo-terminal: the emulator, or
``PtyNode``, which writes whatever frames a test wants with the protocol's own encoder."""

from __future__ import annotations

import json
import os
import select
import sys
import time
import tty
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_edge.audio.audio_io import read_audio
from ser_edge.link.protocol import Deframer, Message, MessageType, encode
from ser_edge.tools.localbroker import LocalBroker
from tests.conftest import peak_rss_mb
from tests.daemon_harness import Daemon, Subscriber, event_samples, write_config

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

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def _serial(link: Path, mode: str) -> str:
    return f"{{kind: serial, serial: {{port: {link}, mode: {mode}, link_timeout_s: 3, retry_s: 0.2}}}}"


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


# -- row 14 -----------------------------------------------------------------------------


def test_node_log_lines_cannot_forge_or_flood_the_log(tmp_path: Path) -> None:
    """A node's LOG frames once wrote 2,097 forged 'ERROR ser_edge.daemon: FORGED' lines
    and 8.5 MB of log in 5 s. Now each is one escaped, shortened line after "node says: ",
    a few a second, and what was held back is counted."""
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
            assert daemon.wait_log("more lines about the node not logged", 5), daemon.log
            flooded = time.monotonic() - began
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
