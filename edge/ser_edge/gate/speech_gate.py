"""The speech gate (gate.kind: speech): a gate that decides *voice*, not loudness.

Three stages, each cheap enough for the Arduino node:
1. the energy gate, with low thresholds (``wake_db``), cuts candidate stretches: anything
   a few dB above the noise floor, so a talker at 0 dB SNR still wakes the next stage;
2. the speech gate's int8 model (its own bundle, ``ser-gate``) scores windows of the
   candidate's front-end rows (1 s every 0.2 s since ser-gate 0.4; the bundle's ``scoring``
   says): the rows the emotion model uses, so it costs no second front end;
3. a k-of-n state machine over those windows: speech starts when ``min_windows`` of the
   last ``of_windows`` windows reach the threshold, and ends after ``hangover`` windows in
   a row below it. Each such span, with the gate's pre-roll before it and its hangover
   after it, is an utterance.
Music, fans, doors and clicks wake stage 1; stages 2 and 3 are what stop them becoming
emotion events. TV and radio dialogue is speech and passes.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ser_edge.frontend import compute_features
from ser_edge.gate.vad import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, Gate, GateUnits, Utterance
from ser_edge.recognition.bundle import Bundle, BundleError, load_bundle
from ser_edge.recognition.model import EmotionModel
from ser_edge.recognition.scoring import pad_to, silence_row
from ser_edge.settings import GateSettings


@dataclass(frozen=True)
class SpeechRule:
    """The state machine's settings, in windows."""

    threshold: float
    """A window is speech when its P(speech) reaches this."""
    min_windows: int
    """Speech starts when this many ..."""
    of_windows: int
    """... of the last this many windows are speech."""
    hangover: int
    """Windows in a row below the threshold that end it."""

    @classmethod
    def of(cls, s: GateSettings, hop_frames: int) -> SpeechRule:
        hangover = max(1, math.ceil(s.speech_hangover_ms / (hop_frames * FRAME_MS)))
        return cls(s.speech_threshold, s.speech_min_windows, s.speech_of_windows, hangover)


def speech_spans(p: np.ndarray, rule: SpeechRule) -> list[tuple[int, int]]:
    """(first, last) window of each stretch of speech in a sequence of P(speech): it
    starts at the first speech window among the last ``of_windows`` once ``min_windows``
    of them are speech, and ends at the last speech window before ``hangover`` windows
    below the threshold (or at the end). A stretch with fewer windows than ``min_windows``
    (a single word: the energy stage's stretch around it holds one to three) is speech when
    all of its windows are. Pure, and what the node's C gate computes."""
    spans = []
    recent: deque[int] = deque(maxlen=rule.of_windows)
    first = last = misses = -1
    for j, speech in enumerate(p >= rule.threshold):
        if first < 0:
            recent.append(j if speech else -1)
            if sum(i >= 0 for i in recent) >= rule.min_windows:
                first, last, misses = next(i for i in recent if i >= 0), j, 0
                recent.clear()
        elif speech:
            last, misses = j, 0
        else:
            misses += 1
            if misses >= rule.hangover:
                spans.append((first, last))
                first = -1
    if first >= 0:
        spans.append((first, last))
    if 0 < len(p) < rule.min_windows and bool(np.all(p >= rule.threshold)):
        spans.append((0, len(p) - 1))
    return spans


class SpeechModel:
    """P(speech) of windows of front-end rows (the bundle's scoring), on the speech gate's int8 model."""

    def __init__(self, bundle: Bundle) -> None:
        if "speech" not in bundle.labels:
            raise BundleError(f"{bundle.path}: not a speech gate bundle (labels {list(bundle.labels)}, no 'speech')")
        self.bundle = bundle
        self.window, self.hop = bundle.window_frames, bundle.hop_frames
        self._model = EmotionModel(bundle)  # the same int8 stage: windows in, scores out
        self._speech = bundle.labels.index("speech")
        self._pad = silence_row(bundle.frontend)
        silence = float(self.probabilities(np.repeat(self._pad[None], self.window, 0))[0])
        if silence >= 0.5:  # every other check passes a bundle whose labels are in the wrong order
            raise BundleError(f"{bundle.path}: scores silence as speech (P(speech) {silence:.2f}); "
                              "its labels are swapped or it is not a speech gate")  # fmt: skip

    def threshold_q(self, threshold: float) -> int:
        """The smallest int8 output whose P(speech) reaches threshold (128: none does): the
        node's C rule compares raw scores with it and so decides as the Pi does."""
        q = np.arange(-128, 128)
        reach = np.flatnonzero(self.dequantise(q.astype(np.int8)) >= threshold)
        return int(q[reach[0]]) if reach.size else 128

    def dequantise(self, raw: np.ndarray) -> np.ndarray:
        """P(speech) of raw int8 speech scores (the output's quantisation is per tensor)."""
        return self._model.dequantise(raw)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """One P(speech) per window start 0, hop, 2 hop ...: the windows a stream has when
        they are complete (rows shorter than a window are padded with silence rows)."""
        rows = pad_to(rows, self.window, self._pad)
        starts = range(0, len(rows) - self.window + 1, self.hop)
        return self._model.window_scores(np.stack([rows[s : s + self.window] for s in starts]))[:, self._speech]


