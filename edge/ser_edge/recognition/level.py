"""Speech level: measured on the loud part of a clip, and set to one level before ser-base.

A pretrained encoder hears level as meaning: EmoDB is recorded ~22 dB hotter than RAVDESS,
and without this step a probe called 82-97 % of EmoDB "angry" (shared/docs/field-notes.md).
So ser-base scores every utterance at the same active speech level, whatever the
microphone's gain or the talker's distance.
"""

from __future__ import annotations

import numpy as np

TARGET_DBFS = -26.0
"""Active speech level ser-base hears (dB relative to a full-scale sine's power: 0.5)."""
MAX_GAIN_DB = 45.0
"""The most a quiet clip is raised: beyond this it is mostly noise, and stays quiet."""


def active_power(x: np.ndarray, frame: int = 320, range_db: float = 30.0) -> float:
    """Mean power of the 20 ms frames within ``range_db`` of the loudest: the speech level,
    not diluted by a clip's silent lead-in and tail."""
    n = x.size // frame
    if n == 0:
        return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    power = np.mean(np.square(x[: n * frame], dtype=np.float64).reshape(n, frame), axis=1)
    return float(power[power >= power.max() * 10 ** (-range_db / 10)].mean())


def normalise_level(audio: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Float audio (full scale 1.0) scaled so its active power is ``target_dbfs``; digital
    silence stays silence and no clip is raised by more than MAX_GAIN_DB."""
    power = active_power(audio)
    if power <= 0:
        return np.asarray(audio, np.float32)
    gain_db = min(MAX_GAIN_DB, target_dbfs - 10 * np.log10(power / 0.5))
    return (np.asarray(audio, np.float64) * 10 ** (gain_db / 20)).astype(np.float32)
