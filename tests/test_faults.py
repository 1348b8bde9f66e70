"""The fault suite of reliability round 3: each test is one row of the attack on 6a86793,
run as it was found, with the real daemon, a real Mosquitto, real files and sockets."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_edge.tools.localbroker import LocalBroker
from tests.conftest import REPO
from tests.daemon_harness import SHIPPED, Daemon, write_config

EMULATOR = REPO / "deploy" / "arduino" / "host" / "emulator.py"
GATE_BUNDLE = REPO / "edge" / "ser_edge" / "gate" / "bundle"
FAKE_MIC = REPO / "tests" / "fake_mic"


@pytest.fixture
def broker(tmp_path: Path):
    with LocalBroker(tmp_path / "broker") as b:
        yield b


class NotifySocket:
    """systemd's end of the notify protocol: every datagram, with the time it came."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[tuple[float, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.5)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self._sock.fileno() >= 0:
            try:
                self.received.append((time.monotonic(), self._sock.recv(4096).decode()))
            except TimeoutError:
                continue
            except OSError:
                return

    def ready_at(self) -> float | None:
        return next((t for t, m in self.received if m.startswith("READY=1")), None)

    def pings(self) -> list[float]:
        return [t for t, m in self.received if m == "WATCHDOG=1"]

    def close(self) -> None:
        self._sock.close()


def test_the_watchdog_is_fed_through_a_quiet_minute_in_every_source_kind(tmp_path: Path, broker: LocalBroker) -> None:
    """Row 1: systemd (WatchdogSec) restarts a daemon that stops pinging. A quiet room, an
    idle linked node and an unplugged node are all a healthy daemon: pings must keep
    coming within the watchdog interval for a whole minute in each."""
    quiet = tmp_path / "quiet.wav"
    rng = np.random.default_rng(0)
    sf.write(quiet, (rng.normal(0, 30, 90 * 16000)).astype(np.int16), 16000)  # room tone, no speech
    absent = tmp_path / "ttyABSENT"
    linked = tmp_path / "ttyNODE"
    cases = {
        "serial features, node unplugged": f"{{kind: serial, serial: {{port: {absent}, mode: features}}}}",
        "serial results, node unplugged": f"{{kind: serial, serial: {{port: {absent}, mode: results}}}}",
        "serial audio, node unplugged": f"{{kind: serial, serial: {{port: {absent}, mode: audio}}}}",
        "serial features, idle node linked": f"{{kind: serial, serial: {{port: {linked}, mode: features}}}}",
        "microphone, quiet room": "{kind: microphone}",
        "replay, quiet room": f"{{kind: replay, files: [{quiet}], realtime: true}}",
    }
    watchdog_s = 4.0
    daemons, sockets = {}, {}
    emulator = subprocess.Popen(
        [sys.executable, str(EMULATOR), "--link", str(linked), "--bundle", str(SHIPPED), "--gate-bundle",
         str(GATE_BUNDLE), "--linger", "10", str(quiet)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for i, (name, source) in enumerate(cases.items()):
            folder = tmp_path / f"d{i}"
            folder.mkdir()
            sockets[name] = NotifySocket(folder / "notify.sock")
            extra = "gate: {kind: energy}\n" if "results" in name else ""
            config = write_config(folder / "c.yaml", broker.port, source=source, device=f"d{i}", extra=extra)
            env = {"NOTIFY_SOCKET": str(sockets[name].path), "WATCHDOG_USEC": str(int(watchdog_s * 1e6)),
                   "WATCHDOG_PID": "", "FAKE_MIC_CLIP": str(quiet), "FAKE_MIC_PLAN": "120",
                   "PYTHONPATH": f"{FAKE_MIC}:{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
            daemons[name] = Daemon(config, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(s.ready_at() for s in sockets.values()):
            time.sleep(0.5)
        minute = 60.0
        time.sleep(max(0.0, max(s.ready_at() or 0.0 for s in sockets.values()) + minute - time.monotonic()))
        for name, sock in sockets.items():
            ready = sock.ready_at()
            assert ready is not None, f"{name}: never READY\n{daemons[name].log}"
            assert daemons[name].process.poll() is None, f"{name}: ended\n{daemons[name].log}"
            times = [ready, *(t for t in sock.pings() if t > ready)]
            covered = times[-1] - ready
            gap = max(b - a for a, b in itertools.pairwise(times)) if len(times) > 1 else covered
            assert covered >= minute - watchdog_s and gap < watchdog_s, (
                f"{name}: pings cover {covered:.1f} s after READY, longest gap {gap:.1f} s (watchdog {watchdog_s} s)"
            )
    finally:
        emulator.kill()
        for d in daemons.values():
            d.stop()
        for sock in sockets.values():
            sock.close()
