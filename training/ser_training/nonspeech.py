"""Sound that is not speech, made here: music rendered from generated MIDI through a
General MIDI soundfont (Debian's ``fluidsynth`` and ``fluid-soundfont-gm``), and household
sounds synthesised from noise and tones (clicks, knocks, beeps, running water, synthesiser
notes, a bark). None of it is shared data: the voice gate needs sound that opens an energy
gate but is not a voice, and the shared noise recordings are 9 minutes of 4 kinds.

Training and evaluation draw from different seeds and, for music, from disjoint sets of
instruments, so an evaluation piece is never a training piece in another key.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .noise import key_rng, synth_noise

SAMPLE_RATE = 16000
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
#: General MIDI programs (0-based) the evaluation's music is played on.
_TEST_PROGRAMS = (4, 6, 11, 24, 32, 40, 50, 56, 65, 80, 88)
_VOICE_PROGRAMS = (52, 53, 54)  # choir, voice oohs, synth voice: sung vowels are not what the gate must reject
#: Programs per split: training has every General MIDI program the evaluation does not
#: use, so an evaluation instrument is never heard in training.
INSTRUMENTS = {
    "train": tuple(p for p in range(128) if p not in _TEST_PROGRAMS + _VOICE_PROGRAMS),
    "test": _TEST_PROGRAMS,
}
#: Bumped when random_piece changes, so cached renderings of the old pieces are not reused.
MUSIC_VERSION = 2
HOUSEHOLD = ("clicks", "knocks", "beeps", "water", "synth", "bark")


class RenderError(RuntimeError):
    """fluidsynth is missing or failed."""


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n := n >> 7:
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


def midi_file(events: list[tuple[int, bytes]], tempo_bpm: float, division: int = 480) -> bytes:
    """A format-0 Standard MIDI File from (tick, message) pairs."""
    body = b"\x00\xff\x51\x03" + round(60_000_000 / tempo_bpm).to_bytes(3, "big")
    now = 0
    for tick, message in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):
        body += _vlq(tick - now) + message
        now = tick
    body += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, division) + b"MTrk" + struct.pack(">I", len(body)) + body


def random_piece(seconds: float, split: str, rng: np.random.Generator) -> bytes:
    """A few bars of tonal music: chords, a melody, often a bass line and drums; or, a
    third of the time, a solo line (see ``_solo``)."""
    if rng.random() < 1 / 3:
        return _solo(seconds, split, rng)
    tempo = float(rng.uniform(70, 150))
    beat = 480
    beats = int(seconds * tempo / 60) + 1
    root = int(rng.integers(48, 60))
    scale = (0, 2, 4, 5, 7, 9, 11) if rng.random() < 0.5 else (0, 2, 3, 5, 7, 8, 10)
    chords, melody, bass = (int(p) for p in rng.choice(INSTRUMENTS[split], 3, replace=False))
    events: list[tuple[int, bytes]] = [(0, bytes([0xC0, chords])), (0, bytes([0xC1, melody])), (0, bytes([0xC2, bass]))]

    def note(ch: int, pitch: int, start: int, length: int, velocity: int) -> None:
        events.extend([(start, bytes([0x90 | ch, pitch, velocity])), (start + length, bytes([0x80 | ch, pitch, 0]))])

    degrees = rng.choice([0, 3, 4, 5, 1], 4)
    with_bass, with_drums = rng.random() < 0.7, rng.random() < 0.5
    for bar in range(beats // 4 + 1):
        d = int(degrees[bar % 4])
        for k in (0, 2, 4):
            note(0, root + scale[(d + k) % 7] + 12 * ((d + k) // 7), bar * 4 * beat, 4 * beat, 70)
        if with_bass:
            note(2, root - 12 + scale[d], bar * 4 * beat, 2 * beat, 90)
            note(2, root - 12 + scale[(d + 4) % 7], bar * 4 * beat + 2 * beat, 2 * beat, 80)
        if with_drums:
            for b in range(4):
                note(9, 36 if b % 2 == 0 else 38, (bar * 4 + b) * beat, beat // 4, 100)
                note(9, 42, (bar * 4 + b) * beat + beat // 2, beat // 4, 60)
    t, step = 0, 7 + int(rng.integers(7))
    while t < beats * beat:
        length = int(rng.choice([beat // 2, beat, beat, 2 * beat]))
        step = int(np.clip(step + rng.integers(-2, 3), 0, 13))
        note(1, root + 12 + scale[step % 7] + 12 * (step // 7), t, length, int(rng.integers(70, 110)))
        t += length
    return midi_file(events, tempo)


def _solo(seconds: float, split: str, rng: np.random.Generator) -> bytes:
    """One instrument alone, in phrases of short notes with rests between them, gliding
    between notes (pitch bend) and with vibrato: the music most like a voice, which has
    pitch contours, syllable-length notes and pauses too."""
    beat = 480
    tempo = float(rng.uniform(60, 140))
    program = int(rng.choice(INSTRUMENTS[split]))
    pitch = int(rng.integers(55, 72))
    events: list[tuple[int, bytes]] = [(0, bytes([0xC0, program])), (0, bytes([0xB0, 1, int(rng.integers(0, 90))]))]
    end, t = int(seconds * tempo / 60 * beat) + beat, 0
    while t < end:
        for _ in range(int(rng.integers(3, 9))):  # a phrase
            length = int(rng.choice([beat // 4, beat // 2, beat // 2, beat, 3 * beat // 2]))
            pitch = int(np.clip(pitch + rng.integers(-4, 5), 48, 84))
            velocity = int(rng.integers(60, 120))
            events += [(t, bytes([0x90, pitch, velocity])), (t + length, bytes([0x80, pitch, 0]))]
            if rng.random() < 0.4:  # a glide into the next note: bend to +-1 semitone over the note's end
                bend = 8192 + int(rng.choice([-1, 1])) * 4096
                for j, v in enumerate(np.linspace(8192, bend, 4).astype(int)):
                    events.append((t + length * (4 + j) // 8, bytes([0xE0, v & 0x7F, v >> 7])))
                events.append((t + length, bytes([0xE0, 0, 64])))
            t += length
        t += int(rng.uniform(0.5, 2.5) * beat)  # a rest between phrases
    return midi_file(events, tempo)


def render(midi: bytes, soundfont: Path = SOUNDFONT) -> np.ndarray:
    """MIDI -> int16 mono at 16 kHz through fluidsynth."""
    exe = shutil.which("fluidsynth")
    if not exe or not soundfont.is_file():
        raise RenderError(f"music needs fluidsynth and {soundfont} (Debian: fluidsynth fluid-soundfont-gm)")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "piece.mid", Path(tmp) / "piece.wav"
        mid.write_bytes(midi)
        r = subprocess.run([exe, "-ni", "-q", "-g", "0.7", "-r", str(SAMPLE_RATE), "-F", str(wav), "-T", "wav",
                            str(soundfont), str(mid)], capture_output=True, text=True)  # fmt: skip
        if r.returncode or not wav.is_file():
            raise RenderError(f"fluidsynth failed: {(r.stderr or r.stdout).strip()[:200]}")
        audio, rate = sf.read(str(wav), dtype="float64", always_2d=True)
    if rate != SAMPLE_RATE:
        raise RenderError(f"fluidsynth wrote {rate} Hz, not {SAMPLE_RATE}")
    return to_int16(audio.mean(axis=1))


def pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) to int16, rounded and clipped."""
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def to_int16(x: np.ndarray, peak_dbfs: float = -6.0) -> np.ndarray:
    """Scaled so its peak is at peak_dbfs."""
    peak = np.max(np.abs(x)) + 1e-12
    return np.round(x / peak * 32767 * 10 ** (peak_dbfs / 20)).astype(np.int16)


