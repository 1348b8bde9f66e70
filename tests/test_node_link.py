"""Hardware in the loop, without the hardware: the node's C core built for this machine
(deploy/arduino/host/emulator.py) on a pseudo-terminal -> ``ser-edge run`` with a serial
source -> a real Mosquitto -> a subscriber. In every mode the events equal what the Pi
alone publishes for the same clips, also through line noise and an unplugged cable."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.sources import ReplaySource
from ser_edge.pipeline import recognise_file
from ser_edge.recognition.bundle import load_bundle
from ser_edge.recognition.model import EmotionModel
from ser_edge.settings import GateSettings, SourceSettings
from ser_edge.tools.localbroker import LocalBroker
from tests.conftest import REPO, SAMPLES
from tests.daemon_harness import SHIPPED, Daemon, Subscriber, sample_events, write_config

EMULATOR = REPO / "deploy" / "arduino" / "host" / "emulator.py"
GATE_BUNDLE = REPO / "edge" / "ser_edge" / "gate" / "bundle"
SPEED = 4  # the audio plays 4x faster than real time
#: A node in results mode runs its energy gate only: the config must say so (gate.kind speech refuses it).
ENERGY = "gate: {kind: energy}\n"


def _event_view(e: dict) -> tuple:
    return e["emotion"], e["confidence"], e["scores"], e["duration_s"]


def _pi_alone(gate: GateSettings) -> list[tuple]:
    """What the Pi publishes for SAMPLES on its own (the daemon's stages; see test_daemon_mqtt)."""
    model = EmotionModel(load_bundle(SHIPPED))
    found = [r for f in SAMPLES for r in recognise_file(f, model, gate, 0.3) if r.emitted]
    return [(r.emotion, r.confidence, r.scores, round(r.seconds, 3)) for r in found]


@pytest.fixture(scope="module")
def pi_only() -> list[tuple]:
    """The Pi alone with the default gate (gate.kind speech)."""
    return _pi_alone(GateSettings())


@pytest.fixture(scope="module")
def pi_energy() -> list[tuple]:
    """The Pi alone with gate.kind energy, what a node in results mode is compared with."""
    return _pi_alone(GateSettings(kind="energy"))


@dataclass
class Run:
    events: list[tuple]
    stats: dict
    """The last stats message (counters are totals)."""
    states: set[str]
    """Every link state the stats showed."""
    log: str
    emulator: str


def _run(tmp_path: Path, mode: str, *emulator_args: str, want: int | None = None, model: bool = True) -> Run:
    """The emulated node (with the emotion model unless ``model`` is false, and the speech
    gate's) and the daemon with its default gate (energy in results mode); waits for
    ``want`` events (default: the samples' events)."""
    want = sample_events() if want is None else want
    link = tmp_path / "ttyNODE"
    with LocalBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.port)
        # The node plays 4x faster than real time: a queue long enough that a busy machine drops no audio frame.
        serial = f"{{port: {link}, mode: {mode}, link_timeout_s: 3, retry_s: 0.2}}"
        source = f"{{kind: serial, queue_s: 120, serial: {serial}}}"
        extra = ENERGY if mode == "results" else ""
        daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, source=source, extra=extra))
        bundle = ["--bundle", str(SHIPPED), "--gate-bundle", str(GATE_BUNDLE)] if model else []
        emulator = subprocess.run(
            [sys.executable, str(EMULATOR), "--link", str(link), "--speed", str(SPEED), *bundle, *emulator_args,
             *map(str, SAMPLES)], capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        try:
            assert (emulator.returncode == 0) == (want > 0), emulator.stdout + emulator.stderr
            sub.wait(lambda s: len(s.events()) >= want, 20)
            sub.wait(lambda s: any(json.loads(p).get("link_frames") for p in s.on("/stats")), 5)
            assert daemon.process.poll() is None, daemon.log  # still running: a serial source never ends
        finally:
            daemon.process.terminate()
            daemon.wait(20)
            daemon.stop()
        stats = [json.loads(p) for p in sub.on("/stats")]
        sub.close()
    states = {s["link_state"] for s in stats}
    return Run([_event_view(e) for e in sub.events()], stats[-1], states, daemon.log, emulator.stdout)


@pytest.mark.parametrize("mode", ["audio", "features", "results"])
def test_each_mode_publishes_what_the_pi_alone_publishes(tmp_path: Path, pi_only: list, pi_energy: list,
                                                         mode: str) -> None:  # fmt: skip
    run = _run(tmp_path, mode)
    # Else the Pi heard less than the node sent.
    assert run.stats["dropped_frames"] == 0 and run.stats["link_errors"] == 0 and run.stats["link_lost"] == 0, run.stats
    assert run.events == (pi_energy if mode == "results" else pi_only), run.log
    assert len(run.events) == sample_events()
    assert "node linked in " + mode in run.log


def test_line_noise_is_counted_and_costs_nothing(tmp_path: Path, pi_only: list) -> None:
    run = _run(tmp_path, "features", "--noise-every", "2")
    assert run.events == pi_only, run.log
    # Every noise burst ends at the next frame's leading delimiter: a bad frame, counted.
    assert run.stats["link_errors"] >= 5, run.stats


def _is_subsequence(part: list, whole: list) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


# Rates that hit about half the utterances: an audio utterance is ~30 frames of 3.2 kB, a
# features one a frame of ~2 kB.
@pytest.mark.parametrize(("mode", "rate"), [("audio", "0.00001"), ("features", "0.0003")])
def test_lost_bytes_lose_only_the_utterances_they_hit(tmp_path: Path, pi_only: list, mode: str, rate: str) -> None:
    run = _run(tmp_path, mode, "--drop-rate", rate, "--seed", "3", want=sample_events() // 2)
    assert run.stats["link_errors"] >= 1 and run.stats["link_lost"] >= 1, run.stats
    # Whole utterances that get through are exactly right, in order; nothing is made up from damaged frames.
    whole = [e for e in run.events if e in pi_only]
    assert 1 <= len(whole) < sample_events(), run.events
    assert _is_subsequence(whole, pi_only), (run.events, pi_only)
    if mode == "features":
        assert whole == run.events
    else:  # the gate starts afresh after a gap: the rest of a clip can still be heard, shorter
        longest = max(e[3] for e in pi_only)
        assert all(e[3] < longest for e in run.events if e not in whole), run.events


def test_unplug_and_replug_reconnects_by_itself(tmp_path: Path, pi_energy: list) -> None:
    run = _run(tmp_path, "results", "--replug-after", "3")
    assert "unplugged" in run.emulator and "replugged" in run.emulator
    assert run.events == pi_energy, run.log
    assert run.stats["link_reconnects"] >= 1 and run.log.count("node linked in results") >= 2, run.log


def test_a_node_with_another_model_is_refused_by_name(tmp_path: Path) -> None:
    run = _run(tmp_path, "results", "--model-sha", "0123456789ab", "--config-timeout", "4", want=0)
    sha = load_bundle(SHIPPED).sha256
    assert f"node refused: node model 0123456789ab is not this bundle's model {sha}" in run.log
    assert run.log.count("node refused") == 1  # said once, though the node keeps beaconing
    assert run.events == [] and "refused" in run.states and "linked" not in run.states, run.states


def test_results_mode_needs_a_node_with_a_model(tmp_path: Path) -> None:
    run = _run(tmp_path, "results", "--config-timeout", "4", model=False, want=0)
    assert "node refused: node offers modes audio, features, not results" in run.log
    assert run.events == []


def test_the_pi_scores_windows_exactly_as_tflite_micro(ravdess: Path) -> None:
    """Why results mode can equal the Pi: its int8 kernels and TFLite Micro's agree bit for bit."""
    from tflite_micro import runtime

    from ser_edge.frontend import compute_features
    from ser_edge.gate.vad import Gate
    from ser_edge.recognition.scoring import utterance_windows

    model = EmotionModel(load_bundle(SHIPPED))
    b = model.bundle
    tflm = runtime.Interpreter.from_bytes(b.model, arena_size=1 << 17)
    clips = sorted(ravdess.glob("Actor_*/*.flac"))[::30]
    windows = []
    for clip in clips:
        gate = Gate(GateSettings())
        source = ReplaySource(SourceSettings(kind="replay", files=(clip,), realtime=False), strict=True)
        for u in [u for c in source for u in gate.push(c.pcm, c.time)] + gate.flush():
            windows += list(utterance_windows(compute_features(u.pcm), b.window_frames, b.hop_frames, model._pad))
    assert len(windows) >= 40
    micro = []
    for w in windows:
        tflm.reset()
        tflm.set_input(w[None], 0)
        tflm.invoke()
        micro.append(model.dequantise(tflm.get_output(0)[0].copy()))
    np.testing.assert_array_equal(model.window_scores(np.array(windows)), np.array(micro))


def test_reload_reconfigures_the_node_and_checks_it_against_the_new_model(tmp_path: Path) -> None:
    """SIGHUP: the node gets the new gate settings, and a model change is checked against
    the node's model: a node still flashed with the old one is refused, not trusted."""
    import hashlib
    import shutil
    import signal

    newer = tmp_path / "newer"
    shutil.copytree(SHIPPED, newer)
    model = (newer / "model.tflite").read_bytes() + bytes(16)  # the same network, another file
    (newer / "model.tflite").write_bytes(model)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["model"]["sha256"] = hashlib.sha256(model).hexdigest()
    (newer / "manifest.json").write_text(json.dumps(manifest))
    link = tmp_path / "ttyNODE"
    with LocalBroker(tmp_path / "broker") as broker:
        source = f"{{kind: serial, serial: {{port: {link}, mode: results, retry_s: 0.2}}}}"
        config = write_config(tmp_path / "c.yaml", broker.port, source=source, extra=ENERGY)
        daemon = Daemon(config)
        emulator = subprocess.Popen([sys.executable, str(EMULATOR), "--link", str(link), "--bundle", str(SHIPPED),
                                     "--loop", *map(str, SAMPLES[:2])], stdout=subprocess.DEVNULL)  # fmt: skip
        try:
            assert daemon.wait_log("node linked in results mode", 30), daemon.log
            config.write_text(config.read_text().replace(ENERGY, "gate: {kind: energy, start_db: 14}\n"))
            daemon.process.send_signal(signal.SIGHUP)
            assert daemon.wait_log("reloaded: model", 20), daemon.log
            deadline = time.monotonic() + 20
            while daemon.log.count("node linked in results mode") < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert daemon.log.count("node linked in results mode") == 2, daemon.log  # configured again
            config.write_text(config.read_text().replace(str(SHIPPED), str(newer)))
            daemon.process.send_signal(signal.SIGHUP)
            old, new = load_bundle(SHIPPED).sha256, manifest["model"]["sha256"]
            assert daemon.wait_log(f"node refused: node model {old} is not this bundle's model {new}", 20), daemon.log
        finally:
            emulator.kill()
            emulator.wait()
            daemon.stop()
