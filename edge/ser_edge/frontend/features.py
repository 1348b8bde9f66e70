"""Public entry points: whole clips (batch) and pushed chunks (streaming).

Both cut the signal into the same frames and hand them to the same integer core, so
their outputs are identical by construction (and by test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .config import FrontendConfig
from .fixed import columns, log_mel_of_frames
from .normalise import BandState, normalise_streams
from .tables import LOG_FRAC_BITS, tables_for

DEFAULT_CONFIG = FrontendConfig()

#: Frames processed per call of the core; bounds memory for long batches.
_CHUNK_FRAMES = 256


def check_pcm(pcm: object, sample_rate: int, cfg: FrontendConfig, *, allow_empty: bool = False) -> np.ndarray:
    """Return pcm as a 1-D int16 array, or raise ValueError naming what is wrong."""
    if not isinstance(pcm, np.ndarray):
        raise ValueError(f"audio must be a numpy int16 array, got {type(pcm).__name__}")
    if pcm.dtype.kind == "f" and pcm.size and np.isnan(pcm).any():
        raise ValueError("audio contains NaN samples")
    if pcm.dtype != np.int16:
        hint = " (scale floats by 32768 and round, or read files with ser_edge.audio.audio_io)"
        raise ValueError(f"audio must be int16 PCM, got {pcm.dtype} samples{hint}")
    if pcm.ndim != 1:
        raise ValueError(f"audio must be mono (a 1-D array), got shape {pcm.shape}; mix channels down first")
    if sample_rate != cfg.sample_rate:
        raise ValueError(f"audio is {sample_rate} Hz but the front end expects {cfg.sample_rate} Hz; resample first")
    if pcm.size == 0 and not allow_empty:
        raise ValueError("audio is empty (0 samples)")
    return pcm


def _frame(pcm: np.ndarray, cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray]:
    """Complete frames of one clip and, for each, the sample just before it (0 at start)."""
    n = cfg.n_frames(pcm.size)
    if n == 0:
        return np.zeros((0, cfg.window_samples), np.int16), np.zeros(0, np.int16)
    frames = sliding_window_view(pcm, cfg.window_samples)[:: cfg.hop_samples][:n]
    starts = np.arange(n) * cfg.hop_samples
    prev = np.where(starts > 0, pcm[np.maximum(starts - 1, 0)], 0).astype(np.int16)
    return frames, prev


def _core(frames: np.ndarray, prev: np.ndarray, cfg: FrontendConfig, states: Sequence[tuple[int, BandState]]
          ) -> np.ndarray:  # fmt: skip
    """int8 rows of frames; ``states`` says which consecutive frames belong to one stream
    (their count) and that stream's band state (used by noise reduction and gain control)."""
    if frames.shape[0] == 0:
        return np.zeros((0, cfg.n_features), np.int8)
    t = tables_for(cfg)
    chunks = range(0, frames.shape[0], _CHUNK_FRAMES)
    logmel = np.concatenate([log_mel_of_frames(frames[i : i + _CHUNK_FRAMES], prev[i : i + _CHUNK_FRAMES], cfg, t)
                             for i in chunks])  # fmt: skip
    over = _normalise(logmel, states, cfg, t) if cfg.normalises else logmel - (cfg.log_floor << LOG_FRAC_BITS)
    parts = [columns(frames[i : i + _CHUNK_FRAMES], over[i : i + _CHUNK_FRAMES], cfg, t) for i in chunks]
    return np.concatenate(parts)


def _normalise(logmel: np.ndarray, states: Sequence[tuple[int, BandState]], cfg: FrontendConfig, t) -> np.ndarray:
    """normalise_streams over consecutive streams of frames: padded to one (streams,
    frames, bands) block (a stream's padding comes after its frames, so it changes nothing
    of theirs), then unpadded."""
    lengths = [n for n, _ in states]
    starts = np.cumsum([0, *lengths])
    block = np.zeros((len(states), max(lengths), logmel.shape[1]), np.int64)
    for i, n in enumerate(lengths):
        block[i, :n] = logmel[starts[i] : starts[i] + n]
        block[i, n:] = logmel[starts[i] + n - 1] if n else 0
    out = normalise_streams(block, [state for _, state in states], cfg, t)
    return np.concatenate([out[i, :n] for i, n in enumerate(lengths)])


def compute_features(pcm: np.ndarray, sample_rate: int = 16000, cfg: FrontendConfig = DEFAULT_CONFIG) -> np.ndarray:
    """int8 features (frames x cfg.n_features) of one int16 mono clip.

    A clip shorter than one window gives zero frames; see edge/docs/frontend.md for
    the meaning and scale of each column.
    """
    frames, prev = _frame(check_pcm(pcm, sample_rate, cfg), cfg)
    return _core(frames, prev, cfg, [(frames.shape[0], BandState())])


def compute_features_batch(
    clips: Sequence[np.ndarray], sample_rate: int = 16000, cfg: FrontendConfig = DEFAULT_CONFIG
) -> list[np.ndarray]:
    """compute_features for many clips at once, vectorised across all their frames."""
    framed = []
    for i, pcm in enumerate(clips):
        try:
            framed.append(_frame(check_pcm(pcm, sample_rate, cfg), cfg))
        except ValueError as e:
            raise ValueError(f"clip {i}: {e}") from None
    if not framed:
        return []
    states = [(f.shape[0], BandState()) for f, _ in framed]  # each clip a stream of its own
    out = _core(np.concatenate([f for f, _ in framed]), np.concatenate([p for _, p in framed]), cfg, states)
    bounds = np.cumsum([f.shape[0] for f, _ in framed])[:-1]
    return np.split(out, bounds)


class StreamingFrontend:
    """Push int16 samples in any chunk sizes; get each frame once it is complete."""

    def __init__(self, cfg: FrontendConfig = DEFAULT_CONFIG, sample_rate: int = 16000) -> None:
        self.cfg = cfg
        self.sample_rate = sample_rate
        check_pcm(np.zeros(0, np.int16), sample_rate, cfg, allow_empty=True)
        self.reset()

    def reset(self) -> None:
        """Forget buffered audio, as at the start of a new stream."""
        self._buffer = np.zeros(0, np.int16)
        self._prev = np.int16(0)  # sample just before self._buffer[0]
        self._bands = BandState()

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Append samples; return the features of the frames they complete (maybe none)."""
        pcm = check_pcm(pcm, self.sample_rate, self.cfg, allow_empty=True)
        data = np.concatenate([self._buffer, pcm])
        frames, prev = _frame(data, self.cfg)
        if frames.shape[0]:
            prev[0] = self._prev
        consumed = frames.shape[0] * self.cfg.hop_samples
        if consumed:
            self._prev = data[consumed - 1]
        self._buffer = data[consumed:].copy()
        return _core(frames, prev, self.cfg, [(frames.shape[0], self._bands)])
