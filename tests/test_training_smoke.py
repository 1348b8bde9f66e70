"""End to end on a few real clips: cross-validation, training, int8 export, and the
bundle checked under TFLite and TFLite Micro. Small and short: the real training runs
are in the docs, not in CI."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.frontend import DEFAULT_CONFIG
from tests.conftest import link_ravdess


@pytest.fixture(scope="module")
def work(ravdess: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight actors, eight clips each (links to the real files), and a 2-epoch config."""
    root = tmp_path_factory.mktemp("smoke")
    link_ravdess(ravdess, root)
    (root / "smoke.yaml").write_text(
        f"name: ser-smoke\nversion: 0.0.1\nmodel: {{kind: ds_cnn, filters: 16, blocks: 1}}\n"
        f"data: {{ravdess: {root / 'ravdess'}, tess: null, extra_training: []}}\n"
        "augment: {renderings: 1}\ntrain: {epochs: 2, batch_size: 16}\ncv: {folds: 2}\n"
    )
    return root


def ser_train(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "ser_training", *args], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def cv(work: Path) -> dict:
    ser_train("cv", "--config", str(work / "smoke.yaml"), "--out", str(work / "cv"), "--cache", str(work / "cache"),
              "--folds", "1")  # fmt: skip
    return json.loads((work / "cv" / "cv.json").read_text())


PROTOCOL = """gains_db: [-10, 0]
rt60_s: [0.3]
snr_db: [10]
distance_m: [1.0, 4.0]
rooms_per_rt60: 2
corpora: [emodb]
every: 4
seed: 5
"""


@pytest.fixture(scope="module")
def robustness(work: Path, cv: dict) -> dict:
    """The harness on the CV's fold model, a small grid (CI time), written where export finds it."""
    (work / "protocol.yaml").write_text(PROTOCOL)
    ser_train("robustness", str(work / "cv"), "--protocol", str(work / "protocol.yaml"), "--cache", str(work / "rooms"))
    return json.loads((work / "cv" / "robustness" / "robustness.json").read_text())


@pytest.fixture(scope="module")
def bundle(work: Path, cv: dict, robustness: dict) -> Path:
    common = ["--cache", str(work / "cache")]
    ser_train("train", "--config", str(work / "smoke.yaml"), "--out", str(work / "run"), *common)
    out = work / "bundle"
    cv_json = str(work / "cv" / "cv.json")
    r = ser_train("export", "--run", str(work / "run"), "--out", str(out), "--cv", cv_json, *common)
    assert "TFLM arena" in r.stdout
    return out


def test_cv_reports_float_and_int8_per_fold_and_pooled(cv: dict) -> None:
    fold = cv["folds"][0]
    assert len(fold["test_speakers"]) == 4 and not set(fold["test_speakers"]) & set(fold["validation_speakers"])
    for kind in ("float", "int8"):
        r = fold[kind]
        assert r["n"] == sum(r["classes"][c]["support"] for c in r["classes"]) > 0
        m = np.array(r["confusion"])  # the figures are the confusion matrix's
        assert m.sum() == r["n"] and r["accuracy"] == pytest.approx(np.trace(m) / r["n"])
        recall = np.diag(m)[m.sum(axis=1) > 0] / m.sum(axis=1)[m.sum(axis=1) > 0]
        assert r["uar"] == pytest.approx(recall.mean())
        assert set(r["per_speaker"]) == set(fold["test_speakers"])
    assert cv["pooled"]["int8"]["n"] == fold["int8"]["n"]
    assert len(fold["history"]["loss"]) == 2


def test_cv_keeps_each_folds_model_as_a_bundle(work: Path, cv: dict) -> None:
    from ser_edge.recognition.bundle import load_bundle

    fold = load_bundle(work / "cv" / "folds" / "1")
    manifest = json.loads((work / "cv" / "folds" / "1" / "manifest.json").read_text())
    assert manifest["training"]["test_speakers"] == cv["folds"][0]["test_speakers"]
    assert set(manifest["training"]["speakers"]).isdisjoint(manifest["training"]["test_speakers"])
    assert fold.frontend == DEFAULT_CONFIG and len(fold.labels) == 8


