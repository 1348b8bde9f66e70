"""Streaming must equal batch exactly, however the audio is chunked."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import FrontendConfig, StreamingFrontend, compute_features, compute_features_batch

from .conftest import PLAIN, SAMPLES

ALL = FrontendConfig(channels=("mfcc", "logmel", "zcr", "rms"), **PLAIN)
#: Noise reduction and gain control carry state from frame to frame: chunking must not show.
NORMALISED = FrontendConfig(channels=("mfcc", "logmel"), noise_reduction=True, agc_strength=0.95, log_floor=-40)
CLIP = read_audio(SAMPLES[4])[: 16000 * 2]
BATCH = compute_features(CLIP, cfg=ALL)


def _stream(pcm: np.ndarray, cuts: list[int], cfg: FrontendConfig) -> np.ndarray:
    stream = StreamingFrontend(cfg)
    bounds = [0, *sorted(cuts), pcm.size]
    parts = [stream.push(pcm[a:b]) for a, b in pairwise(bounds)]
    return np.concatenate(parts)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, CLIP.size), max_size=40))
def test_random_chunking_of_a_real_clip_equals_batch(cuts: list[int]) -> None:
    assert np.array_equal(_stream(CLIP, cuts, ALL), BATCH)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 4000),
    st.lists(st.integers(0, 4000), max_size=12),
    st.sampled_from([FrontendConfig(), FrontendConfig(window_samples=400, hop_samples=160), NORMALISED]),
)
def test_random_signal_and_chunking_equals_batch(seed: int, n: int, cuts: list[int], cfg) -> None:
    pcm = np.random.default_rng(seed).integers(-32768, 32768, n).astype(np.int16)
    expected = compute_features(pcm, cfg=cfg)
    assert np.array_equal(_stream(pcm, [c % (n + 1) for c in cuts], cfg), expected)


def test_sample_by_sample_equals_batch() -> None:
    pcm = CLIP[:8000]
    stream = StreamingFrontend(ALL)
    rows = [stream.push(pcm[i : i + 1]) for i in range(pcm.size)]
    assert np.array_equal(np.concatenate(rows), compute_features(pcm, cfg=ALL))


def test_reset_starts_a_new_stream() -> None:
    stream = StreamingFrontend(ALL)
    stream.push(CLIP[:5000])
    stream.reset()
    assert np.array_equal(stream.push(CLIP), BATCH)


def test_batch_equals_one_clip_at_a_time() -> None:
    clips = [read_audio(p) for p in SAMPLES]
    for clip, out in zip(clips, compute_features_batch(clips, cfg=ALL), strict=True):
        assert np.array_equal(out, compute_features(clip, cfg=ALL))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, CLIP.size), max_size=30))
def test_random_chunking_with_noise_reduction_and_gain_control_equals_batch(cuts: list[int]) -> None:
    assert np.array_equal(_stream(CLIP, cuts, NORMALISED), compute_features(CLIP, cfg=NORMALISED))


def test_each_clip_of_a_batch_starts_its_own_band_state() -> None:
    clips = [read_audio(p) for p in SAMPLES[:4]]
    batch = compute_features_batch(clips, cfg=NORMALISED)
    assert all(np.array_equal(b, compute_features(c, cfg=NORMALISED)) for b, c in zip(batch, clips, strict=True))
    stream = StreamingFrontend(NORMALISED)
    stream.push(clips[1])
    assert not np.array_equal(stream.push(clips[0])[:50], batch[0][:50])  # the state carried over: it matters
