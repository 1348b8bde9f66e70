"""gate.kind speech: the k-of-n rule over the speech gate's windows, the gate keeping
voices and dropping music and household sounds in the daemon's own path (real daemon,
real Mosquitto, the same utterances as `ser-edge classify` with the same config), and
check-config naming a wrong speech bundle or rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_edge.audio.audio_io import read_audio
from ser_edge.gate.speech_gate import SpeechGate, SpeechModel, SpeechRule, make_gate, speech_spans
from ser_edge.pipeline import utterances_in
from ser_edge.recognition.bundle import load_bundle
from ser_edge.settings import GateSettings
from ser_edge.tools.localbroker import LocalBroker
from ser_training.gatebench import in_quiet_room, voiced_span
from ser_training.noise import key_rng
from ser_training.nonspeech import household, random_piece, render
from tests.conftest import REPO, SAMPLES
from tests.daemon_harness import SHIPPED, Daemon, Subscriber, classify, write_config

GATE = REPO / "edge" / "ser_edge" / "gate" / "bundle"
SPEECH = GateSettings(kind="speech", speech_bundle=GATE)


@pytest.fixture(scope="module")
def music_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half a minute of rendered music (evaluation instruments) starting in a quiet room."""
    path = tmp_path_factory.mktemp("music") / "music.wav"
    pcm = in_quiet_room(render(random_piece(30.0, "test", key_rng("daemon music")))[: 30 * 16000], "daemon")
    sf.write(path, pcm, 16000)
    return path


def test_speech_starts_on_k_of_n_windows_and_ends_after_the_hangover() -> None:
    rule = SpeechRule(threshold=0.5, min_windows=2, of_windows=3, hangover=2)
    p = np.array([0, 0.9, 0, 0.9, 0.9, 0, 0.9, 0, 0, 0, 0.9, 0, 0, 0.5, 0.5])
    # 1 and 3 are 2 of 3: speech from 1; one miss (5) is bridged, two (7, 8) end it at 6;
    # 10 alone is not speech; 13-14 (at the threshold) are, up to the end
    assert speech_spans(p, rule) == [(1, 6), (13, 14)]
    assert speech_spans(p, SpeechRule(0.5, 3, 3, 2)) == []  # never three in a row
    assert speech_spans(np.array([0.9, 0.9, 0, 0.9, 0.9, 0.9, 0, 0]), SpeechRule(0.5, 3, 3, 2)) == [(3, 5)]
    assert speech_spans(p, SpeechRule(0.5, 1, 1, 1)) == [(1, 1), (3, 4), (6, 6), (10, 10), (13, 14)]
    assert speech_spans(np.full(8, 0.49), rule) == []
    assert speech_spans(np.zeros(0), rule) == []


def test_a_stretch_shorter_than_the_rule_is_speech_when_all_its_windows_are() -> None:
    """A single word: the energy stage's stretch around it holds fewer windows than
    min_windows, and would otherwise never be speech."""
    rule = SpeechRule(threshold=0.9, min_windows=3, of_windows=3, hangover=2)
    assert speech_spans(np.array([0.95]), rule) == [(0, 0)]
    assert speech_spans(np.array([0.95, 1.0]), rule) == [(0, 1)]
    assert speech_spans(np.array([0.95, 0.5]), rule) == []  # one window is not speech
    assert speech_spans(np.array([0.95, 1.0, 0.5]), rule) == []  # three windows: the k-of-n rule
    assert speech_spans(np.array([0.95, 1.0, 0.95]), rule) == [(0, 2)]


def test_the_rule_in_windows_follows_the_settings() -> None:
    rule = SpeechRule.of(GateSettings(speech_hangover_ms=500, speech_min_windows=3, speech_of_windows=5), hop_frames=10)
    assert (rule.min_windows, rule.of_windows, rule.hangover) == (3, 5, 3)  # 500 ms at 200 ms a window: 3


def test_the_shipped_rule_is_the_one_chosen_in_training() -> None:
    """The daemon's defaults are the rule the bundle's manifest says was chosen on
    validation material (speechgate.choose_rule)."""
    rule = json.loads((GATE / "manifest.json").read_text())["rule"]
    g = GateSettings()
    assert (g.speech_threshold, g.speech_min_windows, g.speech_of_windows) == (
        rule["threshold"], rule["min_windows"], rule["of_windows"])  # fmt: skip
    assert SpeechRule.of(g, load_bundle(GATE).hop_frames).hangover == rule["hangover_windows"]


def test_the_speech_gate_is_the_default_and_its_bundle_ships_in_the_package() -> None:
    """A wheel install runs gate.kind speech out of the box: the bundle is package data."""
    import ser_edge

    g = GateSettings()
    assert g.kind == "speech"
    assert g.speech_bundle.is_relative_to(Path(ser_edge.__file__).parent)
    assert isinstance(make_gate(g, load_bundle(SHIPPED)), SpeechGate)


