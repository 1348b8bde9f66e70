"""Reading real and odd audio files into int16 mono 16 kHz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_edge.audio.audio_io import AudioFileError, read_audio

from .conftest import SAMPLES


def _tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def _peak_hz(pcm: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / pcm.size)


def test_16k_mono_flac_is_read_bit_exactly() -> None:
    raw, rate = sf.read(SAMPLES[0], dtype="int16")
    assert rate == 16000
    assert np.array_equal(read_audio(SAMPLES[0]), raw)


@pytest.mark.parametrize(("rate", "fmt", "subtype"), [
    (44100, "WAV", "PCM_16"), (48000, "WAV", "FLOAT"), (22050, "FLAC", "PCM_24"),
    (8000, "AIFF", "PCM_16"), (96000, "WAV", "PCM_32"),
])  # fmt: skip
def test_any_rate_and_channels_become_16k_mono(tmp_path: Path, rate: int, fmt: str, subtype: str) -> None:
    tone = _tone(rate, 1.0)
    stereo = np.stack([tone, tone], axis=1)
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, stereo, rate, format=fmt, subtype=subtype)
    pcm = read_audio(path)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert abs(pcm.size - 16000) <= 1
    assert abs(_peak_hz(pcm) - 440.0) <= 1.0
    assert abs(np.abs(pcm).max() / 32768 - 0.5) < 0.01  # level kept


def test_channels_are_averaged(tmp_path: Path) -> None:
    left = np.full(1600, 8192, np.int16)
    path = tmp_path / "lr.wav"
    sf.write(path, np.stack([left, left // -5], axis=1), 16000, subtype="PCM_16")
    assert (read_audio(path) == 3276).all()  # (8192 - 1639) / 2 = 3276.5, rounded to even


def test_aiff_named_wav_is_recognised_by_content(tmp_path: Path) -> None:
    path = tmp_path / "disguised.wav"
    sf.write(path, _tone(24414, 0.5), 24414, format="AIFF", subtype="PCM_16")
    assert sf.info(path).format == "AIFF"
    assert abs(read_audio(path).size - 8000) <= 1


def test_tess_96k_file_is_resampled(datasets: Path) -> None:
    path = datasets / "tess" / "OAF_Fear" / "OAF_food_fear.flac"
    assert sf.info(path).samplerate == 96000
    pcm = read_audio(path)
    assert abs(pcm.size - round(sf.info(path).frames / 6)) <= 1
    assert np.abs(pcm).max() > 1000  # speech, not silence


def test_loud_float_file_is_clipped_not_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "hot.wav"
    sf.write(path, np.array([2.0, -2.0, 0.5]), 16000, subtype="FLOAT")
    assert read_audio(path).tolist() == [32767, -32768, 16384]


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "not a readable audio file"),
    (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00garbage" * 10), "not a readable audio file"),
    (lambda p: sf.write(p, np.zeros(0), 16000), "contains no samples"),
    (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2]), 16000, subtype="FLOAT"), "NaN"),
])  # fmt: skip
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioFileError) as err:
        read_audio(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="no such file"):
        read_audio(tmp_path)


def test_blocks_are_the_whole_file_in_pieces(tmp_path: Path) -> None:
    """Streamed reading (and resampling) gives exactly the samples of reading at once."""
    from ser_edge.audio.audio_io import audio_blocks

    rng = np.random.default_rng(1)
    path = tmp_path / "x.wav"
    sf.write(path, rng.normal(0, 0.1, (48000 * 7 + 123, 2)), 48000, subtype="FLOAT")
    blocks = list(audio_blocks(path, 16000, block_s=2.0))
    assert len(blocks) >= 4 and max(b.size for b in blocks) <= 2.2 * 16000
    assert np.array_equal(np.concatenate(blocks), read_audio(path))


def test_half_an_hour_of_audio_is_classified_in_bounded_memory(half_hour: Path) -> None:
    """issue 13: classify peaked at 1.63 GB on 30 minutes at 48 kHz; now one block and one
    utterance are in memory at a time, so about what one clip needs."""
    import json
    import sys

    from .conftest import peak_rss_mb

    code, out, peak = peak_rss_mb([sys.executable, "-m", "ser_edge", "classify", "--json", str(half_hour)])
    assert code == 0, out
    assert len(json.loads(out)["results"]) == 30  # one utterance per minute
    print(f"classify, 30 min at 48 kHz: peak RSS {peak:.0f} MB")
    assert peak < 300, f"peak RSS {peak:.0f} MB"
