"""Background noise for training and for the robustness harness.

Two sources: the shared recordings (``$SER_DATASETS/noise``), split by whole file so that
evaluation hears recordings training never heard, and noise synthesised here (white, pink,
brown, a fan). Every draw is seeded by a text key, so a clip gets the same noise whatever
order or process it is rendered in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.audio.audio_io import read_audio

from .corpora import AUDIO_SUFFIXES

SAMPLE_RATE = 16000
SYNTH_KINDS = ("white", "pink", "brown", "fan")


@dataclass(frozen=True)
class NoiseSplit:
    """Recordings for augmentation (train) and for evaluation only (test), whole files."""

    train: tuple[Path, ...]
    test: tuple[Path, ...]


def noise_split(root: Path) -> NoiseSplit:
    """Every folder's recordings grouped by kind (the name up to the first "_": aircon,
    dishwasher, house, metro ...); in each group, sorted by name, every third file (the
    3rd, 6th, ...) is held out for evaluation, and the last one of a group of two."""
    if not root.is_dir():
        raise FileNotFoundError(f"noise: folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    groups: dict[tuple[Path, str], list[Path]] = {}
    for f in files:
        groups.setdefault((f.parent, f.name.split("_")[0]), []).append(f)
    train: list[Path] = []
    test: list[Path] = []
    for members in groups.values():
        held = {i for i in range(len(members)) if i % 3 == 2} or ({len(members) - 1} if len(members) == 2 else set())
        for i, f in enumerate(members):
            (test if i in held else train).append(f)
    if not train or not test:
        raise ValueError(f"noise: {root} needs at least two recordings of a kind to hold one out")
    return NoiseSplit(tuple(sorted(train)), tuple(sorted(test)))


def key_rng(*parts: object) -> np.random.Generator:
    """A generator seeded by the text of ``parts`` (stable across runs and processes)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _coloured(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)  # no boost below 20 Hz
    return np.fft.irfft(spectrum / f ** (exponent / 2), n)


def _fan(n: int, rng: np.random.Generator) -> np.ndarray:
    """A fan: low-passed broadband noise plus the blade-pass tone and two harmonics,
    slowly wobbling in level."""
    broad = _coloured(n, rng.uniform(0.5, 1.5), rng)
    broad /= np.std(broad) + 1e-12
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(30.0, 120.0)
    tones = sum(
        rng.uniform(0.2, 0.6) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k in (1, 2, 3)
    )
    wobble = 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    return (broad + tones) * wobble


def synth_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of synthesised noise of ``kind`` (SYNTH_KINDS), unit RMS."""
    if kind not in SYNTH_KINDS:
        raise ValueError(f"unknown synthetic noise {kind!r}; choose from {', '.join(SYNTH_KINDS)}")
    n = max(n, 2)
    x = _fan(n, rng) if kind == "fan" else _coloured(n, SYNTH_KINDS.index(kind), rng)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


class NoisePool:
    """Recordings (loaded once, 16 kHz) and synthetic kinds to draw noise segments from."""

    def __init__(self, files: Sequence[Path], synth: Sequence[str] = SYNTH_KINDS) -> None:
        self.files = tuple(files)
        self.synth = tuple(synth)
        self._audio = [read_audio(f, SAMPLE_RATE).astype(np.float32) / 32768.0 for f in self.files]
        self.sources = [f.name for f in self.files] + [f"synthetic {k}" for k in self.synth]
        if not self.sources:
            raise ValueError("a noise pool needs recordings or synthetic kinds")

    def segment(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """n samples (unit RMS) from a source chosen by rng, and the source's name; a
        recording shorter than n is looped from a random offset."""
        i = int(rng.integers(len(self.sources)))
        if i >= len(self._audio):
            return synth_noise(self.synth[i - len(self._audio)], n, rng), self.sources[i]
        audio = self._audio[i]
        start = int(rng.integers(audio.size))
        x = np.resize(np.roll(audio, -start), n).astype(np.float64)
        return x / (np.sqrt(np.mean(x**2)) + 1e-12), self.sources[i]
