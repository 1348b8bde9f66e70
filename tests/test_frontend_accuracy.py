"""The integer path against its float64 reference, on real RAVDESS speech.

Bounds sit just above what was measured (edge/docs/frontend.md); int8 rounding alone
gives 0.29 steps RMS, so anything near that is the arithmetic being exact enough.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import FrontendConfig, fixed
from ser_edge.frontend.error import measure_error
from ser_edge.frontend.features import _frame
from ser_edge.frontend.tables import SPECTRUM_SHIFT, tables_for
from tests.conftest import PLAIN

ALL = FrontendConfig(channels=("mfcc", "logmel", "zcr", "rms"), **PLAIN)


@pytest.fixture(scope="module")
def clips(ravdess: Path) -> list[np.ndarray]:
    """Two clips of every actor (one of each statement), 40 in all."""
    paths = [p for actor in sorted(ravdess.glob("Actor_*")) for p in sorted(actor.glob("*.flac"))[::30]]
    assert len(paths) == 40
    return [read_audio(p) for p in paths]


def test_error_against_float_reference_is_bounded(clips: list[np.ndarray]) -> None:
    r = measure_error(clips, ALL)
    mfcc, logmel, zcr, energy = slice(0, 13), slice(13, 53), 53, 54
    assert r.rmse_steps[mfcc].max() < 0.30
    assert r.rmse_steps[logmel].max() < 0.32
    assert r.rmse_steps[zcr] < 0.30 and r.max_steps[zcr] <= 0.5  # exact count, int8 rounding only
    assert r.rmse_steps[energy] < 0.25
    assert r.correlation[mfcc].min() > 0.995
    assert r.correlation[logmel].min() > 0.999
    assert r.clipped.max() < 0.001


def test_float64_carrier_equals_int64_arithmetic(clips: list[np.ndarray]) -> None:
    t = tables_for(ALL)
    for pcm in clips[::4]:
        frames, prev = _frame(pcm, ALL)
        as_float = fixed.features_from_frames(frames, prev, ALL, t)
        as_int = fixed.features_from_frames(frames, prev, ALL, t, carrier=np.int64)
        assert np.array_equal(as_float, as_int)


def test_real_fft_matches_numpy_on_random_full_scale_frames() -> None:
    cfg = FrontendConfig()
    t = tables_for(cfg)
    u = np.random.default_rng(1).integers(-(2**23), 2**23, (64, cfg.window_samples))
    yr, yi = fixed.real_fft(u.astype(np.float64), cfg.n_fft, t)
    expected = np.fft.rfft(u, cfg.n_fft, axis=1) * 2 / 2**SPECTRUM_SHIFT
    err = np.abs(yr + 1j * yi - expected)
    assert err.max() < 1e-4 * np.abs(expected).max()
    ir, ii = fixed.real_fft(u.astype(np.int64), cfg.n_fft, t)
    assert np.array_equal(ir, yr.astype(np.int64)) and np.array_equal(ii, yi.astype(np.int64))


def test_log2_table_is_accurate_to_a_q10_step() -> None:
    t = tables_for(FrontendConfig())
    x = np.unique(np.concatenate([np.arange(1, 5000), np.logspace(0, 52, 3000, base=2).astype(np.int64)]))
    err = fixed.log2_q10(x, t) / 1024 - np.log2(x.astype(np.float64))
    assert np.abs(err).max() <= 1 / 1024
