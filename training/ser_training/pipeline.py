"""The jobs behind `ser-train`: load the corpora, cross-validate by speaker, train the
final model and export it."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ser_edge.recognition.scoring import silence_row
from ser_edge.settings import GateSettings

from .augment import surroundings
from .config import Config, DataConfig, expand
from .corpora import LOADERS, Clip, Manifest, check_audio, load_crema, load_ravdess
from .dataset import FeatureBank, evaluation_windows, featurise, label_index, training_gate, training_windows
from .distil import Lesson, Teachers, lesson_line, lesson_summary
from .export import exportable, manifest_for, quiet_stderr, write_bundle
from .int8 import convert, tflm_min_arena
from .metrics import format_report, report
from .splits import Fold, Split, speaker_folds, split
from .train import fit, int8_scorer, keras_scorer, utterance_scores

EVAL_CORPUS = "ravdess"
ROOMS_CACHE = Path(".cache/rooms")


def load_corpora(cfg: Config, verify_crema: bool = False) -> Manifest:
    """RAVDESS plus the configured extra training corpora, checked file by file."""
    manifest = load_ravdess(expand(cfg.data.ravdess))
    for name in cfg.data.extra_training:
        manifest.extend(load_corpus(cfg.data, name, "data.extra_training", verify_crema))
    return check_audio(manifest)


def load_corpus(data: DataConfig, name: str, where: str, verify_crema: bool = False) -> Manifest:
    """One named corpus from its configured folder (data.<name>), unchecked; ``where``
    names the setting that asked for it in errors."""
    if name not in LOADERS or name == EVAL_CORPUS:
        choices = ", ".join(n for n in LOADERS if n != EVAL_CORPUS)
        raise ValueError(f"{where}: unknown corpus {name!r}; choose from {choices}")
    root = getattr(data, name)
    if root is None:
        raise ValueError(f"{where}: {name!r} has no configured folder (data.{name})")
    if name == "crema":
        return load_crema(expand(root), verify=verify_crema)
    return LOADERS[name](expand(root))


def _representative(cfg: Config, clips: Sequence[Clip], bank: FeatureBank, n: int = 300) -> np.ndarray:
    """Calibration windows from training clips (originals, random crops)."""
    rng = np.random.default_rng(cfg.train.seed)
    chosen = [clips[i] for i in rng.choice(len(clips), size=min(n, len(clips)), replace=False)]
    return training_windows(chosen, bank, cfg.window.frames, silence_row(cfg.frontend), rng, p_original=1.0)


def cross_validate(
    cfg: Config,
    clips: Sequence[Clip],
    bank: FeatureBank,
    folds: Sequence[Fold],
    out: Path | None = None,
    log=print,
    lesson: Lesson | None = None,
) -> dict:
    """Speaker-independent k-fold: float and int8 results per fold and pooled. With ``out``,
    each fold's int8 model is kept as ``out/folds/<k>/model.tflite`` beside ``fold.json``
    (its speakers), so the robustness harness can score each fold's own test actors. With
    ``lesson`` each fold's student learns from a teacher trained on its training clips."""
    per_fold, pooled = [], {"float": [], "int8": [], "true": [], "speakers": []}
    size: dict = {}
    for fold in folds:
        start = time.time()
        sp = split(clips, fold, EVAL_CORPUS)
        log(f"fold {fold.index + 1}/{len(folds)}: test {sorted(fold.test)}, validation {sorted(fold.validation)}, "
            f"{len(sp.train)} training clips")  # fmt: skip
        answers = lesson.teachers.answers(sp.train, log) if lesson else None
        model, history = fit(cfg, sp.train, sp.validation, bank, teacher=answers)
        model_bytes = convert(exportable(model, cfg), _representative(cfg, sp.train, bank))
        if not size:  # the same architecture in every fold: measure once
            with quiet_stderr():
                arena = tflm_min_arena(model_bytes)
            size = {"parameters": int(model.count_params()), "tflite_bytes": len(model_bytes),
                    "tflm_arena_bytes": arena}  # fmt: skip
        if out is not None:
            save_fold(out / "folds" / str(fold.index + 1), cfg, model, model_bytes, fold, sp)
        truth = label_index(sp.test)
        speakers = [c.speaker for c in sp.test]
        results, scores = {}, {}
        for kind, scorer in (("float", keras_scorer(model)), ("int8", int8_scorer(model_bytes))):
            scores[kind] = utterance_scores(scorer, sp.test, bank, cfg)
            results[kind] = report(truth, scores[kind].argmax(axis=1), speakers)
            pooled[kind].append(scores[kind].argmax(axis=1))
        pooled["true"].append(truth)
        pooled["speakers"] += speakers
        per_fold.append({
            "fold": fold.index, "test_speakers": sorted(fold.test), "validation_speakers": sorted(fold.validation),
            "float": results["float"], "int8": results["int8"], "history": history,
            "epochs": len(history["loss"]), "seconds": round(time.time() - start, 1),
            "tflite_bytes": len(model_bytes), "parameters": int(model.count_params()),
        })  # fmt: skip
        if lesson:
            held = utterance_scores(int8_scorer(model_bytes), lesson.held, lesson.held_bank, cfg)
            per_fold[-1]["teacher"] = lesson.report(answers, sp.test, scores["int8"], held)
            log("  " + lesson_line(per_fold[-1]["teacher"]))
        log(f"fold {fold.index + 1}: int8 {format_report(results['int8']).splitlines()[0]}; "
            f"float accuracy {results['float']['accuracy']:.3f}; {per_fold[-1]['seconds']:.0f} s")  # fmt: skip
    truth = np.concatenate(pooled["true"])
    return {
        "protocol": protocol(cfg, folds),
        "model": size,
        "folds": per_fold,
        "pooled": {k: report(truth, np.concatenate(pooled[k]), pooled["speakers"]) for k in ("float", "int8")},
        **({"teacher": lesson_summary([f["teacher"] for f in per_fold])} if lesson else {}),
    }


