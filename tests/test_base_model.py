"""ser-base as the daemon runs it: the bundle kind, its checks, the default choice, and
real clips through the gate, the encoder and the head."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio, to_int16
from ser_edge.configfile import ConfigError
from ser_edge.pipeline import recognise_pcm
from ser_edge.preflight import check_bundle
from ser_edge.recognition.base_model import BaseModel
from ser_edge.recognition.bundle import BundleError, load_bundle
from ser_edge.recognition.model import EmotionModel, load_model
from ser_edge.settings import GateSettings, Settings, SourceSettings, default_bundle

from .conftest import REPO, SAMPLES
from .test_bundle import _edit

SER_BASE = REPO / "deploy" / "models" / "ser-base"
SER_TINY = REPO / "deploy" / "models" / "ser-tiny"
LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def _truth(path: Path) -> str:
    return LABELS[int(path.name.split("-")[2]) - 1]


@pytest.fixture(scope="module")
def model() -> BaseModel:
    m = load_model(SER_BASE)
    assert isinstance(m, BaseModel)
    return m


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SER_BASE, tmp_path / "bundle"))


def test_the_shipped_bundle_is_an_encoder_bundle_with_its_licences(model: BaseModel) -> None:
    b = model.bundle
    assert b.kind == "encoder" and b.labels == LABELS and b.name == "ser-base"
    assert b.encoder.layers == 3 and b.encoder.embedding == 1024
    manifest = json.loads((SER_BASE / "manifest.json").read_text())
    assert "MIT" in manifest["licence"] and "CC BY-NC-SA 4.0" in manifest["licence"]
    assert manifest["training"]["corpora"] and manifest["encoder"]["weights"]["licence"].startswith("MIT")


def test_every_sample_clip_is_recognised_through_the_daemons_path(model: BaseModel) -> None:
    """What `make demo` shows: the speech gate cuts each clip, ser-base names its emotion."""
    for clip in SAMPLES:
        found = recognise_pcm(read_audio(clip), model, GateSettings(), 0.3)
        assert len(found) == 1, clip.name
        assert found[0].emotion == _truth(clip), (clip.name, found[0].scores)
        assert abs(sum(found[0].scores.values()) - 1) < 1e-3


def test_the_answer_does_not_depend_on_the_input_level(model: BaseModel) -> None:
    """The level is set before the encoder: -30 dB and +6 dB give the scores of 0 dB."""
    clip = read_audio(SAMPLES[4]).astype(np.float64) / 32768.0
    reference = model.scores(model.embedding(to_int16(clip)))
    for gain_db in (-30, 6):
        scores = model.scores(model.embedding(to_int16(clip * 10 ** (gain_db / 20))))
        assert np.abs(scores - reference).max() < 0.05, gain_db


def test_defaults_choose_the_model_by_where_the_audio_is() -> None:
    assert default_bundle(SourceSettings()) == SER_BASE  # a microphone on the Pi
    serial = Settings(source=SourceSettings(kind="serial"))  # a node in features mode (its default)
    assert serial.model.bundle == SER_TINY and Settings().model.bundle == SER_BASE


def test_a_node_that_sends_no_audio_cannot_be_given_ser_base() -> None:
    settings = Settings(source=SourceSettings(kind="serial"))
    with pytest.raises(ConfigError, match="sends no audio"):
        check_bundle(SER_BASE, settings)
    assert isinstance(check_bundle(SER_TINY, settings), EmotionModel)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: (b / "encoder.tflite").write_bytes(b"\0" * 100), "encoder.tflite: SHA-256"),
        (lambda b: (b / "encoder.tflite").unlink(), "encoder.tflite is missing"),
        (lambda b: _edit(b, lambda m: m["encoder"].update(file="../../etc/passwd")), "a file name in the bundle"),
        (lambda b: _edit(b, lambda m: m["encoder"]["logmel"].update(n_fft=512)), "not the log-mel"),
        (lambda b: _edit(b, lambda m: m["encoder"]["logmel"].update(window="hamming")), "encoder.logmel"),
        (lambda b: _edit(b, lambda m: m["encoder"].update(level_dbfs="loud")), "level_dbfs must be a number"),
        (lambda b: _edit(b, lambda m: m["encoder"].update(level_dbfs=float("nan"))), "level_dbfs must be a finite"),
        (lambda b: _edit(b, lambda m: m["encoder"].pop("sha256")), "missing key encoder.sha256"),
        (lambda b: _edit(b, lambda m: m["encoder"].update(embedding=512)), "need (1, 512)"),
    ],
)
def test_a_damaged_bundle_is_refused_with_the_reason(copy: Path, damage, message: str) -> None:
    damage(copy)
    with pytest.raises(BundleError) as e:
        load_model(copy)
    assert message in str(e.value)


def test_a_garbage_encoder_with_a_matching_hash_is_refused(copy: Path) -> None:
    import hashlib

    (copy / "encoder.tflite").write_bytes(b"TFL3" + bytes(range(256)) * 10)
    digest = hashlib.sha256((copy / "encoder.tflite").read_bytes()).hexdigest()
    _edit(copy, lambda m: m["encoder"].update(sha256=digest))
    assert load_bundle(copy).kind == "encoder"  # the file is what the manifest says ...
    with pytest.raises(BundleError, match="interpreter cannot load"):
        load_model(copy)  # ... but not a model


def test_classify_and_check_config_run_ser_base_by_default(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ser_edge", "classify", "--json", str(SAMPLES[4])],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"].startswith("ser-base ") and out["results"][0]["emotion"] == "angry"
    config = tmp_path / "c.yaml"
    config.write_text(f"source: {{kind: serial}}\nmodel: {{bundle: {SER_BASE}}}\nspool: {{path: {tmp_path / 's'}}}\n")
    r = subprocess.run([sys.executable, "-m", "ser_edge", "check-config", str(config)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 78 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "model.bundle:" in r.stderr and "sends no audio" in r.stderr


def test_the_report_of_a_ser_base_bundle_shows_its_folds_and_corpora(copy: Path, tmp_path: Path) -> None:
    from ser_training.report import write_report

    page = write_report(copy, tmp_path / "report", log=lambda _: None).read_text()
    manifest = json.loads((SER_BASE / "manifest.json").read_text())
    pooled = manifest["evaluation"]["ravdess_pooled"]
    assert "ser-base" in page and f"{pooled['accuracy']:.1%}" in page
    for trial in ("ravdess fold 1", "without emodb", "without turev"):
        assert trial in page
    assert (tmp_path / "report" / "robustness.png").is_file() and "MIT" in page
