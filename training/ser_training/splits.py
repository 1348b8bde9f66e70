"""Speaker-independent folds: no speaker ever has clips on both sides of a split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .corpora import Clip


@dataclass(frozen=True)
class Fold:
    """Speakers of one fold; every other clip's speaker is a training speaker."""

    index: int
    test: frozenset[str]
    validation: frozenset[str]
    """Carved from the training speakers, for early stopping and checkpoint choice."""


@dataclass(frozen=True)
class Split:
    train: list[Clip]
    validation: list[Clip]
    test: list[Clip]


def _by_gender(speakers: dict[str, str | None], rng: np.random.Generator) -> list[list[str]]:
    groups: dict[str | None, list[str]] = {}
    for speaker, gender in sorted(speakers.items()):
        groups.setdefault(gender, []).append(speaker)
    return [[str(s) for s in rng.permutation(g)] for _, g in sorted(groups.items(), key=lambda kv: str(kv[0]))]


def speaker_folds(
    clips: Sequence[Clip], corpus: str = "ravdess", k: int = 5, validation_per_gender: int = 1, seed: int = 0
) -> list[Fold]:
    """k folds over the speakers of ``corpus``, each gender dealt round-robin so that every
    fold holds the same number of each; validation speakers come from the other folds."""
    speakers = {c.speaker: c.gender for c in clips if c.corpus == corpus}
    if len(speakers) < k:
        raise ValueError(f"{corpus}: {len(speakers)} speakers cannot make {k} speaker folds")
    rng = np.random.default_rng(seed)
    groups = _by_gender(speakers, rng)
    tests: list[set[str]] = [set() for _ in range(k)]
    position = 0
    for group in groups:
        for speaker in group:
            tests[position % k].add(speaker)
            position += 1
    folds = []
    for i, test in enumerate(tests):
        rest = {s: g for s, g in speakers.items() if s not in test}
        validation = {s for group in _by_gender(rest, rng) for s in group[:validation_per_gender]}
        folds.append(Fold(i, frozenset(test), frozenset(validation)))
    return folds


def split(clips: Sequence[Clip], fold: Fold, eval_corpus: str = "ravdess") -> Split:
    """Test and validation clips come from ``eval_corpus`` only; other corpora (TESS, a
    user's folder) only ever join the training side."""
    train, validation, test = [], [], []
    for clip in clips:
        if clip.speaker in fold.test:
            test.append(clip)
        elif clip.speaker in fold.validation:
            validation.append(clip)
        else:
            train.append(clip)
    if any(c.corpus != eval_corpus for c in test + validation):
        raise ValueError(f"test and validation speakers must come from {eval_corpus}")
    return Split(train, validation, test)
