"""The one utterance-scoring rule, shared by training, evaluation and the daemon.

An utterance's feature rows are cut into fixed-length windows (padded with silence
rows when too short); the model scores each window and the utterance's score is the
mean of the window scores.
"""

from __future__ import annotations

import numpy as np

from ser_edge.frontend import FrontendConfig, compute_features


def silence_row(cfg: FrontendConfig) -> np.ndarray:
    """The front end's output for digital silence: what padding looks like."""
    return compute_features(np.zeros(cfg.window_samples, np.int16), cfg=cfg)[0]


def window_starts(n_frames: int, window: int, hop: int) -> list[int]:
    """Starts of windows of ``window`` rows every ``hop`` rows; a last window is aligned
    to the end when the regular ones miss the tail. One window if the utterance is short."""
    if n_frames <= window:
        return [0]
    starts = list(range(0, n_frames - window + 1, hop))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return starts


def pad_to(features: np.ndarray, frames: int, pad: np.ndarray) -> np.ndarray:
    """features extended with ``pad`` rows to at least ``frames`` rows."""
    if features.shape[0] >= frames:
        return features
    return np.concatenate([features, np.broadcast_to(pad, (frames - features.shape[0], features.shape[1]))])


def utterance_windows(features: np.ndarray, window: int, hop: int, pad: np.ndarray) -> np.ndarray:
    """(n_windows, window, columns) int8 windows of one utterance's features."""
    features = pad_to(features, window, pad)
    starts = window_starts(features.shape[0], window, hop)
    return np.stack([features[s : s + window] for s in starts])


def utterance_score(window_scores: np.ndarray) -> np.ndarray:
    """Mean of the windows' class scores."""
    return np.asarray(window_scores, dtype=np.float64).mean(axis=0)
