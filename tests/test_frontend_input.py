"""Bad input gets a ValueError naming the problem; extreme input stays finite and in range."""

from __future__ import annotations

import numpy as np
import pytest

from ser_edge.frontend import (
    DEFAULT_CONFIG,
    FrontendConfig,
    StreamingFrontend,
    compute_features,
    compute_features_batch,
)
from tests.conftest import PLAIN

ALL = FrontendConfig(channels=("mfcc", "logmel", "zcr", "rms"), **PLAIN)
SECOND = 16000


@pytest.mark.parametrize(
    ("pcm", "rate", "message"),
    [
        (np.zeros(SECOND, np.float32), 16000, "must be int16 PCM, got float32"),
        (np.zeros(SECOND, np.int32), 16000, "must be int16 PCM, got int32"),
        (np.full(SECOND, np.nan), 16000, "contains NaN"),
        (np.zeros((SECOND, 2), np.int16), 16000, "must be mono (a 1-D array), got shape (16000, 2)"),
        (np.zeros(SECOND, np.int16), 44100, "is 44100 Hz but the front end expects 16000 Hz"),
        (np.zeros(0, np.int16), 16000, "empty"),
        ([0, 1, 2], 16000, "must be a numpy int16 array, got list"),
    ],
)
def test_bad_input_is_named(pcm: object, rate: int, message: str) -> None:
    with pytest.raises(ValueError) as err:
        compute_features(pcm, rate)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_batch_names_the_bad_clip() -> None:
    good = np.zeros(SECOND, np.int16)
    with pytest.raises(ValueError, match="clip 1: audio must be int16 PCM, got float64"):
        compute_features_batch([good, good.astype(np.float64)])


def test_streaming_rejects_bad_chunks_and_wrong_rate() -> None:
    stream = StreamingFrontend()
    with pytest.raises(ValueError, match="int16"):
        stream.push(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="8000 Hz"):
        StreamingFrontend(sample_rate=8000)


def _square(amplitude_hi: int, amplitude_lo: int, period: int, n: int = SECOND) -> np.ndarray:
    return np.where((np.arange(n) // (period // 2)) % 2 == 0, amplitude_hi, amplitude_lo).astype(np.int16)


EXTREMES = {
    "full-scale square 1 kHz": _square(32767, -32768, 16),
    "full-scale square at Nyquist": _square(32767, -32768, 2),
    "full-scale square 50 Hz": _square(32767, -32768, 320),
    "dc at -32768": np.full(SECOND, -32768, np.int16),
    "clipped loud sine": np.clip(
        np.round(3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(SECOND) / SECOND)), -32768, 32767
    ).astype(np.int16),
    "one-LSB noise": np.random.default_rng(0).integers(-1, 2, SECOND).astype(np.int16),
    "single impulse": np.eye(1, SECOND, 8000, dtype=np.int16)[0] * 32767,
}


@pytest.mark.parametrize("name", sorted(EXTREMES))
def test_extreme_signals_stay_in_range_without_overflow(name: str) -> None:
    with np.errstate(all="raise"):  # any overflow or invalid operation fails the test
        out = compute_features(EXTREMES[name], cfg=ALL)
    assert out.dtype == np.int8 and out.shape == (ALL.n_frames(SECOND), ALL.n_features)


def test_silence_is_the_floor() -> None:
    out = compute_features(np.zeros(SECOND, np.int16), cfg=ALL)
    mfcc, logmel = out[:, :13], out[:, 13:53]
    zcr, energy = out[:, 53], out[:, 54]
    assert (mfcc[:, 0] == -128).all() and (mfcc[:, 1:] == 0).all()
    assert (logmel == -128).all() and (energy == -128).all() and (zcr == -128).all()


def test_full_scale_square_is_loud_and_crosses_often() -> None:
    out = compute_features(EXTREMES["full-scale square at Nyquist"], cfg=ALL)
    assert (out[:, 53] == 127).all()  # a crossing at every sample
    assert (out[:, 54] == -128 + 24 * 4).all()  # mean square 1.0 = 24 log2 over the -24 floor


def test_clip_shorter_than_one_window_has_no_frames() -> None:
    out = compute_features(np.ones(DEFAULT_CONFIG.window_samples - 1, np.int16))
    assert out.shape == (0, DEFAULT_CONFIG.n_features)


def test_frame_count_follows_window_and_hop() -> None:
    cfg = DEFAULT_CONFIG
    for n in (cfg.window_samples, cfg.window_samples + cfg.hop_samples - 1, 3 * SECOND):
        assert compute_features(np.ones(n, np.int16)).shape[0] == 1 + (n - cfg.window_samples) // cfg.hop_samples
