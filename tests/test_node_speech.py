"""gate.kind speech on the node (features mode): its C core, with the speech gate's model
under TFLite Micro, sends the same utterances as the Pi's speech gate computes from the
same audio: the same spans to the frame and the same feature rows to the bit. And the Pi
refuses, by name, a node whose speech model is not its own."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.gate.speech_gate import SpeechGate, SpeechModel, make_gate
from ser_edge.gate.vad import FRAME_SAMPLES, GateUnits
from ser_edge.link.protocol import Deframer, Message, MessageType, NodeMismatch, check_hello, config_payload, encode
from ser_edge.recognition.bundle import load_bundle
from ser_edge.settings import GateSettings
from ser_training.gatebench import in_quiet_room
from ser_training.noise import key_rng
from ser_training.nonspeech import household, random_piece, render
from tests.conftest import REPO, SAMPLES

EMULATOR_DIR = REPO / "deploy" / "arduino" / "host"
GATE = REPO / "edge" / "ser_edge" / "gate" / "bundle"
SPEECH = GateSettings(kind="speech", speech_bundle=GATE)


@pytest.fixture(scope="module")
def emulator():
    sys.path.insert(0, str(EMULATOR_DIR))
    try:
        import emulator as module
    finally:
        sys.path.remove(str(EMULATOR_DIR))
    return module


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    """Sample sentences, music and household sounds, one after another with room tone."""
    parts = [read_audio(p) for p in SAMPLES[:5]]
    parts.append(in_quiet_room(render(random_piece(12.0, "test", key_rng("node music")))[: 12 * 16000], "node"))
    parts.append(household("knocks", 8.0, key_rng("node knocks")))
    parts += [read_audio(p) for p in SAMPLES[5:]]
    rng = key_rng("node room")
    gap = lambda: (rng.normal(0, 2, 16000)).astype(np.int16)  # noqa: E731
    pcm = np.concatenate([x for p in parts for x in (gap(), p)] + [gap()])
    return pcm[: pcm.size // FRAME_SAMPLES * FRAME_SAMPLES]


def _python(pcm: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """(start frame, end frame, rows) of each utterance the Pi's speech gate cuts (the rows
    the daemon scores: the span's rows of its candidate stretch's front end)."""
    gate = make_gate(SPEECH)
    assert isinstance(gate, SpeechGate)
    return [(round(u.start * 50), round(u.end * 50), u.rows) for u in gate.push(pcm, 0.0) + gate.flush()]


def _node(emulator, tmp_path: Path, pcm: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    lib = emulator.build(tmp_path)
    sent = bytearray()
    wire = type("Wire", (), {"send": lambda self, data: sent.extend(data)})()
    board = emulator.Board(lib, wire, None, emulator.SpeechModel(GATE))
    board.boot(None)
    model = SpeechModel(load_bundle(GATE))
    g = make_gate(SPEECH)
    rule = (model.threshold_q(g.rule.threshold), g.rule.min_windows, g.rule.of_windows, g.rule.hangover)
    units = dataclasses.astuple(GateUnits.of(g.energy.settings))
    config = encode(Message(MessageType.CONFIG, 0, config_payload("features", units, rule)))
    lib.ser_node_receive(board.state, config, len(config), 0)
    assert lib.ser_node_mode(board.state) == 2, bytes(sent)
    frames = pcm.reshape(-1, FRAME_SAMPLES)
    for frame in frames:
        frame = np.ascontiguousarray(frame)
        lib.ser_node_audio(board.state, frame.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)))
    out, pieces = [], []
    for m in Deframer().feed(bytes(sent)):
        if m.type == MessageType.HELLO:
            assert json.loads(m.payload)["speech"] is True
        if m.type != MessageType.FEATURES:
            continue
        start, end, total, _first = struct.unpack_from("<IIHH", m.payload)
        pieces.append(np.frombuffer(m.payload[12:], np.int8).reshape(-1, 13))
        if sum(len(p) for p in pieces) == total:
            out.append((start // 20, end // 20, np.concatenate(pieces)))
            pieces = []
    return out


def test_the_node_cuts_the_speech_the_pi_cuts_bit_for_bit(emulator, tmp_path: Path, stream: np.ndarray) -> None:
    expected, got = _python(stream), _node(emulator, tmp_path, stream)
    assert len(expected) >= 8, "the stream should hold the sample sentences"
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in expected]
    for (_, _, x), (_, _, y) in zip(got, expected, strict=True):
        assert np.array_equal(x, y)


def test_a_node_without_the_pis_speech_model_is_refused_by_name() -> None:
    frontend = load_bundle(GATE).frontend.hash
    hello = json.dumps({"firmware": "x", "frontend": frontend, "model": "", "speech_model": "", "modes": ["audio",
                        "features"], "mode": "idle", "speech": False}).encode()  # fmt: skip
    sha = load_bundle(GATE).sha256
    with pytest.raises(NodeMismatch, match=r"node speech gate model \(none\) is not gate.speech_bundle's " + sha[:12]):
        check_hello(hello, "features", frontend, "", sha)
    ok = hello.replace(b'"speech_model": ""', f'"speech_model": "{sha}"'.encode())
    assert check_hello(ok, "features", frontend, "", sha)["speech_model"] == sha
