"""The node's C core on an emulated Cortex-M4F (QEMU mps2-an386, deploy/arduino/m4): the
rows, the gate's utterances and the node's messages are the Pi's, bit for bit, and the
instructions it counts fit the Nano's 64 MHz budget; replayed against the microphone's
interrupt, the sketch's loop drops no audio."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import compute_features
from ser_edge.gate.vad import GateUnits
from ser_edge.link import protocol
from ser_edge.settings import GateSettings
from tests.conftest import REPO, SAMPLES

sys.path.insert(0, str(REPO / "deploy" / "arduino" / "m4"))
sys.path.insert(0, str(REPO / "deploy" / "arduino"))
import m4
import timeline
from gen_model_files import ring_frames

BUNDLE = REPO / "deploy" / "models" / "ser-tiny"
GATE = GateSettings()
FRONT_END_BUDGET = 320_000  # instructions per 20 ms frame: 35 % of 64 MHz at 1.4 cycles per instruction
GATE_BUDGET = 5_000


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return m4.build(tmp_path_factory.mktemp("m4"))


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [read_audio(p) for p in SAMPLES]


@pytest.fixture(scope="module")
def model() -> dict:
    manifest = json.loads((BUNDLE / "manifest.json").read_text())
    return {"sha": manifest["model"]["sha256"][:12], "window": manifest["scoring"]["window_frames"],
            "hop": manifest["scoring"]["hop_frames"]}  # fmt: skip


def _config(mode: str) -> bytes:
    return protocol.config_payload(mode, dataclasses.astuple(GateUnits.of(GATE)))


def _node_run(elf: Path, tmp: Path, pcm: np.ndarray, mode: str, model: dict) -> tuple[m4.Run, m4.Expected]:
    want = m4.expected(pcm, GATE, model["window"], model["hop"])
    scores = m4.tflm_scores(BUNDLE, want.windows) if mode == "results" else np.zeros((0, 8), np.int8)
    injected = m4.Model(model["sha"], model["window"], model["hop"], scores)
    return m4.run(elf, tmp, m4.trace("N", pcm, _config(mode), injected)), want


def _messages(run: m4.Run, kind: protocol.MessageType) -> list[protocol.Message]:
    return [m for m in protocol.Deframer().feed(run.output) if m.type == kind]


def test_front_end_rows_are_the_pis_and_fit_the_budget(elf: Path, tmp_path: Path, clips: list, ravdess: Path) -> None:
    pcm = np.concatenate([*clips, *(read_audio(p) for p in sorted(ravdess.glob("Actor_*/*.flac"))[::300])])
    pcm = pcm[: pcm.size // 320 * 320]
    run = m4.run(elf, tmp_path, m4.trace("F", pcm))
    rows = np.frombuffer(run.output, np.int8).reshape(-1, 13)
    assert np.array_equal(rows, compute_features(pcm))
    stages = ", ".join(f"{k} {v.mean() / 1e3:.0f} k" for k, v in run.stages.items())
    print(f"\nfront end on the M4 (-Os): {run.cost.mean():,.0f} instructions per frame (max {run.cost.max():,}), "
          f"{run.cost.mean() * 50 / 1e6:.1f} M per second of audio, {run.cost.mean() * 50 / m4.CLOCK_HZ:.0%} of "
          f"64 MHz; {stages}")  # fmt: skip
    assert run.cost.max() <= FRONT_END_BUDGET
    assert sum(v.mean() for v in run.stages.values()) == pytest.approx(run.cost.mean(), rel=0.01)


def test_gate_cuts_the_pis_utterances_and_fits_the_budget(elf: Path, tmp_path: Path, clips: list) -> None:
    pcm = m4.speech_stream(clips, 45)
    run = m4.run(elf, tmp_path, m4.trace("G", pcm, _config("features")))
    utterances = [(int(s) * 20, int(e) * 20) for s, e in np.frombuffer(run.output, "<u4").reshape(-1, 2)]
    want = m4.expected(pcm, GATE).utterances
    assert len(want) >= 8 and utterances == want
    print(f"\ngate on the M4: {run.cost.mean():,.0f} instructions per frame (max {run.cost.max():,})")
    assert run.cost.max() <= GATE_BUDGET


def test_node_sends_the_pis_features(elf: Path, tmp_path: Path, clips: list, model: dict) -> None:
    run, want = _node_run(elf, tmp_path, m4.speech_stream(clips, 45), "features", model)
    pieces = [protocol.parse_features(m.payload, 13) for m in _messages(run, protocol.MessageType.FEATURES)]
    got: dict[tuple[int, int], list[np.ndarray]] = {}
    for p in pieces:
        got.setdefault((p.start_ms, p.end_ms), []).append(p.rows)
    assert list(got) == want.utterances
    for rows, expected_rows in zip(got.values(), want.rows, strict=True):
        assert np.array_equal(np.concatenate(rows), expected_rows)
    # No call does more than the gate and SER_NODE_ROWS_PER_FRAME rows.
    assert run.cost.max() <= 2 * FRONT_END_BUDGET + GATE_BUDGET + 20_000


def test_node_sends_results_for_the_pis_windows(elf: Path, tmp_path: Path, clips: list, model: dict) -> None:
    run, want = _node_run(elf, tmp_path, m4.speech_stream(clips, 45), "results", model)
    assert run.window_crcs == [m4.crc32(w) for w in want.windows]  # the node scored the Pi's windows, in order
    scores = m4.tflm_scores(BUNDLE, want.windows)
    results = [protocol.parse_result(m.payload, 8) for m in _messages(run, protocol.MessageType.RESULT)]
    assert [(s, e) for s, e, _ in results] == want.utterances
    assert np.array_equal(np.concatenate([r for _, _, r in results]), scores)


def _model_instructions() -> int:
    from ser_training.cost import m4_instructions

    return m4_instructions((BUNDLE / "model.tflite").read_bytes())[0]


@pytest.mark.parametrize("seconds", [0, 60], ids=["8-samples", "60-s-stream"])
def test_the_sketch_drops_no_audio(elf: Path, tmp_path: Path, clips: list, model: dict, seconds: int) -> None:
    """The loop replayed against the PDM interrupt (16 ms blocks) with each frame's measured
    instructions and the model's per window (calibrated at -Os under Chirale), at 1.4
    cycles per instruction on 64 MHz, with the sketch's ring as model_info.h sizes it for
    the shipped model: no overrun. The 0.3.0 sketch's 24-frame ring, sized from the -O2
    estimate at one instruction per cycle, overruns at that margin (issue 28 saw it overrun
    at 1.20-1.29); the 0.1 sketch's 240 ms ring with the 0.2 model's 25.6 M overruns even
    at one instruction per cycle."""
    from ser_training.cost import M4_CPI_MARGIN

    apart = np.concatenate([np.concatenate([c, np.zeros(16000, np.int16)]) for c in clips])
    pcm = m4.speech_stream(clips, seconds) if seconds else apart
    run, want = _node_run(elf, tmp_path, pcm, "results", model)
    assert run.classified.sum() == len(want.windows) > 0
    instructions = _model_instructions()
    assert instructions == pytest.approx(14.51e6, rel=0.03)
    steps = timeline.step_instructions(run.cost, run.classified, instructions)
    ring = ring_frames(instructions)
    assert M4_CPI_MARGIN >= 1.4 and ring == -(-round(2 * instructions * M4_CPI_MARGIN) // 1_280_000) + 5
    shipped = timeline.simulate(steps, ring)
    print(f"\n{len(run.cost) / 50:.0f} s of audio, model {instructions / 1e6:.2f} M instructions per window, "
          f"ring {ring} frames: {shipped}")  # fmt: skip
    assert shipped.cpi == M4_CPI_MARGIN and shipped.overruns == 0 and shipped.max_backlog_frames < ring
    assert shipped.cpu_share <= 0.90
    assert timeline.simulate(steps, 24).overruns > 0  # the 0.3.0 sketch's ring at the margin
    old = timeline.simulate(timeline.step_instructions(run.cost, run.classified, 25.6e6), 12, cpi=1.0)
    assert old.overruns > 0 and old.worst_step_ms > 240


def test_the_timeline_counts_a_ring_that_fills() -> None:
    """A 400 ms step with a 240 ms ring loses audio; the same step with a 500 ms ring does not."""
    steps = np.full(200, 100_000.0)
    steps[100] = 0.4 * timeline.CLOCK_HZ
    assert timeline.simulate(steps, 12, cpi=1.0).overruns > 0
    ok = timeline.simulate(steps, 25, cpi=1.0)
    assert ok.overruns == 0 and 20 <= ok.max_backlog_frames < 25 and ok.worst_step_ms == pytest.approx(400, rel=0.01)
    # The same instructions at 1.4 cycles each take 560 ms: the 25-frame ring no longer holds them.
    slow = timeline.simulate(steps, 25, cpi=1.4)
    assert slow.overruns > 0 and slow.worst_step_ms == pytest.approx(560, rel=0.01) and slow.ring_needed > 25
