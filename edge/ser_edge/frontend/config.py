"""The one frozen description of the model's input features.

Everything that training, the edge daemon and the microcontroller must agree on lives
here. A model bundle records ``config.to_dict()`` and ``config.hash``; a bundle whose
hash differs from the running front end's is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

#: Bumped whenever the integer arithmetic changes in a way the fields below do not
#: capture, so that old bundles stop matching.
ALGORITHM_VERSION = 1

CHANNEL_KINDS = ("mfcc", "logmel", "zcr", "rms")
NORMALISATION_FIELDS = ("noise_reduction", "noise_rise_ms", "noise_keep", "noise_bias", "agc_strength", "agc_time_ms",
                        "agc_offset", "agc_floor")  # fmt: skip


@dataclass(frozen=True)
class FrontendConfig:
    """Parameters of the fixed-point MFCC / log-mel front end (see edge/docs/frontend.md)."""

    sample_rate: int = 16000
    """Input sample rate in Hz; audio at other rates is resampled before it gets here."""
    window_samples: int = 480
    """Analysis window length in samples (30 ms at 16 kHz)."""
    hop_samples: int = 320
    """Frame advance in samples (20 ms at 16 kHz)."""
    n_fft: int = 512
    """FFT length, a power of two >= window_samples; the window is zero-padded to it."""
    preemphasis: float = 0.97
    """Pre-emphasis coefficient a in y[n] = x[n] - a*x[n-1] (stored as Q15)."""
    n_mels: int = 40
    """Number of triangular mel filters (HTK mel scale)."""
    fmin_hz: float = 60.0
    """Lower edge of the lowest mel filter."""
    fmax_hz: float = 7600.0
    """Upper edge of the highest mel filter."""
    n_mfcc: int = 13
    """Number of DCT-II coefficients kept (c0 included)."""
    channels: tuple[str, ...] = ("mfcc",)
    """Feature columns, in order: any of "mfcc", "logmel", "zcr", "rms"."""
    log_floor: int = -40
    """Floor of the log2 mel energy, relative to a full-scale signal (log2 units)."""
    logmel_step_shift: int = 2
    """Log-mel and frame energy are quantized in steps of 2**-logmel_step_shift log2 units."""
    mfcc_step_shift: int = 1
    """MFCC c1.. are quantized in steps of 2**-mfcc_step_shift log2 units."""
    c0_step_shift: int = 0
    """MFCC c0 is quantized in steps of 2**-c0_step_shift log2 units."""
    noise_reduction: bool = True
    """Subtract each mel band's tracked noise floor from it before the features (normalise.py)."""
    noise_rise_ms: int = 4000
    """Time constant of the noise floor's rise; it falls at once to a quieter frame."""
    noise_keep: float = 0.125
    """Noise reduction keeps at least this fraction of a band's energy (spectral floor)."""
    noise_bias: float = 1.0
    """log2 units added to the tracked floor before subtracting: a running minimum sits
    below the noise's mean level (minimum statistics' bias compensation)."""
    agc_strength: float = 1.0
    """PCEN-style gain control: each band divided by its smoothed energy to this power (0: off, 1: full)."""
    agc_time_ms: int = 400
    """Time constant of the smoothed band energy the gain control divides by."""
    agc_offset: float = -36.0
    """Smoothed energies below this level (log2 re full scale) are not amplified further."""
    agc_floor: int = -12
    """With gain control, the floor of the features in log2 units re the smoothed level."""

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ValueError("invalid front-end config: " + "; ".join(problems))

    @property
    def normalises(self) -> bool:
        """Noise reduction or gain control is on: the front end has memory across frames."""
        return self.noise_reduction or self.agc_strength > 0

    @property
    def n_features(self) -> int:
        """Columns of the output matrix."""
        sizes = {"mfcc": self.n_mfcc, "logmel": self.n_mels, "zcr": 1, "rms": 1}
        return sum(sizes[c] for c in self.channels)

    @property
    def window_ms(self) -> float:
        return 1000.0 * self.window_samples / self.sample_rate

    @property
    def hop_ms(self) -> float:
        return 1000.0 * self.hop_samples / self.sample_rate

    def n_frames(self, n_samples: int) -> int:
        """Complete frames in a clip of n_samples (no padding at either end)."""
        if n_samples < self.window_samples:
            return 0
        return 1 + (n_samples - self.window_samples) // self.hop_samples

    def column_quantisation(self) -> tuple[np.ndarray, np.ndarray]:
        """Per output column (step, zero_point): value = (q - zero_point) * step.

        Units: log2 for logmel, mfcc and rms (energies over log_floor), crossings per
        sample for zcr.
        """
        log_step, mfcc_step = 2.0**-self.logmel_step_shift, 2.0**-self.mfcc_step_shift
        steps: list[float] = []
        zeros: list[int] = []
        for kind in self.channels:
            if kind == "mfcc":
                steps += [2.0**-self.c0_step_shift] + [mfcc_step] * (self.n_mfcc - 1)
                zeros += [-128] + [0] * (self.n_mfcc - 1)
            elif kind == "logmel":
                steps += [log_step] * self.n_mels
                zeros += [-128] * self.n_mels
            elif kind == "zcr":
                steps.append(1.0 / 255)
                zeros.append(-128)
            else:
                steps.append(log_step)
                zeros.append(-128)
        return np.array(steps), np.array(zeros, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrontendConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown front-end config key(s): {', '.join(unknown)}")
        values = dict(data)
        if not set(NORMALISATION_FIELDS) & set(values):  # written before the stages existed: off
            values |= {"noise_reduction": False, "agc_strength": 0.0}
        if "channels" in values:
            values["channels"] = tuple(values["channels"])
        return cls(**values)

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit digest of the parameters and the algorithm version."""
        fields_ = self.to_dict()
        if not self.normalises:  # off, they change nothing: bundles made before they existed stay valid
            fields_ = {k: v for k, v in fields_.items() if k not in NORMALISATION_FIELDS}
        payload = json.dumps({"algorithm": ALGORITHM_VERSION, **fields_}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _problems(c: FrontendConfig):
    ints = ("sample_rate", "window_samples", "hop_samples", "n_fft", "n_mels", "n_mfcc", "noise_rise_ms", "agc_time_ms")
    shifts = ("logmel_step_shift", "mfcc_step_shift", "c0_step_shift")
    if not isinstance(c.noise_reduction, bool):
        yield f"noise_reduction must be true or false, got {c.noise_reduction!r}"
        return
    for name in ("preemphasis", "fmin_hz", "fmax_hz", "noise_keep", "noise_bias", "agc_strength", "agc_offset"):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            yield f"{name} must be a finite number, got {value!r}"
            return
    for name in (*ints, "log_floor", "agc_floor", *shifts):
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int):
            yield f"{name} must be an integer, got {value!r}"
            return
    for name in ints:
        if getattr(c, name) <= 0:
            yield f"{name} must be positive, got {getattr(c, name)}"
            return
    if c.n_fft & (c.n_fft - 1) or not 64 <= c.n_fft <= 2048:
        yield f"n_fft must be a power of two between 64 and 2048, got {c.n_fft}"
    if c.window_samples > c.n_fft:
        yield f"window_samples ({c.window_samples}) must not exceed n_fft ({c.n_fft})"
    if c.hop_samples > c.window_samples:
        yield f"hop_samples ({c.hop_samples}) must not exceed window_samples ({c.window_samples})"
    if not 0.0 <= c.preemphasis < 1.0:
        yield f"preemphasis must be in [0, 1), got {c.preemphasis}"
    if not 0.0 <= c.fmin_hz < c.fmax_hz <= c.sample_rate / 2:
        yield f"need 0 <= fmin_hz < fmax_hz <= sample_rate/2, got {c.fmin_hz}..{c.fmax_hz}"
    if c.n_mfcc > c.n_mels:
        yield f"n_mfcc ({c.n_mfcc}) must not exceed n_mels ({c.n_mels})"
    if not -40 <= c.log_floor <= 0:
        yield f"log_floor must be between -40 and 0 (log2 units), got {c.log_floor}"
    for name in shifts:
        if not -4 <= getattr(c, name) <= 8:
            yield f"{name} must be between -4 and 8, got {getattr(c, name)}"
    if not 0.0 < c.noise_keep <= 1.0:
        yield f"noise_keep must be in (0, 1], got {c.noise_keep}"
    if not 0.0 <= c.noise_bias <= 4.0:
        yield f"noise_bias must be between 0 and 4 (log2 units), got {c.noise_bias}"
    if not 0.0 <= c.agc_strength <= 1.0:
        yield f"agc_strength must be between 0 and 1, got {c.agc_strength}"
    if not -40.0 <= c.agc_offset <= 0.0:
        yield f"agc_offset must be between -40 and 0 (log2 units), got {c.agc_offset}"
    if not -40 <= c.agc_floor < 0:
        yield f"agc_floor must be between -40 and -1 (log2 units), got {c.agc_floor}"
    if not isinstance(c.channels, tuple) or not c.channels:
        yield f"channels must be a non-empty tuple, got {c.channels!r}"
    else:
        bad = [ch for ch in c.channels if ch not in CHANNEL_KINDS]
        if bad:
            yield f"unknown channel(s) {bad}; choose from {list(CHANNEL_KINDS)}"
        if len(set(c.channels)) != len(c.channels):
            yield f"channels must not repeat, got {list(c.channels)}"
