"""Audio augmentation with audiomentations: noise at a random SNR, time stretch, pitch
shift and gain, seeded per clip so a run can be reproduced.

Time stretch and pitch shift cost ~20 ms each per clip here, too slow to redo every
epoch for 4,000 clips on two cores. So each training clip gets a bank of seeded
renderings made once (and cached); every epoch draws one of them, or the original,
and crops a fresh random window from it (the time shift).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from ser_edge.audio_io import to_int16


@dataclass(frozen=True)
class AugmentConfig:
    """What the renderings of one training clip may do."""

    renderings: int = 6
    """Augmented renderings made per training clip (0 turns augmentation off)."""
    snr_db: tuple[float, float] = (10.0, 40.0)
    """Gaussian noise at an SNR drawn from this range (dB)."""
    stretch: tuple[float, float] = (0.8, 1.2)
    """Time-stretch rate range (+-20 %)."""
    semitones: tuple[float, float] = (-3.0, 3.0)
    """Pitch-shift range."""
    gain_db: tuple[float, float] = (-12.0, 6.0)
    """Gain range (dB)."""
    p: float = 0.5
    """Probability of each of the four transforms in a rendering."""
    seed: int = 0

    @property
    def key(self) -> str:
        """Digest of the settings, naming a cache of renderings made with them."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]


def _augmenter(cfg: AugmentConfig):
    import audiomentations as A  # heavy import, only when augmenting

    return A.Compose(
        [
            A.TimeStretch(min_rate=cfg.stretch[0], max_rate=cfg.stretch[1], leave_length_unchanged=False, p=cfg.p),
            A.PitchShift(min_semitones=cfg.semitones[0], max_semitones=cfg.semitones[1], p=cfg.p),
            A.AddGaussianSNR(min_snr_db=cfg.snr_db[0], max_snr_db=cfg.snr_db[1], p=cfg.p),
            A.Gain(min_gain_db=cfg.gain_db[0], max_gain_db=cfg.gain_db[1], p=cfg.p),
        ]
    )


def render(pcm: np.ndarray, clip_id: str, cfg: AugmentConfig, sample_rate: int = 16000) -> list[np.ndarray]:
    """cfg.renderings augmented int16 versions of one clip; the same for the same inputs."""
    augment = _augmenter(cfg)
    audio = pcm.astype(np.float32) / 32768.0
    out = []
    for i in range(cfg.renderings):
        seed = int.from_bytes(hashlib.sha256(f"{cfg.seed}/{clip_id}/{i}".encode()).digest()[:4], "little")
        random.seed(seed)  # audiomentations draws from both generators
        np.random.seed(seed)
        out.append(to_int16(augment(samples=audio, sample_rate=sample_rate)))
    return out
