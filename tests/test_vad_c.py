"""The C voice gate (deploy/arduino/ser_node/vad.c) cuts the same utterances, to the
frame, as ser_edge.gate.vad.Gate with the energy judge."""

from __future__ import annotations

import ctypes
import dataclasses

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.gate.vad import FRAME_SAMPLES, Gate, GateUnits
from ser_edge.settings import GateSettings
from tests.c_build import c_library
from tests.conftest import REPO, SAMPLES

NODE = REPO / "deploy" / "arduino" / "ser_node"


class Settings(ctypes.Structure):
    _fields_ = [(f.name, ctypes.c_int32) for f in dataclasses.fields(GateUnits)]  # struct ser_vad_settings


class Utterance(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint32), ("end", ctypes.c_uint32)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    return c_library([NODE / "vad.c"], tmp_path_factory.mktemp("vad") / "libvad.so")


def _c_gate(lib: ctypes.CDLL, pcm: np.ndarray, s: GateSettings) -> list[tuple[int, int]]:
    state = ctypes.create_string_buffer(4096)  # larger than struct ser_vad
    settings = Settings(*dataclasses.astuple(GateUnits.of(s)))
    lib.ser_vad_init(state, ctypes.byref(settings))
    u, out = Utterance(), []
    frames = np.ascontiguousarray(pcm[: pcm.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES))
    for frame in frames:
        if lib.ser_vad_frame(state, frame.ctypes.data_as(ctypes.c_void_p), ctypes.byref(u)):
            out.append((u.start, u.end))
    if lib.ser_vad_flush(state, ctypes.byref(u)):
        out.append((u.start, u.end))
    return out


def _python_gate(pcm: np.ndarray, s: GateSettings) -> list[tuple[int, int]]:
    g = Gate(s)
    utterances = g.push(pcm, 0.0) + g.flush()
    return [(round(u.start * 50), round(u.end * 50)) for u in utterances]


def _stream() -> np.ndarray:
    rng = np.random.default_rng(3)
    parts = [np.zeros(8000, np.int16)]
    for path in SAMPLES:
        parts += [read_audio(path), np.zeros(rng.integers(4000, 20000), np.int16)]
    pcm = np.concatenate(parts)
    noise = rng.normal(0, 200, pcm.size)  # a room that is not silent
    noise[pcm.size // 2 :] *= 4  # and gets louder (a fan starts)
    return np.clip(pcm + noise.round(), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize(
    "settings",
    [
        GateSettings(),
        GateSettings(max_utterance_ms=1500, min_utterance_ms=200, hangover_ms=200, preroll_ms=0),
        GateSettings(start_db=18, stop_db=3, onset_ms=100, max_zcr=0.35),
    ],
    ids=["default", "short-pieces", "strict"],
)
def test_same_utterances_as_python(lib: ctypes.CDLL, settings: GateSettings) -> None:
    for pcm in (_stream(), np.concatenate([read_audio(p) for p in SAMPLES])):
        python = _python_gate(pcm, settings)
        assert python and _c_gate(lib, pcm, settings) == python