class SpeechGate:
    """Push int16 chunks with the time of their first sample; get the speech in them.
    The same interface as vad.Gate, which it wraps as its first stage."""

    def __init__(self, s: GateSettings, model: SpeechModel) -> None:
        self.settings, self.model = s, model
        self.energy = Gate(dataclasses.replace(s, start_db=s.wake_db, stop_db=s.wake_stop_db))
        self.rule = SpeechRule.of(s, model.hop)
        units = GateUnits.of(s)
        self._preroll, self._tail = units.preroll, units.hangover
        self.rejected = 0
        """Stretches the energy stage woke the model for that had no speech in them (see take_rejected)."""
        self.probability = 0.0
        """Mean P(speech) of the last candidate's windows (for stats and monitors)."""

    @property
    def voiced(self) -> bool:
        return self.energy.voiced

    @property
    def level_db(self) -> float:
        return self.energy.level_db

    @property
    def in_speech(self) -> bool:
        return self.energy.in_speech

    def push(self, pcm: np.ndarray, t: float) -> list[Utterance]:
        return [u for c in self.energy.push(pcm, t) for u in self.speech_in(c)]

    def flush(self) -> list[Utterance]:
        return [u for c in self.energy.flush() for u in self.speech_in(c)]

    def speech_in(self, candidate: Utterance) -> list[Utterance]:
        """The utterances of speech in a stretch the energy stage cut: each span of speech
        windows, from the pre-roll before its first window to the hangover after its last,
        the margins the energy gate keeps (and the emotion model was trained with: without
        the hangover, clean accuracy fell 2.4 points)."""
        out = []
        fe = self.model.bundle.frontend
        rows = compute_features(candidate.pcm, cfg=fe)
        for first, last in self._spans(rows):
            a = max(0, first - self._preroll)
            b = min(candidate.pcm.size // FRAME_SAMPLES, last + self._tail)
            start = candidate.start + a * FRAME_SAMPLES / SAMPLE_RATE
            pcm = candidate.pcm[a * FRAME_SAMPLES : b * FRAME_SAMPLES]
            out.append(Utterance(pcm, start, start + pcm.size / SAMPLE_RATE, rows[a : b - 1], fe))
        return out

    def _spans(self, rows: np.ndarray) -> list[tuple[int, int]]:
        """(first, end) rows of each stretch of speech in a candidate's rows; a candidate
        without any is counted in rejected, and the mean P(speech) kept in probability."""
        p = self.model.probabilities(rows)
        self.probability = round(float(p.mean()), 3)
        spans = speech_spans(p, self.rule)
        self.rejected += not spans
        return [(first * self.model.hop, last * self.model.hop + self.model.window) for first, last in spans]

    def take_rejected(self) -> int:
        """Candidates without speech since the last call."""
        n, self.rejected = self.rejected, 0
        return n


def make_gate(s: GateSettings, emotion_bundle: Bundle | None = None) -> Gate | SpeechGate:
    """The gate gate.kind asks for; the speech gate's front end must be the emotion model's
    (their rows are the same rows)."""
    if s.kind != "speech":
        return Gate(s)
    try:
        bundle = load_bundle(s.speech_bundle, frontend=emotion_bundle.frontend if emotion_bundle else None)
        return SpeechGate(s, SpeechModel(bundle))
    except BundleError as e:
        raise GateBundleError(f"gate.speech_bundle: {e}") from None


class GateBundleError(BundleError):
    """The speech gate's bundle cannot be used (named as gate.speech_bundle, not model.bundle)."""


def same_gate(a: Gate | SpeechGate, b: Gate | SpeechGate) -> bool:
    """Whether two gates decide alike: the same settings and, for speech gates, the same model."""
    if a.settings != b.settings:
        return False
    return not isinstance(a, SpeechGate) or a.model.bundle.sha256 == b.model.bundle.sha256
