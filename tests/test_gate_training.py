"""The speech gate's training material (ser-train gate-model): which windows are speech,
and validation speakers kept apart from training speakers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from ser_training import gatebench as G
from ser_training import speechgate as S


def test_a_window_is_speech_when_speech_fills_half_of_it_or_it_holds_a_short_word() -> None:
    w = S.WINDOW  # 50 rows
    sentence = (100, 300)
    assert S.window_label(100, sentence) == 1  # all speech
    assert S.window_label(100 - w // 2, sentence) == 1  # half
    assert S.window_label(100 - w // 2 - 5, sentence) is None  # some: left out of training
    assert S.window_label(300, sentence) == 0 and S.window_label(0, sentence) == 0
    word = (110, 130)  # 0.4 s
    assert S.window_label(100, word) == 1 and S.window_label(84, word) == 1  # the whole word, or 80 % of it
    assert S.window_label(70, word) is None  # half of the word
    assert S.window_label(150, word) == 0
    assert S.window_label(0, None) == 0  # non-speech material


def test_validation_speakers_never_train(datasets: Path, tmp_path: Path) -> None:
    """RAVDESS actors 15-16 and every fifth BAVED speaker validate the rule; the rest train
    the model; the benchmark's actors are in neither."""
    for speaker in range(1, 11):
        for take in range(3):
            path = tmp_path / "0" / f"{speaker}-m-30-{take}-1-{take}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, np.zeros(1600, np.int16), 16000)
    clips = S.speech_clips(datasets / "ravdess-16k", None, tmp_path)
    by_speaker: dict[str, set[str | None]] = {}
    for path, role in clips:
        who = path.parent.name if "Actor_" in path.parent.name else "baved" + path.name.split("-")[0]
        by_speaker.setdefault(who, set()).add(role)
    assert all(len(v) == 1 for v in by_speaker.values()), "a speaker on both sides"
    valid = {k: v.pop() for k, v in by_speaker.items() if v != {None}}
    assert valid == {"Actor_15": "sentence", "Actor_16": "sentence", "baved10": "word", "baved5": "word"}
    assert not any(k[-2:] in G.EVAL_ACTORS for k in by_speaker if k.startswith("Actor_"))
    assert sum(k.startswith("baved") for k in by_speaker) == 10  # every speaker has clips (every second clip each)


def test_a_candidate_bundle_is_measured_with_its_own_rule(tmp_path: Path) -> None:
    """bench-gate and the robustness harness run a candidate with the rule chosen for it;
    the shipped bundle's rule is the daemon's default."""
    from ser_edge.settings import GateSettings
    from tests.test_speech_gate import GATE

    shipped = G.speech_settings(GATE)
    assert shipped == GateSettings(kind="speech", speech_bundle=GATE)
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    manifest = json.loads((GATE / "manifest.json").read_text())
    manifest["rule"].update(threshold=0.55, min_windows=2, of_windows=4, hangover_windows=3)
    (candidate / "manifest.json").write_text(json.dumps(manifest))
    s = G.speech_settings(candidate)
    assert (s.speech_threshold, s.speech_min_windows, s.speech_of_windows, s.speech_hangover_ms) == (0.55, 2, 4, 600)
