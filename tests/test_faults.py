"""The fault suite of reliability round 3: each test is one row of the attack on 6a86793,
run as it was found, with the real daemon, a real Mosquitto, real files and sockets."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import soundfile as sf
from paho.mqtt.enums import CallbackAPIVersion

from ser_edge.delivery.spool import Spool, damage
from ser_edge.tools.localbroker import LocalBroker, free_port
from tests.conftest import REPO
from tests.daemon_harness import SHIPPED, Daemon, Subscriber, classify, event_samples, ser_edge, write_config

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


def _spooled(spool: Path) -> int:
    with sqlite3.connect(spool) as db:
        return db.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def _selftest(*args: str) -> subprocess.CompletedProcess:
    return ser_edge("selftest", *args)


def test_events_the_broker_refuses_stay_in_the_spool_and_fail_the_health_gate(tmp_path: Path) -> None:
    """Row 2: an ACL that denies the event topic (MQTT 5 PUBACK 0x87) is not a delivery."""
    deny = "topic readwrite #\ntopic deny ser/test/event\ntopic deny ser/test/selftest\n"
    files = list(event_samples()[:2])
    spool = tmp_path / "spool.sqlite"
    with LocalBroker(tmp_path / "denying", acl=deny) as broker:
        config = write_config(tmp_path / "c.yaml", broker.port, files=files)
        daemon = Daemon(config)
        try:
            assert daemon.wait_log("the broker refuses events on ser/test/event (Not authorized)", 60), daemon.log
            assert daemon.wait_log("event 2:", 60), daemon.log
            time.sleep(1.5)  # a retry of the refused events, which the broker refuses again
            assert daemon.log.count("the broker refuses events") == 1, daemon.log  # said once, not per event
            health = _selftest("--config", str(config), "--availability", "--timeout", "5")
            assert health.returncode == 1, health.stdout
            assert "FAILED: the broker refuses this device's events (Not authorized)" in health.stdout, health.stdout
            probe = _selftest("--config", str(config), "--delivery", "--timeout", "5")
            assert probe.returncode == 1 and "refused the probe (Not authorized)" in probe.stdout, probe.stdout
        finally:
            daemon.process.terminate()
            daemon.wait(30)
            daemon.stop()
        assert _spooled(spool) == 2, daemon.log  # nothing deleted as delivered
    with LocalBroker(tmp_path / "accepting") as broker:  # the ACL fixed: the kept events go out
        sub = Subscriber(broker.port, "ser/test/event")
        config = write_config(tmp_path / "c.yaml", broker.port, files=files[:1])
        daemon = Daemon(config)
        assert daemon.wait(60) == 0, daemon.log
        daemon.stop()
        assert sub.wait(lambda s: [e["seq"] for e in s.events()] == [1, 2, 3], 10), sub.events()
        probe = _selftest("--config", str(config), "--delivery", "--timeout", "5")
        assert probe.returncode == 0 and "acknowledged and received back" in probe.stdout, probe.stdout
        sub.close()


def test_a_base_topic_the_broker_keeps_for_itself_is_refused(tmp_path: Path) -> None:
    """Row 2: publications under $SYS/... are dropped by the broker; the config says so first."""
    config = write_config(tmp_path / "c.yaml", 1883, extra='  base_topic: "$SYS/x"\n')
    r = ser_edge("check-config", str(config))
    assert r.returncode == 78, r.stdout + r.stderr
    assert "base_topic '$SYS/x' must not start with '$'" in r.stderr + r.stdout


@pytest.mark.parametrize(("line", "named"), [
    ('mqtt: {base_topic: "ser\\0x"}', "mqtt.base_topic: contains a control character"),
    ('mqtt: {username: "pi\\0"}', "mqtt.username: contains a control character"),
    ("device: {id: " + "d" * 70_000 + "}", "device.id: 70000 characters long"),
    ("mqtt: {base_topic: " + "t" * 70_000 + "}", "mqtt.base_topic: 70000 characters long"),
    ('device: {name: "Kitchen \\ud800"}', "device.name: contains a lone surrogate"),
    ("gate: {speech_threshold: 0.9961}", "gate.speech_threshold: expected a number from 0 to 0.996"),
])  # fmt: skip
def test_config_values_that_would_be_silent_outages_are_refused_by_name(tmp_path: Path, line: str, named: str) -> None:
    """Row 7: each value was accepted and then cut the device off without a word (a NUL:
    the broker drops the client; 70,000 characters: the network loop fails every second;
    a lone surrogate: exit 2 naming nothing; a threshold above int8's highest P(speech):
    no utterance ever)."""
    config = tmp_path / "c.yaml"
    config.write_text(f"{line}\nspool: {{path: {tmp_path / 'spool.sqlite'}}}\n")
    for command in ("check-config", "run"):
        args = [str(config)] if command == "check-config" else ["--config", str(config)]
        r = ser_edge(command, *args)
        out = r.stdout + r.stderr
        assert r.returncode == 78 and named in out and "line 1" in out, f"{command}: {r.returncode} {out[-600:]}"
        assert "Traceback" not in out


def _filled_spool(path: Path, events: int) -> None:
    spool = Spool(path, 10_000)
    for _ in range(events):
        spool.add(lambda n: json.dumps({"seq": n, "pad": "x" * 200}))
    spool.close()


def _overwrite(path: Path, offset: int, size: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(np.random.default_rng(offset).bytes(size))


CORRUPTIONS = {
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(1).bytes(p.stat().st_size)),
    "truncated to 20 KB": lambda p: p.write_bytes(p.read_bytes()[:20_000]),
    "a 100-byte header": lambda p: _overwrite(p, 0, 100),
    "a garbage page": lambda p: _overwrite(p, 8 * 4096, 4096),
    "page 1 garbage": lambda p: _overwrite(p, 0, 4096),
    "a foreign schema": lambda p: (p.unlink(), sqlite3.connect(p).executescript(
        "CREATE TABLE events (id INTEGER, body BLOB, extra TEXT); INSERT INTO events VALUES (1, x'00', 'a');")),
    "the WAL a directory": lambda p: Path(f"{p}-wal").mkdir(),
}  # fmt: skip


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_damaged_spool_is_moved_aside_and_its_readable_events_kept(tmp_path: Path, corruption: str) -> None:
    """Row 3: a damaged spool made every start exit 2, for ever, under Restart=on-failure."""
    path = tmp_path / "spool.sqlite"
    _filled_spool(path, 120)
    CORRUPTIONS[corruption](path)
    assert damage(path), "the damage is seen read-only"
    spool = Spool(path, 10_000)
    try:
        aside = Path(spool.recovered)
        assert aside.name.startswith("spool.sqlite.corrupt-") and (aside.exists() or Path(f"{aside}-wal").exists())
        assert spool.recoveries == 1 and damage(path) == ""
        kept = len(spool)
        seq = spool.add(lambda n: "{}")
        assert seq > max((s for s, _ in spool.pending(0, 1000) if s != seq), default=0)
        if corruption in ("a garbage page", "the WAL a directory"):
            assert kept >= 60, f"{kept} of 120 events salvaged"  # the damage hit part of the file, not all
    finally:
        spool.close()


@pytest.mark.parametrize("corruption", ["random bytes", "the WAL a directory"])
def test_the_daemon_starts_on_a_damaged_spool_and_delivers(tmp_path: Path, corruption: str,
                                                           broker: LocalBroker) -> None:  # fmt: skip
    """Row 3 through the real commands: check-config reports the damage (exit 0: not a
    config error), run recovers, delivers and exits 0."""
    path = tmp_path / "spool.sqlite"
    _filled_spool(path, 3)
    CORRUPTIONS[corruption](path)
    sub = Subscriber(broker.port, "ser/test/event")
    config = write_config(tmp_path / "c.yaml", broker.port, files=list(event_samples()[:1]))
    r = ser_edge("check-config", str(config))
    assert r.returncode == 0 and f"warning: spool {path} is damaged" in r.stdout, r.stdout + r.stderr
    daemon = Daemon(config)
    assert daemon.wait(60) == 0, daemon.log
    daemon.stop()
    assert "the event spool is damaged" in daemon.log and "started a fresh spool" in daemon.log, daemon.log
    assert sub.wait(lambda s: len(s.events()) >= 1, 10)
    assert any(p.name.startswith("spool.sqlite.corrupt-") for p in tmp_path.iterdir())
    sub.close()


def test_a_stop_with_the_disk_full_and_the_broker_down_says_exactly_what_is_lost(tmp_path: Path) -> None:
    """Row 4: events held in memory (the disk full) while no broker takes them: at SIGTERM
    the spool gets one more try, and the log's figures are the file's."""
    spool_dir, kept = tmp_path / "spool", tmp_path / "after"
    spool_dir.mkdir()
    kept.mkdir()
    config = write_config(tmp_path / "c.yaml", free_port(), files=list(event_samples()[:2]), realtime=True)
    text = config.read_text().replace(str(tmp_path / "spool.sqlite"), str(spool_dir / "spool.sqlite"))
    config.write_text(text.replace("realtime: true}", "realtime: true, loop: true}"))
    # The daemon runs under a shell in its own mount namespace (a 1 MiB tmpfs), which copies the spool out after it.
    script = f'mount -t tmpfs -o size=1m tmpfs {spool_dir} && "$@"; cp -a {spool_dir}/. {kept}/'
    daemon = Daemon(config, prefix=("unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"))
    inside = ["nsenter", "-t", str(daemon.process.pid), "-m"]
    try:
        assert daemon.wait_log("event 1:", 60), daemon.log
        subprocess.run([*inside, "dd", "if=/dev/zero", f"of={spool_dir}/fill", "bs=64k"], capture_output=True)
        assert daemon.wait_log("cannot write", 30), daemon.log
        logged = len(re.findall(r"event \d+:", daemon.log))
        assert daemon.wait_log(f"event {logged + 2}:", 60), daemon.log  # two more held in memory
        child = subprocess.run(["pgrep", "-P", str(daemon.process.pid)], capture_output=True, text=True).stdout
        os.kill(int(child.split()[0]), signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log
    finally:
        daemon.stop()
    logged = len(re.findall(r"event \d+:", daemon.log))
    stayed = _spooled(kept / "spool.sqlite")
    said = re.search(r"stopped; (\d+) events stay in the spool for the next start; (\d+) more could not be written",
                     daemon.log)  # fmt: skip
    assert said, daemon.log
    assert int(said[1]) == stayed and int(said[2]) == logged - stayed >= 2, (said[0], stayed, logged)


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+) kB", status)[1]) / 1024


def test_a_flood_or_a_huge_message_from_the_broker_costs_the_daemon_nothing(tmp_path: Path,
                                                                            broker: LocalBroker) -> None:  # fmt: skip
    """Row 5: 20,000 "online" births caused 20,001 retained discovery re-sends and +88 MB
    that stayed; one 200 MB payload, an 808 MB peak. Anyone on the broker can send both."""
    absent = tmp_path / "ttyABSENT"  # an idle daemon: a serial source with the node unplugged
    config = write_config(tmp_path / "c.yaml", broker.port, source=f"{{kind: serial, serial: {{port: {absent}}}}}")
    daemon = Daemon(config)
    sub = Subscriber(broker.port, "homeassistant/device/test/config")
    attacker = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    try:
        assert sub.wait(lambda s: len(s.messages) >= 1, 30), daemon.log  # the discovery at connect
        time.sleep(2)
        before = _rss_mb(daemon.process.pid)
        attacker.connect("127.0.0.1", broker.port)
        attacker.loop_start()
        for _ in range(20_000):
            attacker.publish("homeassistant/status", "online", qos=0)
        attacker.publish("homeassistant/status", b"online" + b"x" * (100 << 20), qos=1).wait_for_publish(60)
        time.sleep(12)  # past the re-send window: one deferred re-send may follow
        assert daemon.process.poll() is None, daemon.log
        resent = len(sub.messages) - 1
        peak, after = _rss_mb(daemon.process.pid, "VmHWM"), _rss_mb(daemon.process.pid)
    finally:
        attacker.loop_stop()
        attacker.disconnect()
        sub.close()
        daemon.stop()
    assert 1 <= resent <= 3, f"{resent} discovery re-sends for 20,000 births"
    assert after - before < 15 and peak < 150, f"RSS {before:.0f} -> {after:.0f} MB, peak {peak:.0f} MB"


@pytest.fixture(scope="module")
def ser_base():
    from ser_edge.preflight import check_bundle

    return check_bundle(REPO / "deploy" / "models" / "ser-base")


def test_a_dc_offset_does_not_make_the_device_deaf(tmp_path: Path, ser_base) -> None:
    """Row 8: an offset of 0.1 FS or more (I2S MEMS microphones) gave "no speech found" on
    every sample clip with either gate. The offset is removed before the gate."""
    from ser_edge.audio.audio_io import read_audio
    from ser_edge.pipeline import recognise_file
    from ser_edge.settings import GateSettings
    from tests.conftest import SAMPLES

    def answers(offset: float) -> list[str | None]:
        out = []
        for clip in SAMPLES:
            path = tmp_path / f"{offset}-{clip.stem}.wav"
            x = read_audio(clip) / 32768 + offset
            sf.write(path, np.clip(x, -1, 32767 / 32768), 16000, subtype="PCM_16")
            found = recognise_file(path, ser_base, GateSettings(), 0.0)
            out.append(max(found, key=lambda r: r.seconds).emotion if found else None)
        return out

    clean = answers(0.0)
    for offset in (0.1, 0.3, 0.5):
        heard = answers(offset)
        assert None not in heard, f"{offset} FS: no speech found in {heard.count(None)} of {len(SAMPLES)} clips"
        assert heard == clean, f"{offset} FS: {heard} against {clean}"


def test_audio_without_an_offset_passes_the_dc_remover_unchanged() -> None:
    """Row 8's fix must not move any figure measured on clean audio (nor the node's parity)."""
    from ser_edge.audio.audio_io import read_audio
    from ser_edge.audio.dc import DcRemover
    from tests.conftest import SAMPLES

    for clip in SAMPLES:
        pcm, remove = read_audio(clip), DcRemover()
        for i in range(0, pcm.size, 1600):
            chunk = pcm[i : i + 1600]
            assert np.array_equal(remove(chunk), chunk), clip.name
    remove = DcRemover()
    hiss = np.random.default_rng(0).normal(0, 20, 16000)
    offset = np.round(3277 + hiss).astype(np.int16)  # 0.1 FS under a microphone's own noise, one second
    assert np.abs(remove(offset) - np.round(hiss)).max() <= 2 and remove.offset == pytest.approx(3277, abs=2)
    assert np.array_equal(remove(np.zeros(1600, np.int16)), np.zeros(1600, np.int16))  # a replay's gap stays silent


def _gate_copy(tmp_path: Path, name: str, swap: bool = False, corrupt: bool = False) -> Path:
    out = tmp_path / name
    shutil.copytree(GATE_BUNDLE, out)
    if swap:
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["labels"] = manifest["labels"][::-1]
        (out / "manifest.json").write_text(json.dumps(manifest))
    if corrupt:
        (out / "model.tflite").write_bytes((out / "model.tflite").read_bytes()[:1000])
    return out


def test_a_gate_bundle_is_named_checked_on_reload_and_its_labels_verified(tmp_path: Path,
                                                                          broker: LocalBroker) -> None:  # fmt: skip
    """Row 9: gate bundle errors were blamed on model.bundle; one damaged on disk passed a
    SIGHUP and then stopped the next start for good (78); one with swapped labels passed
    every check and published nothing."""
    swapped = _gate_copy(tmp_path, "swapped", swap=True)
    config = write_config(tmp_path / "c.yaml", broker.port, extra=f"gate: {{speech_bundle: {swapped}}}\n")
    r = ser_edge("check-config", str(config))
    assert r.returncode == 78 and "gate.speech_bundle:" in r.stderr and "scores silence as speech" in r.stderr
    # Damaged on disk after check-config: the daemon starts on the packaged gate, saying so.
    custom = _gate_copy(tmp_path, "custom")
    config = write_config(tmp_path / "c.yaml", broker.port, files=list(event_samples()[:2]), realtime=True,
                          extra=f"gate: {{speech_bundle: {custom}}}\n")  # fmt: skip
    assert ser_edge("check-config", str(config)).returncode == 0
    (custom / "model.tflite").write_bytes(b"damaged")
    sub = Subscriber(broker.port, "ser/test/event")
    daemon = Daemon(config)
    try:
        assert daemon.wait_log("running with the packaged speech gate", 30), daemon.log
        assert "gate.speech_bundle:" in daemon.log and "model.bundle" not in daemon.log
        assert sub.wait(lambda s: len(s.events()) >= 1, 30), daemon.log
        daemon.process.send_signal(signal.SIGHUP)  # still damaged: the reload says so, the daemon goes on
        assert daemon.wait_log("reload failed; keeping the running config and model: gate.speech_bundle:", 10)
        assert daemon.process.poll() is None
    finally:
        daemon.stop()
        sub.close()


def test_a_reload_that_changes_the_gate_does_not_cut_an_utterance(tmp_path: Path, broker: LocalBroker) -> None:
    """Row 11: a SIGHUP with new gate settings mid-utterance cut it (3.4 s -> 2.5 s); the
    new gate now takes over once the utterance has closed."""
    found = classify(list(event_samples()))
    whole = max(found, key=lambda r: r["end_s"] - r["start_s"])
    clip = Path(whole["file"])
    config = write_config(tmp_path / "c.yaml", broker.port, files=[clip], realtime=True)
    sub = Subscriber(broker.port, "ser/test/event")
    daemon = Daemon(config)
    try:
        assert daemon.wait_log("ready:", 30), daemon.log
        time.sleep((whole["start_s"] + whole["end_s"]) / 2)
        config.write_text(config.read_text() + "gate: {speech_threshold: 0.7}\n")
        daemon.process.send_signal(signal.SIGHUP)
        assert daemon.wait(60) == 0, daemon.log
        assert "reload: the new gate runs from here" in daemon.log, daemon.log
        assert sub.wait(lambda s: len(s.events()) == 1, 10), daemon.log
    finally:
        daemon.stop()
        sub.close()
    heard = sub.events()[0]["duration_s"]
    assert heard == pytest.approx(whole["end_s"] - whole["start_s"], abs=0.03), (heard, whole)


def _silent_listener() -> tuple[socket.socket, int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: [accepted.append(server.accept()[0]) for _ in range(100)], daemon=True).start()
    return server, server.getsockname()[1]


def test_each_broker_problem_is_named_in_one_line(tmp_path: Path) -> None:
    """Row 16: a broker that accepts TCP and never answers, plain MQTT to a TLS port, and
    a TLS broker that wants a client certificate: no log line in 100 s. A fast drop loop
    for an oversize packet was blamed on a duplicate device id."""
    from ser_edge.tools.localbroker import BrokerTls
    from tests.test_daemon_mqtt import _make_pki

    absent = tmp_path / "ttyABSENT"
    idle = f"{{kind: serial, serial: {{port: {absent}}}}}"
    server, silent = _silent_listener()
    pki = _make_pki(tmp_path / "pki", "test")
    tls = BrokerTls(pki["ca_crt"], pki["server_crt"], pki["server_key"])
    wants_cert = BrokerTls(pki["ca_crt"], pki["server_crt"], pki["server_key"], require_client_cert=True)
    with (LocalBroker(tmp_path / "tls", tls=tls) as tls_broker,
          LocalBroker(tmp_path / "mtls", tls=wants_cert) as mtls_broker,
          LocalBroker(tmp_path / "small", options=("max_packet_size 1000",)) as small):  # fmt: skip
        ca = f"  tls: {{ca_file: {pki['ca_crt']}}}\n"
        cases = [
            (silent, "", "took the connection but has not answered CONNECT in 10 s"),
            (tls_broker.port, "", "closed the connection before answering CONNECT"),
            (mtls_broker.port, ca, "closed the connection before answering CONNECT"),
            (small.port, "", "Packet too large"),
        ]
        daemons = []
        for i, (port, extra, _) in enumerate(cases):
            folder = tmp_path / f"d{i}"
            folder.mkdir()
            daemons.append(Daemon(write_config(folder / "c.yaml", port, source=idle, device=f"d{i}", extra=extra)))
        try:
            for daemon, (_, _, says) in zip(daemons, cases, strict=True):
                assert daemon.wait_log(says, 30), daemon.log
            time.sleep(3)
            said = [d.log.count(" ERROR ") for d in daemons]
            time.sleep(6)  # more retries: each problem is said once, not once per retry
            for daemon, before in zip(daemons, said, strict=True):
                assert daemon.process.poll() is None and "Traceback" not in daemon.log, daemon.log
                assert "(the broker gave it this session)" not in daemon.log, daemon.log  # no duplicate here
                assert daemon.log.count(" ERROR ") == before <= 4, daemon.log
        finally:
            for daemon in daemons:
                daemon.stop()
            server.close()


def test_selftest_names_a_wrong_password(tmp_path: Path) -> None:
    """Row 16: it said "nothing retained ... within 3 s" instead of the broker's refusal."""
    with LocalBroker(tmp_path / "broker", users={"pi": "s3cret"}) as broker:
        secret = tmp_path / "password"
        secret.write_text("wrong\n")
        config = write_config(tmp_path / "c.yaml", broker.port, extra=f"  username: pi\n  password_file: {secret}\n")
        for check in ("--availability", "--delivery"):
            r = _selftest("--config", str(config), check, "--timeout", "3")
            assert r.returncode == 1, r.stdout
            assert f"FAILED: broker 127.0.0.1:{broker.port} refused the connection: " in r.stdout, r.stdout
            assert "(check mqtt.username and mqtt.password_file)" in r.stdout, r.stdout


