"""`make demo`: the whole device path on this machine, with nothing to configure.

Starts a throwaway Mosquitto on a free loopback port, runs the real daemon
(`ser-edge run`) on the bundled sample clips with the shipped Pi model (ser-base), prints what an MQTT
subscriber receives (events, state, availability) with each clip's true label beside the
answer, the Home Assistant discovery the daemon published, and how many clips it got
right; then stops everything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from ser_edge.audio.audio_io import as_heard_in_replay, audio_blocks
from ser_edge.gate.vad import FRAME_SAMPLES
from ser_edge.settings import SourceSettings
from ser_edge.tools.localbroker import LocalBroker, subscribe

REPO = Path(__file__).resolve().parents[2]
SAMPLE_RATE = 16000
# RAVDESS names a file modality-channel-emotion-intensity-statement-repetition-actor;
# the emotion code 01..08 is an index into this (deploy/samples/README.md).
RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def true_label(clip: Path) -> str | None:
    """The emotion a RAVDESS file name states (its 3rd field), None for any other name."""
    fields = clip.stem.split("-")
    if len(fields) == 7 and all(f.isdigit() for f in fields) and 1 <= int(fields[2]) <= len(RAVDESS_EMOTIONS):
        return RAVDESS_EMOTIONS[int(fields[2]) - 1]
    return None


def clip_spans(clips: list[Path], source: SourceSettings) -> list[tuple[Path, float, float]]:
    """Where each clip lies on the replay's timeline, in seconds from its first sample: the
    clip and the silence after it, cut exactly as the daemon's replay source plays them."""
    chunk = SAMPLE_RATE * source.chunk_ms // 1000
    gap = round(source.gap_s * SAMPLE_RATE)
    spans, offset = [], 0
    for clip in clips:
        n = sum(p.size for p in as_heard_in_replay(audio_blocks(clip, SAMPLE_RATE), gap, FRAME_SAMPLES, chunk))
        spans.append((clip, offset / SAMPLE_RATE, (offset + n) / SAMPLE_RATE))
        offset += n
    return spans


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def clip_of(event: dict, spans: list[tuple[Path, float, float]], t0: float) -> Path | None:
    """The clip an event's utterance came from: the span holding the utterance's middle.
    The replay stamps audio from ``t0`` on (the daemon's start, known to a fraction of a
    second); a clip and its gap last seconds, and speech sits in the clip's middle."""
    middle = (_unix(event["start"]) + _unix(event["end"])) / 2 - t0
    return next((clip for clip, a, b in spans if a <= middle < b), None)


def verdict(event: dict, clip: Path | None) -> str:
    truth = true_label(clip) if clip else None
    if truth is None:
        return "true label unknown"
    return f"true {truth:<9} {'right' if event['emotion'] == truth else 'WRONG'}"


def scoreboard(clips: list[Path], answers: dict[Path, list[dict]]) -> tuple[list[str], int, int]:
    """One line per clip (its true label beside the daemon's answer), and right of labelled."""
    lines = [f"   {'clip':<27} {'true label':<10} {'answer':<10} {'confidence':<10} {'arousal':<7} {'valence':<7}"]
    right = labelled = 0
    for clip in clips:
        truth, events = true_label(clip), answers.get(clip, [])
        best = max(events, key=lambda e: e["confidence"], default=None)
        answer = best["emotion"] if best else "(no event)"
        confidence = f"{best['confidence']:.2f}" if best else ""
        arousal, valence = (f"{best[k]:+.2f}" if best and k in best else "" for k in ("arousal", "valence"))
        mark = ""
        if truth is not None:
            labelled += 1
            right += answer == truth
            mark = "right" if answer == truth else "WRONG"
        more = f"  (+{len(events) - 1} more events)" if len(events) > 1 else ""
        lines.append(f"   {clip.name:<27} {truth or '?':<10} {answer:<10} {confidence:<10} {arousal:<7} {valence:<7} "
                     f"{mark}{more}")  # fmt: skip
    return lines, right, labelled


