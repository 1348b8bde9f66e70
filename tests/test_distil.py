"""ser-tiny taught by ser-base (issue 28): the targets blend the teacher's softened answer
with the human label, a student really learns what its teacher says, and `ser-train
distil` runs end to end on a few real clips: a teacher per fold that never heard the
fold's test speakers, and the agreement on a corpus neither trained on."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_training.corpora import EMOTIONS, check_audio, load_ravdess
from ser_training.distil import Answers, agreement, blend, soften
from tests.conftest import link_ravdess


def test_softening_keeps_the_ranking_and_flattens_towards_uniform() -> None:
    p = np.array([[0.7, 0.2, 0.05, 0.05, 0, 0, 0, 0]], np.float64)
    warm = soften(p, 2.0)
    assert np.allclose(soften(p, 1.0), p, atol=1e-6)  # T = 1: the teacher's own probabilities
    assert warm.sum() == pytest.approx(1.0) and np.argsort(-warm[0])[:2].tolist() == [0, 1]
    assert warm[0, 0] < 0.7 and warm[0, 1] > 0.2  # second choices gain
    assert np.allclose(warm, np.sqrt(p) / np.sqrt(p).sum(), atol=1e-5)  # p^(1/T), renormalised


def test_the_target_blends_label_and_teacher_by_the_label_weight() -> None:
    onehot, teacher = np.eye(8)[[3]], np.full((1, 8), 1 / 8)
    assert np.allclose(blend(onehot, teacher, 1.0), onehot)
    assert np.allclose(blend(onehot, teacher, 0.0), teacher)
    mixed = blend(onehot, teacher, 0.3)
    assert mixed.sum() == pytest.approx(1.0) and mixed[0, 3] == pytest.approx(0.3 + 0.7 / 8)


def test_agreement_counts_equal_first_answers() -> None:
    a = np.eye(8)[[0, 1, 2, 3]]
    b = np.eye(8)[[0, 1, 5, 5]]
    assert agreement(a, b) == 0.5 and agreement(a, a) == 1.0


@pytest.fixture(scope="module")
def work(ravdess: Path, datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight RAVDESS actors and a few EmoDB clips (links to the real files), a 2-epoch
    student and a teacher recipe without renderings (CI time)."""
    root = tmp_path_factory.mktemp("distil")
    link_ravdess(ravdess, root)
    (root / "emodb").mkdir()
    for letter in "WFNT":  # angry, happy, neutral, sad: the 4-class set, three clips each
        for clip in sorted((datasets / "emodb").rglob(f"?????{letter}?.flac"))[::25][:3]:
            (root / "emodb" / clip.name).symlink_to(clip)
    repo = Path(__file__).resolve().parents[1]
    (root / "teacher.yaml").write_text(
        f"corpora: [ravdess, emodb]\naugment: {{renderings: 0}}\nhead: {{epochs: 5}}\ncache: {root / 'embeddings'}\n"
        f"encoder: {{file: {repo / 'deploy/models/ser-base/encoder.tflite'}}}\n"
    )
    (root / "student.yaml").write_text(
        "name: ser-smoke\nversion: 0.0.1\nmodel: {kind: ds_cnn, filters: 16, blocks: 1}\n"
        f"data: {{ravdess: {root / 'ravdess'}, emodb: {root / 'emodb'}, tess: null, extra_training: []}}\n"
        "augment: {renderings: 1}\ntrain: {epochs: 2, batch_size: 16}\ncv: {folds: 2}\n"
        f"distil: {{teacher: {root / 'teacher.yaml'}, temperature: 2.0, label_weight: 0.3, held_out: [emodb]}}\n"
    )
    return root


def ser_train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ser_training", *args], capture_output=True, text=True, timeout=900)


def test_a_student_learns_what_its_teacher_says_not_the_labels(work: Path) -> None:
    """A teacher that calls every clip "sad" (label weight 0): the student answers sad
    on clips labelled otherwise, so the targets really are the teacher's."""
    from ser_edge.frontend import DEFAULT_CONFIG
    from ser_training.config import load_config
    from ser_training.dataset import featurise
    from ser_training.train import fit, keras_scorer, utterance_scores

    cfg = load_config(work / "student.yaml")
    cfg = dataclasses.replace(
        cfg,
        distil=dataclasses.replace(cfg.distil, label_weight=0.0, temperature=1.0),
        train=dataclasses.replace(cfg.train, epochs=20, learning_rate=0.005, extra_per_epoch=None),
    )
    clips = check_audio(load_ravdess(work / "ravdess")).clips
    bank = featurise(clips, DEFAULT_CONFIG, None, None, workers=1)
    sad = Answers({c.path: np.eye(8)[EMOTIONS.index("sad")] for c in clips}, ())
    train, validation = clips[:48], clips[48:]
    model, _ = fit(cfg, train, validation, bank, teacher=sad)
    answers = utterance_scores(keras_scorer(model), validation, bank, cfg).argmax(axis=1)
    assert np.mean(answers == EMOTIONS.index("sad")) > 0.9
    assert sum(c.label != "sad" for c in validation) > len(validation) // 2  # the labels said otherwise


@pytest.fixture(scope="module")
def cv(work: Path) -> dict:
    r = ser_train("distil", "--config", str(work / "student.yaml"), "--out", str(work / "cv"),
                  "--cache", str(work / "cache"), "--folds", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((work / "cv" / "cv.json").read_text())


def test_distil_reports_student_teacher_and_agreement_per_group(work: Path, cv: dict) -> None:
    fold = cv["folds"][0]
    lesson = fold["teacher"]["groups"]
    assert set(lesson) == {"test speakers", "emodb"}
    test = lesson["test speakers"]
    assert test["clips"] == fold["int8"]["n"]  # the fold's own test clips
    assert test["student"]["8-way"]["accuracy"] == pytest.approx(fold["int8"]["accuracy"])
    emodb = lesson["emodb"]
    assert emodb["clips"] == 12 and "4-class" in emodb["teacher"]
    for group in lesson.values():
        assert 0 <= group["agreement"] <= 1
    summary = cv["teacher"]
    assert summary["emodb"]["agreement"] == pytest.approx(emodb["agreement"])
    assert summary["emodb"]["teacher_classes"] == "4-class"


def test_the_folds_teacher_never_heard_its_test_speakers_nor_the_held_out_corpus(work: Path, cv: dict) -> None:
    fold = cv["folds"][0]
    heard = set(fold["teacher"]["teacher_heard"])
    assert heard and heard.isdisjoint(fold["test_speakers"]) and heard.isdisjoint(fold["validation_speakers"])
    assert all(s.startswith("ravdess/") for s in heard)  # no EmoDB speaker taught the teacher
    manifest = json.loads((work / "cv" / "folds" / "1" / "manifest.json").read_text())
    assert manifest["training"]["corpora"] == ["ravdess"]  # so the harness scores EmoDB as held out


def test_a_config_without_a_distil_section_is_refused_in_one_line(work: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("\n".join(line for line in (work / "student.yaml").read_text().splitlines()
                               if not line.startswith("distil")))  # fmt: skip
    r = ser_train("distil", "--config", str(plain), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "no distil section" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text((work / "student.yaml").read_text().replace("label_weight: 0.3", "label_weight: 1.5"))
    r = ser_train("distil", "--config", str(bad), "--out", str(tmp_path / "y"))
    assert r.returncode == 2 and "label_weight must be in [0, 1]" in r.stderr and "Traceback" not in r.stderr
