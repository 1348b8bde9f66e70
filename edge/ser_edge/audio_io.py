"""Reading audio files into what the front end eats: int16 mono at 16 kHz.

Any rate, channel count and container libsndfile knows (WAV, FLAC, AIFF, ...; the
container is recognised by its header, not its name). Other rates are resampled with
soxr at its very-high-quality setting; channels are averaged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioFileError(ValueError):
    """An audio file that cannot be used, with the path and the reason."""


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) to int16, rounding and clipping; exact for int16 input."""
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read an audio file as int16 mono PCM at sample_rate, or raise AudioFileError."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioFileError(f"{path}: not a readable audio file ({e})") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: contains no samples")
    if not np.isfinite(data).all():
        raise AudioFileError(f"{path}: contains NaN or infinite samples")
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="VHQ")
    return to_int16(mono)
