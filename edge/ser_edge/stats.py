"""Running figures of the daemon, published on the stats topic."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

from ser_edge.delivery.events import iso_utc


def _status_mb(field: str) -> float:
    """A memory figure of /proc/self/status (Linux), in MB; 0 where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def rss_mb() -> float:
    """Resident memory now."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The highest resident memory so far. The kernel updates its high-water mark lazily,
    so it can lag the current figure: never reported below it."""
    return max(_status_mb("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, rss_mb())


class Stats:
    """Counters since start, and CPU and latency over each stats period."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.started_at = time.time()
        self.utterances = 0
        self.events = 0
        self.undecided = 0
        """Utterances whose confidence stayed below the threshold."""
        self.not_speech = 0
        """Utterances the speech gate dropped (gate.kind speech)."""
        self.speech_probability: float | None = None
        """The last checked utterance's mean P(speech) over its windows."""
        self.dropped_frames = 0
        """20 ms audio frames lost because processing fell behind (or the sound card overflowed)."""
        self.input_overflows = 0
        self.skipped_files = 0
        self.inference_ms: list[float] = []
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def period(self, latencies_ms: list[float]) -> dict:
        """Figures for the period since the last call (CPU, latency) and totals."""
        cpu, wall = time.process_time(), time.monotonic()
        cpu_percent = 100 * (cpu - self._cpu) / max(wall - self._wall, 1e-9)
        self._cpu, self._wall = cpu, wall
        inference, self.inference_ms = self.inference_ms, []

        def pct(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 1) if values else None

        return {
            "started": iso_utc(self.started_at),
            "uptime_s": round(wall - self.started),
            "cpu_percent": round(cpu_percent, 1),
            "rss_mb": round(rss_mb(), 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "latency_p50_ms": pct(latencies_ms, 50),
            "latency_p95_ms": pct(latencies_ms, 95),
            "inference_p95_ms": pct(inference, 95),
            "utterances": self.utterances,
            "events": self.events,
            "undecided": self.undecided,
            "not_speech": self.not_speech,
            "speech_probability": self.speech_probability,
            "dropped_frames": self.dropped_frames,
            "input_overflows": self.input_overflows,
            "skipped_files": self.skipped_files,
        }
