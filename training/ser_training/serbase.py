"""ser-base's data: every labelled corpus, embedded once by the frozen encoder.

The corpora's clips (checked, duplicates dropped) and their cached embeddings
(embeddings.py) become one table the head trainings and evaluations slice by corpus and
speaker; nothing here depends on which head is trained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from ser_edge.frontend import DEFAULT_CONFIG

from .augment import surroundings
from .base_config import BaseConfig
from .config import expand
from .corpora import EMOTIONS, Clip, check_audio, load_ravdess
from .dataset import training_gate
from .embeddings import embed_clips
from .pipeline import load_corpus


@dataclass(frozen=True)
class Table:
    """Every clip with its label, speaker and corpus, and its embeddings per view."""

    clips: tuple[Clip, ...]
    x: np.ndarray
    """(clips, views, width) float16: view 0 as recorded, then the renderings."""

    @property
    def y(self) -> np.ndarray:
        return np.array([EMOTIONS.index(c.label) for c in self.clips])

    def column(self, name: str) -> np.ndarray:
        return np.array([getattr(c, name) for c in self.clips])


def corpus_clips(cfg: BaseConfig, name: str) -> list[Clip]:
    """One corpus's usable clips (unreadable and duplicate files left out)."""
    if name == "ravdess":
        return check_audio(load_ravdess(expand(cfg.data.ravdess))).clips
    return check_audio(load_corpus(cfg.data, name, "corpora")).clips


