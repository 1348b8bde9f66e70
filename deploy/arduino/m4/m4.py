"""The node's C core as a bare-metal Cortex-M4F image, run under QEMU (mps2-an386) with
instructions counted: build it, hand it a trace, read back what it computed and what each
20 ms frame cost.

Only Debian's ``gcc-arm-none-eabi``, ``libnewlib-arm-none-eabi`` and ``qemu-system-arm``
are used, with this folder's startup code (board.c) and linker script. ``-icount
shift=10`` makes QEMU's clock advance 1,024 ns per instruction, so SysTick (25 MHz)
counts instructions exactly; one instruction per cycle at 64 MHz is the Nano's budget
(an M4 needs at least that: loads and taken branches take more).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NODE = HERE.parent / "ser_node"
CORE = ("node", "frontend", "vad", "speech_rule", "protocol")
#: The Nano 33 BLE core's code generation (its platform.txt): Cortex-M4F, soft-float ABI.
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=softfp",
          "-mfpu=fpv4-sp-d16", "-ffunction-sections", "-fdata-sections"]  # fmt: skip
CLOCK_HZ = 64_000_000
FRAME_MS = 20
MAGIC = 0x54524553
#: The front end's stages between frontend.c's marks.
STAGES = ("window and normalise", "FFT pass 1", "FFT pass 2", "power, mel, log", "noise reduction and AGC",
          "DCT and output")  # fmt: skip
HEADER = struct.Struct("<II B3x 37s3x iii 16s I")


class M4Error(RuntimeError):
    """The image did not build, or the run on QEMU failed."""


def build(out: Path, opt: str = "-Os") -> Path:
    """trace.elf from the node's C core, at the Arduino core's -Os unless told otherwise."""
    gcc = shutil.which("arm-none-eabi-gcc")
    if not gcc:
        raise M4Error("arm-none-eabi-gcc is missing: deploy/dev/setup.sh installs gcc-arm-none-eabi")
    out.mkdir(parents=True, exist_ok=True)
    elf = out / "trace.elf"
    sources = [HERE / "board.c", HERE / "trace.c", *(NODE / f"{name}.c" for name in CORE)]
    cmd = [gcc, *CFLAGS, opt, "-DSER_FRONTEND_MARK=trace_mark", f"-I{NODE}", f"-I{HERE}", *map(str, sources),
           "-nostartfiles", "-T", str(HERE / "mps2-an386.ld"), "--specs=nano.specs", "--specs=nosys.specs",
           "-Wl,--gc-sections", "-o", str(elf)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise M4Error(f"the M4 image did not build:\n{r.stderr}")
    return elf


def sizes(elf: Path) -> dict[str, int]:
    """text (flash: code and tables), data (flash and RAM), bss (RAM) of the image."""
    r = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in r.stdout.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


@dataclass(frozen=True)
class Model:
    """What the node knows of the model, and the scores to hand back, a row per window."""

    sha256: str
    window_frames: int
    hop_frames: int
    scores: np.ndarray  # (windows, labels) int8


@dataclass(frozen=True)
class Run:
    output: bytes  # rows, utterances, or the bytes the node sent
    cost: np.ndarray  # instructions per frame
    stages: dict[str, np.ndarray]  # front-end runs: instructions per frame of each stage
    classified: np.ndarray  # windows scored per frame (node runs)
    window_crcs: list[int]  # CRC-32 of each window the node scored


def trace(run: str, pcm: np.ndarray, config: bytes = bytes(37), model: Model | None = None) -> bytes:
    """The input file: a header, the injected scores, then whole 20 ms frames of pcm."""
    frames = pcm[: pcm.size // 320 * 320].astype("<i2")
    scores = model.scores if model else np.zeros((0, 0), np.int8)
    labels = scores.shape[1] if model else 0
    header = HEADER.pack(MAGIC, frames.size // 320, ord(run), config, labels,
                         model.window_frames if model else 0, model.hop_frames if model else 0,
                         (model.sha256 if model else "").encode(), len(scores))  # fmt: skip
    return header + np.ascontiguousarray(scores, np.int8).tobytes() + frames.tobytes()


def run(elf: Path, work: Path, data: bytes, timeout: float = 600) -> Run:
    """One run of the image on QEMU in the folder work (semihosting's files live there)."""
    qemu = shutil.which("qemu-system-arm")
    if not qemu:
        raise M4Error("qemu-system-arm is missing: deploy/dev/setup.sh installs it")
    work.mkdir(parents=True, exist_ok=True)
    for name in ("trace.out", "trace.cost", "trace.crc"):
        (work / name).unlink(missing_ok=True)
    (work / "trace.in").write_bytes(data)
    cmd = [qemu, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none", "-icount", "shift=10",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]  # fmt: skip
    r = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise M4Error(f"the M4 run failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()}")
    raw = np.frombuffer((work / "trace.cost").read_bytes(), "<u4")
    crc = work / "trace.crc"
    kind = chr(data[8])
    per_frame = raw.reshape(-1, {"F": 1 + len(STAGES), "G": 1, "N": 2}[kind])
    return Run(
        output=(work / "trace.out").read_bytes(),
        cost=per_frame[:, 0].copy(),
        stages=dict(zip(STAGES, per_frame[:, 1:].T.copy(), strict=True)) if kind == "F" else {},
        classified=per_frame[:, 1].copy() if kind == "N" else np.zeros(0, np.uint32),
        window_crcs=list(np.frombuffer(crc.read_bytes(), "<u4")) if crc.exists() else [],
    )


def crc32(window: np.ndarray) -> int:
    """The CRC the image logs for a window it scored."""
    return zlib.crc32(np.ascontiguousarray(window, np.int8).tobytes())


# What the node should compute, from the Pi's Python: the gate's utterances, their rows
# and windows, and TFLite Micro's scores for them (the image's injected model).


@dataclass(frozen=True)
class Expected:
    utterances: list[tuple[int, int]]  # (start, end) in ms, as the node's clock counts them
    rows: list[np.ndarray]  # each utterance's feature rows
    windows: list[np.ndarray]  # every scoring window, in the order the node scores them


def expected(pcm: np.ndarray, gate, window_frames: int = 149, hop_frames: int = 50) -> Expected:
    """The Pi's view of pcm from time 0 (ser_edge's gate, front end and scoring rule); an
    utterance still open at the end is not flushed: a live stream has no end."""
    from ser_edge.frontend import DEFAULT_CONFIG, compute_features
    from ser_edge.gate.vad import Gate
    from ser_edge.recognition.scoring import silence_row, utterance_windows

    g = Gate(gate)
    found = g.push(pcm[: pcm.size // 320 * 320], 0.0)
    rows = [compute_features(u.pcm, cfg=DEFAULT_CONFIG) for u in found]
    pad = silence_row(DEFAULT_CONFIG)
    windows = [w for r in rows for w in utterance_windows(r, window_frames, hop_frames, pad)]
    return Expected([(round(u.start * 1000), round(u.end * 1000)) for u in found], rows, windows)


def tflm_scores(bundle: Path, windows: list[np.ndarray]) -> np.ndarray:
    """The bundle's model under TFLite Micro (its own kernels), a score row per window."""
    import json

    from ser_training.int8 import tflm_outputs

    arena = json.loads((bundle / "manifest.json").read_text())["verification"]["tflm_arena_bytes"]
    model = (bundle / "model.tflite").read_bytes()
    return tflm_outputs(model, np.array(windows, np.int8), arena + 4096).astype(np.int8)


def speech_stream(clips: list[np.ndarray], seconds: float, seed: int = 0) -> np.ndarray:
    """Continuous audio of about ``seconds``: the clips in turn, 0.5-1.5 s apart, over a
    room that is never silent (noise at about -50 dBFS)."""
    rng = np.random.default_rng(seed)
    parts, n, i = [np.zeros(8000, np.int16)], 8000, 0
    while n < seconds * 16_000:
        gap = np.zeros(int(rng.integers(8000, 24000)), np.int16)
        parts += [clips[i % len(clips)], gap]
        n += clips[i % len(clips)].size + gap.size
        i += 1
    pcm = np.concatenate(parts)[: int(seconds * 16_000)]
    return np.clip(pcm + rng.normal(0, 100, pcm.size).round(), -32768, 32767).astype(np.int16)
