"""ser-tiny taught by ser-base (issue 28).

A 43 KB model trained on human labels learns the actors' voices; trained on a strong
teacher's answers it can learn the teacher's function instead. The teacher is a ser-base
head (frozen Whisper encoder, cached embeddings: serbase.py) trained on the student's own
training clips, never on a fold's test speakers nor on the corpora held out to measure
both. Its answer on each clip *as recorded* is the target of every rendering and crop the
student sees of that clip (rooms, noise, gain, phone band): the student must say in the
room what the teacher says in the studio.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import Config, DistilConfig
from .corpora import Clip
from .metrics import corpus_reports


def soften(p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities at a softmax temperature: p^(1/T) renormalised per row (the same as
    dividing the teacher's logits by T)."""
    z = np.log(np.maximum(np.asarray(p, np.float64), 1e-12)) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def blend(onehot: np.ndarray, teacher: np.ndarray, label_weight: float) -> np.ndarray:
    """Each training target: ``label_weight`` of the human label, the rest the teacher's
    softened answer. With cross-entropy this is the usual KL + cross-entropy mix."""
    return (label_weight * onehot + (1.0 - label_weight) * teacher).astype(np.float32)


def agreement(student: np.ndarray, teacher: np.ndarray) -> float:
    """Share of utterances on which both answer the same emotion (rows of scores)."""
    return float(np.mean(np.argmax(student, axis=1) == np.argmax(teacher, axis=1)))


@dataclass(frozen=True)
class Answers:
    """One teacher's probabilities for every clip it can score, and whom it heard."""

    by_path: Mapping[Path, np.ndarray]
    """{clip path: 8 probabilities}, each clip as recorded."""
    speakers: tuple[str, ...]
    """The speakers the teacher trained or was calibrated on."""


@dataclass(frozen=True)
class Teachers:
    """The teacher recipe and the embedded clips its heads train on and score."""

    settings: DistilConfig
    base: object
    """The teacher's BaseConfig."""
    table: object
    """serbase.Table of the student's corpora and the held-out ones."""

    @classmethod
    def load(cls, cfg: Config, corpora: Sequence[str], log=print) -> Teachers:
        """Embeddings of every clip of ``corpora`` (from the cache `ser-train base-cv` fills)."""
        from .base_config import load_base_config
        from .serbase import embedded_table

        if cfg.distil is None:
            raise ValueError("distil: this config has no distil section")
        base = load_base_config(Path(cfg.distil.teacher))
        # The teacher reads the student's own corpus folders.
        base = dataclasses.replace(base, corpora=tuple(c for c in base.corpora if c in set(corpora)), data=cfg.data)
        missing = sorted(set(corpora) - set(base.corpora))
        if missing:
            raise ValueError(f"distil.teacher: {cfg.distil.teacher} does not read corpus {missing[0]!r}")
        return cls(cfg.distil, base, embedded_table(base, log=log))

    def answers(self, train: Sequence[Clip], log=print) -> Answers:
        """A teacher head trained on the table's clips among ``train`` (its own validation
        speakers carved from them), and its probabilities for every clip of the table, as
        recorded."""
        from .base_head import probabilities
        from .serbase import fit_trial, trial_without

        table, base = self.table, self.base
        chosen = {c.path for c in train}
        inside = np.array([c.path in chosen for c in table.clips])
        missing = len(chosen) - int(inside.sum())
        if missing:
            raise ValueError(f"distil: {missing} training clips have no teacher embedding (corpora differ)")
        trial = trial_without("teacher", table, ~inside, inside, base)
        model, _ = fit_trial(table, trial, base, log)
        p = probabilities(model, table.x[:, 0].astype(np.float32))
        heard = sorted({c.speaker for c, t in zip(table.clips, trial.train | trial.validation, strict=True) if t})
        return Answers({c.path: row for c, row in zip(table.clips, p, strict=True)}, tuple(heard))


def teacher_targets(answers: Answers, clips: Sequence[Clip], onehot: np.ndarray,
                    settings: DistilConfig) -> np.ndarray:  # fmt: skip
    """The targets of ``clips`` (rows of ``onehot`` are their human labels)."""
    teacher = soften(np.stack([answers.by_path[c.path] for c in clips]), settings.temperature)
    return blend(onehot, teacher, settings.label_weight)


