"""Benchmarks that print figures (never pass/fail): `ser-edge bench frontend`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import DEFAULT_CONFIG, FrontendConfig, compute_features, compute_features_batch


def _librosa_mfcc(cfg: FrontendConfig) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import librosa
    except ImportError:
        raise SystemExit("the front-end benchmark needs librosa: pip install 'ser-edge[bench]'") from None

    def mfcc(y: np.ndarray) -> np.ndarray:
        return librosa.feature.mfcc(
            y=y, sr=cfg.sample_rate, n_mfcc=cfg.n_mfcc, n_fft=cfg.n_fft, hop_length=cfg.hop_samples,
            win_length=cfg.window_samples, window="hann", center=False, n_mels=cfg.n_mels,
            fmin=cfg.fmin_hz, fmax=cfg.fmax_hz, htk=True,
        )  # fmt: skip

    return mfcc


def _fixed_length(pcm: np.ndarray, n: int) -> np.ndarray:
    return pcm[:n] if pcm.size >= n else np.pad(pcm, (0, n - pcm.size))


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def bench_frontend(
    files: Sequence[Path], seconds: float = 3.0, repeat: int = 30, cfg: FrontendConfig = DEFAULT_CONFIG
) -> dict[str, float]:
    """Time the fixed-point front end against librosa.feature.mfcc on the same clips."""
    n = int(seconds * cfg.sample_rate)
    clips = [_fixed_length(read_audio(f, cfg.sample_rate), n) for f in files]
    floats = [c.astype(np.float32) / 32768.0 for c in clips]
    stack = np.stack(floats)
    mfcc = _librosa_mfcc(cfg)
    mfcc(floats[0])  # first call pays librosa's one-off start-up
    compute_features(clips[0], cfg.sample_rate, cfg)

    single_fixed, single_librosa = [], []
    for pcm, y in zip(clips, floats, strict=True):
        # Alternate the two so that machine noise falls on both alike.
        single_fixed.append(_median_ms(partial(compute_features, pcm, cfg.sample_rate, cfg), repeat))
        single_librosa.append(_median_ms(partial(mfcc, y), repeat))
    batch_fixed = _median_ms(lambda: compute_features_batch(clips, cfg.sample_rate, cfg), 5) / len(clips)
    batch_librosa = _median_ms(lambda: mfcc(stack), 5) / len(clips)
    return {
        "clips": len(clips),
        "seconds": seconds,
        "fixed_ms": statistics.median(single_fixed),
        "librosa_ms": statistics.median(single_librosa),
        "batch_fixed_ms": batch_fixed,
        "batch_librosa_ms": batch_librosa,
    }


def format_frontend(r: dict[str, float]) -> str:
    ratio, batch_ratio = r["fixed_ms"] / r["librosa_ms"], r["batch_fixed_ms"] / r["batch_librosa_ms"]
    return "\n".join(
        [
            f"front-end benchmark: {r['clips']} real clips of {r['seconds']:g} s, median of repeats",
            f"  one clip per call   fixed-point {r['fixed_ms']:7.2f} ms   librosa.feature.mfcc "
            f"{r['librosa_ms']:7.2f} ms   ratio {ratio:.2f}x",
            f"  all clips per call  fixed-point {r['batch_fixed_ms']:7.2f} ms   librosa.feature.mfcc "
            f"{r['batch_librosa_ms']:7.2f} ms   ratio {batch_ratio:.2f}x   (per clip)",
        ]
    )
