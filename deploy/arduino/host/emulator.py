"""The board, emulated on this machine: the node's C core on a pseudo-terminal.

The firmware's portable C (ser_node/node.c, frontend.c, vad.c, speech_rule.c, protocol.c) is compiled
with gcc into a shared library and driven exactly as the sketch drives it; only the
board's peripherals are stood in for:

- the PDM microphone: audio files, played as ``ser-edge``'s replay source plays them,
  paced in real time (or ``--speed`` times faster);
- the USB serial port: a pseudo-terminal, reachable at the ``--link`` path (as a
  /dev/serial/by-id/ link would be); ``--replug-after`` unplugs and replugs it, between
  files or (2.5: after two and a half files) in the middle of one;
- TFLite Micro: the ``tflite-micro`` interpreter (TFLite Micro's own kernels, the
  bundle's model), for results mode, and the speech gate's model (``--gate-bundle``);
- the wire: ``--noise-every`` and ``--drop-rate`` damage what the node sends.

Each file starts once the Pi has configured the node, so runs are repeatable.

    python deploy/arduino/host/emulator.py --link /tmp/ser-node --bundle deploy/models/ser-tiny clip.wav ...
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import random
import select
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

import numpy as np

from ser_edge.audio.sources import ReplaySource
from ser_edge.gate.vad import FRAME_SAMPLES, SAMPLE_RATE
from ser_edge.recognition.bundle import load_bundle
from ser_edge.settings import SourceSettings

NODE = Path(__file__).resolve().parents[1] / "ser_node"
HOST = Path(__file__).with_name("node_host.c")
SOURCES = [*(NODE / f"{name}.c" for name in ("node", "frontend", "vad", "speech_rule", "protocol")), HOST]
FIRMWARE = b"0.1.0-host"

WRITE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)
CLASSIFY = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_int8))


class Io(ctypes.Structure):
    _fields_ = [("write", WRITE), ("classify", CLASSIFY), ("ctx", ctypes.c_void_p), ("speech", CLASSIFY)]


class ModelInfo(ctypes.Structure):
    _fields_ = [("sha256", ctypes.c_char_p), ("labels", ctypes.c_int32), ("window_frames", ctypes.c_int32),
                ("hop_frames", ctypes.c_int32), ("speech_sha256", ctypes.c_char_p),
                ("speech_window_frames", ctypes.c_int32), ("speech_hop_frames", ctypes.c_int32)]  # fmt: skip


def build(out: Path) -> ctypes.CDLL:
    """The C core as this machine's shared library."""
    lib = out / "libser_node.so"
    cmd = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-fPIC", "-shared", f"-I{NODE}",
           *map(str, SOURCES), "-o", str(lib)]  # fmt: skip
    subprocess.run(cmd, check=True)
    lib = ctypes.CDLL(str(lib))
    lib.ser_node_size.restype = ctypes.c_size_t
    lib.ser_node_init.argtypes = [ctypes.c_void_p, ctypes.POINTER(Io), ctypes.POINTER(ModelInfo), ctypes.c_char_p]
    lib.ser_node_receive.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32]
    lib.ser_node_tick.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.ser_node_audio.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16)]
    lib.ser_node_mode.argtypes = [ctypes.c_void_p]
    return lib


class Model:
    """The bundle's model under TFLite Micro, as the sketch runs it."""

    def __init__(self, bundle: Path) -> None:
        from tflite_micro import runtime

        b = load_bundle(bundle)
        self.sha256, self.labels = b.sha256, len(b.labels)
        self.window, self.hop, self.columns = b.window_frames, b.hop_frames, b.frontend.n_features
        arena = json.loads((bundle / "manifest.json").read_text())["verification"]["tflm_arena_bytes"]
        self._interp = runtime.Interpreter.from_bytes(b.model, arena_size=arena + 4096)

    def classify(self, _ctx, window, scores) -> int:
        out = self.scores(np.ctypeslib.as_array(window, (self.window, self.columns)).copy())
        ctypes.memmove(scores, out.ctypes.data, out.size)
        return 0

    def scores(self, window: np.ndarray) -> np.ndarray:
        self._interp.reset()  # recurrent state starts afresh for each window, as on the Pi
        self._interp.set_input(window[None], 0)
        self._interp.invoke()
        return np.ascontiguousarray(self._interp.get_output(0)[0], np.int8)