def save_fold(folder: Path, cfg: Config, model, model_bytes: bytes, fold: Fold, sp: Split) -> None:
    """One fold's int8 model as a bundle ser-edge can load, naming who it did and did not
    hear (its test speakers are the robustness harness's clean set for it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.tflite").write_bytes(model_bytes)
    training = {
        "corpora": sorted({c.corpus for c in sp.train}),
        "speakers": sorted({c.speaker for c in sp.train}),
        "validation_speakers": sorted(fold.validation),
        "test_speakers": sorted(fold.test),
        "clips": len(sp.train),
    }
    verification = {"note": f"fold {fold.index + 1} of a cross-validation; not verified on TFLite Micro"}
    manifest = manifest_for(cfg, model_bytes, int(model.count_params()), verification, training, {})
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def protocol(cfg: Config, folds: Sequence[Fold]) -> dict:
    return {
        "kind": f"{cfg.cv.folds}-fold speaker-independent cross-validation over {EVAL_CORPUS} actors",
        "folds_run": {f.index + 1: sorted(f.test) for f in folds},
        "validation": "early stopping and checkpoint on speakers carved from each fold's training speakers",
        "extra_training_corpora": list(cfg.data.extra_training),
        "augmentation": asdict(cfg.augment),
        "normalisation": "per-column mean/variance of the training speakers' frames",
    }


def prepare(cfg: Config, cache: Path | None, verify_crema: bool = False) -> tuple[list[Clip], FeatureBank]:
    manifest = load_corpora(cfg, verify_crema)
    for problem in manifest.problems:
        print(f"skipped: {problem}")
    where = surroundings(cfg.augment, expand(cfg.data.noise), ROOMS_CACHE) if cfg.augment.acoustic else None
    bank = featurise(manifest.clips, cfg.frontend, cfg.augment, cache, where=where, gate=heard_through(cfg))
    return manifest.clips, bank


def heard_through(cfg: Config) -> GateSettings | None:
    """The gate a config's clips are featurised through (data.gate), or None."""
    return training_gate(cfg.data.gate_kind, cfg.frontend) if cfg.data.gate else None


def make_folds(cfg: Config, clips: Sequence[Clip]) -> list[Fold]:
    return speaker_folds(clips, EVAL_CORPUS, cfg.cv.folds, cfg.cv.validation_per_gender, cfg.train.seed)


def final_split(cfg: Config, clips: Sequence[Clip]) -> Split:
    """The shipped model's data: every evaluation speaker but one validation pair, plus
    the extra corpora."""
    return split(clips, Fold(-1, frozenset(), make_folds(cfg, clips)[0].validation), EVAL_CORPUS)


def train_final(cfg: Config, clips: Sequence[Clip], bank: FeatureBank, run: Path) -> dict:
    """Train the model to ship; save it with what export needs into ``run``."""
    sp = final_split(cfg, clips)
    answers = Teachers.load(cfg, sorted({c.corpus for c in clips})).answers(sp.train) if cfg.distil else None
    model, history = fit(cfg, sp.train, sp.validation, bank, teacher=answers)
    run.mkdir(parents=True, exist_ok=True)
    model.save(run / "model.keras")
    training = {
        "corpora": sorted({c.corpus for c in sp.train}),
        "speakers": sorted({c.speaker for c in sp.train}),
        "validation_speakers": sorted({c.speaker for c in sp.validation}),
        "clips": len(sp.train),
        "epochs": len(history["loss"]),
        "history": history,
    }
    (run / "training.json").write_text(json.dumps(training, indent=1) + "\n")
    return training


def export_run(cfg: Config, clips: Sequence[Clip], bank: FeatureBank, run: Path, out: Path, evaluation: dict,
               robustness: dict | None = None) -> dict:  # fmt: skip
    """Convert a trained run to a verified bundle: calibrated on its training clips,
    checked on its validation clips."""
    import keras

    if not (run / "model.keras").is_file():
        raise FileNotFoundError(f"{run}: no trained model (model.keras); run `ser-train train` first")
    model = keras.models.load_model(run / "model.keras")
    training = json.loads((run / "training.json").read_text())
    sp = final_split(cfg, clips)
    windows, _ = evaluation_windows(sp.validation, bank, cfg.window.frames, cfg.window.hop, silence_row(cfg.frontend))
    return write_bundle(out, model, cfg, _representative(cfg, sp.train, bank), windows, training, evaluation,
                        robustness)  # fmt: skip
