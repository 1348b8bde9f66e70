"""Float64 reference of the front end's math, for measuring the integer path's error.

Same stages and constants, ideal arithmetic: exact coefficients, numpy's FFT, exact
log2 and DCT, no int8 rounding or clipping. ``dequantise`` maps the integer output to
the same units, so the two can be compared column by column.
"""

from __future__ import annotations

import numpy as np

from .config import FrontendConfig
from .features import DEFAULT_CONFIG, _frame, check_pcm
from .tables import dct_matrix, hann_window, mel_filterbank


def reference_features(pcm: np.ndarray, sample_rate: int = 16000, cfg: FrontendConfig = DEFAULT_CONFIG) -> np.ndarray:
    """float64 features (frames x n_features) in the units of ``dequantise``; of the
    stateless stages only (noise reduction and gain control off)."""
    if cfg.normalises:
        raise ValueError("the float reference covers the stateless stages: noise_reduction false, agc_strength 0")
    frames, prev = _frame(check_pcm(pcm, sample_rate, cfg), cfg)
    x = frames.astype(np.float64) / 32768.0
    before = np.concatenate([prev[:, None] / 32768.0, x[:, :-1]], axis=1)
    y = (x - cfg.preemphasis * before) * hann_window(cfg.window_samples)
    power = np.abs(np.fft.rfft(y, n=cfg.n_fft, axis=1)) ** 2
    with np.errstate(divide="ignore"):
        logmel = np.maximum(np.log2(power @ mel_filterbank(cfg)), cfg.log_floor)
    over_floor = logmel - cfg.log_floor

    columns = []
    for kind in cfg.channels:
        if kind == "logmel":
            columns.append(over_floor)
        elif kind == "mfcc":
            columns.append(over_floor @ dct_matrix(cfg.n_mfcc, cfg.n_mels).T)
        elif kind == "zcr":
            sign = frames >= 0
            count = np.count_nonzero(sign[:, 1:] != sign[:, :-1], axis=1)
            columns.append((count / (cfg.window_samples - 1))[:, None])
        else:
            with np.errstate(divide="ignore"):
                energy = np.maximum(np.log2(np.mean(x * x, axis=1)), cfg.log_floor)
            columns.append((energy - cfg.log_floor)[:, None])
    return np.concatenate(columns, axis=1)


def dequantise(q: np.ndarray, cfg: FrontendConfig = DEFAULT_CONFIG) -> np.ndarray:
    """int8 features -> float64 in the reference's units."""
    steps, zeros = cfg.column_quantisation()
    return (q.astype(np.float64) - zeros) * steps