class SpeechModel(Model):
    """The speech gate's model under TFLite Micro: one int8 P(speech) score per window."""

    def __init__(self, bundle: Path) -> None:
        super().__init__(bundle)
        self._speech = load_bundle(bundle).labels.index("speech")

    def classify(self, _ctx, window, score) -> int:
        score[0] = int(self.scores(np.ctypeslib.as_array(window, (self.window, self.columns)).copy())[self._speech])
        return 0


WRITE_WAIT_S = 1.0
"""How long a write waits for a host that reads slowly before its bytes are lost."""


class Wire:
    """The USB cable: a pseudo-terminal whose other end is linked at ``path``, and the damage done on the way."""

    def __init__(self, path: Path, noise_every: int, drop_rate: float, rng: random.Random) -> None:
        self.path, self.noise_every, self.drop_rate, self.rng = path, noise_every, drop_rate, rng
        self.master = self.slave = -1
        self.frames = 0
        self.in_frame = False  # between a frame's first write (its leading delimiter) and its closing one

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # bytes, not lines: no echo, no CR/LF translation
        os.set_blocking(self.master, False)
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.path)

    def unplug(self) -> None:
        self.path.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            os.close(fd)
        self.master = self.slave = -1

    def send(self, data: bytes) -> None:
        """Node -> Pi. A host that reads slowly holds the node's write back (USB CDC's flow
        control), for up to WRITE_WAIT_S; a port nobody reads loses the bytes after that."""
        if self.master < 0:
            return
        # The node writes a frame in pieces (its leading delimiter, COBS blocks, the closing
        # delimiter): line noise lands between frames, before every Nth one.
        first = not self.in_frame
        if first:
            self.frames += 1
            self.in_frame = True
        if data.endswith(b"\0") and (not first or len(data) > 1):
            self.in_frame = False
        if first and self.noise_every and self.frames % self.noise_every == 0:
            data = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 24))) + data
        if self.drop_rate:
            data = bytes(b for b in data if self.rng.random() >= self.drop_rate)
        deadline = time.monotonic() + WRITE_WAIT_S
        while data and select.select([], [self.master], [], max(0.0, deadline - time.monotonic()))[1]:
            with contextlib.suppress(BlockingIOError):
                data = data[os.write(self.master, data) :]

    def receive(self, timeout: float) -> bytes:
        """Pi -> node, waiting at most timeout seconds."""
        if select.select([self.master], [], [], max(timeout, 0))[0]:
            try:
                return os.read(self.master, 4096)
            except OSError:  # nobody has the port open
                return b""
        return b""


class Board:
    def __init__(self, lib: ctypes.CDLL, wire: Wire, model: Model | None, speech: SpeechModel | None = None) -> None:
        self.lib, self.wire, self.model, self.speech = lib, wire, model, speech
        self.state = ctypes.create_string_buffer(lib.ser_node_size())
        self._write = WRITE(lambda _ctx, data, n: wire.send(ctypes.string_at(data, n)))
        self._classify = CLASSIFY(model.classify) if model else CLASSIFY()
        self._speech = CLASSIFY(speech.classify) if speech else CLASSIFY()
        self._t0 = time.monotonic()

    def boot(self, model_sha: str | None) -> None:
        io = Io(self._write, self._classify, None, self._speech)
        m, g = self.model, self.speech
        info = ModelInfo((model_sha or m.sha256).encode(), m.labels, m.window, m.hop) if m else ModelInfo(b"", 0, 0, 0)
        if g:
            info.speech_sha256, info.speech_window_frames, info.speech_hop_frames = g.sha256.encode(), g.window, g.hop
        self._keep = (io, info)  # the C side keeps the pointers
        if self.lib.ser_node_init(self.state, ctypes.byref(io), ctypes.byref(info), FIRMWARE) != 0:
            raise SystemExit("the model's shape exceeds the node's compiled-in limits")

    def now_ms(self) -> int:
        return int((time.monotonic() - self._t0) * 1000) & 0xFFFFFFFF

    def service(self, timeout: float) -> None:
        data = self.wire.receive(timeout)
        if data:
            self.lib.ser_node_receive(self.state, data, len(data), self.now_ms())
        self.lib.ser_node_tick(self.state, self.now_ms())

    def configured(self) -> bool:
        return self.lib.ser_node_mode(self.state) != 0

    def wait_configured(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.configured():
            if time.monotonic() > deadline:
                raise SystemExit(f"no CONFIG from the Pi on {self.wire.path} within {timeout:g} s")
            self.service(0.05)

    def play(self, pcm: np.ndarray, speed: float) -> None:
        """The microphone hears pcm: 20 ms frames, paced, with the port serviced in between."""
        start = time.monotonic()
        frames = pcm[: pcm.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
        for i, frame in enumerate(frames):
            self.service(start + i * FRAME_SAMPLES / SAMPLE_RATE / speed - time.monotonic())
            frame = np.ascontiguousarray(frame)
            self.lib.ser_node_audio(self.state, frame.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)))


