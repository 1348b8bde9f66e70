"""The C front end (deploy/arduino/ser_node/frontend.c), built with gcc, equals the
Python front end bit for bit: real clips, random signals, extreme inputs, two configs."""

from __future__ import annotations

import ctypes
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import DEFAULT_CONFIG, FrontendConfig, compute_features
from tests.c_build import c_library
from tests.conftest import PLAIN, REPO, SAMPLES

NODE = REPO / "deploy" / "arduino" / "ser_node"
sys.path.insert(0, str(REPO / "deploy" / "arduino"))
from gen_frontend_tables import header  # noqa: E402

FULL = FrontendConfig(channels=("mfcc", "logmel", "zcr", "rms"), **PLAIN)
#: Noise reduction and gain control: the stages with memory across frames.
NORMALISED = FrontendConfig(channels=("mfcc", "logmel", "rms"), log_floor=-40, noise_reduction=True,
                            agc_strength=0.95, agc_offset=-36.0, noise_bias=1.25)  # fmt: skip
AGC_ONLY = FrontendConfig(log_floor=-36, noise_reduction=False, agc_strength=1.0, agc_time_ms=250, agc_floor=-10)
CONFIGS = {"default": DEFAULT_CONFIG, "all-channels": FULL, "normalised": NORMALISED, "agc-only": AGC_ONLY}


def _build(cfg: FrontendConfig, where: Path) -> ctypes.CDLL:
    where.mkdir(parents=True, exist_ok=True)
    for name in ("frontend.c", "frontend.h", "fixed_point.h"):
        shutil.copy(NODE / name, where / name)
    (where / "frontend_tables.h").write_text(header(cfg))
    lib = c_library([where / "frontend.c"], where / "libfrontend.so")
    lib.ser_frontend_hash.restype = ctypes.c_char_p
    lib.ser_frontend_clip.restype = ctypes.c_size_t
    lib.ser_frontend_clip.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
    return lib


@pytest.fixture(scope="module")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[FrontendConfig, ctypes.CDLL]:
    root = tmp_path_factory.mktemp("frontend-c")
    return {cfg: _build(cfg, root / str(i)) for i, cfg in enumerate(CONFIGS.values())}


def _c_features(lib: ctypes.CDLL, pcm: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    pcm = np.ascontiguousarray(pcm, dtype=np.int16)
    rows = cfg.n_frames(pcm.size)
    out = np.zeros((rows + 1, cfg.n_features), np.int8)
    n = lib.ser_frontend_clip(pcm.ctypes.data, pcm.size, out.ctypes.data, out.shape[0])
    return out[:n]


def test_committed_header_is_current() -> None:
    assert (NODE / "frontend_tables.h").read_text() == header(DEFAULT_CONFIG), (
        "regenerate: .venv/bin/python deploy/arduino/gen_frontend_tables.py > deploy/arduino/ser_node/frontend_tables.h"
    )


def test_hash_is_compiled_in(libs: dict) -> None:
    for cfg, lib in libs.items():
        assert lib.ser_frontend_hash().decode() == cfg.hash


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_real_clips_bit_exact(libs: dict, cfg: FrontendConfig, ravdess: Path) -> None:
    clips = list(SAMPLES) + sorted(ravdess.glob("Actor_*/*.flac"))[::60]
    for path in clips:
        pcm = read_audio(path)
        assert np.array_equal(_c_features(libs[cfg], pcm, cfg), compute_features(pcm, cfg=cfg)), path


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_random_and_extreme_inputs_bit_exact(libs: dict, cfg: FrontendConfig) -> None:
    rng = np.random.default_rng(7)
    n = 16000
    t = np.arange(n)
    square = np.where((t // 40) % 2, 32767, -32768)
    signals = {
        "silence": np.zeros(n),
        "dc-min": np.full(n, -32768),
        "dc-max": np.full(n, 32767),
        "full-scale square": square,
        "1-LSB noise": rng.integers(-1, 2, n),
        "white noise": rng.integers(-32768, 32768, n),
        "quiet noise": rng.normal(0, 30, n).round(),
        "clipped sine": np.clip(60000 * np.sin(2 * np.pi * 440 * t / 16000), -32768, 32767).round(),
        "impulses": np.where(t % 997 == 0, 32767, 0),
        "short": rng.integers(-32768, 32768, cfg.window_samples + 7),
        "too short": rng.integers(-32768, 32768, cfg.window_samples - 1),
        "one window": rng.integers(-32768, 32768, cfg.window_samples),
        "a window and a hop less a sample": rng.integers(-32768, 32768, cfg.window_samples + cfg.hop_samples - 1),
        "two frames exactly": rng.integers(-32768, 32768, cfg.window_samples + cfg.hop_samples),
    }
    for name, signal in signals.items():
        pcm = np.asarray(signal).astype(np.int16)
        c, python = _c_features(libs[cfg], pcm, cfg), compute_features(pcm, cfg=cfg)
        assert np.array_equal(c, python), name
        assert c.shape[0] == cfg.n_frames(pcm.size)  # complete frames only, at every edge
    assert cfg.n_frames(cfg.window_samples) == 1 == cfg.n_frames(cfg.window_samples + cfg.hop_samples - 1)