def test_latency_and_delay_count_from_the_end_of_speech_on_a_steady_clock(tmp_path: Path,
                                                                          broker: LocalBroker) -> None:  # fmt: skip
    """Row 17: the speech gate may close an utterance seconds after its speech ended (here
    4 s of noise keep the stretch open); stats said 11 ms. A +1 h wall-clock step
    mid-utterance made a live event look an hour late (delayed_s 3600)."""
    from ser_edge.audio.audio_io import read_audio

    speech = read_audio(event_samples()[0])
    rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2)))
    noise = np.random.default_rng(2).normal(0, rms, 4 * 16000)
    clip = np.concatenate([np.zeros(16000), speech, noise, np.zeros(3 * 16000)])
    path = tmp_path / "speech-then-noise.wav"
    sf.write(path, np.clip(clip, -32768, 32767).astype(np.int16), 16000)
    config = write_config(tmp_path / "c.yaml", broker.port, files=[path], realtime=True)
    sub = Subscriber(broker.port, "ser/test/#")
    env = {"PYTHONPATH": f"{REPO / 'tests' / 'fake_clock'}:{os.environ.get('PYTHONPATH', '')}",
           "FAKE_CLOCK_STEP_AFTER": str(2 + speech.size / 16000 + 2), "FAKE_CLOCK_STEP_S": "3600"}  # fmt: skip
    daemon = Daemon(config, env=env)
    try:
        assert daemon.wait(60) == 0, daemon.log
        assert sub.wait(lambda s: len(s.events()) == 1, 10), daemon.log
    finally:
        daemon.stop()
        sub.close()
    delayed = sub.events()[0]["delayed_s"]
    latency = max(json.loads(p)["latency_p95_ms"] or 0 for p in sub.on("/stats"))
    assert 3.0 <= delayed < 10, f"delayed_s {delayed}: the hold is measured, the clock step is not"
    assert latency / 1000 == pytest.approx(delayed, abs=0.5), (latency, delayed)


