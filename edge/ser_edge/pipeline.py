"""Offline use of the daemon's stages: a clip through the gate and recognition.

``ser-edge classify`` and the training side's robustness harness run this, so what they
report is what a device that heard the clip would publish (the daemon drives the same
stages live, chunk by chunk).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .audio_io import read_audio
from .decision import Recognition, recognise
from .model import EmotionModel
from .settings import GateSettings, SourceSettings
from .vad import FRAME_SAMPLES, SAMPLE_RATE, Gate, Utterance

_CHUNK = SAMPLE_RATE * SourceSettings().chunk_ms // 1000


def utterances_in(pcm: np.ndarray, gate: GateSettings, gap_s: float = SourceSettings().gap_s) -> list[Utterance]:
    """The utterances the gate finds in a clip followed by ``gap_s`` of silence, fed in the
    replay source's chunks (as the daemon hears a replayed file); times count from its start."""
    gap = round(gap_s * SAMPLE_RATE)
    pcm = np.concatenate([pcm, np.zeros(gap + (-(pcm.size + gap) % FRAME_SAMPLES), np.int16)])
    g = Gate(gate)
    out = [u for i in range(0, pcm.size, _CHUNK) for u in g.push(pcm[i : i + _CHUNK], i / SAMPLE_RATE)]
    return out + g.flush()


def recognise_pcm(pcm: np.ndarray, model: EmotionModel, gate: GateSettings, threshold: float) -> list[Recognition]:
    """Every utterance the gate finds in an int16 16 kHz clip, recognised."""
    return [recognise(model, u, threshold) for u in utterances_in(pcm, gate)]


def recognise_file(path: Path, model: EmotionModel, gate: GateSettings, threshold: float) -> list[Recognition]:
    """recognise_pcm of an audio file (any format, rate and channels read_audio takes)."""
    return recognise_pcm(read_audio(Path(path), SAMPLE_RATE), model, gate, threshold)
