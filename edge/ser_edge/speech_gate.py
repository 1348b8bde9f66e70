"""The speech check: does an utterance the energy gate cut sound like a voice? The speech
gate's int8 model (its own bundle, ``ser-gate``) scores 0.5 s windows of the utterance's
own front-end rows, the ones the emotion model gets, so it costs no second front end; the
utterance is kept when at least ``min_windows`` of them reach ``threshold``. Music, fans,
doors and clicks open an energy gate; this is what stops them becoming emotion events.
"""

from __future__ import annotations

import numpy as np

from .bundle import Bundle, BundleError
from .model import EmotionModel
from .scoring import silence_row, utterance_windows


class SpeechCheck:
    """Speech probabilities of an utterance's windows, and the keep-or-drop rule."""

    def __init__(self, bundle: Bundle, threshold: float = 0.5, min_windows: int = 2) -> None:
        self.bundle, self.threshold, self.min_windows = bundle, threshold, min_windows
        if "speech" not in bundle.labels:
            raise BundleError(f"{bundle.path}: not a speech gate bundle (labels {list(bundle.labels)}, no 'speech')")
        self._model = EmotionModel(bundle)  # the same int8 stage: windows in, scores out
        self._speech = bundle.labels.index("speech")
        self._pad = silence_row(bundle.frontend)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(speech) of each window (short utterances padded with silence rows, as for emotions)."""
        windows = utterance_windows(rows, self.bundle.window_frames, self.bundle.hop_frames, self._pad)
        return self._model.window_scores(windows)[:, self._speech]

    def keeps(self, probabilities: np.ndarray) -> bool:
        """At least min_windows windows (all of them, if fewer) at or above the threshold."""
        needed = min(self.min_windows, len(probabilities))
        return int((probabilities >= self.threshold).sum()) >= needed
