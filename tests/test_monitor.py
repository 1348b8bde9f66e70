"""`ser-edge monitor` in a real pseudo-terminal, its screen read back by a terminal
emulator (pyte): on a replayed file and attached to a running daemon over MQTT."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyte

from ser_edge.pipeline import recognise_file
from ser_edge.recognition.bundle import load_bundle
from ser_edge.recognition.model import EmotionModel
from ser_edge.settings import GateSettings
from ser_edge.tools.localbroker import LocalBroker
from ser_edge.tools.monitor import signed_bar
from tests.conftest import SAMPLES
from tests.daemon_harness import SHIPPED, Daemon, write_config

COLS, ROWS = 100, 40


class Terminal:
    """A program on a pty of COLS x ROWS, its output rendered by pyte."""

    def __init__(self, *args: str) -> None:
        self.screen = pyte.Screen(COLS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self._lock = threading.Lock()
        self.raw = b""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: size its terminal, then become the monitor
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
            os.environ.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
            os.execv(sys.executable, [sys.executable, "-m", "ser_edge", "monitor", *args])
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.raw += data
                self._stream.feed(data)

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.screen.display)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(text := self.text()):
                return text
            time.sleep(0.1)
        raise AssertionError(f"screen never matched; last screen:\n{self.text()}")

    def interrupt(self, timeout: float = 10) -> int:
        os.write(self.fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, 9)
        raise AssertionError("the monitor did not exit on Ctrl-C")


def test_monitor_on_a_replayed_file_shows_the_emotion_and_updates() -> None:
    clip = next(p for p in SAMPLES if p.name.split("-")[2] == "05")  # an angry clip
    expected = recognise_file(clip, EmotionModel(load_bundle(SHIPPED)), GateSettings(), 0.3)[0].emotion
    term = Terminal(str(clip))
    try:
        first = term.wait_for(lambda s: "level" in s and "gate:" in s)
        assert "(nothing recognised yet)" in first
        during = term.wait_for(lambda s: "SPEECH" in s)  # the gate opened while the clip played
        assert "c0/1" in during and "▀" in during  # the MFCC strip is drawn
        # The emotion panel shows it and the event list has it (one predicate: the screen is read
        # while the frame is being drawn, so the panel may be there a moment before the list).
        term.wait_for(lambda s: expected.upper() in s and f"  {expected}  " in " ".join(s.split("│")))
        assert "events 1" in term.wait_for(lambda s: "events 1" in s)
        # issue 29, part 2: its arousal and valence, each a bar from -1 to 1 between what the ends mean;
        # an angry voice (the monitor's energy gate cuts it a little differently): agitated and negative
        screen = term.wait_for(lambda s: "arousal  " in s and "valence  " in s)
        arousal, valence = (re.search(rf"{key}  ([+-]\d\.\d\d) +{low} ([░█]+)│([░█]+) {high}", screen)
                            for key, low, high in (("arousal", "calm", "agitated"),
                                                   ("valence", "negative", "positive")))  # fmt: skip
        assert float(arousal[1]) > 0.3 and "█" in arousal[3] and "█" not in arousal[2], screen
        assert float(valence[1]) < -0.3 and "█" in valence[2] and "█" not in valence[3], screen
    finally:
        code = term.interrupt()
    assert code == 0 and b"Traceback" not in term.raw


def test_monitor_attached_to_a_daemon_over_mqtt(tmp_path: Path) -> None:
    files = SAMPLES[:2]
    model = EmotionModel(load_bundle(SHIPPED))
    expected = [r.emotion for f in files for r in recognise_file(f, model, GateSettings(), 0.3)]
    with LocalBroker(tmp_path / "broker") as broker:
        term = Terminal("--mqtt", "--host", "127.0.0.1", "--port", str(broker.port), "--device", "test")
        try:
            term.wait_for(lambda s: f"device test on 127.0.0.1:{broker.port}" in s)
            time.sleep(1.0)  # subscribed before the daemon's first event
            daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, files=files, realtime=True))
            term.wait_for(lambda s: "(online)" in s)
            screen = term.wait_for(lambda s: all(f"  {e}  " in s for e in expected), 60)
            assert "gate: not published over MQTT" in screen
            term.wait_for(lambda s: "cpu_percent" in s and "events 2" in s)  # the daemon's stats topic
            term.wait_for(lambda s: "(offline)" in s, 60)  # the daemon finished the replay and said goodbye
            assert daemon.wait(30) == 0
            daemon.stop()
        finally:
            code = term.interrupt()
    assert code == 0 and b"Traceback" not in term.raw


def test_monitor_refuses_a_serial_source_by_name(tmp_path: Path) -> None:
    import subprocess

    config = tmp_path / "c.yaml"
    config.write_text("source: {kind: serial}\n")
    r = subprocess.run([sys.executable, "-m", "ser_edge", "monitor", "--config", str(config)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "the daemon owns the node's port; watch it with --mqtt" in r.stderr
    assert "Traceback" not in r.stderr


def test_monitor_survives_junk_on_the_topics(tmp_path: Path) -> None:
    """Retained non-objects and wrong types are named, and the view goes on (issue 13:
    a stats message of `5` killed the monitor, a state of `[1]` its MQTT thread)."""
    from paho.mqtt import publish

    with LocalBroker(tmp_path / "broker") as broker:

        def put(topic: str, payload: str) -> None:
            publish.single(f"ser/test/{topic}", payload, qos=1, retain=True, hostname="127.0.0.1", port=broker.port)

        put("stats", "5")
        put("state", "[1]")
        term = Terminal("--mqtt", "--host", "127.0.0.1", "--port", str(broker.port), "--device", "test")
        try:
            term.wait_for(lambda s: "unreadable message on ser/test/" in s)
            put("event", '{"emotion": 3, "confidence": "high"}')
            term.wait_for(lambda s: "unreadable message on ser/test/event" in s)
            put("stats", '{"input_level_db": "loud", "events": 1}')
            term.wait_for(lambda s: "unreadable message on ser/test/stats" in s)
            put("state", '{"emotion": "sad", "confidence": 0.7}')  # a good one still shows
            term.wait_for(lambda s: "SAD" in s and "0.70" in s)
            put("state", '{"emotion": "uncertain", "confidence": 0.27, "best": "angry", "seq": null}')  # issue 29
            term.wait_for(lambda s: "UNCERTAIN" in s and "0.27" in s and "best guess angry" in s)
        finally:
            code = term.interrupt()
    assert code == 0 and b"Traceback" not in term.raw


def test_monitor_names_a_refused_port_and_a_wrong_password(tmp_path: Path) -> None:
    """Row 16 of reliability round 3: a blank screen on a closed port, no reason on a wrong password."""
    from ser_edge.tools.localbroker import free_port

    port = free_port()
    term = Terminal("--mqtt", "--host", "127.0.0.1", "--port", str(port), "--device", "test")
    try:
        term.wait_for(lambda s: f"cannot reach broker 127.0.0.1:{port}" in s and "Connection refused" in s)
    finally:
        term.interrupt()
    with LocalBroker(tmp_path / "broker", users={"pi": "s3cret"}) as broker:
        secret = tmp_path / "password"
        secret.write_text("wrong\n")
        config = write_config(tmp_path / "c.yaml", broker.port,
                              extra=f"  username: pi\n  password_file: {secret}\n")  # fmt: skip
        term = Terminal("--mqtt", "--config", str(config))
        try:
            term.wait_for(lambda s: "refused the connection: Bad user name or password" in s
                          or "refused the connection: Not authorized" in s)  # fmt: skip
        finally:
            term.interrupt()


def test_a_signed_bar_grows_from_the_middle() -> None:
    assert signed_bar(0.6, 10) == "░░░░░│███░░"
    assert signed_bar(-1.0, 10) == "█████│░░░░░"
    assert signed_bar(0.0, 10) == signed_bar(0.04, 10) == "░░░░░│░░░░░"
    assert signed_bar(-0.2, 10) == "░░░░█│░░░░░"
    assert signed_bar(1.7, 10) == signed_bar(1.0, 10) == "░░░░░│█████"  # out of range: held at the end


def test_monitor_shows_arousal_and_valence_from_the_state_topic(tmp_path: Path) -> None:
    """Issue 29, part 2: both numbers of the state, also under the threshold; a number that
    is not one is named; a model without them shows neither line."""
    from paho.mqtt import publish

    with LocalBroker(tmp_path / "broker") as broker:

        def put(payload: str) -> None:
            publish.single("ser/test/state", payload, qos=1, retain=True, hostname="127.0.0.1", port=broker.port)

        term = Terminal("--mqtt", "--host", "127.0.0.1", "--port", str(broker.port), "--device", "test")
        try:
            term.wait_for(lambda s: "device test on 127.0.0.1" in s)
            put('{"emotion": "uncertain", "confidence": 0.38, "best": "fearful", "arousal": 0.6, "valence": -0.5}')
            screen = term.wait_for(lambda s: "arousal  +0.60" in s and "valence  -0.50" in s)
            assert "UNCERTAIN" in screen and "best guess fearful" in screen
            assert f"calm {signed_bar(0.6, 30)} agitated" in screen
            assert f"negative {signed_bar(-0.5, 30)} positive" in screen
            put('{"emotion": "calm", "confidence": 0.9, "arousal": "low", "valence": 0.6}')
            term.wait_for(lambda s: "unreadable message on ser/test/state: arousal is not a number" in s)
            put('{"emotion": "calm", "confidence": 0.9}')  # a model without places
            screen = term.wait_for(lambda s: "CALM" in s and "unreadable" not in s)
            assert "arousal" not in screen and "valence" not in screen and "agitated" not in screen
        finally:
            code = term.interrupt()
    assert code == 0 and b"Traceback" not in term.raw
