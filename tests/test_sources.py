"""Audio sources: replay of real files, and the microphone adapter.

The machine has no microphone, so the microphone test replaces the PyAudio module (the
thinnest adapter there is) with one that plays a real clip through the same callback
PortAudio would call, overflow flags included.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.audio.sources import FlatInputWatch, MicrophoneSource, ReplaySource, replay_files
from ser_edge.gate.vad import FRAME_SAMPLES
from ser_edge.settings import SourceSettings
from tests.conftest import SAMPLES


def test_replay_is_one_continuous_stream_on_the_frame_grid(tmp_path: Path) -> None:
    s = SourceSettings(kind="replay", files=(SAMPLES[0], SAMPLES[1]), realtime=False, gap_s=0.5)
    chunks = list(ReplaySource(s, clock=lambda: 100.0))
    stream = np.concatenate([c.pcm for c in chunks])
    a, b = read_audio(SAMPLES[0]), read_audio(SAMPLES[1])
    second = a.size + 8000 + (-(a.size + 8000) % FRAME_SAMPLES)  # gap rounded up to the 20 ms grid
    assert np.array_equal(stream[: a.size], a) and not stream[a.size : second].any()
    assert np.array_equal(stream[second : second + b.size], b)
    times = [c.time for c in chunks]
    offsets = np.cumsum([0] + [c.pcm.size for c in chunks[:-1]]) / 16000
    assert np.allclose(times, 100.0 + offsets)


def test_replay_expands_folders_and_skips_unreadable_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.flac").write_bytes((SAMPLES[0]).read_bytes())
    (tmp_path / "a.wav").write_bytes(b"not audio at all")
    (tmp_path / "notes.txt").write_text("ignored")
    assert replay_files((tmp_path,)) == [tmp_path / "a.wav", tmp_path / "b" / "x.flac"]
    source = ReplaySource(SourceSettings(kind="replay", files=(tmp_path,), realtime=False))
    total = sum(c.pcm.size for c in source)
    assert total >= read_audio(SAMPLES[0]).size
    assert len(source.skipped) == 1 and "a.wav: not a readable audio file" in source.skipped[0]


def test_replay_loops_when_asked() -> None:
    s = SourceSettings(kind="replay", files=(SAMPLES[0],), realtime=False, gap_s=0, loop=True)
    once = read_audio(SAMPLES[0]).size
    total = 0
    for chunk in ReplaySource(s):
        total += chunk.pcm.size
        if total > 3 * once:
            break
    assert total > 3 * once  # a non-looping replay ends after one pass


def test_flat_input_watch() -> None:
    watch = FlatInputWatch(dead_after_s=1.0)
    silence, dc = np.zeros(1600, np.int16), np.full(1600, 7, np.int16)
    assert [watch.update(silence) for _ in range(9)] == [None] * 9
    assert watch.update(dc) is True and watch.dead  # 1 s of zeros, then a flat DC offset
    assert watch.update(dc) is None
    assert watch.update(read_audio(SAMPLES[0])[16000:17600]) is False and not watch.dead


class _FakePyAudio(types.ModuleType):
    """The PyAudio API surface MicrophoneSource uses, playing ``pcm`` as the input."""

    paInt16, paInputOverflow = 8, 2

    def __init__(self, pcm: np.ndarray, overflow_every: int) -> None:
        super().__init__("pyaudio")
        self.pcm, self.overflow_every = pcm, overflow_every
        module = self

        class PyAudio:
            def get_device_count(self) -> int:
                return 2

            def get_device_info_by_index(self, i: int) -> dict:
                return [{"index": 0, "name": "HDMI output", "maxInputChannels": 0},
                        {"index": 1, "name": "USB PnP Sound Device", "maxInputChannels": 1}][i]  # fmt: skip

            def open(self, **kw) -> _Stream:
                module.opened = kw
                return _Stream(module, kw)

            def terminate(self) -> None:
                module.terminated = True

        self.PyAudio = PyAudio


class _Stream:
    def __init__(self, module: _FakePyAudio, kw: dict) -> None:
        self._active = True
        n = kw["frames_per_buffer"]

        def play() -> None:
            for i, start in enumerate(range(0, module.pcm.size - n + 1, n)):
                flag = module.paInputOverflow if module.overflow_every and i % module.overflow_every == 1 else 0
                kw["stream_callback"](module.pcm[start : start + n].astype("<i2").tobytes(), n, {}, flag)
            self._active = False

        threading.Thread(target=play, daemon=True).start()

    def is_active(self) -> bool:
        return self._active

    def stop_stream(self) -> None:
        self._active = False

    def close(self) -> None:
        pass


def test_microphone_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    pcm = read_audio(SAMPLES[2])
    fake = _FakePyAudio(pcm, overflow_every=10)
    monkeypatch.setitem(sys.modules, "pyaudio", fake)
    mic = MicrophoneSource(SourceSettings(device="usb pnp", chunk_ms=100))
    assert fake.opened["input_device_index"] == 1 and fake.opened["rate"] == 16000
    assert fake.opened["channels"] == 1 and fake.opened["format"] == fake.paInt16
    chunks = list(mic)
    mic.close()
    assert all(c.pcm.size == 1600 for c in chunks)
    assert np.array_equal(np.concatenate([c.pcm for c in chunks]), pcm[: len(chunks) * 1600])
    assert mic.overflows == len(range(1, len(chunks), 10)) and fake.terminated

    with pytest.raises(OSError, match=r"source.device: no input device matches 'studio' \(inputs: 1: USB PnP"):
        MicrophoneSource(SourceSettings(device="studio"))


def test_without_pyaudio_the_microphone_is_a_clear_error() -> None:
    r = subprocess.run([sys.executable, "-m", "ser_edge", "devices"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "ser-edge: error: the microphone needs PyAudio: pip install 'ser-edge[mic]' (Debian: portaudio19-dev)"
    )
