"""Speaker-independent splits: property tests that no speaker is ever on both sides."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ser_training.corpora import Clip
from ser_training.splits import speaker_folds, split


def _clips(speakers: dict[str, str], extra: int, per: int = 3) -> list[Clip]:
    clips = [
        Clip(Path(f"{s}-{i}.wav"), "angry", f"ravdess/{s}", "ravdess", gender=g)
        for s, g in speakers.items()
        for i in range(per)
    ]
    clips += [Clip(Path(f"t{i}.wav"), "sad", f"tess/S{i % 2}", "tess", gender="female") for i in range(extra)]
    return clips


speaker_sets = st.dictionaries(
    st.text("abcdefgh0123456789", min_size=1, max_size=4),
    st.sampled_from(["male", "female"]),
    min_size=6,
    max_size=30,
)


@settings(max_examples=80, deadline=None)
@given(speaker_sets, st.integers(2, 6), st.integers(0, 20), st.integers(0, 2**31))
def test_no_speaker_on_both_sides_and_every_speaker_tested_once(speakers, k, extra, seed) -> None:
    k = min(k, len(speakers) // 2)
    clips = _clips(speakers, extra)
    folds = speaker_folds(clips, k=k, validation_per_gender=1, seed=seed)
    tested = [s for f in folds for s in f.test]
    assert sorted(tested) == sorted(f"ravdess/{s}" for s in speakers)  # each speaker tested exactly once
    for fold in folds:
        assert fold.validation and not fold.validation & fold.test  # the fold itself, not only its clips
        sp = split(clips, fold)
        train, val, test = ({c.speaker for c in part} for part in (sp.train, sp.validation, sp.test))
        assert val == set(fold.validation) and test == set(fold.test)
        assert not (train & val) and not (train & test) and not (val & test)
        assert len(sp.train) + len(sp.validation) + len(sp.test) == len(clips)
        assert all(c.corpus == "ravdess" for c in sp.test + sp.validation)  # TESS: training side only
        assert sum(c.corpus == "tess" for c in sp.train) == extra


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31))
def test_folds_are_balanced_by_gender(per_gender: int, seed: int) -> None:
    k = 2
    speakers = {f"m{i}": "male" for i in range(per_gender * k)} | {f"f{i}": "female" for i in range(per_gender * k)}
    folds = speaker_folds(_clips(speakers, 0), k=k, seed=seed)
    for fold in folds:
        assert sum(s.startswith("ravdess/m") for s in fold.test) == per_gender
        assert sum(s.startswith("ravdess/f") for s in fold.test) == per_gender


def test_default_ravdess_folds_are_four_actors_two_of_each_gender(ravdess: Path) -> None:
    from ser_training.corpora import load_ravdess

    folds = speaker_folds(load_ravdess(ravdess).clips)
    assert len(folds) == 5
    for fold in folds:
        numbers = [int(s.split("/")[1]) for s in fold.test]
        assert len(numbers) == 4 and sum(n % 2 for n in numbers) == 2
        assert len(fold.validation) == 2 and not fold.validation & fold.test
