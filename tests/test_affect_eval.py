"""Arousal and valence truth and agreement (training/ser_training/affect_eval.py)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from ser_edge.recognition.affect import PLACES
from ser_training.affect_eval import NORMAL_INTENSITY, affect_report, ccc, class_means, from_scores, targets
from ser_training.corpora import EMOTIONS, Clip, baved_arousal


def test_ccc_is_one_only_for_equal_values_and_punishes_offset_and_scale():
    rng = np.random.default_rng(0)
    true = rng.uniform(-1, 1, 500)
    assert ccc(true, true) == pytest.approx(1.0)
    # Pearson's r would call all of these perfect; CCC does not.
    assert ccc(true + 0.5, true) < 0.8
    assert ccc(true * 0.3, true) < 0.6
    assert ccc(-true, true) < -0.95
    assert abs(ccc(rng.uniform(-1, 1, 500), true)) < 0.15


def test_truth_is_the_class_place_and_normal_intensity_is_calmer():
    strong = Clip(Path("a.wav"), "angry", "ravdess/01", "ravdess", intensity="strong")
    normal = Clip(Path("b.wav"), "angry", "ravdess/01", "ravdess", intensity="normal")
    emodb = Clip(Path("c.wav"), "sad", "emodb/03", "emodb")
    t = targets([strong, normal, emodb])
    assert t[0].tolist() == list(PLACES["angry"])
    assert t[1, 0] == pytest.approx(PLACES["angry"][0] * NORMAL_INTENSITY)
    assert t[1, 1] == PLACES["angry"][1]
    assert t[2].tolist() == list(PLACES["sad"])


def test_published_affect_of_a_certain_answer_is_its_class_place_and_torn_answers_average():
    onehot = np.eye(len(EMOTIONS))
    assert np.allclose(from_scores(onehot), [PLACES[e] for e in EMOTIONS])
    torn = np.zeros(len(EMOTIONS))
    torn[[EMOTIONS.index("angry"), EMOTIONS.index("happy")]] = 0.5
    arousal, valence = from_scores(torn[None])[0]
    assert arousal == pytest.approx((PLACES["angry"][0] + PLACES["happy"][0]) / 2)
    assert valence == pytest.approx((PLACES["angry"][1] + PLACES["happy"][1]) / 2)


def test_report_skips_an_axis_the_corpus_does_not_rate():
    true = np.array([[-0.5, np.nan], [0.0, np.nan], [0.5, np.nan]])
    pred = np.array([[-0.4, 0.1], [0.1, 0.2], [0.4, -0.3]])
    report = affect_report(pred, true)
    assert set(report) == {"arousal"}
    assert report["arousal"]["n"] == 3
    assert report["arousal"]["pearson"] > 0.98


def test_class_means_say_where_each_true_class_lands():
    pred = np.array([[0.5, -0.5], [0.7, -0.3], [-0.2, -0.6]])
    means = class_means(pred, ["angry", "angry", "sad"])
    assert means == {"angry": [0.6, -0.4], "sad": [-0.2, -0.6]}


def _wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(np.zeros(160, np.int16).tobytes())


def test_baved_levels_come_from_the_file_name_and_speaker_53_is_46(tmp_path):
    # spk-gender-age-word-level-record
    for name in ("0/3-m-21-0-0-10.wav", "1/3-m-21-1-2-11.wav", "2/53-f-30-2-1-12.wav", "2/46-f-30-3-2-13.wav"):
        _wav(tmp_path / name)
    _wav(tmp_path / "2/readme-not-a-clip.wav")
    found = {(p.name, s, a) for p, s, a in baved_arousal(tmp_path)}
    assert found == {
        ("3-m-21-0-0-10.wav", "baved/3", -0.5),
        ("3-m-21-1-2-11.wav", "baved/3", 0.5),
        ("53-f-30-2-1-12.wav", "baved/46", 0.0),
        ("46-f-30-3-2-13.wav", "baved/46", 0.5),
    }


def test_affect_without_a_base_cv_folder_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "ser_training", "affect", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "no cv.json" in r.stderr and "Traceback" not in r.stderr