def music(n: int, seconds: float, split: str, cache: Path | None = None) -> list[np.ndarray]:
    """n rendered pieces of the split, cached as FLAC (rendering is the slow part)."""
    out = []
    for i in range(n):
        path = cache / f"music-v{MUSIC_VERSION}-{split}-{i:03d}-{seconds:g}s.flac" if cache else None
        if path and path.is_file():
            out.append(sf.read(str(path), dtype="int16")[0])
            continue
        pcm = render(random_piece(seconds, split, key_rng("music", split, i)))[: int(seconds * SAMPLE_RATE)]
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), pcm, SAMPLE_RATE)
        out.append(pcm)
    return out


def _bursts(n: int, rng: np.random.Generator, rate_hz: float, make) -> np.ndarray:
    """Events from make(rng) placed at random (Poisson) times over n samples."""
    x = np.zeros(n)
    t = int(rng.exponential(SAMPLE_RATE / rate_hz))
    while t < n:
        e = make(rng)
        x[t : t + e.size] += e[: n - t]
        t += e.size + int(rng.exponential(SAMPLE_RATE / rate_hz))
    return x


def _decay(n: int, tau_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau_s * SAMPLE_RATE))


def _tone(f0: float, n: int, harmonics: int, rng: np.random.Generator, shape: str = "sine") -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    if shape == "square":
        return np.sign(np.sin(2 * np.pi * f0 * t))
    return sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, harmonics + 1))


