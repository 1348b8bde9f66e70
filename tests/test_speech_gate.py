"""gate.kind speech: the speech gate's model keeps voices and drops music and household
sounds, in the daemon's own path (real daemon, real Mosquitto), and check-config names a
wrong speech bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_edge.audio_io import read_audio
from ser_edge.bundle import load_bundle
from ser_edge.frontend import compute_features
from ser_edge.localbroker import LocalBroker
from ser_edge.pipeline import utterances_in
from ser_edge.settings import GateSettings
from ser_edge.speech_gate import SpeechCheck
from ser_training.gatebench import in_quiet_room
from ser_training.noise import key_rng
from ser_training.nonspeech import household, random_piece, render
from tests.conftest import REPO, SAMPLES
from tests.daemon_harness import Daemon, Subscriber, classify, write_config

GATE = REPO / "deploy" / "models" / "ser-gate"


@pytest.fixture(scope="module")
def check() -> SpeechCheck:
    return SpeechCheck(load_bundle(GATE))


@pytest.fixture(scope="module")
def music_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Half a minute of rendered music (evaluation instruments) starting in a quiet room."""
    path = tmp_path_factory.mktemp("music") / "music.wav"
    pcm = in_quiet_room(render(random_piece(30.0, "test", key_rng("daemon music")))[: 30 * 16000], "daemon")
    sf.write(path, pcm, 16000)
    return path


def test_the_keep_rule_counts_windows_at_the_threshold() -> None:
    c = SpeechCheck.__new__(SpeechCheck)
    c.threshold, c.min_windows = 0.5, 2
    assert c.keeps(np.array([0.1, 0.5, 0.2, 0.9]))
    assert not c.keeps(np.array([0.1, 0.49, 0.2, 0.9]))
    assert c.keeps(np.array([0.7])) and not c.keeps(np.array([0.3]))  # one window: it must be speech


def test_voices_are_kept_and_most_music_and_household_sounds_dropped(check: SpeechCheck, music_file: Path) -> None:
    for path in SAMPLES:
        for u in utterances_in(read_audio(path), GateSettings()):
            assert check.keeps(check.probabilities(compute_features(u.pcm))), path
    others = [read_audio(music_file)] + [household(k, 20.0, key_rng("test household", k))
                                         for k in ("clicks", "knocks", "synth", "bark")]  # fmt: skip
    candidates = [u for pcm in others for u in utterances_in(pcm, GateSettings(), gap_s=0.0)]
    assert candidates, "the energy gate opened on none of them: the test would show nothing"
    kept = [u for u in candidates if check.keeps(check.probabilities(compute_features(u.pcm)))]
    assert len(kept) <= len(candidates) // 4, f"{len(kept)} of {len(candidates)} non-speech utterances kept"


def test_the_daemon_publishes_speech_and_counts_what_it_dropped(tmp_path: Path, music_file: Path) -> None:
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

    def classified(paths: list[Path]) -> list[tuple[str, float]]:
        return [(x["emotion"], x["confidence"]) for x in classify(paths)]

    speech, music = classified(SAMPLES), classified([music_file])  # classify: the energy gate alone
    got = [(e["emotion"], e["confidence"]) for e in events]
    assert got[: len(speech)] == speech  # every sample's event, as without the check
    assert music, "the energy gate published nothing for the music: the test would show nothing"
    assert len(got) - len(speech) < len(music), f"{len(got) - len(speech)} music events, {len(music)} unchecked"
    assert stats["not_speech"] >= 1 and "is not speech" in daemon.log
    assert isinstance(stats["speech_probability"], float) and 0 <= stats["speech_probability"] <= 1


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (REPO / "deploy" / "models" / "ser-tiny", "not a speech gate bundle"),
        (Path("/nonexistent/gate"), "not a model bundle"),
    ],
    ids=["emotion-bundle", "missing"],
)
def test_check_config_names_a_bad_speech_bundle(tmp_path: Path, bundle: Path, message: str) -> None:
    config = write_config(tmp_path / "c.yaml", 1883, extra=f"gate: {{kind: speech, speech_bundle: {bundle}}}\n")
    r = subprocess.run([sys.executable, "-m", "ser_edge", "check-config", str(config)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 78 and "gate.speech_bundle:" in r.stderr and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
