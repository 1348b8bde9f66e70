"""Loss weights that balance emotions, and corpora within each emotion; mixup's blends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser_training.corpora import EMOTIONS, Clip
from ser_training.train import balanced_weights, mixup


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


def test_mixup_blends_windows_targets_and_weights_with_one_share_each() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 127, (64, 5, 3)).astype(np.float32)
    t = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 64)]
    w = rng.uniform(0.5, 2.0, 64).astype(np.float32)
    mx, mt, mw = mixup(x, t, w, 0.4, np.random.default_rng(1))
    np.testing.assert_allclose(mt.sum(axis=1), 1.0, rtol=1e-5)  # still a distribution
    shares = []
    for i in range(64):  # share * own + (1 - share) * one partner, the same for all three
        found = [
            s for k in range(64) if k != i
            for s in [(mw[i] - w[k]) / (w[i] - w[k])]
            if -1e-4 <= s <= 1 + 1e-4 and np.allclose(mx[i], s * x[i] + (1 - s) * x[k], atol=1e-2)
            and np.allclose(mt[i], s * t[i] + (1 - s) * t[k], atol=1e-4)
        ]  # fmt: skip
        if not found:  # its own partner: unchanged
            assert np.array_equal(mx[i], x[i]) and np.array_equal(mt[i], t[i])
        shares += found[:1]
    assert len(shares) > 50 and 0.2 < float(np.mean(np.abs(np.array(shares) - 1))) < 0.8  # it really mixes