def household(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A stretch of one synthesised household sound over quiet room tone (int16)."""
    n = int(seconds * SAMPLE_RATE)
    if kind == "clicks":  # typing: 5 ms clicks, 3-8 a second
        x = _bursts(n, rng, rng.uniform(3, 8), lambda r: r.normal(0, 1, 80) * _decay(80, 0.001))
    elif kind == "knocks":  # doors and knocks: low, loud, 0.1-0.3 s

        def knock(r):
            m = int(r.uniform(0.1, 0.3) * SAMPLE_RATE)
            return np.convolve(r.normal(0, 1, m), np.ones(8) / 8, "same") * _decay(m, 0.04)

        x = _bursts(n, rng, 0.4, knock)
    elif kind == "beeps":  # appliances and alarms
        f = rng.uniform(500, 3000)
        x = _bursts(n, rng, 1.0, lambda r: _tone(f, int(r.uniform(0.1, 0.5) * SAMPLE_RATE), 1, r))
    elif kind == "water":  # running water: band noise, slowly modulated
        swell = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * np.arange(n) / SAMPLE_RATE)
        x = synth_noise("pink", n, rng) * swell
    elif kind == "synth":  # synthesiser notes with vibrato

        def note(r):
            m = int(r.uniform(0.5, 2.0) * SAMPLE_RATE)
            f0 = 110 * 2 ** (r.integers(0, 36) / 12) * (1 + 0.01 * np.sin(2 * np.pi * 5 * np.arange(m) / SAMPLE_RATE))
            return np.sign(np.sin(2 * np.pi * np.cumsum(f0) / SAMPLE_RATE)) * _decay(m, 1.0)

        x = _bursts(n, rng, 1.5, note)
    elif kind == "bark":  # a dog: harmonic yelps with falling pitch

        def yelp(r):
            m = int(r.uniform(0.15, 0.35) * SAMPLE_RATE)
            f0 = r.uniform(400, 800) * np.linspace(1.2, 0.8, m)
            phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
            return sum(np.sin(k * phase) / k for k in range(1, 6)) * np.hanning(m)

        x = _bursts(n, rng, 0.5, yelp)
    else:
        raise ValueError(f"unknown household sound {kind!r}; choose from {', '.join(HOUSEHOLD)}")
    x = x / (np.max(np.abs(x)) + 1e-12) * 10 ** (rng.uniform(-20, -6) / 20)
    tone = synth_noise("pink", n, rng) * 10 ** (-65 / 20)
    return pcm16(x + tone)
