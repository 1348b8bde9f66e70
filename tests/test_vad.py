"""The voice activity gate on real speech and on made-up signals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.gate.vad import FRAME_SAMPLES, Gate, db_to_q10, frame_levels
from ser_edge.settings import GateSettings
from tests.conftest import SAMPLES

RATE = 16000


def _run(gate: Gate, pcm: np.ndarray, chunk: int = 1600, t0: float = 1000.0) -> list:
    out = []
    for i in range(0, pcm.size, chunk):
        out += gate.push(pcm[i : i + chunk], t0 + i / RATE)
    return out + gate.flush()


def _speech() -> np.ndarray:
    return read_audio(SAMPLES[4])  # angry: loud, about 3.4 s of speech inside 4.2 s


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), np.int16)


def test_levels_are_log2_mean_square_in_q10() -> None:
    rng = np.random.default_rng(0)
    frames = np.stack([np.full(FRAME_SAMPLES, 16384, np.int16),  # -6.02 dBFS
                       np.round(rng.normal(0, 328, FRAME_SAMPLES)).astype(np.int16)])  # ~ -40 dBFS  # fmt: skip
    levels = frame_levels(frames) / 1024 * 3.0103
    assert levels[0] == pytest.approx(-6.02, abs=0.02) and levels[1] == pytest.approx(-40, abs=0.6)
    assert db_to_q10(12) == round(12 / 3.0103 * 1024)


def test_one_utterance_with_preroll_and_hangover() -> None:
    speech = _speech()
    pcm = np.concatenate([_silence(1.0), speech, _silence(1.5)])
    (u,) = _run(Gate(GateSettings()), pcm)
    # The stream's first second is digital silence: no signal, so it neither opens the gate
    # nor sets the floor. The clip's room tone does; its first audible sounds (a breath at
    # -58 dBFS, 20 dB above its quietest frames) open the gate 0.2 s into the clip.
    assert 1000.0 + 0.7 < u.start < 1000.0 + 1.8  # less the 300 ms pre-roll
    assert u.end == pytest.approx(u.start + u.pcm.size / RATE)
    assert u.pcm.size % FRAME_SAMPLES == 0
    # The utterance is real samples of the stream, from its start on.
    offset = round((u.start - 1000.0) * RATE)
    assert np.array_equal(u.pcm, pcm[offset : offset + u.pcm.size])
    assert u.end < 1000.0 + 1.0 + speech.size / RATE + 0.6  # closed by the 500 ms hangover


def test_chunking_does_not_change_the_result() -> None:
    pcm = np.concatenate([_silence(0.5), _speech(), _silence(1.0), _speech(), _silence(1.0)])
    a = _run(Gate(GateSettings()), pcm, chunk=1600)
    b = _run(Gate(GateSettings()), pcm, chunk=123)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b, strict=True):
        assert x.start == pytest.approx(y.start) and np.array_equal(x.pcm, y.pcm)


def test_digital_silence_neither_opens_the_gate_nor_sets_the_floor() -> None:
    rng = np.random.default_rng(3)
    speech = _speech()
    room = rng.normal(0, 20, 3 * RATE + speech.size)  # a quiet room, about -64 dBFS
    room[3 * RATE :] += speech * 0.1  # a talker 20 dB quieter than the sample, 3 s into the room
    pcm = np.concatenate([_silence(2.0), room.round().astype(np.int16)])
    gate = Gate(GateSettings())
    (u,) = _run(gate, pcm)
    assert u.start > 1000.0 + 5.0  # the talker opens it, not the room after the zeros
    assert gate.judge.floor > db_to_q10(-70)  # the floor sits at the room's level, not at the zeros'


def test_a_talker_at_the_last_bits_still_opens_the_gate() -> None:
    """40 dB below the sample its peaks are 11 LSB and its pauses last-bit noise (about
    -93 dBFS): that noise is signal and sets the floor, so the talker stands above it."""
    quiet = np.round(read_audio(SAMPLES[1]) * 10 ** (-40 / 20)).astype(np.int16)
    assert np.abs(quiet).max() <= 12
    (u,) = _run(Gate(GateSettings()), np.concatenate([_silence(0.5), quiet, _silence(1.0)]))
    assert u.pcm.size > RATE  # the sentence, not a fragment
    assert _run(Gate(GateSettings(floor_db=-90)), quiet) == []  # a floor above that noise misses it


def test_silence_and_clicks_give_nothing() -> None:
    assert _run(Gate(GateSettings()), _silence(5)) == []
    click = _silence(3)
    click[RATE : RATE + 800] = 20000  # 50 ms: shorter than min_utterance_ms
    assert _run(Gate(GateSettings()), click) == []


def test_long_speech_is_cut_at_the_maximum() -> None:
    speech = np.concatenate([_speech()[11000:60000]] * 4)  # ~12 s of continuous voice
    s = GateSettings(max_utterance_ms=3000, min_utterance_ms=200)
    utterances = _run(Gate(s), np.concatenate([speech, _silence(1)]))
    assert len(utterances) >= 4
    assert all(u.seconds <= 3.0 for u in utterances)
    for a, b in itertools.pairwise(utterances):  # contiguous pieces: nothing lost
        assert b.start >= a.end - 1e-9


def test_noise_floor_adapts_to_steady_noise() -> None:
    """A fan starting at -35 dBFS would hold a fixed gate open for good; the adaptive
    floor closes the gate within a few seconds and still hears speech on top of it."""
    rng = np.random.default_rng(1)
    noise = np.round(rng.normal(0, 580, 14 * RATE)).astype(np.int16)  # -35 dBFS, broadband
    speech = _speech()
    mixed = noise.copy()
    mixed[7 * RATE : 7 * RATE + speech.size] += speech
    utterances = _run(Gate(GateSettings(max_zcr=1.0)), mixed)
    *fan, voice = utterances
    assert all(u.end < 1000 + 5.0 for u in fan) and len(fan) <= 1  # the noise onset, at most
    assert 1000 + 7.0 < voice.start < 1000 + 8.0 and voice.end < 1000 + 7.0 + speech.size / RATE + 1.0


def test_hiss_is_not_voice() -> None:
    rng = np.random.default_rng(2)
    hiss = np.diff(np.round(rng.normal(0, 3000, 3 * RATE + 1))).astype(np.int16)  # high-passed: many crossings
    room = np.round(rng.normal(0, 5, RATE)).astype(np.int16)  # the floor is set by a quiet room first
    pcm = np.concatenate([room, hiss, room])
    assert _run(Gate(GateSettings(max_zcr=0.5)), pcm) == []
    assert len(_run(Gate(GateSettings(max_zcr=1.0)), pcm)) == 1  # the same frames pass without the ZCR test


def test_webrtcvad_engine_finds_the_utterance() -> None:
    speech = _speech()
    pcm = np.concatenate([_silence(1.0), speech, _silence(1.5)])
    (energy,) = _run(Gate(GateSettings()), pcm)
    (webrtc,) = _run(Gate(GateSettings(engine="webrtcvad")), pcm)
    # The voice is from about 0.7 s to 2.9 s into the clip, a breath before and after it;
    # the energy gate opens on the first breath (0.2 s), webrtcvad on the voice.
    assert 1000 + 0.7 < energy.start < 1000 + 1.0 + 0.8
    assert 1000 + 1.0 + 0.3 < webrtc.start < 1000 + 1.0 + 0.8
    for u in (energy, webrtc):
        assert 1000 + 1.0 + 2.9 < u.end <= 1000 + 1.0 + speech.size / RATE + 0.6


def _frames(*parts: tuple[str, int]) -> np.ndarray:
    """Room noise (about -70 dBFS) and a tone (-14 dBFS), in whole 20 ms frames."""
    rng = np.random.default_rng(5)
    out, n = [], 0
    for kind, frames in parts:
        t = np.arange(n, n + frames * FRAME_SAMPLES)
        noise = rng.normal(0, 10, t.size)
        out.append(noise + (8000 * np.sin(2 * np.pi * 440 * t / RATE) if kind == "tone" else 0))
        n += t.size
    return np.concatenate(out).round().astype(np.int16)


def test_utterance_edges_are_frame_exact() -> None:
    """Pre-roll 15 frames before the first voiced one, hangover 25 frames after the last."""
    s = GateSettings()
    assert (s.onset_ms, s.preroll_ms, s.hangover_ms, s.min_utterance_ms, s.max_utterance_ms) == (
        60,
        300,
        500,
        500,
        8000,
    )
    (u,) = _run(Gate(s), _frames(("noise", 150), ("tone", 50), ("noise", 100)), chunk=777, t0=0.0)
    assert round(u.start / 0.02) == 150 - 15 and u.pcm.size == (15 + 50 + 25) * FRAME_SAMPLES


def test_the_shortest_utterance_is_the_minimum_exactly() -> None:
    assert _run(Gate(GateSettings()), _frames(("noise", 150), ("tone", 24), ("noise", 100))) == []
    (u,) = _run(Gate(GateSettings()), _frames(("noise", 150), ("tone", 25), ("noise", 100)))
    assert u.pcm.size == (15 + 25 + 25) * FRAME_SAMPLES


def test_long_speech_is_cut_at_exactly_the_maximum_and_goes_on() -> None:
    # A tone with a one-frame dip every 20 frames: speech-like, so the floor stays down.
    parts = [("noise", 150)] + [p for _ in range(30) for p in (("tone", 19), ("noise", 1))] + [("noise", 100)]
    first, second = _run(Gate(GateSettings()), _frames(*parts), t0=0.0)
    assert round(first.start / 0.02) == 135 and first.pcm.size == 400 * FRAME_SAMPLES
    assert round(second.start / 0.02) == 135 + 400  # the very next frame, the gate still open
    assert second.pcm.size == (150 + 600 - 135 - 400 - 1 + 25) * FRAME_SAMPLES  # to the last voiced frame + hangover
