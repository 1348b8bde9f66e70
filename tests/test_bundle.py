"""Loading the shipped model bundle, refusing bad ones, and classifying through it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import DEFAULT_CONFIG, compute_features
from ser_edge.recognition.bundle import BundleError, load_bundle
from ser_edge.recognition.model import EmotionModel

from .conftest import REPO, SAMPLES

SHIPPED = Path(os.environ.get("SER_TEST_BUNDLE", REPO / "deploy" / "models" / "ser-tiny"))


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHIPPED, tmp_path / "bundle"))


def _edit(bundle: Path, change) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_shipped_bundle_loads_and_matches_this_front_end() -> None:
    bundle = load_bundle(SHIPPED)
    assert bundle.frontend.hash == DEFAULT_CONFIG.hash
    assert bundle.labels == ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
    assert len(bundle.model) <= 64 * 1024


def test_scores_are_a_distribution_and_windows_are_independent() -> None:
    model = EmotionModel(load_bundle(SHIPPED))
    features = compute_features(read_audio(SAMPLES[4]))
    scores = model.utterance_scores(features)
    assert scores.shape == (8,) and abs(scores.sum() - 1) < 0.05 and (scores >= 0).all()
    assert np.array_equal(model.utterance_scores(features), scores)  # no state carried over


def test_corrupt_model_is_refused(copy: Path) -> None:
    data = bytearray((copy / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"SHA-256 .* does not match the manifest"):
        load_bundle(copy)


def test_truncated_model_with_matching_sha_is_refused_by_the_interpreter(copy: Path) -> None:
    import hashlib

    data = (copy / "model.tflite").read_bytes()[:200]
    (copy / "model.tflite").write_bytes(data)
    _edit(copy, lambda m: m["model"].update(sha256=hashlib.sha256(data).hexdigest()))
    with pytest.raises(BundleError, match=r"cannot load model\.tflite"):
        EmotionModel(load_bundle(copy))


def test_other_front_end_is_refused(copy: Path) -> None:
    from ser_edge.frontend import FrontendConfig

    other = FrontendConfig(n_mels=32)
    _edit(copy, lambda m: m["frontend"].update(config=other.to_dict(), hash=other.hash))
    with pytest.raises(BundleError, match=f"made for front end {other.hash}, but this front end is"):
        load_bundle(copy)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda b: (b / "manifest.json").write_text("{not json"), "not valid JSON"),
        (lambda b: _edit(b, lambda m: m.pop("labels")), "missing key labels"),
        (lambda b: _edit(b, lambda m: m.update(schema_version=99)), "schema version 99 is not supported"),
        (lambda b: (b / "model.tflite").unlink(), "not a model bundle"),
        (lambda b: _edit(b, lambda m: m["frontend"]["config"].update(n_mel=3)), "unknown front-end config key"),
        # Wrong types and ranges (issue 13): each named, none a traceback.
        (lambda b: _edit(b, lambda m: m["model"].update(sha256=5)), "model.sha256 must be a string, got 5"),
        (lambda b: _edit(b, lambda m: m["model"].update(sha256="abc")), "model.sha256 must be 64 lower-case hex"),
        (lambda b: _edit(b, lambda m: m["scoring"].update(hop_frames=-5)), "1 <= hop_frames <= window_frames"),
        (lambda b: _edit(b, lambda m: m["scoring"].update(hop_frames=0)), "1 <= hop_frames <= window_frames"),
        (lambda b: _edit(b, lambda m: m["scoring"].update(window_frames="149")), "window_frames must be an integer"),
        (lambda b: _edit(b, lambda m: m["scoring"].update(hop_frames=True)), "hop_frames must be an integer"),
        (lambda b: _edit(b, lambda m: m.update(labels="angry")), "labels must be a list, got 'angry'"),
        (lambda b: _edit(b, lambda m: m.update(labels=["a", "a"])), "labels must be two or more different"),
        (lambda b: _edit(b, lambda m: m.update(labels=["calm", "uncertain"])), "must not include 'uncertain'"),
        (lambda b: _edit(b, lambda m: m.update(frontend=[1])), "missing key frontend.config"),
        (lambda b: _edit(b, lambda m: m["frontend"].update(config={"n_mels": "x"})), "n_mels must be an integer"),
        (lambda b: (b / "manifest.json").write_text("[1, 2]"), "a manifest is a JSON object, not list"),
        (lambda b: (b / "manifest.json").write_text("[" * 100_000), "nested too deeply|not valid JSON"),
        (lambda b: (b / "manifest.json").write_bytes(b"\xff\xfe{"), "not valid JSON"),
    ],
)
def test_broken_manifests_are_named(copy: Path, break_it, message: str) -> None:
    break_it(copy)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)


def test_classify_command_json() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ser_edge", "classify", *map(str, SAMPLES), "--bundle", str(SHIPPED), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["results"]) == len(SAMPLES)
    for result in out["results"]:
        assert result["emotion"] in result["scores"] and result["confidence"] == max(result["scores"].values())