def test_robustness_covers_every_condition_and_repeats_exactly(work: Path, cv: dict, robustness: dict) -> None:
    from ser_training.corpora import check_audio, load_ravdess

    assert list(robustness["conditions"]) == ["clean", "gain -10 dB", "gain +0 dB", "RT60 0.3 s, SNR 10 dB"]
    assert robustness["gate"] == "speech"  # the daemon's default gate cut the utterances, and the file says so
    test = set(cv["folds"][0]["test_speakers"])  # only the fold's own test speakers, every 4th clip
    expected = [c for c in check_audio(load_ravdess(work / "ravdess")).clips[::4] if c.speaker in test]
    assert robustness["conditions"]["clean"]["clips"] == len(expected) > 0
    for r in robustness["conditions"].values():
        m = np.array(r["confusion"])  # truth x (answers + missed)
        assert r["clips"] > 0 and m.sum() == r["utterances"] + r["missed"]
        assert r["accuracy"] == pytest.approx(np.trace(m[:, :-1]) / m.sum()) and 0 <= r["ece"] <= 1
        assert sum(r["shares"].values()) == pytest.approx(1.0) or r["utterances"] == 0
    assert robustness["conditions"]["clean"] == robustness["conditions"]["gain +0 dB"]
    emodb = robustness["corpora"]["emodb"]
    assert set(emodb) == {"8-way", "own classes", "4-class"}
    assert emodb["4-class"]["classes"] == ["angry", "happy", "neutral", "sad"]
    assert set(robustness["noise_files"]).isdisjoint({"aircon_0.flac", "dishwasher_0.flac", "street_0.flac"})
    again = work / "again"
    ser_train("robustness", str(work / "cv"), "--protocol", str(work / "protocol.yaml"), "--out", str(again),
              "--cache", str(work / "rooms"))  # fmt: skip
    second = json.loads((again / "robustness.json").read_text())
    assert second["conditions"] == robustness["conditions"] and second["corpora"] == robustness["corpora"]
    for name in ("robustness.png", "shares.png"):
        assert (again / name).stat().st_size > 10_000


def test_bundle_is_valid_and_verified(bundle: Path, robustness: dict) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    model = (bundle / "model.tflite").read_bytes()
    assert manifest["model"]["sha256"] == hashlib.sha256(model).hexdigest()
    assert manifest["frontend"]["hash"] == DEFAULT_CONFIG.hash
    assert manifest["input"] == {"shape": [1, 149, 13], "dtype": "int8", "scale": 1.0, "zero_point": 0}
    assert manifest["labels"] == [
        "neutral",
        "calm",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgust",
        "surprised",
    ]
    v = manifest["verification"]
    assert v["tflm_max_abs_diff_steps"] <= 2 and v["verified_windows"] > 0
    assert 10_000 < v["tflm_arena_bytes"] <= 64 * 1024  # within the node's budget (about 20 KB for this one)
    assert "non-commercial" in manifest["licence"]
    assert manifest["evaluation"]["protocol"]["kind"].startswith("2-fold speaker-independent")
    summary = manifest["robustness"]["summary"]  # the fold models' harness figures travel with the bundle
    for picture in ("confusion_int8.png", "learning_curves.png"):  # and the CV's plots
        assert (bundle / picture).stat().st_size > 10_000
    assert summary["clean_accuracy"] == pytest.approx(robustness["conditions"]["clean"]["accuracy"])
    assert manifest["robustness"]["gate"] == "speech"
    assert "emodb_uar_4class" in summary
    assert set(manifest["training"]["speakers"]).isdisjoint(manifest["training"]["validation_speakers"])
    source = (bundle / "model_data.c").read_text()
    assert f"g_ser_model_len = {len(model)};" in source and source.count("0x") == len(model)


