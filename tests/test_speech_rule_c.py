"""The node's C speech rule (deploy/arduino/ser_node/speech_rule.c) finds the same spans of
speech, window for window, as ser_edge.gate.speech_gate.speech_spans on the Pi, given the
speech gate model's int8 scores and the int8 threshold the Pi computes."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from ser_edge.gate.speech_gate import SpeechModel, SpeechRule, speech_spans
from ser_edge.recognition.bundle import load_bundle
from tests.c_build import c_library
from tests.conftest import REPO

NODE = REPO / "deploy" / "arduino" / "ser_node"


class Settings(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in ("threshold_q", "min_windows", "of_windows", "hangover")]


class Span(ctypes.Structure):
    _fields_ = [("first", ctypes.c_int32), ("last", ctypes.c_int32)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    return c_library([NODE / "speech_rule.c"], tmp_path_factory.mktemp("rule") / "librule.so")


@pytest.fixture(scope="module")
def model() -> SpeechModel:
    return SpeechModel(load_bundle(REPO / "edge" / "ser_edge" / "gate" / "bundle"))


def _c_spans(lib: ctypes.CDLL, scores: np.ndarray, settings: Settings) -> list[tuple[int, int]]:
    state = ctypes.create_string_buffer(512)  # larger than struct ser_speech_rule
    assert lib.ser_speech_rule_init(state, ctypes.byref(settings)) == 0
    span, out = Span(), []
    for q in scores.tolist():
        if lib.ser_speech_rule_window(state, ctypes.c_int8(q), ctypes.byref(span)):
            out.append((span.first, span.last))
    if lib.ser_speech_rule_flush(state, ctypes.byref(span)):
        out.append((span.first, span.last))
    return out


def test_the_int8_threshold_decides_as_the_probability_does(model: SpeechModel) -> None:
    q = np.arange(-128, 128).astype(np.int8)
    p = model.dequantise(q)
    for threshold in (0.0, 0.3, 0.5, 0.77, 0.999, 1.0):
        assert np.array_equal(q >= model.threshold_q(threshold), p >= threshold), threshold
    assert model.threshold_q(1.5) == 128  # never speech


def test_c_and_python_find_the_same_spans(lib: ctypes.CDLL, model: SpeechModel) -> None:
    rng = np.random.default_rng(15)
    compared = short = 0
    for _ in range(400):
        k = int(rng.integers(1, 6))
        rule = SpeechRule(float(rng.choice([0.3, 0.5, 0.7])), k, int(rng.integers(k, 17)), int(rng.integers(1, 5)))
        runs = rng.integers(1, 8, 30)  # speech-like runs of high and low scores
        length = int(rng.choice([rng.integers(1, 6), 120]))  # a word's stretch holds a few windows
        high = np.repeat(rng.random(30) < 0.5, runs)[:length]
        scores = np.where(high, rng.integers(60, 128, high.size), rng.integers(-128, 60, high.size)).astype(np.int8)
        expected = speech_spans(model.dequantise(scores), rule)
        settings = Settings(model.threshold_q(rule.threshold), rule.min_windows, rule.of_windows, rule.hangover)
        assert _c_spans(lib, scores, settings) == expected, (rule, scores.tolist())
        compared += bool(expected)
        short += bool(expected) and scores.size < rule.min_windows
    assert compared > 100  # most sequences had speech in them
    assert short > 20  # and short stretches, all speech, were found


def test_settings_out_of_range_are_refused(lib: ctypes.CDLL) -> None:
    state = ctypes.create_string_buffer(512)
    for bad in ((0, 0, 3, 2), (0, 4, 3, 2), (0, 2, 17, 2), (0, 2, 3, 0), (200, 2, 3, 2)):
        assert lib.ser_speech_rule_init(state, ctypes.byref(Settings(*bad))) == -1, bad
