"""`ser-edge bench model`: one utterance through a model stage, timed on one core.

The cost of scoring a 3 s utterance (the front end or the encoder's input, the model, the
head), the median of repeated runs, for a bundle and a reference bundle in the same run,
with their ratio: what a Pi core pays per utterance, scaled by the per-core ratio in
edge/docs/daemon.md.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from ser_edge.audio.audio_io import read_audio
from ser_edge.gate.vad import SAMPLE_RATE, Utterance
from ser_edge.recognition.base_model import BaseModel, encoder_input
from ser_edge.recognition.model import EmotionModel, load_model


def _median_ms(run, repeat: int) -> float:
    run()  # warm up: first-call allocations are not the steady cost
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def utterance_of(clip: Path, seconds: float) -> Utterance:
    """``seconds`` of a real clip (repeated if it is shorter) as an utterance."""
    pcm = read_audio(clip)
    n = round(seconds * SAMPLE_RATE)
    return Utterance(np.resize(pcm, n), 0.0, seconds)


def bench_model(bundle: Path, clip: Path, seconds: float = 3.0, repeat: int = 30) -> dict:
    """Median milliseconds per utterance, whole and by stage."""
    model = load_model(bundle)
    u = utterance_of(clip, seconds)
    out = {"model": f"{model.bundle.name} {model.bundle.version}", "seconds": seconds}
    out["total_ms"] = _median_ms(lambda: model.scores(model.inputs(u)), repeat)
    if isinstance(model, BaseModel):
        level = model.bundle.encoder.level_dbfs
        mel = encoder_input(u.pcm, level)
        out["logmel_ms"] = _median_ms(lambda: encoder_input(u.pcm, level), repeat)
        out["encoder_ms"] = _median_ms(lambda: model.encoder.hidden(mel), repeat)
        embedding = model.inputs(u)
        out["head_ms"] = _median_ms(lambda: model.scores(embedding), repeat)
    elif isinstance(model, EmotionModel):
        rows = model.inputs(u)
        out["frontend_ms"] = _median_ms(lambda: model.inputs(u), repeat)
        out["model_ms"] = _median_ms(lambda: model.scores(rows), repeat)
    return out


def format_model(r: dict, reference: dict | None = None) -> str:
    stages = ", ".join(f"{k[:-3]} {v:.1f} ms" for k, v in r.items() if k.endswith("_ms") and k != "total_ms")
    line = f"{r['model']}: {r['total_ms']:.1f} ms per {r['seconds']:g} s utterance on one core ({stages})"
    if reference:
        line += (f"\n  against {reference['model']} in the same run: {reference['total_ms']:.1f} ms "
                 f"({r['total_ms'] / max(reference['total_ms'], 1e-9):.1f}x)")  # fmt: skip
    return line
