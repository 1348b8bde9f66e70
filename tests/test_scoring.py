"""The utterance-scoring rule shared by training, evaluation and the daemon."""

from __future__ import annotations

import numpy as np
import pytest

from ser_edge.frontend import DEFAULT_CONFIG, FrontendConfig, compute_features
from ser_edge.recognition.scoring import silence_row, utterance_score, utterance_windows, window_starts
from tests.conftest import PLAIN


@pytest.mark.parametrize(
    ("frames", "expected"),
    [(10, [0]), (149, [0]), (150, [0, 1]), (200, [0, 50, 51]), (249, [0, 50, 100]), (250, [0, 50, 100, 101])],
)
def test_windows_cover_the_whole_utterance(frames: int, expected: list[int]) -> None:
    assert window_starts(frames, 149, 50) == expected


def test_short_utterance_is_padded_with_silence_rows() -> None:
    feats = np.ones((30, 13), np.int8)
    windows = utterance_windows(feats, 149, 50, silence_row(DEFAULT_CONFIG))
    assert windows.shape == (1, 149, 13)
    assert (windows[0, :30] == 1).all()
    assert (windows[0, 30:] == compute_features(np.zeros(16000, np.int16))[0]).all()


def test_silence_row_is_the_floor() -> None:
    row = silence_row(FrontendConfig(**PLAIN))
    assert row[0] == -128 and (row[1:] == 0).all()
    # With gain control silence is the features' floor below the (floored) smoothed level,
    # the same in every frame: padding looks like a second of digital silence.
    row = silence_row(DEFAULT_CONFIG)
    assert row[0] > -128 and (row[1:] == 0).all()
    assert (compute_features(np.zeros(16000, np.int16)) == row).all()


def test_utterance_score_is_the_mean_of_window_scores() -> None:
    scores = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    assert np.allclose(utterance_score(scores), [0.6, 0.4])
