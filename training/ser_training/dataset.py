"""From clips to int8 feature matrices (through the device's own front end) and from
those to the fixed-length windows the models eat."""

from __future__ import annotations

import hashlib
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import FrontendConfig, compute_features_batch
from ser_edge.gate.vad import GateUnits, Utterance
from ser_edge.pipeline import utterances_in
from ser_edge.recognition.bundle import load_bundle
from ser_edge.recognition.scoring import pad_to, utterance_windows
from ser_edge.settings import GateSettings

from .augment import AugmentConfig, Surroundings, render
from .corpora import EMOTIONS, Clip


@dataclass
class FeatureBank:
    """int8 features of each clip (by path), and of its augmented renderings."""

    originals: dict[Path, np.ndarray]
    renderings: dict[Path, list[np.ndarray]]


_SURROUNDINGS: list[Surroundings | None] = [None]


def _set_surroundings(where: Surroundings | None) -> None:
    _SURROUNDINGS[0] = where


def as_heard(pcm: np.ndarray, gate: GateSettings) -> Utterance:
    """A clip as the device hears it: the longest utterance the gate finds in it (its rows
    computed as the device computes them: from its pre-roll, or for the speech gate from
    its candidate stretch's), or the whole clip when the gate finds none."""
    found = utterances_in(pcm, gate)
    return max(found, key=lambda u: u.pcm.size) if found else Utterance(pcm, 0.0, 0.0)


def _work(job: tuple[Path, FrontendConfig, AugmentConfig | None, GateSettings | None]):
    path, fe, aug, gate = job
    pcm = read_audio(path, fe.sample_rate)
    extra = render(pcm, path.name, aug, fe.sample_rate, _SURROUNDINGS[0]) if aug and aug.renderings else []
    heard = [as_heard(x, gate) if gate else Utterance(x, 0.0, 0.0) for x in (pcm, *extra)]
    to_compute = [u.pcm for u in heard if u.rows is None]
    computed = iter(compute_features_batch(to_compute, cfg=fe) if to_compute else [])  # one pass over them all
    original, *renderings = [u.rows if u.rows is not None else next(computed) for u in heard]
    return original, renderings


def training_gate(kind: str, fe: FrontendConfig) -> GateSettings:
    """The daemon's gate of this kind, with its default settings, for featurising training
    clips as the device hears them; the speech gate only for its own front end."""
    gate = GateSettings(kind=kind)
    if kind == "speech" and load_bundle(gate.speech_bundle, frontend=None).frontend.hash != fe.hash:
        raise ValueError("data.gate_kind: speech needs the speech gate's front end; this config's differs "
                         "(use gate_kind: energy)")  # fmt: skip
    return gate


def _pack(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    return np.concatenate(arrays), lengths


def _unpack(rows: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(rows, np.cumsum(lengths)[:-1])


def featurise(
    clips: Sequence[Clip],
    fe: FrontendConfig,
    aug: AugmentConfig | None,
    cache_dir: Path | None = None,
    workers: int = 2,
    label: str = "featurising",
    where: Surroundings | None = None,
    gate: GateSettings | None = None,
) -> FeatureBank:
    """Features of the clips (and their renderings when ``aug``, in ``where``'s rooms and
    noise when it asks for them; each as the device hears it through ``gate`` when given),
    cached in cache_dir.

    The cache is keyed by the clips' paths, the front-end hash, the augmentation settings,
    the gate's settings (and speech model) and the noise files' names, not by file contents:
    delete it after editing audio files in place.
    """
    paths = sorted({c.path for c in clips})
    tag = f"{fe.hash}-{aug.key if aug and aug.renderings else 'plain'}"
    if gate is not None:
        heard_by = repr(GateUnits.of(gate))
        if gate.kind == "speech":
            bundle = load_bundle(gate.speech_bundle, frontend=None)
            heard_by += f" {bundle.sha256} {gate!r}"  # the speech model and every setting
        tag += "-gated-" + hashlib.sha256(heard_by.encode()).hexdigest()[:8]
    if aug and aug.renderings and aug.acoustic and where is not None:
        tag += "-" + hashlib.sha256("\n".join(f.name for f in where.noise_files).encode()).hexdigest()[:8]
    digest = hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest()[:16]
    cache = cache_dir / f"{tag}-{digest}.npz" if cache_dir else None
    if cache and cache.is_file():
        data = np.load(cache)
        originals = _unpack(data["rows"], data["lengths"])
        per = int(data["per_clip"])
        flat = _unpack(data["aug_rows"], data["aug_lengths"])
        renderings = [flat[i * per : (i + 1) * per] for i in range(len(paths))]
    else:
        jobs = [(p, fe, aug, gate) for p in paths]
        if workers > 1:
            with multiprocessing.get_context("spawn").Pool(workers, _set_surroundings, (where,)) as pool:
                results = list(tqdm(pool.imap(_work, jobs, chunksize=8), total=len(jobs), desc=label))
        else:
            _set_surroundings(where)
            results = [_work(j) for j in tqdm(jobs, desc=label)]
        originals = [r[0] for r in results]
        renderings = [r[1] for r in results]
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            flat = [x for r in renderings for x in r] or [np.zeros((0, fe.n_features), np.int8)]
            rows, lengths = _pack(originals)
            aug_rows, aug_lengths = _pack(flat)
            per = len(renderings[0]) if renderings else 0
            np.savez(cache, rows=rows, lengths=lengths, aug_rows=aug_rows, aug_lengths=aug_lengths, per_clip=per)
    return FeatureBank(dict(zip(paths, originals, strict=True)), dict(zip(paths, renderings, strict=True)))


def label_index(clips: Sequence[Clip]) -> np.ndarray:
    return np.array([EMOTIONS.index(c.label) for c in clips], dtype=np.int64)


def training_windows(
    clips: Sequence[Clip], bank: FeatureBank, window: int, pad: np.ndarray, rng: np.random.Generator,
    p_original: float,
) -> np.ndarray:  # fmt: skip
    """One window per training clip for one epoch: the original or a random rendering,
    cropped at a random start (the time shift)."""
    out = np.empty((len(clips), window, pad.shape[0]), np.int8)
    for i, clip in enumerate(clips):
        extra = bank.renderings[clip.path]
        use_original = not extra or rng.random() < p_original
        source = bank.originals[clip.path] if use_original else extra[rng.integers(len(extra))]
        start = int(rng.integers(max(source.shape[0] - window, 0) + 1))
        out[i] = pad_to(source[start : start + window], window, pad)
    return out


def evaluation_windows(
    clips: Sequence[Clip], bank: FeatureBank, window: int, hop: int, pad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All scoring windows of the original (never augmented) clips, and for each window
    the index of its clip."""
    parts, owners = [], []
    for i, clip in enumerate(clips):
        w = utterance_windows(bank.originals[clip.path], window, hop, pad)
        parts.append(w)
        owners.append(np.full(len(w), i))
    return np.concatenate(parts), np.concatenate(owners)
