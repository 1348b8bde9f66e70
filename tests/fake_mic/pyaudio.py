"""A stand-in for PyAudio, the binding to microphone hardware these machines lack: the
thinnest adapter, everything above it real. It plays FAKE_MIC_CLIP in real time through
the callback, as PortAudio would. FAKE_MIC_PLAN says what each open() does, in order,
comma-separated: a number of seconds to deliver before the device "unplugs" (the stream
stops, as PortAudio's does), or "fail" (opening raises, as for a missing device). After
the plan, opens fail."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import soundfile as sf

paInt16 = 8
paInputOverflow = 2
_opens = [0]


class _Stream:
    def __init__(self, seconds: float, frames: int, callback) -> None:
        clip, _ = sf.read(os.environ["FAKE_MIC_CLIP"], dtype="int16")
        self._active = True
        self._thread = threading.Thread(target=self._run, args=(clip, seconds, frames, callback), daemon=True)
        self._thread.start()

    def _run(self, clip: np.ndarray, seconds: float, frames: int, callback) -> None:
        sent, start = 0, time.monotonic()
        while self._active and sent < seconds * 16000:
            i = sent % clip.size
            block = np.resize(np.roll(clip, -i), frames)
            callback(block.astype("<i2").tobytes(), frames, {}, 0)
            sent += frames
            time.sleep(max(0.0, start + sent / 16000 - time.monotonic()))
        self._active = False

    def is_active(self) -> bool:
        return self._active

    def stop_stream(self) -> None:
        self._active = False

    def close(self) -> None:
        self._active = False


class PyAudio:
    def get_device_count(self) -> int:
        return 1

    def get_device_info_by_index(self, i: int) -> dict:
        return {"index": i, "name": "fake USB microphone", "maxInputChannels": 1}

    def open(self, frames_per_buffer: int, stream_callback, **_kw) -> _Stream:
        plan = os.environ.get("FAKE_MIC_PLAN", "").split(",")
        step = plan[_opens[0]] if _opens[0] < len(plan) else "fail"
        _opens[0] += 1
        if step == "fail":
            raise OSError("[Errno -9996] Invalid input device (no default output device)")
        return _Stream(float(step), frames_per_buffer, stream_callback)

    def terminate(self) -> None:
        pass
