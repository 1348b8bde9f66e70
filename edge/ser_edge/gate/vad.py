"""The voice activity gate: a continuous int16 stream in, utterances (with their times) out.

Each 20 ms frame is judged voiced or not; a small state machine turns those judgements
into utterances with an onset time, hangover, pre-roll and length limits.

The default judge is integer-only so the Arduino port can match it: the frame's level is
the log2 of its mean square (Q10, the front end's table log), compared against an
adaptive noise floor with hysteresis (a higher bar to start than to continue), and
frames that cross zero too often (hiss) are not voice. The floor follows the quietest
frames of the last few seconds, so a fan that starts up stops holding the gate open
within about 3 s; it never goes below ``floor_db``. webrtcvad can judge instead when it
is installed.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from ser_edge.audio.dc import DcRemover
from ser_edge.frontend import DEFAULT_CONFIG, FrontendConfig, compute_features
from ser_edge.frontend.fixed import log2_mean_square, sign_changes
from ser_edge.frontend.tables import LOG_FRAC_BITS, tables_for
from ser_edge.settings import GateSettings

SAMPLE_RATE = 16000
FRAME_SAMPLES = 320  # 20 ms, a frame size webrtcvad accepts too
FRAME_MS = 1000 * FRAME_SAMPLES // SAMPLE_RATE

_DB_PER_LOG2 = 10 * math.log10(2)
_LOG2_FRAME_Q10 = round(math.log2(FRAME_SAMPLES) * (1 << LOG_FRAC_BITS))


def db_to_q10(db: float) -> int:
    """A level difference in dB as log2 units in Q10 (the gate's integer scale)."""
    return round(db / _DB_PER_LOG2 * (1 << LOG_FRAC_BITS))


def frame_levels(frames: np.ndarray) -> np.ndarray:
    """log2 of each frame's mean square relative to full scale, Q10 (<= 0)."""
    return log2_mean_square(frames, _LOG2_FRAME_Q10, tables_for(DEFAULT_CONFIG))


@dataclass(frozen=True)
class GateUnits:
    """GateSettings in the integer units the gate works in; the C gate
    (deploy/arduino/ser_node/vad.h, struct ser_vad_settings) takes the same nine fields."""

    min_floor_q10: int
    start_q10: int
    stop_q10: int
    max_crossings: int
    onset: int
    """Frames from here on."""
    hangover: int
    min_frames: int
    max_frames: int
    preroll: int

    @classmethod
    def of(cls, s: GateSettings) -> GateUnits:
        return cls(
            db_to_q10(s.floor_db), db_to_q10(s.start_db), db_to_q10(s.stop_db),
            round(s.max_zcr * (FRAME_SAMPLES - 1)), max(1, s.onset_ms // FRAME_MS),
            max(1, s.hangover_ms // FRAME_MS), max(1, s.min_utterance_ms // FRAME_MS),
            s.max_utterance_ms // FRAME_MS, s.preroll_ms // FRAME_MS,
        )  # fmt: skip


class EnergyJudge:
    """Integer voiced/unvoiced decision against an adaptive noise floor.

    The floor follows the minimum frame level of the last 3 s (minimum statistics, kept
    as minima of 0.5 s blocks so each frame costs O(1) on a microcontroller): speech
    always has quieter gaps within that span, steady noise does not. The floor drops
    at once and rises by 1/8 of the difference per frame. Frames below ``floor_db`` carry
    no signal (digital silence between replayed files, a muted input): they are unvoiced
    and leave the floor alone, so the floor starts at the first frame with signal and a
    room's noise after a stretch of zeros does not open the gate. Half a second of no
    signal ends the recording as far as the floor is concerned: the next signal starts
    it afresh, as a new stream would.
    """

    BLOCK_FRAMES = 25
    BLOCKS = 6

    def __init__(self, s: GateSettings) -> None:
        self.units = GateUnits.of(s)
        self.floor: int | None = None
        self._minima: deque[int] = deque(maxlen=self.BLOCKS)
        self._block_min = 0
        self._block_frames = 0
        self._silent = 0  # frames in a row without signal

    def __call__(self, frame: np.ndarray, level: int, crossings: int, in_speech: bool) -> bool:
        u = self.units
        if level < u.min_floor_q10:
            self._silent += 1
            if self._silent == self.BLOCK_FRAMES:
                self.floor, self._block_frames = None, 0
                self._minima.clear()
            return False
        self._silent = 0
        if self.floor is None:
            self.floor = level
        voiced = level >= self.floor + (u.stop_q10 if in_speech else u.start_q10) and crossings <= u.max_crossings
        self._block_min = level if self._block_frames == 0 else min(self._block_min, level)
        self._block_frames += 1
        target = min(self._block_min, *self._minima) if self._minima else self._block_min
        if self._block_frames == self.BLOCK_FRAMES:
            self._minima.append(self._block_min)
            self._block_frames = 0
        self.floor = target if target < self.floor else self.floor + ((target - self.floor) >> 3)
        self.floor = max(self.floor, u.min_floor_q10)
        return voiced


class WebrtcJudge:
    """webrtcvad's decision per frame (needs the optional webrtcvad package)."""

    def __init__(self, s: GateSettings) -> None:
        try:
            import webrtcvad
        except ImportError:
            raise ValueError(
                "gate.engine is webrtcvad but the webrtcvad package is not installed "
                "(pip install 'ser-edge[vad]'), or use gate.engine: energy"
            ) from None
        self._vad = webrtcvad.Vad(s.webrtcvad_mode)

    def __call__(self, frame: np.ndarray, level: int, crossings: int, in_speech: bool) -> bool:
        return self._vad.is_speech(frame.astype("<i2").tobytes(), SAMPLE_RATE)


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech: its samples and the wall-clock times of its ends."""

    pcm: np.ndarray
    start: float
    """UNIX time of the first sample."""
    end: float
    """UNIX time just after the last sample."""
    rows: np.ndarray | None = None
    """Its front-end rows when the gate computed them already: the speech gate's are the
    span's rows of its candidate stretch's front end, as a node in features mode sends them
    (the front end's memory starts at the stretch, not at the span)."""
    rows_frontend: FrontendConfig | None = None
    """The front end those rows came from."""

    @property
    def seconds(self) -> float:
        return self.pcm.size / SAMPLE_RATE

    def features(self, cfg: FrontendConfig) -> np.ndarray:
        """The rows a model on front end ``cfg`` scores: the gate's when they are that front
        end's, else the front end's on the samples."""
        if self.rows is not None and self.rows_frontend == cfg:
            return self.rows
        return compute_features(self.pcm, cfg=cfg)


class Gate:
    """Push int16 chunks with the time of their first sample; get finished utterances."""

    def __init__(self, s: GateSettings) -> None:
        self.settings = s
        self.judge = WebrtcJudge(s) if s.engine == "webrtcvad" else EnergyJudge(s)
        u = GateUnits.of(s)
        self._onset, self._hangover, self._min, self._max = u.onset, u.hangover, u.min_frames, u.max_frames
        self._no_signal = u.min_floor_q10  # frames below this level are digital silence
        self._pre: deque[tuple[np.ndarray, float]] = deque(maxlen=u.preroll + u.onset)
        self._speech: list[tuple[np.ndarray, float]] = []
        self._dc = DcRemover()
        self._pending = np.zeros(0, np.int16)
        self._pending_t = 0.0
        self._open = False
        self._run = 0  # voiced frames in a row (closed) or unvoiced frames in a row (open)
        self._voiced = (0, 0)  # first and last voiced frame of the open utterance (indices into _speech)
        self.voiced = False
        """The last frame's judgement (for monitors)."""
        self.level_db = -120.0
        """The last frame's level in dBFS (for monitors)."""

    @property
    def in_speech(self) -> bool:
        return self._open

    def push(self, pcm: np.ndarray, t: float) -> list[Utterance]:
        """Feed samples whose first is at UNIX time t."""
        pcm = self._dc(pcm)
        if self._pending.size == 0:
            self._pending_t = t
        data = np.concatenate([self._pending, pcm])
        n = data.size // FRAME_SAMPLES
        frames = data[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
        t0 = self._pending_t
        self._pending = data[n * FRAME_SAMPLES :]
        self._pending_t = t0 + n * FRAME_SAMPLES / SAMPLE_RATE
        levels, crossings = frame_levels(frames).tolist(), sign_changes(frames).tolist()
        out = []
        for i, frame in enumerate(frames):
            self.level_db = max(levels[i] / (1 << LOG_FRAC_BITS) * _DB_PER_LOG2, -120.0)
            self.voiced = self.judge(frame, levels[i], crossings[i], self._open)
            utterance = self._step(
                frame, t0 + i * FRAME_SAMPLES / SAMPLE_RATE, self.voiced, levels[i] >= self._no_signal
            )
            if utterance is not None:
                out.append(utterance)
        return out

    def flush(self) -> list[Utterance]:
        """End of stream: the open utterance, if long enough; then start afresh."""
        out = self._close()
        self._open = False
        self._pre.clear()
        self._pending = np.zeros(0, np.int16)
        return [out] if out is not None else []

    def _step(self, frame: np.ndarray, t: float, voiced: bool, signal: bool) -> Utterance | None:
        if not self._open:
            if signal:
                self._pre.append((frame, t))
            else:  # the pre-roll is what came after the last digital silence, never the silence
                self._pre.clear()
            self._run = self._run + 1 if voiced else 0
            if self._run >= self._onset:
                self._open, self._speech = True, list(self._pre)
                self._voiced = (len(self._speech) - self._run, len(self._speech) - 1)
                self._pre.clear()
                self._run = 0
            return None
        self._speech.append((frame, t))
        self._run = 0 if voiced else self._run + 1
        if voiced:
            self._voiced = (self._voiced[0], len(self._speech) - 1)
        if self._run >= self._hangover:
            self._open = False
            return self._close()
        if len(self._speech) >= self._max:  # long speech is cut; the gate stays open
            return self._close()
        return None

    def _close(self) -> Utterance | None:
        """The utterance so far, unless its voiced part (onset to last voiced frame) is too short."""
        frames, self._speech, self._run = self._speech, [], 0
        first, last = self._voiced
        self._voiced = (0, -1)
        if not frames or last - first + 1 < self._min:
            return None
        pcm = np.concatenate([f for f, _ in frames])
        start = frames[0][1]
        return Utterance(pcm, start, start + pcm.size / SAMPLE_RATE)
