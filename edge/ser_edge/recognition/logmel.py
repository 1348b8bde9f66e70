"""Whisper's log-mel front end, in float numpy: what ser-base's encoder was pretrained on.

The integer front end stays the contract for the gate and ser-tiny; ser-base's encoder
needs the spectrogram its weights were learnt from: 25 ms Hann windows every 10 ms
(centred, reflect-padded), power spectrum, 80 Slaney mel bands 0-8 kHz, log10, a floor 8
decades below the clip's peak, then scaled to about [-1, 1]. Pure functions of the clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class LogMelConfig:
    """Whisper's front end (the same for every Whisper size but large-v3)."""

    sample_rate: int = 16000
    n_fft: int = 400
    """Window length in samples (25 ms)."""
    hop: int = 160
    """Samples between frames (10 ms): 100 frames per second."""
    n_mels: int = 80
    dynamic_range: float = 8.0
    """Log10 values below the clip's peak minus this are raised to it."""


WHISPER = LogMelConfig()


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """The Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    linear = mel * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, linear)


@lru_cache(maxsize=4)
def mel_filters(cfg: LogMelConfig = WHISPER) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters on the Slaney scale, each normalised to
    unit area (so a band's value does not grow with its width)."""
    bins = np.linspace(0.0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(cfg.sample_rate / 2), cfg.n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)
    return weights.astype(np.float32)


@lru_cache(maxsize=4)
def _window(n: int) -> np.ndarray:
    """The periodic Hann window (as spectral analysis uses, not the symmetric one)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def power_spectrogram(audio: np.ndarray, cfg: LogMelConfig = WHISPER) -> np.ndarray:
    """(frames, n_fft // 2 + 1) power spectrum of float audio: frames centred on every
    ``hop``-th sample, the signal reflect-padded at both ends, the last frame dropped
    (so a clip of n samples has n // hop frames)."""
    half = cfg.n_fft // 2
    x = np.asarray(audio, np.float32)
    if x.size <= half:  # too short to reflect: pad with silence to one window first
        x = np.pad(x, (0, half + 1 - x.size))
    padded = np.pad(x, half, mode="reflect")
    n_frames = 1 + (padded.size - cfg.n_fft) // cfg.hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[:: cfg.hop][:n_frames]
    spectrum = np.fft.rfft(frames * _window(cfg.n_fft), axis=1)
    return (spectrum.real**2 + spectrum.imag**2)[:-1].astype(np.float32)


def log_mel(audio: np.ndarray, cfg: LogMelConfig = WHISPER) -> np.ndarray:
    """(frames, n_mels) Whisper log-mel of float audio in [-1, 1] at 16 kHz."""
    mel = power_spectrogram(audio, cfg) @ mel_filters(cfg).T
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - cfg.dynamic_range)
    return ((log + 4.0) / 4.0).astype(np.float32)
