"""The node's C core cross-compiled for the Nano 33 BLE Sense's Cortex-M4F: it builds,
the front end and gate use no floating point, and with the shipped model and its arena
it leaves at least half of the board's flash (1 MB) and RAM (256 KB) free."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

NODE = REPO / "deploy" / "arduino" / "ser_node"
MODEL = REPO / "deploy" / "models" / "ser-tiny"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
          "-mfpu=fpv4-sp-d16", "-Os", "-ffunction-sections", "-fdata-sections"]  # fmt: skip
FLASH, RAM = 1024 * 1024, 256 * 1024


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    gcc = shutil.which("arm-none-eabi-gcc")
    assert gcc, "arm-none-eabi-gcc is missing: deploy/dev/setup.sh installs gcc-arm-none-eabi"
    out = tmp_path_factory.mktemp("arm")
    built = {}
    for source in (NODE / "frontend.c", NODE / "vad.c", NODE / "protocol.c", MODEL / "model_data.c"):
        obj = out / (source.stem + ".o")
        # The model array is written for the C++ sketch (alignas); as C11 it needs stdalign.h.
        extra = ["-std=c11", "-include", "stdalign.h"] if source.stem == "model_data" else []
        subprocess.run([gcc, *CFLAGS, *extra, f"-I{NODE}", "-c", str(source), "-o", str(obj)], check=True)
        built[source.stem] = obj
    return built


def _sizes(obj: Path) -> tuple[int, int, int]:
    r = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in r.stdout.splitlines()[1].split()[:3])
    return text, data, bss


def test_front_end_and_gate_use_no_floating_point(objects: dict[str, Path]) -> None:
    for name in ("frontend", "vad", "protocol"):
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
    ram += arena
    assert flash <= FLASH // 2, f"flash {flash} B of {FLASH}"
    assert ram <= RAM // 2, f"RAM {ram} B of {RAM}"
