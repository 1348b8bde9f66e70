"""Corpus loaders on the real corpora and on odd files, and `ser-train datasets`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_training.corpora import (
    EMOTIONS,
    baved_speakers,
    check_audio,
    counts,
    load_ased,
    load_crema,
    load_emodb,
    load_emospeech,
    load_folder,
    load_ravdess,
    load_tess,
    load_turev,
)


def test_ravdess_decodes_every_code(ravdess: Path) -> None:
    m = load_ravdess(ravdess)
    assert len(m.clips) == 1200 and not m.problems
    assert counts(m.clips, "label") == {e: (80 if e == "neutral" else 160) for e in sorted(EMOTIONS)}
    assert counts(m.clips, "gender") == {"female": 600, "male": 600}
    assert len(counts(m.clips, "speaker")) == 20
    clip = next(c for c in m.clips if c.path.name == "03-01-05-02-02-01-07.flac")
    assert (clip.label, clip.speaker, clip.gender, clip.intensity, clip.statement) == (
        "angry", "ravdess/07", "male", "strong", "dogs",
    )  # fmt: skip


def test_real_duplicate_in_ravdess_is_reported(ravdess: Path) -> None:
    checked = check_audio(load_ravdess(ravdess / "Actor_07"))
    assert len(checked.clips) == 59
    assert any("03-01-03-01-02-02-07.flac: duplicate of" in p for p in checked.problems)


def test_tess_maps_folders_to_labels_and_reports_the_misnamed_file(datasets: Path) -> None:
    m = load_tess(datasets / "tess")
    assert len(m.clips) == 2799
    assert set(counts(m.clips, "label")) == set(EMOTIONS) - {"calm"}
    assert counts(m.clips, "speaker") == {"tess/OAF": 1399, "tess/YAF": 1400}
    assert any(c.label == "surprised" and "Pleasant_surprise" in str(c.path) for c in m.clips)
    assert len(m.problems) == 1 and "OA_bite_neutral.flac" in m.problems[0]


def _wav(path: Path, seconds: float = 0.5, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).normal(0, 0.1, int(16000 * seconds))
    sf.write(path, noise, 16000, subtype="PCM_16")
    return path


@pytest.fixture
def crema(tmp_path: Path, datasets: Path) -> Path:
    root = tmp_path / "CREMA-D"
    for i, name in enumerate(["1001_DFA_ANG_XX", "1002_IEO_HAP_HI", "1091_TSI_SAD_LO", "1001_DFA_XYZ_XX"]):
        _wav(root / "AudioWAV" / f"{name}.wav", seed=i)
    shutil.copy(datasets / "crema-d-meta" / "VideoDemographics.csv", root)
    return root


def test_crema_layout_labels_and_demographics(crema: Path) -> None:
    m = load_crema(crema)
    assert {(c.speaker, c.label, c.gender) for c in m.clips} == {
        ("crema/1001", "angry", "male"), ("crema/1002", "happy", "female"), ("crema/1091", "sad", "female"),
    }  # fmt: skip
    assert len(m.problems) == 1 and "1001_DFA_XYZ_XX.wav" in m.problems[0]


def test_crema_verify_rejects_stand_ins_against_the_real_checksums(crema: Path, datasets: Path) -> None:
    m = load_crema(crema, meta=datasets / "crema-d-meta", verify=True)
    assert not m.clips
    problems = "\n".join(m.problems)
    assert problems.count("SHA-256 differs") == 2
    assert "1091_TSI_SAD_LO.wav: not in the checksum list" in problems  # no such clip in CREMA-D


def test_user_folder_and_its_mistakes(tmp_path: Path) -> None:
    _wav(tmp_path / "mine" / "happy" / "a.wav", seed=1)
    _wav(tmp_path / "mine" / "Angry" / "b.wav", seed=2)
    _wav(tmp_path / "mine" / "bored" / "c.wav", seed=3)
    (tmp_path / "mine" / "sad").mkdir()
    (tmp_path / "mine" / "sad" / "broken.wav").write_bytes(b"RIFFnonsense")
    sf.write(tmp_path / "mine" / "sad" / "empty.wav", np.zeros(0), 16000)
    shutil.copy(tmp_path / "mine" / "happy" / "a.wav", tmp_path / "mine" / "happy" / "copy.wav")
    m = check_audio(load_folder(tmp_path / "mine"))
    assert sorted((c.path.name, c.label) for c in m.clips) == [("a.wav", "happy"), ("b.wav", "angry")]
    problems = "\n".join(m.problems)
    assert "'bored' is not one of" in problems and "broken.wav: unreadable audio" in problems
    assert "empty.wav: empty" in problems and "copy.wav: duplicate of" in problems


def _ser_train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ser_training", *args], capture_output=True, text=True, timeout=600)


def test_datasets_command_counts_and_reports(ravdess: Path, tmp_path: Path) -> None:
    _wav(tmp_path / "mine" / "calm" / "x.wav")
    r = _ser_train("datasets", "--ravdess", str(ravdess / "Actor_07"), "--folder", str(tmp_path / "mine"))
    assert r.returncode == 0, r.stderr
    assert "corpus: folder 1, ravdess 59" in r.stdout
    assert "gender: None 1, male 59" in r.stdout
    assert "duplicate of" in r.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["datasets", "--ravdess", "/nonexistent/ravdess"], "ravdess: dataset folder /nonexistent/ravdess does not exist"),
    (["datasets"], "name at least one dataset"),
])  # fmt: skip
def test_datasets_command_errors_are_one_line(args: list[str], message: str) -> None:
    r = _ser_train(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_emodb_maps_the_german_letters_and_leaves_boredom_out(datasets: Path) -> None:
    m = load_emodb(datasets / "emodb")
    assert len(m.clips) == 535 - 81 and sum("boredom" in p for p in m.problems) == 81
    assert counts(m.clips, "label") == {"angry": 127, "disgust": 46, "fearful": 69, "happy": 71, "neutral": 79,
                                        "sad": 62}  # fmt: skip
    assert len(counts(m.clips, "speaker")) == 10 and counts(m.clips, "gender") == {"female": 256, "male": 198}
    clip = next(c for c in m.clips if c.path.name == "03a01Wa.flac")
    assert (clip.label, clip.speaker, clip.gender, clip.corpus) == ("angry", "emodb/03", "male", "emodb")


def _stand_ins(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(1600, np.int16), 16000, subtype="PCM_16")


def test_ased_turev_and_emospeech_names(tmp_path: Path) -> None:
    _stand_ins(tmp_path / "ased", ["01Neutral/n1-01-01-01-01.wav", "04Sad/S4-04-02-01-29.wav", "05Angry/a5-3-x.wav"])
    ased = load_ased(tmp_path / "ased")
    assert [(c.label, c.speaker, c.gender) for c in ased.clips] == [("neutral", "ased/01", "female"),
                                                                   ("sad", "ased/29", "female")]  # fmt: skip
    assert len(ased.problems) == 1 and "not an ASED name" in ased.problems[0]
    _stand_ins(tmp_path / "turev", ["Calm/1358_sk_beste.wav", "Angry/1157_kz_acik.wav", "Sad/oops.wav"])
    turev = load_turev(tmp_path / "turev")
    assert sorted((c.label, c.speaker) for c in turev.clips) == [("angry", "turev/1157"), ("calm", "turev/1358")]
    assert len(turev.problems) == 1
    _stand_ins(tmp_path / "emo", ["House/stop-safe-angry-1562907046662-d14a028c2a3a.wav",
                                  "Roads/background-safe-None-20190701193438-d14a028c2a3a.wav",
                                  "Metro/help-glass break-Fearful-20190701-abcdef012345678.wav"])  # fmt: skip
    emo = load_emospeech(tmp_path / "emo")
    assert sorted((c.label, c.speaker, c.statement) for c in emo.clips) == [
        ("angry", "emospeech/d14a028c2a3a", "stop"), ("fearful", "emospeech/abcdef012345", "help")]  # fmt: skip
    assert not emo.problems  # background clips are not speech: left out silently


def test_baved_is_files_by_speaker_with_its_one_person_under_two_ids(tmp_path: Path) -> None:
    _stand_ins(tmp_path, ["0/10-f-20-0-1-0.wav", "1/10-f-20-1-1-3.wav", "2/53-m-30-2-2-9.wav", "0/46-m-30-0-0-1.wav"])
    (tmp_path / "README.md").write_text("not audio")
    speakers = baved_speakers(tmp_path)
    assert {k: sorted(p.name for p in v) for k, v in speakers.items()} == {
        "10": ["10-f-20-0-1-0.wav", "10-f-20-1-1-3.wav"], "46": ["46-m-30-0-0-1.wav", "53-m-30-2-2-9.wav"]}  # fmt: skip
