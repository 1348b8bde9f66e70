"""The node's cost on a 64 MHz Cortex-M4F, counted on the emulated image: instructions per
20 ms frame of the front end (by stage) and the gate, the whole node per frame in features
and results mode over a minute of speech and room tone, in instructions and in cycles at
the node's cycles-per-instruction margin (ser_training.cost.M4_CPI_MARGIN), the sketch's
loop replayed against the microphone at that margin (and at one instruction per cycle),
and the image's sizes. Ratios are against the real-time budget: 1.28 M cycles per frame.

    .venv/bin/python deploy/arduino/m4/bench.py [--bundle deploy/models/ser-tiny] [--seconds 60]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import m4
import timeline
from gen_model_files import FRAME_CYCLES, GATE_BUNDLE, ring_frames

from ser_edge.audio.audio_io import read_audio
from ser_edge.gate.vad import GateUnits
from ser_edge.link import protocol
from ser_edge.settings import GateSettings
from ser_training.cost import M4_CPI_MARGIN, m4_instructions

REPO = Path(__file__).resolve().parents[3]


def _share(instructions: float) -> str:
    cycles = instructions * M4_CPI_MARGIN
    return (f"{instructions:>11,.0f} instructions, {cycles:>11,.0f} cycles ({cycles / FRAME_CYCLES:5.1%} of a "
            f"frame's 64 MHz)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=REPO / "deploy" / "models" / "ser-tiny")
    p.add_argument("--seconds", type=float, default=60)
    a = p.parse_args(argv)
    manifest = json.loads((a.bundle / "manifest.json").read_text())
    window, hop = manifest["scoring"]["window_frames"], manifest["scoring"]["hop_frames"]
    model_cost = m4_instructions((a.bundle / "model.tflite").read_bytes())[0]  # calibrated at -Os under Chirale
    clips = [read_audio(f) for f in sorted((REPO / "deploy" / "samples").glob("*.flac"))]
    pcm = m4.speech_stream(clips, a.seconds)
    gate = GateSettings(kind="energy")  # the node's energy gate, as in results mode
    units = dataclasses.astuple(GateUnits.of(gate))
    config = {mode: protocol.config_payload(mode, units) for mode in ("features", "results")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = {opt: m4.build(work / opt, opt) for opt in ("-Os", "-O2")}
        print(f"image (-Os): {m4.sizes(images['-Os'])} bytes; the node core, a trace driver and the board support")
        print(f"per 20 ms frame, {a.seconds:g} s of speech and room tone; cycles at {M4_CPI_MARGIN:g} per instruction:")
        front_end = {}
        for opt, elf in images.items():
            fe = front_end[opt] = m4.run(elf, work / "run", m4.trace("F", pcm))
            print(f"  front end {opt}: mean {_share(fe.cost.mean())}, max {fe.cost.max():,}")
            for stage, cost in fe.stages.items():
                print(
                    f"    {stage:<26}{cost.mean():>11,.0f} instructions, {cost.mean() * M4_CPI_MARGIN:>11,.0f} cycles"
                )
        elf = images["-Os"]
        g = m4.run(elf, work / "run", m4.trace("G", pcm, config["features"]))
        print(f"  gate: mean {_share(g.cost.mean())}, max {g.cost.max():,}")
        want = m4.expected(pcm, gate, window, hop)
        scores = m4.tflm_scores(a.bundle, want.windows)
        model = m4.Model(manifest["model"]["sha256"][:12], window, hop, scores)
        ring = ring_frames(model_cost)
        print(f"model: {model_cost / 1e6:.2f} M instructions per window (estimated, -Os, Chirale), "
              f"{model_cost * M4_CPI_MARGIN / 1e6:.2f} M cycles, {model_cost * M4_CPI_MARGIN / 64e3:.0f} ms; "
              f"sketch ring {ring} frames ({ring * 20} ms)")  # fmt: skip
        for mode in ("features", "results"):
            run = m4.run(elf, work / "run", m4.trace("N", pcm, config[mode], model if mode == "results" else None))
            steps = timeline.step_instructions(run.cost, run.classified, model_cost)
            print(f"  node's loop, {mode} mode: mean {_share(steps.mean())}, longest frame "
                  f"{steps.max() * M4_CPI_MARGIN / 64e3:.1f} ms")  # fmt: skip
            for cpi in (M4_CPI_MARGIN, 1.0):
                print(f"    timeline, ring {ring}: {timeline.simulate(steps, ring, cpi=cpi)}")
        rows_and_gate = 50 * (front_end["-Os"].cost.mean() + g.cost.mean())  # a second of audio
        speech = rows_and_gate + 50 / hop * model_cost
        print(f"a second of speech at -Os (50 rows, the gate, {50 / hop:g} window): {speech / 1e6:.1f} M instructions, "
              f"{speech * M4_CPI_MARGIN / 1e6:.1f} M cycles, "
              f"{speech * M4_CPI_MARGIN / m4.CLOCK_HZ:.0%} of 64 MHz")  # fmt: skip
        # gate.kind speech in features mode: the speech gate's windows instead of the emotion model's.
        gate_manifest = json.loads((GATE_BUNDLE / "manifest.json").read_text())
        speech_cost = m4_instructions((GATE_BUNDLE / "model.tflite").read_bytes())[0]
        per_second = 50 / gate_manifest["scoring"]["hop_frames"]
        awake = rows_and_gate + per_second * speech_cost
        print(f"a second the speech gate is awake (features mode, gate.kind speech; 50 rows, the gate, "
              f"{per_second:g} speech windows of {speech_cost / 1e6:.2f} M, estimated): "
              f"{awake / 1e6:.1f} M instructions, {awake * M4_CPI_MARGIN / 1e6:.1f} M cycles, "
              f"{awake * M4_CPI_MARGIN / m4.CLOCK_HZ:.0%} of 64 MHz")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
