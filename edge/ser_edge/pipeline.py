"""Offline use of the daemon's stages: a clip through the gate and recognition.

``ser-edge classify`` and the training side's robustness harness run this, so what they
report is what a device that heard the clip would publish (the daemon drives the same
stages live, chunk by chunk).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ser_edge.audio.audio_io import as_heard_in_replay, audio_blocks
from ser_edge.gate.speech_gate import make_gate
from ser_edge.gate.vad import FRAME_SAMPLES, SAMPLE_RATE, Utterance
from ser_edge.recognition.decision import Recognition, recognise
from ser_edge.recognition.model import EmotionModel
from ser_edge.settings import GateSettings, SourceSettings

_CHUNK = SAMPLE_RATE * SourceSettings().chunk_ms // 1000


def utterances_streamed(blocks: Iterable[np.ndarray], gate: GateSettings,
                        gap_s: float = SourceSettings().gap_s) -> Iterator[Utterance]:  # fmt: skip
    """The utterances the gate finds in a clip (given block by block) followed by ``gap_s``
    of silence, fed in the replay source's chunks (as the daemon hears a replayed file);
    times count from its start. Memory: one block and one utterance, however long the clip.
    With gate.kind speech, the speech gate's (see speech_gate.py)."""
    g = make_gate(gate)
    offset = 0
    for chunk in as_heard_in_replay(blocks, round(gap_s * SAMPLE_RATE), FRAME_SAMPLES, _CHUNK):
        yield from g.push(chunk, offset / SAMPLE_RATE)
        offset += chunk.size
    yield from g.flush()


def utterances_in(pcm: np.ndarray, gate: GateSettings, gap_s: float = SourceSettings().gap_s) -> list[Utterance]:
    """utterances_streamed of a clip in memory."""
    return list(utterances_streamed([pcm], gate, gap_s))


def recognise_pcm(pcm: np.ndarray, model: EmotionModel, gate: GateSettings, threshold: float) -> list[Recognition]:
    """Every utterance the gate finds in an int16 16 kHz clip, recognised."""
    return [recognise(model, u, threshold) for u in utterances_in(pcm, gate)]


def recognise_file(path: Path, model: EmotionModel, gate: GateSettings, threshold: float) -> list[Recognition]:
    """Every utterance of an audio file (any format, rate and channels), recognised as it
    closes: an hour-long recording is read a block at a time."""
    return [recognise(model, u, threshold) for u in utterances_streamed(audio_blocks(Path(path), SAMPLE_RATE), gate)]
