"""Encoder outputs of every clip and of its renderings, computed once and cached.

The encoder is frozen, so a clip's pooled embedding never changes: ser-base's heads then
train in minutes on (clips, views, width) arrays. A view is the clip as recorded (view 0)
or one of its seeded renderings (rooms, noise, channel, gain: augment.render), each heard
through the daemon's speech gate as a device would hear it, then encoded by the very
encoder.tflite the bundle ships (ser_edge's Encoder), so training sees the device's numbers.

Cache: ``<cache>/<encoder sha256[:16]>/<augment key>/<clip file sha256>.npy``, one
(views, width) float16 array per clip: keyed by the clip's content, the renderings and
the encoder, so a new corpus or a new head reuses every clip computed before.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ser_edge.audio.audio_io import read_audio
from ser_edge.settings import GateSettings

from .augment import AugmentConfig, Surroundings, render
from .corpora import file_sha256

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class EmbedJob:
    """What one worker needs to embed one clip."""

    path: Path
    out: Path


_WORKER: dict = {}


def _init_worker(encoder: bytes, level_dbfs: float, aug: AugmentConfig, where: Surroundings | None,
                 gate: GateSettings) -> None:  # fmt: skip
    from ser_edge.recognition.base_model import Encoder

    _WORKER.update(encoder=Encoder(encoder, 80), level=level_dbfs, aug=aug, where=where, gate=gate)


def views(pcm: np.ndarray, clip_id: str, aug: AugmentConfig, where: Surroundings | None) -> list[np.ndarray]:
    """The clip as recorded, then its renderings."""
    return [pcm, *(render(pcm, clip_id, aug, SAMPLE_RATE, where) if aug.renderings else [])]


def _embed(job: EmbedJob) -> Path:
    from ser_edge.recognition.base_model import encoder_input, pooled

    from .dataset import as_heard

    w = _WORKER
    pcm = read_audio(job.path, SAMPLE_RATE)
    rows = []
    for x in views(pcm, job.out.stem, w["aug"], w["where"]):  # seeded by content, as the cache is keyed
        heard = as_heard(x, w["gate"]).pcm
        rows.append(pooled(w["encoder"].hidden(encoder_input(heard, w["level"]))))
    job.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = job.out.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, np.stack(rows).astype(np.float16))
    tmp.replace(job.out)  # a killed run leaves no half-written entry
    return job.out


def embed_clips(paths: Sequence[Path], encoder: bytes, level_dbfs: float, aug: AugmentConfig,
                where: Surroundings | None, gate: GateSettings, cache: Path, workers: int = 2,
                desc: str = "embeddings") -> np.ndarray:  # fmt: skip
    """(files, 1 + aug.renderings, width) float16 embeddings of audio files, from the cache where it has
    them, the rest computed in ``workers`` processes (one thread each)."""
    folder = Path(cache) / hashlib.sha256(encoder).hexdigest()[:16] / f"{aug.key}-{level_dbfs:g}"
    outs = [folder / f"{file_sha256(p)}.npy" for p in paths]
    todo = [EmbedJob(p, o) for p, o in zip(paths, outs, strict=True) if not o.is_file()]
    if todo:
        init = (encoder, level_dbfs, aug, where, gate)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        if workers <= 1:
            _init_worker(*init)
            for job in tqdm(todo, desc=desc):
                _embed(job)
        else:
            with multiprocessing.get_context("spawn").Pool(workers, _init_worker, init) as pool:
                for _ in tqdm(pool.imap_unordered(_embed, todo, chunksize=4), total=len(todo), desc=desc):
                    pass
    return np.stack([np.load(o) for o in outs])
