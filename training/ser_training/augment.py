"""Audio augmentation: time stretch, pitch shift and Gaussian noise (audiomentations),
then optionally the clip spoken in a simulated room and real or synthetic background noise
(acoustics.py, noise.py), then gain; seeded per clip so a run can be reproduced.

Rooms come from a bank of their own (RT60 and distance drawn from the configured ranges,
seeded apart from the robustness harness's grid); noise recordings from the training half
of the shared recordings only (noise.noise_split), so evaluation hears noise training
never did.

Time stretch and pitch shift cost ~20 ms each per clip here, too slow to redo every
epoch for 4,000 clips on two cores. So each training clip gets a bank of seeded
renderings made once (and cached); every epoch draws one of them, or the original,
and crops a fresh random window from it (the time shift).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.audio.audio_io import to_int16


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
    rooms: float = 0.0
    """Probability that a rendering is spoken in a simulated room (0: never)."""
    room_rt60: tuple[float, float] = (0.1, 1.0)
    """Reverberation time range of the training rooms (s)."""
    room_distance: tuple[float, float] = (0.5, 4.0)
    """Talker-to-microphone distance range of the training rooms (m)."""
    room_bank: int = 64
    """Training rooms simulated once and cached."""
    noise: float = 0.0
    """Probability of background noise (training recordings or synthetic) in a rendering."""
    noise_snr_db: tuple[float, float] = (0.0, 30.0)
    """SNR range of that background noise (dB, speech active level over noise)."""
    channel: float = 0.0
    """Probability of another microphone's or a phone's channel: a band-pass with random
    edges (80-400 Hz, 3-7.5 kHz) and a random first-order tilt, after the noise."""
    seed: int = 0

    @property
    def key(self) -> str:
        """Digest of the settings, naming a cache of renderings made with them."""
        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]

    @property
    def acoustic(self) -> bool:
        """Rooms, background noise or channels are in use (the chain after audiomentations)."""
        return self.rooms > 0 or self.noise > 0 or self.channel > 0


@dataclass(frozen=True)
class Surroundings:
    """What the acoustic augmentation draws from: training rooms and noise recordings."""

    rooms: tuple  # of acoustics.Room
    noise_files: tuple[Path, ...]


def surroundings(cfg: AugmentConfig, noise_root: Path, cache: Path | None) -> Surroundings:
    """The training room bank (simulated once, cached) and the training half of the noise recordings."""
    from .acoustics import training_rooms
    from .noise import noise_split

    rooms = training_rooms(cfg.room_bank, cfg.room_rt60, cfg.room_distance, cfg.seed, cache) if cfg.rooms else ()
    files = noise_split(noise_root).train if cfg.noise else ()
    return Surroundings(tuple(rooms), tuple(files))


def _augmenter(cfg: AugmentConfig, gain: bool = True):
    import audiomentations as A  # heavy import, only when augmenting

    steps = [
        A.TimeStretch(min_rate=cfg.stretch[0], max_rate=cfg.stretch[1], leave_length_unchanged=False, p=cfg.p),
        A.PitchShift(min_semitones=cfg.semitones[0], max_semitones=cfg.semitones[1], p=cfg.p),
        A.AddGaussianSNR(min_snr_db=cfg.snr_db[0], max_snr_db=cfg.snr_db[1], p=cfg.p),
    ]
    if gain:
        steps.append(A.Gain(min_gain_db=cfg.gain_db[0], max_gain_db=cfg.gain_db[1], p=cfg.p))
    return A.Compose(steps)


def _acoustic(x: np.ndarray, cfg: AugmentConfig, where: Surroundings, pool, rng: np.random.Generator) -> np.ndarray:
    """x in a random training room and/or with background noise, then the gain."""
    from .acoustics import active_power, noise_at_snr, reverberate, scale_to

    level = active_power(x)
    room = where.rooms[int(rng.integers(len(where.rooms)))] if where.rooms and rng.random() < cfg.rooms else None
    if room is not None:
        x = scale_to(reverberate(x, room.speech_rir), level)
    if pool is not None and rng.random() < cfg.noise:
        noise, _ = pool.segment(x.size, rng)
        if room is not None:
            noise = reverberate(noise, room.noise_rir)[: x.size]
        x = x + noise_at_snr(x, noise, rng.uniform(*cfg.noise_snr_db))
    if rng.random() < cfg.channel:
        x = scale_to(another_channel(x, rng), level)
    if rng.random() < cfg.p:
        x = x * 10 ** (rng.uniform(*cfg.gain_db) / 20)
    return x


def another_channel(x: np.ndarray, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """x through a random band-pass (2nd-order Butterworth, 80-400 Hz to 3-7.5 kHz) and a
    first-order tilt y[n] = x[n] - a x[n-1], a in [-0.6, 0.6] (darker to brighter)."""
    from scipy.signal import butter, lfilter, sosfilt

    low, high = rng.uniform(80, 400), rng.uniform(3000, 7500)
    y = sosfilt(butter(2, [low, high], btype="band", fs=sample_rate, output="sos"), x)
    return lfilter([1.0, -rng.uniform(-0.6, 0.6)], [1.0], y)


_POOLS: dict = {}


def render(pcm: np.ndarray, clip_id: str, cfg: AugmentConfig, sample_rate: int = 16000,
           where: Surroundings | None = None) -> list[np.ndarray]:  # fmt: skip
    """cfg.renderings augmented int16 versions of one clip; the same for the same inputs."""
    from .noise import NoisePool, key_rng

    acoustic = cfg.acoustic and where is not None
    augment = _augmenter(cfg, gain=not acoustic)
    pool = None
    if acoustic and where.noise_files:
        if where.noise_files not in _POOLS:  # the recordings are read once per process
            _POOLS[where.noise_files] = NoisePool(where.noise_files)
        pool = _POOLS[where.noise_files]
    audio = pcm.astype(np.float32) / 32768.0
    out = []
    for i in range(cfg.renderings):
        seed = int.from_bytes(hashlib.sha256(f"{cfg.seed}/{clip_id}/{i}".encode()).digest()[:4], "little")
        random.seed(seed)  # audiomentations draws from both generators
        np.random.seed(seed)
        x = augment(samples=audio, sample_rate=sample_rate)
        if acoustic:
            x = _acoustic(x.astype(np.float64), cfg, where, pool, key_rng(cfg.seed, clip_id, i, "acoustic"))
        out.append(to_int16(x))
    return out
