"""Per-band noise reduction and gain control: the front end's only stages with memory.

Both work on the log2 mel energies (Q10), where dividing is subtracting, so they need no
division and no wide linear values; the C port (deploy/arduino/ser_node/frontend.c)
does the same integer steps.

- **Noise reduction** tracks each band's noise floor (it falls at once to a quieter
  frame and rises with time constant ``noise_rise_ms``), raises it by ``noise_bias`` to
  the noise's mean level N, and subtracts that as spectral subtraction does, E - N, which
  in the log domain is L + log2(1 - 2^-(L - N)), never keeping less than ``noise_keep``
  of the band.
- **Gain control** divides each band by its smoothed energy M to the power
  ``agc_strength``, as PCEN does (Wang et al. 2017, "Trainable frontend for robust and
  far-field keyword spotting"; TensorFlow Lite Micro's microfrontend does it on linear
  energies): L - a * softplus(M, offset), the offset keeping silence from being
  amplified to speech level. With a = 1 a gain change of the input cancels out exactly
  (above the offset). The result is floored ``agc_floor`` below the smoothed level.

The states start from the first frame, which on the device is the utterance's pre-roll
(the gate opens after it): the noise floor starts at the room's level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import FrontendConfig
from .tables import CURVE_SPAN, CURVE_STEP_BITS, LOG_FRAC_BITS, STATE_EXTRA_BITS, Tables


@dataclass
class BandState:
    """What the stages remember between frames, per mel band, in Q(10 + STATE_EXTRA_BITS)."""

    noise: np.ndarray | None = None
    level: np.ndarray | None = None


def curve(table: np.ndarray, d: np.ndarray) -> np.ndarray:
    """A tabulated curve at d >= 0 (Q10), linearly interpolated; 0 beyond the table."""
    step = LOG_FRAC_BITS - CURVE_STEP_BITS
    top = CURVE_SPAN << LOG_FRAC_BITS
    dc = np.clip(d, 0, top - 1)
    i, frac = dc >> step, dc & ((1 << step) - 1)
    value = table[i] + (((table[i + 1] - table[i]) * frac) >> step)
    return np.where(d >= top, 0, value)


def _smooth(state: np.ndarray, x: np.ndarray, c_q15: int) -> np.ndarray:
    """state += c (x - state), x in Q10, state in Q(10 + STATE_EXTRA_BITS)."""
    return state + ((((x << STATE_EXTRA_BITS) - state) * c_q15) >> 15)


def normalise_streams(logmel: np.ndarray, states: list[BandState], cfg: FrontendConfig, t: Tables) -> np.ndarray:
    """(streams, frames, bands) log2 mel energies in Q10 (floored at log_floor) -> the
    values over the floor that the feature columns are made of, each stream with its own
    state (updated in place). Streams advance frame by frame together, so a batch of
    clips costs one pass of small array operations per frame, not one per clip."""
    floor = cfg.log_floor << LOG_FRAC_BITS
    agc_floor = cfg.agc_floor << LOG_FRAC_BITS
    x_all = logmel.astype(np.int64)
    out = np.empty_like(x_all)
    noise, level = _stacked(states, "noise"), _stacked(states, "level")  # None: the streams start here
    for f in range(x_all.shape[1]):
        x = x_all[:, f]
        if cfg.noise_reduction:
            noise = x << STATE_EXTRA_BITS if noise is None else noise
            tracked = noise >> STATE_EXTRA_BITS
            above = tracked + t.noise_bias_q10
            gain = np.where(x > above, curve(t.noise_gain_q10, x - above), t.noise_gain_q10[0])
            noise = np.where(x < tracked, x << STATE_EXTRA_BITS, _smooth(noise, x, t.noise_rise_q15))
            x = np.maximum(x + gain, floor)
        if cfg.agc_strength > 0:
            level = x << STATE_EXTRA_BITS if level is None else _smooth(level, x, t.agc_smooth_q15)
            smoothed = level >> STATE_EXTRA_BITS
            offset = t.agc_offset_q10
            reference = np.maximum(smoothed, offset) + curve(t.softplus_q10, np.abs(smoothed - offset))
            x = x - ((reference * t.agc_strength_q15 + (1 << 14)) >> 15)
            out[:, f] = np.maximum(x, agc_floor) - agc_floor
        else:
            out[:, f] = x - floor
    for i, state in enumerate(states):
        state.noise = None if noise is None else noise[i].copy()
        state.level = None if level is None else level[i].copy()
    return out


def _stacked(states: list[BandState], name: str) -> np.ndarray | None:
    """The streams' states as one array, or None for streams that have not started (a
    batch starts together: all or none have one)."""
    return None if getattr(states[0], name) is None else np.stack([getattr(s, name) for s in states])
