"""Removing a DC offset before the gate.

I2S MEMS microphones often deliver a constant offset (0.1 FS is common): the gate's
levels and the front end's low bands then see a loud, flat signal, and no speech is ever
found. The offset is tracked as a slow running mean of the input (time constant
``TAU_S``) and subtracted once it is large enough to matter (``MIN_OFFSET``); input
without one passes unchanged, sample for sample, so every figure measured on clean
recordings (and the node's parity with the Pi) holds. Digital silence (flat chunks: the
gaps a replay puts between files, also where a chunk ends in one) passes unchanged and
restarts the estimate, so the offset of the audio before it does not become a loud step
after it.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16000
TAU_S = 1.0
"""Time constant of the offset's estimate: far slower than speech's lowest pitch."""
MIN_OFFSET = 164
"""0.005 of full scale: smaller offsets do not disturb the gate (0.01-0.03 FS were measured harmless)."""


class DcRemover:
    """Stateful over a stream of int16 chunks."""

    def __init__(self) -> None:
        self.offset: float | None = None
        """The running estimate of the input's mean, in int16 steps (None before any input)."""

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        if pcm.size == 0:
            return pcm
        if int(pcm.max()) - int(pcm.min()) <= 1:  # digital silence (a replay's gap, a muted input): no
            self.offset = None  # offset to remove, and whatever comes next has its own
            return pcm
        mean = float(pcm.mean(dtype=np.float64))
        if self.offset is None:
            self.offset = mean
        else:
            weight = 1.0 - math.exp(-pcm.size / (TAU_S * SAMPLE_RATE))
            self.offset += (mean - self.offset) * weight
        step = round(self.offset)
        if abs(step) < MIN_OFFSET:
            return pcm
        out = np.clip(pcm.astype(np.int32) - step, -32768, 32767).astype(np.int16)
        signal = np.flatnonzero(pcm)  # digital silence at either end of the chunk (a file's end) stays silent
        out[: signal[0]] = 0
        out[signal[-1] + 1 :] = 0
        return out
