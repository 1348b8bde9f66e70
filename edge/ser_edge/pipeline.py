"""Offline use of the daemon's stages: a file through replay, the gate and recognition.

``ser-edge classify`` runs this, so what it prints is what a device that heard the file
would publish (the daemon drives the same stages live, chunk by chunk).
"""

from __future__ import annotations

from pathlib import Path

from .decision import Recognition, recognise
from .model import EmotionModel
from .settings import GateSettings, SourceSettings
from .sources import ReplaySource
from .vad import Gate


def recognise_file(path: Path, model: EmotionModel, gate: GateSettings, threshold: float) -> list[Recognition]:
    """Every utterance the gate finds in the file, recognised; times count from the file's start."""
    settings = SourceSettings(kind="replay", files=(Path(path),), realtime=False)
    source = ReplaySource(settings, clock=lambda: 0.0, strict=True)
    g = Gate(gate)
    utterances = [u for chunk in source for u in g.push(chunk.pcm, chunk.time)] + g.flush()
    return [recognise(model, u, threshold) for u in utterances]