def clip_pcm(path: Path) -> np.ndarray:
    """A file as the replay source feeds it: 16 kHz, silence after it, on the gate's frame grid."""
    source = ReplaySource(SourceSettings(kind="replay", files=(path,), realtime=False), strict=True)
    return np.concatenate([c.pcm for c in source])


def replug(board: Board, wire: Wire, model_sha: str | None) -> None:
    """The cable out for a second and back in; USB power: the board restarts."""
    wire.unplug()
    print("unplugged", flush=True)
    time.sleep(1.0)
    board.boot(model_sha)
    wire.plug()
    print("replugged", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="audio the microphone hears, in order")
    p.add_argument("--link", type=Path, required=True, help="path of the link to the pseudo-terminal (the Pi's port)")
    p.add_argument("--bundle", type=Path, help="model bundle for results mode (omit: a node without a model)")
    p.add_argument("--model-sha", help="claim this model hash in HELLO instead of the bundle's")
    p.add_argument("--gate-bundle", type=Path, help="the speech gate's model bundle (omit: a node without one)")
    p.add_argument("--speed", type=float, default=1.0, help="play the audio this many times faster than real time")
    p.add_argument("--noise-every", type=int, default=0, help="put random bytes before every Nth frame")
    p.add_argument("--drop-rate", type=float, default=0.0, help="lose each byte sent with this probability")
    p.add_argument("--replug-after", type=float, action="append", default=[],
                   help="unplug, replug after file N (from 1); N.F: F of the way into file N+1")  # fmt: skip
    p.add_argument("--linger", type=float, default=3.0, help="seconds to stay connected after the last file")
    p.add_argument("--loop", action="store_true", help="play the files again and again (until killed)")
    p.add_argument("--config-timeout", type=float, default=60, help="give up when the Pi has not configured the node")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wire = Wire(a.link, a.noise_every, a.drop_rate, random.Random(a.seed))
        speech = SpeechModel(a.gate_bundle) if a.gate_bundle else None
        board = Board(build(Path(tmp)), wire, Model(a.bundle) if a.bundle else None, speech)
        board.boot(a.model_sha)
        wire.plug()
        print(f"node on {a.link} -> {os.ttyname(wire.slave)}", flush=True)
        try:
            playlist = itertools.cycle(a.files) if a.loop else a.files
            for n, path in enumerate(playlist, 1):
                pcm = clip_pcm(path)
                frames = pcm.size // FRAME_SAMPLES
                # Where to unplug, in 20 ms frames of this file; the microphone hears the rest after the replug.
                cuts = sorted({round((r - n + 1) * frames) for r in a.replug_after if n - 1 < r <= n})
                for start, end in itertools.pairwise([0, *(c for c in cuts if c < frames), frames]):
                    board.wait_configured(a.config_timeout)
                    board.play(pcm[start * FRAME_SAMPLES : end * FRAME_SAMPLES], a.speed)
                    if end < frames:
                        replug(board, wire, a.model_sha)
                print(f"played {path.name}", flush=True)
                if frames in cuts:
                    replug(board, wire, a.model_sha)
            end = time.monotonic() + a.linger
            while time.monotonic() < end:
                board.service(0.05)
        finally:
            wire.unplug()
    return 0


if __name__ == "__main__":
    sys.exit(main())