def test_what_check_config_refuses_run_refuses_alike_with_78(tmp_path: Path) -> None:
    """Row 18: run exited 2 for a missing PyAudio and an unusable spool; /proc/ser/x was
    accepted as root; an installed package's default model.bundle pointed at nothing and
    the error did not mention SER_BUNDLE."""
    cases = [
        ("source: {kind: microphone}\n", {}, "source.kind: microphone, but the microphone needs PyAudio"),
        (f"spool: {{path: /proc/ser/x}}\nmodel: {{bundle: {SHIPPED}}}\n", {}, "is on a filesystem that stores nothing"),
        (
            f"source: {{kind: replay, files: [{event_samples()[0]}]}}\n",
            {"SER_BUNDLE": str(tmp_path / "nowhere")},
            "model.bundle: not set, and the default",
        ),
    ]
    for i, (text, env, says) in enumerate(cases):
        config = tmp_path / f"c{i}.yaml"
        config.write_text(text + ("" if "spool" in text else f"spool: {{path: {tmp_path / 'spool.sqlite'}}}\n"))
        for args in (("check-config", str(config)), ("run", "--config", str(config))):
            r = ser_edge(*args, env=env)
            assert r.returncode == 78 and says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr[-500:])
    assert "set model.bundle in the config, or SER_BUNDLE" in r.stderr