@dataclass(frozen=True)
class Lesson:
    """What a distillation CV needs beside the student's clips: the teachers, and the
    held-out corpora's clips featurised as the device hears them (as recorded)."""

    teachers: Teachers
    held: tuple[Clip, ...]
    held_bank: object
    """dataset.FeatureBank of ``held``."""

    @classmethod
    def prepare(cls, cfg: Config, clips: Sequence[Clip], cache: Path | None, log=print) -> Lesson:
        from .corpora import check_audio
        from .dataset import featurise
        from .pipeline import heard_through, load_corpus

        held_out = cfg.distil.held_out if cfg.distil else ()
        training = sorted({c.corpus for c in clips})
        overlap = sorted(set(held_out) & set(training))
        if overlap:
            raise ValueError(f"distil.held_out: {overlap[0]!r} is also a training corpus")
        teachers = Teachers.load(cfg, [*training, *held_out], log)  # refuses a config without a distil section
        held = []
        for name in held_out:
            found = check_audio(load_corpus(cfg.data, name, "distil.held_out")).clips
            if not found:
                raise ValueError(f"distil.held_out: no usable {name} clips in {getattr(cfg.data, name)}")
            held += found
        bank = featurise(held, cfg.frontend, None, cache, label="featurising held-out corpora", gate=heard_through(cfg))
        return cls(teachers, tuple(held), bank)

    def report(self, answers: Answers, test: Sequence[Clip], student: np.ndarray,
               held_student: np.ndarray) -> dict:  # fmt: skip
        """One fold: the teacher's and the student's reports on the fold's test clips and
        on each held-out corpus, and their agreement (``student``, ``held_student``: the
        student's utterance scores of ``test`` and of ``self.held``)."""
        from .corpora import EMOTIONS

        out: dict = {}
        groups = [("test speakers", list(test), student)]
        corpora = np.array([c.corpus for c in self.held])
        groups += [(name, [c for c in self.held if c.corpus == name], held_student[corpora == name])
                   for name in self.teachers.settings.held_out]  # fmt: skip
        for name, clips, scores in groups:
            teacher = np.stack([answers.by_path[c.path] for c in clips])
            y = np.array([EMOTIONS.index(c.label) for c in clips])
            out[name] = {
                "clips": len(clips),
                "agreement": agreement(scores, teacher),
                "student": corpus_reports(y, [s[None] for s in scores]),
                "teacher": corpus_reports(y, [t[None] for t in teacher]),
            }
        return {"teacher_heard": list(answers.speakers), "groups": out}


def headline(reports: dict) -> str:
    """The report a group is judged by: 4-class where it has those classes, else its own
    classes, else 8-way."""
    return next(k for k in ("4-class", "own classes", "8-way") if k in reports)


def lesson_summary(folds: Sequence[dict]) -> dict:
    """Means over the folds of each group's agreement and of the student's and teacher's
    UA (4-class where the group has those classes, else its own, else 8-way)."""
    out = {}
    for name in folds[0]["groups"]:
        entries = [f["groups"][name] for f in folds]
        out[name] = {"agreement": float(np.mean([e["agreement"] for e in entries]))}
        for who in ("student", "teacher"):
            key = headline(entries[0][who])
            out[name][f"{who}_uar"] = float(np.mean([e[who][key]["uar"] for e in entries]))
            out[name][f"{who}_classes"] = key
            out[name][f"{who}_max_share"] = max((e[who][key]["max_share"] for e in entries), key=lambda m: m["share"])
    return out


def lesson_line(fold: dict) -> str:
    """A fold's lesson in one line: per group, the agreement and both models' UA."""
    parts = []
    for name, e in fold["groups"].items():
        key = headline(e["student"])
        parts.append(f"{name} ({key}): student UA {e['student'][key]['uar']:.1%}, teacher "
                     f"{e['teacher'][key]['uar']:.1%}, agreement {e['agreement']:.1%}")  # fmt: skip
    return "; ".join(parts)