def encoder_bytes(cfg: BaseConfig) -> bytes:
    path = Path(cfg.encoder.file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no encoder (build it with `ser-train encoder`)")
    return path.read_bytes()


def embedded_table(cfg: BaseConfig, workers: int = 2, log=print) -> Table:
    """Every configured corpus embedded (from the cache where it can)."""
    encoder = encoder_bytes(cfg)
    cache = Path(cfg.cache)
    where = surroundings(cfg.augment, expand(cfg.data.noise), cache.parent / "rooms")
    gate = training_gate("speech", DEFAULT_CONFIG)
    clips, parts = [], []
    for name in cfg.corpora:
        found = corpus_clips(cfg, name)
        log(f"{name}: {len(found)} clips")
        paths = [c.path for c in found]
        parts.append(embed_clips(paths, encoder, cfg.encoder.level_dbfs, cfg.augment, where, gate, cache, workers,
                                 desc=f"embedding {name}"))  # fmt: skip
        clips += found
    return Table(tuple(clips), np.concatenate(parts))


def validation_speakers(clips: Sequence[Clip], share: float, seed: int) -> frozenset[str]:
    """Speakers kept from training for calibration: from each corpus, speakers drawn at
    random while their clips stay within ``share`` of the corpus (so a corpus whose one
    "speaker" holds most clips, like EmoSpeech's unknown user, keeps training on it)."""
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    by_corpus: dict[str, dict[str, int]] = {}
    for c in clips:
        counts = by_corpus.setdefault(c.corpus, {})
        counts[c.speaker] = counts.get(c.speaker, 0) + 1
    for _, counts in sorted(by_corpus.items()):
        budget, taken = share * sum(counts.values()), 0
        for speaker in rng.permutation(sorted(counts)):
            if taken + counts[speaker] <= budget:
                chosen.add(str(speaker))
                taken += counts[speaker]
    return frozenset(chosen)


@dataclass(frozen=True)
class Trial:
    """One head trained without some speakers or corpora, and the clips it is tested on."""

    name: str
    test: np.ndarray
    """Boolean mask over the table's clips."""
    train: np.ndarray
    validation: np.ndarray
    held_out_corpus: str | None = None


def trials(table: Table, cfg: BaseConfig, loco: Sequence[str]) -> list[Trial]:
    """The RAVDESS actor folds (every other corpus trains), then one trial per corpus in
    ``loco`` left out of training (all of RAVDESS trains)."""
    from .splits import speaker_folds

    corpus, speaker = table.column("corpus"), table.column("speaker")
    out = []
    folds = speaker_folds(list(table.clips), "ravdess", cfg.folds, seed=cfg.head.seed) if "ravdess" in corpus else []
    for fold in folds:
        test = np.isin(speaker, sorted(fold.test))
        out.append(trial_without(f"ravdess fold {fold.index + 1}", table, test, ~test, cfg))
    for name in loco:
        test = corpus == name
        if test.any():
            out.append(trial_without(f"without {name}", table, test, ~test, cfg, held_out_corpus=name))
    return out


def trial_without(name: str, table: Table, test: np.ndarray, rest: np.ndarray, cfg: BaseConfig,
           held_out_corpus: str | None = None) -> Trial:  # fmt: skip
    pool = [c for c, r in zip(table.clips, rest, strict=True) if r]
    val = np.isin(table.column("speaker"), sorted(validation_speakers(pool, cfg.validation_speakers, cfg.head.seed)))
    return Trial(name, test, rest & ~val, rest & val, held_out_corpus)


def fit_trial(table: Table, trial: Trial, cfg: BaseConfig, log=print):
    """The head of one trial (calibrated on its validation speakers' clips as recorded)."""
    from .base_head import train_head

    x, y, corpora = table.x, table.y, table.column("corpus")
    views = x[trial.validation] if cfg.head.calibrate_views == "all" else x[trial.validation, :1]
    val = (views.reshape(-1, x.shape[-1]).astype(np.float32), np.repeat(y[trial.validation], views.shape[1]))
    return train_head(x[trial.train], y[trial.train], corpora[trial.train], cfg.head, val, log)


def trial_reports(table: Table, trial: Trial, scores: np.ndarray) -> dict:
    """Reports of a trial's test clips (``scores``: one row of 8 per clip, as recorded)."""
    from .metrics import corpus_reports

    return corpus_reports(table.y[trial.test], [s[None] for s in scores])


def write_bundle(out: Path, cfg: BaseConfig, model, record: dict, training: dict, check_x: np.ndarray,
                 log=print, evaluation: dict | None = None) -> Path:  # fmt: skip
    """A ser-base bundle: the committed encoder (hard-linked where it can be), the head as
    model.tflite, manifest.json and the recipe. The bundle is loaded back as the daemon
    loads it and its head's scores of ``check_x`` compared with Keras'."""
    from ser_edge.recognition.logmel import WHISPER
    from ser_edge.recognition.model import load_model

    from .base_head import head_tflite, probabilities
    from .corpora import licence_terms
    from .whisper_weights import SOURCES

    head = head_tflite(model)
    out.mkdir(parents=True, exist_ok=True)
    encoder = Path(cfg.encoder.file)
    target = out / "encoder.tflite"
    if not target.exists() or target.read_bytes() != encoder.read_bytes():
        target.unlink(missing_ok=True)
        try:
            os.link(encoder, target)
        except OSError:
            shutil.copyfile(encoder, target)
    (out / "model.tflite").write_bytes(head)
    source = SOURCES[cfg.encoder.name]
    width = int(model.input_shape[-1])
    manifest = {
        "schema_version": 1,
        "name": cfg.name,
        "version": cfg.version,
        "labels": list(EMOTIONS),
        "frontend": {"config": DEFAULT_CONFIG.to_dict(), "hash": DEFAULT_CONFIG.hash},
        "scoring": {"rule": "the whole utterance: its level set, its log-mel encoded, mean and deviation over time"},
        "encoder": {
            "name": cfg.encoder.name,
            "blocks": list(cfg.encoder.blocks),
            "layers": max(cfg.encoder.blocks),
            "form": cfg.encoder.form,
            "file": "encoder.tflite",
            "sha256": hashlib.sha256(encoder.read_bytes()).hexdigest(),
            "embedding": width,
            "level_dbfs": cfg.encoder.level_dbfs,
            "logmel": dataclasses.asdict(WHISPER),
            "weights": {"packages": list(source.packages), "sha256": source.sha256, "licence": source.licence},
        },
        "model": {
            "kind": "stats_head",
            "config": dataclasses.asdict(cfg.head),
            "parameters": int(model.count_params()),
            "tflite_bytes": len(head),
            "sha256": hashlib.sha256(head).hexdigest(),
        },
        "training": training | {"temperature": record["temperature"], "prior": record["prior"]},
        **({"evaluation": evaluation} if evaluation else {}),
        "licence": f"Encoder: {source.licence}. Head: " + licence_terms(training["corpora"]),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (out / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(cfg))), sort_keys=False))
    check = load_model(out)
    sample = np.asarray(check_x, np.float32)
    lite = np.stack([check.head_scores(e) for e in sample])
    diff = float(np.abs(lite - probabilities(model, sample)).max())
    if diff > 1e-4:
        raise RuntimeError(f"{out}: the head's TFLite scores differ from Keras by {diff:.2g}")
    log(f"wrote {out} (head {len(head)} B, TFLite = Keras within {diff:.1e})")
    return out


def _training_record(table: Table, mask: np.ndarray, validation: np.ndarray, test_speakers: Sequence[str]) -> dict:
    speakers, corpora = table.column("speaker"), table.column("corpus")
    return {
        "corpora": sorted(set(corpora[mask | validation].tolist())),
        "speakers": sorted(set(speakers[mask].tolist())),
        "validation_speakers": sorted(set(speakers[validation].tolist())),
        "test_speakers": sorted(test_speakers),
        "clips": int(mask.sum()),
        "views_per_clip": int(table.x.shape[1]),
    }