def test_bundle_runs_under_tflite_and_tflite_micro(bundle: Path) -> None:
    from tflite_micro import runtime

    from ser_edge.audio.audio_io import read_audio
    from ser_edge.frontend import compute_features
    from ser_edge.recognition.scoring import silence_row, utterance_windows
    from ser_training.int8 import tflite_outputs

    manifest = json.loads((bundle / "manifest.json").read_text())
    model = (bundle / "model.tflite").read_bytes()
    sample = Path(__file__).resolve().parents[1] / "deploy" / "samples" / "03-01-05-02-01-01-07.flac"
    windows = utterance_windows(compute_features(read_audio(sample)), 149, 50, silence_row(DEFAULT_CONFIG))
    lite = tflite_outputs(model, windows, reference=True)
    micro = runtime.Interpreter.from_bytes(model, arena_size=manifest["verification"]["tflm_arena_bytes"])
    for window, expected in zip(windows, lite, strict=True):
        micro.reset()
        micro.set_input(window[None], 0)
        micro.invoke()
        assert np.array_equal(micro.get_output(0)[0], expected)


def test_evaluate_scores_the_bundle_on_held_out_actors(work: Path, bundle: Path, ravdess: Path) -> None:
    r = ser_train("evaluate", str(bundle), "--ravdess", str(ravdess / "Actor_19"), "--json")
    result = json.loads(r.stdout[r.stdout.index("{") :])
    assert result["n"] == 60 and set(result["per_speaker"]) == {"ravdess/19"}
    assert np.array(result["confusion"]).sum() == 60


def test_bad_config_is_one_line(work: Path) -> None:
    bad = work / "bad.yaml"
    bad.write_text("model: {kind: ds_cnn, filterz: 3}\n")
    r = subprocess.run([sys.executable, "-m", "ser_training", "cv", "--config", str(bad), "--out", str(work / "x")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "model.filterz: unknown key" in r.stderr and "Traceback" not in r.stderr


def test_summary_table_lists_the_run(work: Path, cv: dict) -> None:
    r = ser_train("summary", str(work / "cv" / "cv.json"))
    row = next(line for line in r.stdout.splitlines() if line.startswith("| cv |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) == cv["model"]["parameters"] > 0
    assert float(cells[6]) == round(cv["pooled"]["int8"]["accuracy"], 3)


def test_report_shows_data_results_importance_and_card(work: Path, bundle: Path) -> None:
    from PIL import Image

    out = work / "report"
    ser_train("report", str(bundle), "--out", str(out))
    page = (out / "index.html").read_text()
    referenced = re.findall(r'<img src="([^"]+)"', page)
    # Every picture is referenced, every reference exists, nothing points outside the folder.
    assert sorted(referenced) == sorted(p.name for p in out.glob("*.png"))
    fixed = {"composition.png", "curves.png", "per_speaker.png", "importance.png"}
    fixed |= {f"confusion_{k}_{n}.png" for k in ("float", "int8") for n in ("counts", "normalised")}
    assert fixed <= set(referenced)
    assert any(name.startswith("example_") for name in referenced)
    for name in referenced:
        with Image.open(out / name) as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert image.width >= 500 and image.height >= 300, name
        assert pixels.std() > 10 and (pixels < 200).mean() > 0.02, f"{name} looks blank"
    assert {"robustness.png", "shares.png"} <= set(referenced)
    for text in ("Robustness: rooms, input level, other corpora", "RT60 0.3 s, SNR 10 dB", "emodb 4-class",
                 "Dataset composition", "What each emotion looks like", "Training curves", "Classification report",
                 "Accuracy per speaker", "Method: <b>occlusion</b>", "MACs per inference", "TFLite Micro arena",
                 "latency per window", "evaluation protocol", "CC BY-NC-SA 4.0"):  # fmt: skip
        assert text in page, text
    assert "TESS" not in page.split("licence")[1][:300]  # the smoke model never heard TESS


def test_report_of_a_folder_that_is_no_bundle_is_one_line(work: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "ser_training", "report", str(work)], capture_output=True, text=True)
    assert r.returncode != 0 and "not a model bundle" in r.stderr and "Traceback" not in r.stderr
