"""Audio sources: where the int16 16 kHz stream comes from.

A source is an iterator of ``Chunk``s, each stamped with the UNIX time of its first
sample. Replay (files or folders) and the microphone (PyAudio) produce the same chunks,
so the demo and the tests run the daemon's own code path.
"""

from __future__ import annotations

import itertools
import logging
import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_edge.audio.audio_io import AudioFileError, as_heard_in_replay, audio_blocks
from ser_edge.gate.vad import FRAME_SAMPLES
from ser_edge.settings import SourceSettings

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = {".wav", ".flac", ".aiff", ".aif", ".ogg"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    pcm: np.ndarray
    """int16 mono samples at 16 kHz."""
    time: float
    """UNIX time of the first sample."""


def replay_files(paths: tuple[Path, ...]) -> list[Path]:
    """The audio files named, folders expanded to their audio files in name order."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
        else:
            out.append(p)
    return out


class ReplaySource:
    """Audio files played one after another with silence between them, as if a
    microphone heard them: paced in real time, or as fast as the consumer takes them.
    A loop leaves out the files it could not read (each is logged once) and goes on as
    long as one file is left."""

    def __init__(self, s: SourceSettings, clock: Callable[[], float] = time.time, strict: bool = False) -> None:
        self.settings = s
        self.strict = strict
        """Raise AudioFileError for an unreadable file instead of logging and skipping it."""
        self.files = replay_files(s.files)
        if not self.files:
            raise AudioFileError(f"source.files: no audio files in {', '.join(map(str, s.files))}")
        self.skipped: list[str] = []
        """Files that could not be read, with the reason: each file once."""
        self._unreadable: set[Path] = set()
        self._clock = clock

    def __iter__(self) -> Iterator[Chunk]:
        s = self.settings
        step = SAMPLE_RATE * s.chunk_ms // 1000
        gap = round(s.gap_s * SAMPLE_RATE)
        t0, m0 = self._clock(), time.monotonic()
        offset = 0
        for path in self._playlist():
            # Each file starts on the gate's frame grid: alone or in a sequence, it is cut the same way.
            parts = as_heard_in_replay(audio_blocks(path, SAMPLE_RATE), gap, FRAME_SAMPLES, step)
            started = offset
            try:
                for part in parts:
                    if s.realtime:  # hand the chunk over once it would have been recorded
                        time.sleep(max(0.0, m0 + (offset + part.size) / SAMPLE_RATE - time.monotonic()))
                    yield Chunk(part, t0 + offset / SAMPLE_RATE)
                    offset += part.size
            except AudioFileError as e:
                if self.strict:
                    raise
                log.error("replay: %s; %s", e, "skipped" if offset == started else "the rest skipped")
                self.skipped.append(str(e))
                self._unreadable.add(path)
                if offset > started:  # what was played is followed by the gap, as a whole file is
                    tail = np.zeros(gap + (-offset % FRAME_SAMPLES), np.int16)
                    for i in range(0, tail.size, step):
                        yield Chunk(tail[i : i + step], t0 + offset / SAMPLE_RATE)
                        offset += tail[i : i + step].size

    def _playlist(self) -> Iterator[Path]:
        """Each file in turn (for a loop, again and again) but those found unreadable."""
        for _ in itertools.count() if self.settings.loop else range(1):
            if self._unreadable.issuperset(self.files):
                return
            yield from (f for f in self.files if f not in self._unreadable)


class MicrophoneSource:
    """PyAudio capture in callback mode; overflows are counted, never fatal."""

    def __init__(self, s: SourceSettings) -> None:
        pyaudio = load_pyaudio()
        self.settings = s
        self.overflows = 0
        self._pa = pyaudio.PyAudio()
        self._index = find_device(self._pa, s.device)
        self._chunks: queue.Queue[Chunk] = queue.Queue()
        self._overflow_flag = pyaudio.paInputOverflow
        self._stream = self._pa.open(
            format=pyaudio.paInt16, channels=1, rate=SAMPLE_RATE, input=True, input_device_index=self._index,
            frames_per_buffer=SAMPLE_RATE * s.chunk_ms // 1000, stream_callback=self._callback,
        )  # fmt: skip

    def _callback(self, data: bytes, n: int, info: dict, status: int) -> tuple[None, int]:
        if status & self._overflow_flag:
            self.overflows += 1
        self._chunks.put(Chunk(np.frombuffer(data, "<i2").copy(), time.time() - n / SAMPLE_RATE))
        return None, 0  # paContinue

    def __iter__(self) -> Iterator[Chunk]:
        while self._stream.is_active() or not self._chunks.empty():
            try:
                yield self._chunks.get(timeout=1.0)
            except queue.Empty:
                continue

    def close(self) -> None:
        """Idempotent, and quiet about a device that is already gone."""
        if self._pa is None:
            return
        try:
            self._stream.stop_stream()
            self._stream.close()
        except OSError:
            pass
        self._pa.terminate()
        self._pa = None


def load_pyaudio():
    try:
        import pyaudio
    except ImportError:
        raise OSError("the microphone needs PyAudio: pip install 'ser-edge[mic]' (Debian: portaudio19-dev)") from None
    return pyaudio


def input_devices(pa) -> list[tuple[int, str, int]]:
    """(index, name, channels) of every capture device."""
    infos = (pa.get_device_info_by_index(i) for i in range(pa.get_device_count()))
    return [(int(d["index"]), d["name"], int(d["maxInputChannels"])) for d in infos if d["maxInputChannels"] > 0]


def find_device(pa, wanted: str) -> int | None:
    """The input device given by index or by part of its name; None for the default."""
    if not wanted:
        return None
    devices = input_devices(pa)
    for index, name, _ in devices:
        if wanted == str(index) or wanted.lower() in name.lower():
            return index
    names = ", ".join(f"{i}: {n}" for i, n, _ in devices) or "none"
    raise OSError(f"source.device: no input device matches {wanted!r} (inputs: {names})")


def list_devices() -> list[tuple[int, str, int]]:
    """The capture devices PyAudio sees (for ``ser-edge devices``)."""
    pa = load_pyaudio().PyAudio()
    try:
        return input_devices(pa)
    finally:
        pa.terminate()


class FlatInputWatch:
    """Notices a dead microphone: input that stays all-zero or flat for too long."""

    def __init__(self, dead_after_s: float) -> None:
        self.dead_after = round(dead_after_s * SAMPLE_RATE)
        self.flat_samples = 0
        self.dead = False

    @property
    def flat_seconds(self) -> float:
        """How long the input has been flat, now."""
        return self.flat_samples / SAMPLE_RATE

    def update(self, pcm: np.ndarray) -> bool | None:
        """Feed a chunk; True when the input just died, False when it just came back."""
        flat = pcm.size == 0 or int(pcm.max()) - int(pcm.min()) <= 1
        self.flat_samples = self.flat_samples + pcm.size if flat else 0
        dead = self.flat_samples >= self.dead_after
        if dead == self.dead:
            return None
        self.dead = dead
        return dead
