"""Noise reduction and gain control (ser_edge.frontend.normalise): what they are for."""

from __future__ import annotations

import numpy as np

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import FrontendConfig, compute_features
from ser_edge.frontend.normalise import curve
from ser_edge.frontend.tables import tables_for

from .conftest import SAMPLES

PLAIN = FrontendConfig(log_floor=-40, noise_reduction=False, agc_strength=0.0)
AGC = FrontendConfig(log_floor=-40, noise_reduction=False, agc_strength=1.0, agc_offset=-36.0)


def _gain(pcm: np.ndarray, db: float) -> np.ndarray:
    return np.clip(np.rint(pcm * 10 ** (db / 20)), -32768, 32767).astype(np.int16)


def test_curves_follow_their_formulas() -> None:
    cfg = FrontendConfig(noise_keep=0.1)
    t = tables_for(cfg)
    d = np.arange(0, 20 << 10, 37)
    exact_gain = np.log2(np.maximum(1 - 2.0 ** -(d / 1024), 0.1)) * 1024
    exact_softplus = np.log2(1 + 2.0 ** -(d / 1024)) * 1024
    error = np.abs(curve(t.noise_gain_q10, d) - exact_gain)
    # Linear pieces 1/16 log2 long: coarse only at the knee where the floor takes over (d ~ 0.15).
    assert error.max() <= 0.1 * 1024 and error[d >= 1024].max() <= 8  # <= 1/128 log2 away from it
    assert np.abs(curve(t.softplus_q10, d) - exact_softplus).max() <= 2


def test_gain_control_makes_the_features_nearly_level_independent() -> None:
    pcm = read_audio(SAMPLES[4])
    for db in (-20.0, -10.0, 6.0):
        plain = np.abs(compute_features(_gain(pcm, db), cfg=PLAIN).astype(int) - compute_features(pcm, cfg=PLAIN))
        agc = np.abs(compute_features(_gain(pcm, db), cfg=AGC).astype(int) - compute_features(pcm, cfg=AGC))
        # c0 carries the level: it moves by about 6.3 steps per 3 dB without gain control.
        assert plain[:, 0].mean() > 1.5 * abs(db)
        assert agc[:, 0].mean() < 0.25 * plain[:, 0].mean(), db
        assert agc[:, 1:].mean() <= plain[:, 1:].mean() + 0.5


def test_noise_reduction_lowers_steady_noise_and_keeps_speech() -> None:
    pcm = read_audio(SAMPLES[2])
    rng = np.random.default_rng(0)
    noisy = np.clip(pcm + rng.normal(0, 60, pcm.size), -32768, 32767).astype(np.int16)
    cfg = FrontendConfig(channels=("logmel",), log_floor=-40, noise_reduction=False, agc_strength=0.0)
    nr = FrontendConfig(channels=("logmel",), log_floor=-40, noise_reduction=True, noise_keep=0.125, agc_strength=0.0)
    before, after = compute_features(noisy, cfg=cfg).astype(int), compute_features(noisy, cfg=nr).astype(int)
    quiet = slice(2, 20)  # the clip's first 0.4 s: noise only
    # Noise alone is pushed down towards log2(1/0.125) = 3 log2 units = 12 steps of 1/4 ...
    noise_drop = (before[quiet] - after[quiet]).mean()
    assert 7 <= noise_drop <= 12
    # ... the loudest speech frames far less.
    loud = before.max(axis=1) >= np.percentile(before.max(axis=1), 90)
    assert (before[loud] - after[loud]).mean() < 0.5 * noise_drop