def test_sigterm_is_logged_and_peak_memory_is_never_below_current(tmp_path: Path, broker: LocalBroker) -> None:
    """Row 18: no log line said SIGTERM arrived; stats showed peak_rss_mb below rss_mb."""
    sub = Subscriber(broker.port, "ser/test/stats")
    config = write_config(tmp_path / "c.yaml", broker.port, files=list(event_samples()[:2]), realtime=True)
    daemon = Daemon(config)
    try:
        assert sub.wait(lambda s: len(s.messages) >= 3, 30), daemon.log
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.log
    finally:
        daemon.stop()
        sub.close()
    assert "SIGTERM received: finishing the open utterance" in daemon.log, daemon.log
    stats = [json.loads(p) for p in sub.on("stats")]
    assert all(s["peak_rss_mb"] >= s["rss_mb"] > 0 for s in stats), [(s["rss_mb"], s["peak_rss_mb"]) for s in stats]


def test_the_fleet_acl_keeps_each_device_to_its_own_topics_and_session(tmp_path: Path) -> None:
    """Row 15: the client id ser-edge-<id> is public, and any client could publish any
    device's events. The fleet's ACL (ansible/broker-acl.yml, from the inventory) with
    per-device users: a device writes only its own topics and no other user takes its session."""
    acl = tmp_path / "ser-edge.acl"
    r = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "inventory/example",
                        "broker-acl.yml", "-e", f"ser_edge_acl_file={acl}"],
                       cwd=REPO / "ansible", capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    users = {"kitchen-pi": "k", "hall-pi": "h", "homeassistant": "ha"}
    options = ("use_username_as_clientid true",)
    with LocalBroker(tmp_path / "broker", users=users, acl=acl.read_text(), options=options) as broker:
        home = Subscriber(broker.port, "ser/#", auth=("homeassistant", "ha"))
        kitchen = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ser-edge-kitchen-pi", protocol=mqtt.MQTTv5)
        kitchen.username_pw_set("kitchen-pi", "k")
        acks: dict[int, object] = {}
        kitchen.on_publish = lambda _c, _u, mid, reason, _p: acks.__setitem__(mid, reason)
        kitchen.connect("127.0.0.1", broker.port)
        kitchen.loop_start()
        own = kitchen.publish("ser/kitchen-pi/event", '{"emotion": "happy"}', qos=1)
        forged = kitchen.publish("ser/hall-pi/event", '{"emotion": "angry"}', qos=1)
        # hall-pi's credentials with kitchen's client id: the broker uses the user name as the id instead.
        intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ser-edge-kitchen-pi", protocol=mqtt.MQTTv5)
        intruder.username_pw_set("hall-pi", "h")
        intruder.connect("127.0.0.1", broker.port)
        intruder.loop_start()
        try:
            assert home.wait(lambda s: len(s.messages) >= 1, 10)
            deadline = time.monotonic() + 10
            while len(acks) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)
            assert not acks[own.mid].is_failure and str(acks[forged.mid]) == "Not authorized", acks
            assert [t for t, _, _ in home.messages] == ["ser/kitchen-pi/event"], home.messages
            assert kitchen.is_connected(), "another user took the device's session"
        finally:
            for c in (kitchen, intruder):
                c.loop_stop()
                c.disconnect()
            home.close()
