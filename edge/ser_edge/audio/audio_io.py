"""Reading audio files into what the front end eats: int16 mono at 16 kHz.

Any rate, channel count and container libsndfile knows (WAV, FLAC, AIFF, ...; the
container is recognised by its header, not its name). Other rates are resampled with
soxr at its very-high-quality setting; channels are averaged. ``audio_blocks`` does it a
few seconds (at most BLOCK_BYTES) at a time, so an hour-long recording, or one of many
channels at a high rate, needs no more memory than a clip;
``read_audio`` is the same samples in one array (soxr's stream equals its one-shot call).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

BLOCK_BYTES = 8 << 20
"""The most of a file decoded at once (float64, every channel): 10 s of stereo at 48 kHz
fits; 32 channels at 192 kHz come 0.17 s at a time, not 10 s in 490 MB."""


class AudioFileError(ValueError):
    """An audio file that cannot be used, with the path and the reason."""


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) to int16, rounding and clipping; exact for int16 input."""
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)


def audio_blocks(path: str | Path, sample_rate: int = 16000, block_s: float = 10.0) -> Iterator[np.ndarray]:
    """An audio file as int16 mono PCM at sample_rate, ``block_s`` of the file (or what
    fits in BLOCK_BYTES) at a time; AudioFileError (before the first block or at the
    block where it shows) if unusable."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioFileError(f"{path}: not a readable audio file ({e})") from None
    with f:
        if f.frames == 0:
            raise AudioFileError(f"{path}: contains no samples")
        stream = (
            None if f.samplerate == sample_rate else soxr.ResampleStream(f.samplerate, sample_rate, 1, "float64", "VHQ")
        )
        size = max(1, min(round(block_s * f.samplerate), BLOCK_BYTES // (8 * f.channels)))
        while True:
            try:
                data = f.read(size, dtype="float64", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioFileError(f"{path}: not a readable audio file ({e})") from None
            last = data.shape[0] < size
            if not np.isfinite(data).all():
                raise AudioFileError(f"{path}: contains NaN or infinite samples")
            mono = data.mean(axis=1)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=last)
            if mono.size:
                yield to_int16(mono)
            if last:
                return


def as_heard_in_replay(blocks: Iterable[np.ndarray], gap: int, frame: int, chunk: int) -> Iterator[np.ndarray]:
    """A file's blocks as the replay source hands them on: ``chunk`` samples at a time, then
    ``gap`` samples of silence, padded so the next file starts on a ``frame`` boundary."""
    carry = np.zeros(0, np.int16)
    total = 0
    for block in blocks:
        total += block.size
        carry = np.concatenate([carry, block])
        n = carry.size - carry.size % chunk
        yield from (carry[i : i + chunk] for i in range(0, n, chunk))
        carry = carry[n:]
    tail = np.concatenate([carry, np.zeros(gap + (-(total + gap) % frame), np.int16)])
    yield from (tail[i : i + chunk] for i in range(0, tail.size, chunk))


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Read an audio file as int16 mono PCM at sample_rate, or raise AudioFileError."""
    return np.concatenate(list(audio_blocks(path, sample_rate)))
