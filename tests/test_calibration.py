"""Temperature scaling: the fitted temperature undoes over- and under-confidence."""

from __future__ import annotations

import numpy as np
import pytest

from ser_training.metrics import expected_calibration_error
from ser_training.train import temperature_fit


def _softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_temperature_recovers_the_miscalibration(scale: float) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2.0, (3000, 8))
    p = _softmax(logits)
    labels = np.array([rng.choice(8, p=row) for row in p])  # labels drawn from the true posterior
    owners = np.arange(len(labels))
    t = temperature_fit(logits * scale, owners, labels)
    assert t == pytest.approx(scale, rel=0.12)
    fixed = _softmax(logits * scale / t)
    ece_before = expected_calibration_error(
        _softmax(logits * scale).max(axis=1), _softmax(logits * scale).argmax(1) == labels
    )
    ece_after = expected_calibration_error(fixed.max(axis=1), fixed.argmax(axis=1) == labels)
    assert ece_after < 0.03 and (scale == 1.0 or ece_after < ece_before)


def test_utterance_scores_are_means_of_their_windows() -> None:
    # Two windows per utterance: the temperature is fitted on the mean of their softmax.
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2.0, (2000, 8))
    labels = np.array([rng.choice(8, p=row) for row in _softmax(logits)])
    doubled = np.repeat(logits, 2, axis=0)
    assert temperature_fit(doubled * 2, np.repeat(np.arange(2000), 2), labels) == pytest.approx(2.0, rel=0.12)
