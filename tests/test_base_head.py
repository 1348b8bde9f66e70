"""ser-base's head and its trials: weights, calibration, export, and speakers kept apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ser_training.base_config import BaseConfig, HeadConfig
from ser_training.base_head import (
    class_prior,
    epoch_views,
    head_tflite,
    logit_shift,
    probabilities,
    sample_weights,
    train_head,
)
from ser_training.corpora import EMOTIONS, Clip
from ser_training.serbase import Table, trials, validation_speakers


def test_sample_weights_balance_classes_within_a_corpus_and_corpora_by_sqrt_size() -> None:
    corpora = np.array(["a"] * 90 + ["a"] * 10 + ["b"] * 25)
    y = np.array([0] * 90 + [1] * 10 + [2] * 25)
    w = sample_weights(corpora, y)
    assert w.mean() == pytest.approx(1.0)
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())  # a's two classes weigh the same
    assert w[corpora == "a"].sum() / w[corpora == "b"].sum() == pytest.approx(np.sqrt(100 / 25))


def test_class_prior_counts_weight_and_absent_classes_shift_as_the_rarest() -> None:
    prior = class_prior(np.array([0, 0, 1, 2]), np.array([1.0, 1.0, 2.0, 1.0]))
    assert prior.sum() == pytest.approx(1.0) and prior[0] == pytest.approx(prior[1]) == pytest.approx(2 * prior[2])
    assert (prior[3:] == 0).all()
    shift = logit_shift(prior, 0.5)
    assert shift[0] == pytest.approx(0.5 * np.log(0.4)) and (shift[3:] == shift[2]).all()


def test_epoch_views_take_the_original_at_the_asked_rate() -> None:
    v = epoch_views(4, 20000, 0.4, np.random.default_rng(0))
    assert (v == 0).mean() == pytest.approx(0.4, abs=0.02)
    assert set(np.unique(v)) == {0, 1, 2, 3}
    assert (epoch_views(1, 10, 0.0, np.random.default_rng(0)) == 0).all()


def _separable(n: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(0, 1, (len(EMOTIONS), width))
    y = rng.integers(0, len(EMOTIONS), n)
    x = centres[y][:, None, :] + rng.normal(0, 0.6, (n, 2, width))  # two views per clip
    return x.astype(np.float32), y


def test_head_learns_and_its_tflite_scores_equal_keras() -> None:
    rng = np.random.default_rng(1)
    x, y = _separable(800, 32, rng)
    cfg = HeadConfig(hidden=32, epochs=15, batch_size=64, learning_rate=0.01)
    model, record = train_head(x[:600], y[:600], ["c"] * 600, cfg, (x[600:700, 0], y[600:700]))
    p = probabilities(model, x[700:, 0])
    assert (p.argmax(axis=1) == y[700:]).mean() > 0.9
    assert 0.25 <= record["temperature"] <= 8.0
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=head_tflite(model))
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    for row, expected in zip(x[700:720, 0], p[:20], strict=True):
        interp.set_tensor(i, row[None])
        interp.invoke()
        assert np.abs(interp.get_tensor(o)[0] - expected).max() < 1e-5


def test_logit_adjustment_balances_answers_on_a_skewed_corpus() -> None:
    """A class that is 5 % of training: without adjustment the head rarely says it on
    balanced test clips; with it, about as often as the others."""
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 0.35, (2, 16))  # overlapping classes: the prior decides close calls
    y = (rng.random(4000) < 0.05).astype(int)
    x = (centres[y] + rng.normal(0, 1, (4000, 16)))[:, None, :].astype(np.float32)
    test_y = np.repeat([0, 1], 500)
    test_x = (centres[test_y] + rng.normal(0, 1, (1000, 16))).astype(np.float32)
    shares = {}
    for tau in (0.0, 1.0):
        cfg = HeadConfig(hidden=0, epochs=10, batch_size=128, learning_rate=0.01, logit_adjust=tau, calibrate=False)
        # one corpus per class: the weights leave the 95/5 prior in place, as two corpora would
        model, _ = train_head(x, y, np.where(y == 1, "rare", "common"), cfg)
        shares[tau] = (probabilities(model, test_x).argmax(axis=1) == 1).mean()
    assert shares[0.0] < 0.25 and shares[1.0] > 0.35


def _clips() -> list[Clip]:
    out = []
    for actor in range(1, 21):
        gender = "male" if actor % 2 else "female"
        out += [Clip(Path(f"r{actor}-{i}.flac"), EMOTIONS[i % 8], f"ravdess/{actor:02d}", "ravdess", gender)
                for i in range(8)]  # fmt: skip
    out += [Clip(Path(f"e{s}-{i}.flac"), "angry", f"emodb/{s}", "emodb") for s in range(10) for i in range(5)]
    out += [Clip(Path(f"s{i}.flac"), "calm", "emospeech/unknown", "emospeech") for i in range(70)]
    out += [Clip(Path(f"s-{s}.flac"), "happy", f"emospeech/{s}", "emospeech") for s in range(30)]
    return out


def test_validation_speakers_stay_within_their_share_of_each_corpus() -> None:
    clips = _clips()
    chosen = validation_speakers(clips, 0.15, seed=0)
    for corpus in ("ravdess", "emodb", "emospeech"):
        inside = [c for c in clips if c.corpus == corpus]
        held = sum(c.speaker in chosen for c in inside)
        assert 0 < held <= 0.15 * len(inside)
    assert "emospeech/unknown" not in chosen  # 70 % of its corpus: never a validation speaker


def test_trials_never_put_a_speaker_or_a_held_out_corpus_on_two_sides() -> None:
    clips = _clips()
    table = Table(tuple(clips), np.zeros((len(clips), 1, 4), np.float16))
    speakers, corpora = table.column("speaker"), table.column("corpus")
    found = trials(table, BaseConfig(), ["emodb"])
    assert [t.name for t in found] == [*(f"ravdess fold {k}" for k in range(1, 6)), "without emodb"]
    tested = set()
    for t in found:
        assert not (t.train & t.test).any() and not (t.validation & t.test).any() and not (t.train & t.validation).any()
        sides = [set(speakers[m]) for m in (t.train, t.validation, t.test)]
        assert not (sides[0] & sides[2]) and not (sides[1] & sides[2]) and not (sides[0] & sides[1])
        if t.held_out_corpus:
            assert set(corpora[t.test]) == {"emodb"} and "emodb" not in set(corpora[t.train | t.validation])
        else:
            assert set(corpora[t.test]) == {"ravdess"} and len(sides[2]) == 4
            tested |= sides[2]
    assert len(tested) == 20  # every actor is tested once
