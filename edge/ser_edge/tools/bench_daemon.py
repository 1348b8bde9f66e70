"""`ser-edge bench daemon`: the whole daemon on real-time audio into a local broker.

Real speech clips are replayed at the pace of a microphone through ``ser-edge run``
(a child process, as under systemd) into a throwaway Mosquitto. The daemon's own final
stats give its CPU time over the run, peak RSS and the latency from each utterance's end
to the broker's PUBACK; the subscriber counts the events.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ser_edge.audio.sources import replay_files
from ser_edge.recognition.bundle import load_bundle
from ser_edge.settings import SourceSettings, default_bundle
from ser_edge.tools.localbroker import LocalBroker, subscribe

TARGETS = {
    "frames": {"cpu_percent": 10.0, "peak_rss_mb": 150.0, "latency_p95_ms": 250.0},
    "encoder": {"cpu_percent": 10.0, "peak_rss_mb": 250.0, "latency_p95_ms": 250.0},
}
"""Per model kind: ser-tiny (frames) on the Pi, and ser-base (encoder, issue 26)."""


def bench_daemon(clips: list[Path], seconds: float, bundle: Path | None = None, gate: str = "energy") -> dict:
    """The daemon's figures over the replay; ``gate``: gate.kind (energy or speech)."""
    files = replay_files(tuple(clips))
    clip_s = sum(_duration(f) + 1.0 for f in files)  # plus the replay's 1 s gap
    passes = max(1, math.ceil(seconds / clip_s))
    playlist = files * passes
    with tempfile.TemporaryDirectory(prefix="ser-bench-") as tmp, LocalBroker(Path(tmp) / "broker") as broker:
        stats: list[dict] = []
        events: list[dict] = []
        lock = threading.Lock()

        def on_message(topic: str, payload: bytes) -> None:
            with lock:
                (events if topic.endswith("/event") else stats).append(json.loads(payload))

        sub = subscribe(broker.port, ["ser/bench/event", "ser/bench/stats"], on_message)
        config = Path(tmp) / "config.yaml"
        model = f"model: {{bundle: {bundle}}}\n" if bundle else ""
        config.write_text(
            "device: {id: bench}\n"
            f"source: {{kind: replay, realtime: true, files: [{', '.join(map(str, playlist))}]}}\n{model}"
            f"gate: {{kind: {gate}}}\n"
            f"mqtt: {{host: 127.0.0.1, port: {broker.port}, stats_interval_s: 86400}}\n"
            f"spool: {{path: {tmp}/spool.sqlite}}\n"
        )  # fmt: skip
        start = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "ser_edge", "run", "--config", str(config),
                              "--log-level", "warning"], capture_output=True, text=True)  # fmt: skip
        wall = time.monotonic() - start
        time.sleep(0.5)
        sub.loop_stop()
        sub.disconnect()
    if run.returncode != 0 or not stats:
        raise OSError(f"the daemon failed (exit {run.returncode}): {run.stderr.strip()[-500:]}")
    final = stats[-1]  # published at shutdown: covers the whole run after start-up
    kind = load_bundle(bundle or default_bundle(SourceSettings()), frontend=None).kind
    return {"audio_s": passes * clip_s, "wall_s": wall, "events": len(events), "gate": gate, "kind": kind,
            "events_per_min": 60 * len(events) / wall, **final}  # fmt: skip


def _duration(path: Path) -> float:
    import soundfile as sf

    try:
        return sf.info(str(path)).duration
    except (RuntimeError, sf.LibsndfileError):
        return 0.0


def format_daemon(r: dict) -> str:
    def row(key: str, label: str, unit: str) -> str:
        value, target = r.get(key), TARGETS[r["kind"]][key]
        if value is None:
            return f"  {label:<34} n/a"
        verdict = "meets" if value <= target else "MISSES"
        return f"  {label:<34} {value:8.1f} {unit:<3} (target <= {target:g} {unit}: {verdict}; {value / target:.2f}x)"

    return "\n".join([
        f"daemon benchmark, model {r['model']} {r['model_version']}, gate.kind {r['gate']}: {r['audio_s']:.0f} s "
        f"of real speech replayed in real time "
        f"through ser-edge run into a local Mosquitto ({r['wall_s']:.0f} s wall)",
        row("cpu_percent", "CPU, % of one core", "%"),
        row("peak_rss_mb", "peak RSS", "MB"),
        row("latency_p95_ms", "utterance end -> PUBACK, p95", "ms"),
        f"  {'utterance end -> PUBACK, p50':<34} {r['latency_p50_ms']:8.1f} ms",
        f"  {'inference (front end or encoder + model) p95':<34} {r['inference_p95_ms']:8.1f} ms per utterance",
        f"  {'events':<34} {r['events']:8d}     ({r['events_per_min']:.1f} per minute; "
        f"{r['utterances']} utterances, {r['undecided']} below the threshold)",
        f"  {'dropped audio frames':<34} {r['dropped_frames']:8d}",
    ])  # fmt: skip


def format_ratio(r: dict, reference: dict) -> str:
    """The speech gate's cost against the energy gate's, measured in the same run."""
    cpu = r["cpu_percent"] / max(reference["cpu_percent"], 1e-9)
    return (f"gate.kind {r['gate']} against {reference['gate']} (same clips, same run): CPU {r['cpu_percent']:.1f} % "
            f"against {reference['cpu_percent']:.1f} % of one core ({cpu:.2f}x); events {r['events']} against "
            f"{reference['events']}")  # fmt: skip


def format_model_ratio(r: dict, reference: dict) -> str:
    """One model's cost against another's, measured in the same run with the same gate."""
    cpu = r["cpu_percent"] / max(reference["cpu_percent"], 1e-9)
    rss = r["peak_rss_mb"] / max(reference["peak_rss_mb"], 1e-9)
    return (f"model {r['model']} against {reference['model']} (same clips, gate.kind {r['gate']}, same run): CPU "
            f"{r['cpu_percent']:.1f} % against {reference['cpu_percent']:.1f} % of one core ({cpu:.2f}x); peak RSS "
            f"{r['peak_rss_mb']:.0f} MB against {reference['peak_rss_mb']:.0f} MB ({rss:.2f}x); inference p95 "
            f"{r['inference_p95_ms']:.1f} against {reference['inference_p95_ms']:.1f} ms per utterance")  # fmt: skip