def run_cv(cfg: BaseConfig, out: Path, loco: Sequence[str], workers: int = 2, log=print) -> dict:
    """The RAVDESS folds and the leave-one-corpus-out trials: each head kept as a bundle in
    ``out/folds/<k>/`` (what `ser-train robustness` scores through the daemon's path) and
    scored here on its test clips as recorded (cv.json)."""
    from .base_head import probabilities
    from .metrics import device_report

    table = embedded_table(cfg, workers, log)
    results, pooled = [], {"y": [], "scores": []}
    for k, trial in enumerate(trials(table, cfg, loco), start=1):
        log(f"{trial.name}: {int(trial.train.sum())} training clips, {int(trial.validation.sum())} validation, "
            f"{int(trial.test.sum())} test")  # fmt: skip
        model, record = fit_trial(table, trial, cfg, log)
        scores = probabilities(model, table.x[trial.test, 0].astype(np.float32))
        reports = trial_reports(table, trial, scores)
        held = [] if trial.held_out_corpus else sorted(set(table.column("speaker")[trial.test].tolist()))
        training = _training_record(table, trial.train, trial.validation, held)
        check = table.x[trial.validation, 0][:64]
        write_bundle(out / "folds" / str(k), cfg, model, record, training, check, log)
        results.append({"trial": trial.name, "held_out_corpus": trial.held_out_corpus, "reports": reports,
                        "temperature": record["temperature"],
                        "validation_uar": validation_score(table, trial, model)})  # fmt: skip
        if trial.held_out_corpus is None:
            pooled["y"] += table.y[trial.test].tolist()
            pooled["scores"] += list(scores)
        log(f"  validation speakers' mean UA {results[-1]['validation_uar']:.1%} (what recipes are chosen by); "
            + summary_line(reports))  # fmt: skip
    summary = {"trials": results}
    if pooled["y"]:
        summary["ravdess_pooled"] = device_report(np.array(pooled["y"]), [s[None] for s in pooled["scores"]])
        log("RAVDESS pooled: " + summary_line({"8-way": summary["ravdess_pooled"]}))
    (out / "cv.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def summary_line(reports: dict) -> str:
    """One line per trial: accuracy, UA, ECE and the most frequent answer of each report."""
    parts = []
    for name, r in reports.items():
        top = r["max_share"]
        parts.append(f"{name}: acc {r['accuracy']:.1%} UA {r['uar']:.1%} ECE {r['ece']:.3f} "
                     f"(most answered {top['class']} {top['share']:.0%})")  # fmt: skip
    return "; ".join(parts)


def train_shipped(cfg: BaseConfig, out: Path, workers: int = 2, cv: Path | None = None, log=print) -> Path:
    """The head to ship: every clip of every configured corpus, but the validation
    speakers it is calibrated on. With ``cv`` (a `base-cv` folder), its results are
    recorded in the manifest and its robustness tables copied beside it."""
    evaluation = json.loads((cv / "cv.json").read_text()) if cv else None
    table = embedded_table(cfg, workers, log)
    everything = np.ones(len(table.clips), bool)
    trial = trial_without("shipped", table, ~everything, everything, cfg)
    log(f"training on {int(trial.train.sum())} clips; calibrating on {int(trial.validation.sum())}")
    model, record = fit_trial(table, trial, cfg, log)
    training = _training_record(table, trial.train, trial.validation, [])
    path = write_bundle(out, cfg, model, record, training, table.x[trial.validation, 0][:64], log, evaluation)
    if cv and (cv / "robustness" / "robustness.json").is_file():
        shutil.copy(cv / "robustness" / "robustness.json", out / "robustness.json")
    return path


def validation_score(table: Table, trial: Trial, model) -> float:
    """Model choice without test speakers: the mean over training corpora of the UA on
    the trial's validation speakers (their clips as recorded, each corpus on its own classes)."""
    from .base_head import probabilities
    from .metrics import device_report

    corpora = table.column("corpus")
    scores = []
    for corpus in sorted(set(corpora[trial.validation].tolist())):
        inside = trial.validation & (corpora == corpus)
        y = table.y[inside]
        p = probabilities(model, table.x[inside, 0].astype(np.float32))
        scores.append(device_report(y, [r[None] for r in p], sorted(set(y.tolist())))["uar"])
    return float(np.mean(scores)) if scores else float("nan")