def _show(topic: str, payload: str, note: str = "") -> str:
    if topic.endswith("/event"):
        e = json.loads(payload)
        affect = f"arousal {e['arousal']:+.2f} valence {e['valence']:+.2f}  " if "arousal" in e else ""
        return (f"event #{e['seq']}: {e['emotion']:<9} {e['confidence']:.2f}  {affect}"
                f"{e['start'][11:23]}-{e['end'][11:23]} UTC ({e['duration_s']:.1f} s)  {note}")  # fmt: skip
    if topic.endswith("/config"):
        return f"Home Assistant discovery ({len(payload)} bytes, retained)"
    if topic.endswith("/stats"):
        s = json.loads(payload)
        return (f"stats: {s['events']} events, spool {s['spool_depth']}, latency p95 {s['latency_p95_ms']} ms, "
                f"cpu {s['cpu_percent']} %")  # fmt: skip
    return payload


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realtime", action="store_true", help="pace the clips as live audio (about 40 s)")
    args = parser.parse_args()
    samples = REPO / "deploy" / "samples"
    clips = sorted(samples.glob("*.flac"))  # the replay plays a folder's files in name order
    spans = clip_spans(clips, SourceSettings())  # the config below keeps the default gap and chunk
    with tempfile.TemporaryDirectory(prefix="ser-demo-") as tmp, LocalBroker(Path(tmp) / "broker") as broker:
        print(f"== Mosquitto (Debian package) listening on 127.0.0.1:{broker.port}")
        received: list[tuple[str, str]] = []
        answers: dict[Path, list[dict]] = {}
        lock = threading.Lock()
        started = {"t0": time.time()}  # replaced by the moment the daemon comes online

        def on_message(topic: str, payload: bytes) -> None:
            text, note = payload.decode(), ""
            if topic.endswith("/availability") and text == "online" and "online" not in started:
                started["online"] = started["t0"] = time.time()  # the replay starts as it connects
            if topic.endswith("/event"):
                event = json.loads(text)
                clip = clip_of(event, spans, started["t0"])
                note = verdict(event, clip)
                if clip is not None:
                    with lock:
                        answers.setdefault(clip, []).append(event)
            with lock:
                received.append((topic, text))
            if not topic.endswith("/stats"):
                print(f"   subscriber <- {topic:<36} {_show(topic, text, note)}", flush=True)

        sub = subscribe(broker.port, ["ser/#", "homeassistant/#"], on_message)

        config = Path(tmp) / "config.yaml"
        config.write_text(
            "device: {id: demo, name: Demo emotion sensor}\n"
            f"source: {{kind: replay, files: [{samples}], realtime: {str(args.realtime).lower()}}}\n"
            f"model: {{bundle: {REPO / 'deploy/models/ser-base'}}}\n"
            f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
            f"spool: {{path: {tmp}/spool.sqlite}}\n"
        )  # fmt: skip
        print(
            f"== ser-edge run --config {config}  ({len(clips)} RAVDESS sample clips, ser-base: Whisper encoder + head)"
        )
        ser_edge = Path(sys.executable).with_name("ser-edge")
        started["t0"] = time.time()
        daemon = subprocess.run([str(ser_edge), "run", "--config", str(config), "--log-level", "warning"])
        sub.loop_stop()
        sub.disconnect()

        with lock:
            discovery = next(json.loads(p) for t, p in received if t.endswith("/config"))
            events = [json.loads(p) for t, p in received if t.endswith("/event")]
        print(f"\n== Home Assistant discovery on homeassistant/device/demo/config: device {discovery['dev']['name']!r}")
        for c in discovery["cmps"].values():
            extra = c.get("event_types") or c.get("options") or c.get("unit_of_measurement", "")
            kind = f"{c['p']}{' (diagnostic)' if c.get('entity_category') else ''}"
            print(f"   {kind:<20} {c['name']:<22} <- {c['state_topic']:<22} {extra}")
        lines, right, labelled = scoreboard(clips, answers)
        print("\n== Each clip's true label (RAVDESS names the emotion in the file name) beside the daemon's answer")
        print("\n".join(lines))
        print(f"\n== {right} of {labelled} right; {len(events)} events delivered; the daemon exited with status "
              f"{daemon.returncode}; stopping Mosquitto")  # fmt: skip
    return daemon.returncode


if __name__ == "__main__":
    sys.exit(main())
