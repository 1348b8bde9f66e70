"""The node's C core cross-compiled for the Nano 33 BLE Sense's Cortex-M4F: it builds,
the front end and gate use no floating point, and with the shipped model and its arena
it leaves at least half of the board's flash (1 MB) and RAM (256 KB) free, the speech
gate's model and arena included."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "deploy" / "arduino" / "m4"))
import m4

NODE = REPO / "deploy" / "arduino" / "ser_node"
MODEL = REPO / "deploy" / "models" / "ser-tiny"
GATE = REPO / "edge" / "ser_edge" / "gate" / "bundle"
CFLAGS = [*m4.CFLAGS, "-Os"]  # the Nano 33 BLE core's: Cortex-M4F, -mfloat-abi=softfp
FLASH, RAM = 1024 * 1024, 256 * 1024
C_CORE = ("node", "frontend", "vad", "speech_rule", "protocol")
GENERATOR = REPO / "deploy" / "arduino" / "gen_model_files.py"


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    gcc = shutil.which("arm-none-eabi-gcc")
    assert gcc, "arm-none-eabi-gcc is missing: deploy/dev/setup.sh installs gcc-arm-none-eabi"
    out = tmp_path_factory.mktemp("arm")
    built = {}
    generated = out / "sketch"
    generated.mkdir()
    subprocess.run([sys.executable, str(GENERATOR), str(MODEL), "--out", str(generated)], check=True)
    # The sketch's static node state (struct ser_node), as a translation unit of its own.
    (generated / "state.c").write_text('#include "node.h"\nstruct ser_node node;\n')
    models = (generated / "model_data.cpp", generated / "speech_model_data.cpp")
    for source in (*(NODE / f"{name}.c" for name in C_CORE), *models, generated / "state.c"):
        obj = out / (source.stem + ".o")
        # The sketch's model array is C++, as the Arduino IDE builds it.
        cmd = [gcc.replace("gcc", "g++"), *CFLAGS[1:], "-std=c++17"] if source.suffix == ".cpp" else [gcc, *CFLAGS]
        subprocess.run([*cmd, f"-I{NODE}", "-c", str(source), "-o", str(obj)], check=True)
        built[source.stem] = obj
    return built


def _sizes(obj: Path) -> tuple[int, int, int]:
    r = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in r.stdout.splitlines()[1].split()[:3])
    return text, data, bss


def test_the_node_core_uses_no_floating_point(objects: dict[str, Path]) -> None:
    for name in C_CORE:
        listing = subprocess.run(["arm-none-eabi-objdump", "-d", str(objects[name])],
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "<ser_" in listing  # the functions were disassembled
        floats = re.findall(r"\tv(?:add|sub|mul|div|cvt|mov|ldr|str|cmp|fma|neg|abs|sqrt)\S*\t", listing)
        assert not floats, f"{name}.o uses the FPU: {floats[:5]}"


def test_fits_the_board_with_half_to_spare(objects: dict[str, Path]) -> None:
    manifest = json.loads((MODEL / "manifest.json").read_text())
    arena = manifest["verification"]["tflm_arena_bytes"]
    flash = ram = 0
    for obj in objects.values():
        text, data, bss = _sizes(obj)
        flash += text + data
        ram += data + bss
    # The sketch's own buffers: the microphone ring, the PDM buffer, both arenas with their slack.
    sketch = (NODE / "ser_node.ino").read_text()
    assert "kRingFrames = SER_MODEL_RING_FRAMES;" in sketch
    info = (objects["model_data"].parent / "sketch" / "model_info.h").read_text()
    ring = int(re.search(r"#define SER_MODEL_RING_FRAMES (\d+)", info)[1]) * 320 * 2
    pdm = int(re.search(r"pdm_buffer\[(\d+)\]", sketch)[1]) * 2
    slack = int(re.search(r"SER_MODEL_ARENA_BYTES \+ (\d+)\]", sketch)[1])
    gate = json.loads((GATE / "manifest.json").read_text())
    speech_arena = gate["verification"]["tflm_arena_bytes"] + int(re.search(r"SER_SPEECH_ARENA_BYTES \+ (\d+)\]",
                                                                            sketch)[1])  # fmt: skip
    ram += arena + ring + pdm + slack + speech_arena
    speech_flash = sum(_sizes(objects["speech_model_data"])[:2])
    print(
        f"flash {flash} B ({100 * flash / FLASH:.0f} %), RAM {ram} B ({100 * ram / RAM:.0f} %), "
        f"of which the speech gate's model {speech_flash} B and arena {speech_arena} B"
    )
    assert speech_flash >= gate["model"]["tflite_bytes"]  # the speech gate's model is in the image
    assert flash <= FLASH // 2, f"flash {flash} B of {FLASH}"
    assert ram <= RAM // 2, f"RAM {ram} B of {RAM}"


def test_model_info_header_describes_the_bundle(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(GENERATOR), str(MODEL), "--out", str(tmp_path)], check=True)
    manifest = json.loads((MODEL / "manifest.json").read_text())
    defines = dict(re.findall(r"#define (SER_MODEL_[\w()]+) (.+)", (tmp_path / "model_info.h").read_text()))
    assert defines["SER_MODEL_SHA256"] == f'"{manifest["model"]["sha256"]}"'
    assert int(defines["SER_MODEL_WINDOW_FRAMES"]) == manifest["scoring"]["window_frames"]
    assert int(defines["SER_MODEL_ARENA_BYTES"]) == manifest["verification"]["tflm_arena_bytes"]
    instructions = manifest["verification"]["m4_instructions_per_window"]
    assert int(defines["SER_MODEL_M4_INSTRUCTIONS"]) == instructions
    # Two windows' time at 64 MHz (1.28 M instructions a 20 ms frame) and 5 frames more.
    assert int(defines["SER_MODEL_RING_FRAMES"]) == -(-2 * instructions // 1_280_000) + 5
    ops = re.findall(r"X\((\w+)\)", defines["SER_MODEL_OPS(X)"])
    assert {"AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D"} <= set(ops)
    assert not {"AddFullyConnected", "AddMean"} & set(ops)  # mishandled per-channel / no CMSIS-NN kernel
    assert len(ops) == int(defines["SER_MODEL_OP_COUNT"]) == len(manifest["verification"]["ops"])
    assert (tmp_path / "model_data.cpp").read_text() == (MODEL / "model_data.c").read_text()
    # The speech gate's model, which the sketch runs with gate.kind speech in features mode.
    gate = json.loads((GATE / "manifest.json").read_text())
    speech = dict(re.findall(r"#define (SER_SPEECH_[\w()]+) (.+)", (tmp_path / "model_info.h").read_text()))
    assert speech["SER_SPEECH_SHA256"] == f'"{gate["model"]["sha256"]}"'
    assert int(speech["SER_SPEECH_WINDOW_FRAMES"]) == gate["scoring"]["window_frames"]
    assert int(speech["SER_SPEECH_HOP_FRAMES"]) == gate["scoring"]["hop_frames"]
    assert int(speech["SER_SPEECH_ARENA_BYTES"]) == gate["verification"]["tflm_arena_bytes"]
    assert int(speech["SER_SPEECH_LABEL"]) == gate["labels"].index("speech")
    array = (tmp_path / "speech_model_data.cpp").read_text()
    values = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", array))
    assert values == (GATE / "model.tflite").read_bytes()
    sketch = (NODE / "ser_node.ino").read_text()
    for name in ("g_ser_speech_model", "SER_SPEECH_OPS(", "SER_SPEECH_SHA256", "SER_SPEECH_LABEL"):
        assert name in sketch, f"the sketch does not use {name}"


def test_model_files_from_a_broken_bundle_are_a_clear_error(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(GENERATOR), str(tmp_path), "--out", str(tmp_path)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 1 and "is not a usable bundle" in r.stderr and "Traceback" not in r.stderr