def test_the_speech_gate_refuses_a_node_in_results_mode(tmp_path: Path) -> None:
    """A node in results mode scores what its energy gate cuts: with the speech gate that
    would publish music, so the config is refused by name (energy must be asked for)."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"source: {{kind: serial, serial: {{port: /dev/null, mode: results}}}}\nmodel: {{bundle: {SHIPPED}}}\n"
    )
    r = subprocess.run([sys.executable, "-m", "ser_edge", "check-config", str(config)], capture_output=True, text=True)
    assert r.returncode == 78 and "cannot check a node in results mode" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    config.write_text(config.read_text() + "gate: {kind: energy}\n")
    assert "results mode" not in subprocess.run([sys.executable, "-m", "ser_edge", "check-config", str(config)],
                                                capture_output=True, text=True).stderr  # fmt: skip


def test_voices_pass_and_music_and_household_sounds_mostly_do_not(music_file: Path) -> None:
    for path in SAMPLES:
        pcm = read_audio(path)
        first, last = voiced_span(pcm)
        found = utterances_in(pcm, SPEECH)
        assert any(u.start * 50 < last and u.end * 50 > first for u in found), path
    others = [read_audio(music_file)] + [household(k, 20.0, key_rng("test household", k))
                                         for k in ("clicks", "knocks", "synth", "bark")]  # fmt: skip
    energy = [u for pcm in others for u in utterances_in(pcm, GateSettings(kind="energy"), gap_s=0.0)]
    assert energy, "the energy gate opened on none of them: the test would show nothing"
    speech = [u for pcm in others for u in utterances_in(pcm, SPEECH, gap_s=0.0)]
    assert len(speech) <= len(energy) // 4, f"speech gate {len(speech)}, energy gate {len(energy)} utterances"


def test_an_utterance_is_the_speech_span_with_its_preroll() -> None:
    """A sentence after 4 s of room noise: the energy stage wakes on the noise, and the
    utterance starts at most the pre-roll plus a window before the voice, not at the noise."""
    pcm = read_audio(SAMPLES[4])
    rng = key_rng("lead")
    noise = (rng.normal(0, 300, 4 * 16000 + pcm.size + 16000)).astype(np.int16)
    x = noise.copy()
    x[4 * 16000 : 4 * 16000 + pcm.size] += pcm
    first, _ = voiced_span(pcm)
    gate = make_gate(SPEECH)
    assert isinstance(gate, SpeechGate)
    (u,) = gate.push(x, 100.0) + gate.flush()
    onset = 100.0 + 4.0 + first / 50
    window_s = gate.model.window / 50
    assert onset - 0.3 - window_s - 0.02 <= u.start <= onset, (u.start, onset)
    assert u.pcm.size == round((u.end - u.start) * 16000)


def test_the_speech_model_scores_the_windows_a_stream_completes() -> None:
    m = SpeechModel(load_bundle(GATE))
    rows = np.zeros((m.window + 2 * m.hop + 3, 13), np.int8)
    assert m.probabilities(rows).shape == (3,)  # starts 0, hop, 2 hop; the 3 left-over rows wait
    assert m.probabilities(rows[:5]).shape == (1,)  # shorter than a window: padded to one


def test_the_daemon_publishes_what_classify_finds_and_counts_what_it_dropped(tmp_path: Path, music_file: Path) -> None:
    files = [*SAMPLES, music_file]
    with LocalBroker(tmp_path / "broker") as broker:
        sub = Subscriber(broker.port)
        config = write_config(
            tmp_path / "c.yaml", broker.port, files=files, extra=f"gate: {{kind: speech, speech_bundle: {GATE}}}\n"
        )
        daemon = Daemon(config)
        assert daemon.wait(60) == 0, daemon.log
        assert sub.wait(lambda s: s.on("/availability")[-1:] == ["offline"], 10), daemon.log
        events = sub.events()
        stats = json.loads(sub.on("/stats")[-1])
        sub.close()
    expected = [(x["emotion"], x["confidence"]) for x in classify(files, config)]
    assert [(e["emotion"], e["confidence"]) for e in events] == expected
    assert len(expected) >= len(classify(SAMPLES)) - 1, "the speech gate lost sample sentences"
    assert len(classify([music_file], config)) < len(classify([music_file])) or not classify([music_file])
    assert stats["not_speech"] >= 1 and "not speech" in daemon.log
    assert isinstance(stats["speech_probability"], float) and 0 <= stats["speech_probability"] <= 1


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        (f"{{kind: speech, speech_bundle: {REPO / 'deploy/models/ser-tiny'}}}", "not a speech gate bundle"),
        ("{kind: speech, speech_bundle: /nonexistent/gate}", "not a model bundle"),
        ("{kind: speech, wake_db: 3, wake_stop_db: 4}", "wake_stop_db (4) must not exceed wake_db (3)"),
        ("{kind: speech, speech_min_windows: 4, speech_of_windows: 3}", "must not exceed speech_of_windows (3)"),
    ],
    ids=["emotion-bundle", "missing", "wake", "k-of-n"],
)
def test_check_config_names_a_bad_speech_gate(tmp_path: Path, gate: str, message: str) -> None:
    config = write_config(tmp_path / "c.yaml", 1883, extra=f"gate: {gate}\n")
    r = subprocess.run([sys.executable, "-m", "ser_edge", "check-config", str(config)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 78 and "gate" in r.stderr and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
