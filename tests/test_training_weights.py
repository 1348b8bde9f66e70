"""Loss weights that balance emotions, and corpora within each emotion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser_training.corpora import EMOTIONS, Clip
from ser_training.train import balanced_weights


def _clips(corpus: str, counts: dict[str, int]) -> list[Clip]:
    return [Clip(Path(f"{corpus}-{e}-{i}.wav"), e, f"{corpus}/0", corpus) for e, n in counts.items() for i in range(n)]


def test_one_corpus_gets_inverse_class_frequency() -> None:
    main = _clips("ravdess", {"neutral": 20, "calm": 40, "angry": 40})
    w = balanced_weights(main, [], 0.0)
    assert w[("ravdess", 0)] == pytest.approx(100 / (3 * 20)) and w[("ravdess", 1)] == pytest.approx(100 / (3 * 40))


def test_every_emotion_weighs_the_same_and_corpora_share_an_emotion_equally() -> None:
    main = _clips("ravdess", {"calm": 40, "angry": 40, "sad": 40})
    extra = _clips("tess", {"angry": 400, "sad": 100})  # no calm, five times as many angry as sad
    share = 0.5  # half of the extra corpus in an average epoch
    w = balanced_weights(main, extra, share)
    epoch = [(c.corpus, EMOTIONS.index(c.label), 1.0) for c in main] + [
        (c.corpus, EMOTIONS.index(c.label), share) for c in extra]  # fmt: skip
    per_class = {k: sum(w[c, kk] * n for c, kk, n in epoch if kk == k) for _, k, _ in epoch}
    assert np.allclose(list(per_class.values()), per_class[4])
    angry = {corpus: sum(w[c, k] * n for c, k, n in epoch if k == 4 and c == corpus) for corpus in ("ravdess", "tess")}
    assert angry["ravdess"] == pytest.approx(angry["tess"])
    total = sum(n for *_, n in epoch)
    assert sum(w[c, k] * n for c, k, n in epoch) == pytest.approx(total)  # mean weight 1 over an epoch
