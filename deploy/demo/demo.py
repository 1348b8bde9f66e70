"""`make demo`: the whole device path on this machine, with nothing to configure.

Starts a throwaway Mosquitto on a free loopback port, runs the real daemon
(`ser-edge run`) on the bundled sample clips with the shipped Pi model (ser-base), prints what an MQTT
subscriber receives (events, state, availability) and the Home Assistant discovery the
daemon published, then stops everything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from ser_edge.tools.localbroker import LocalBroker, subscribe

REPO = Path(__file__).resolve().parents[2]


def _show(topic: str, payload: str) -> str:
    if topic.endswith("/event"):
        e = json.loads(payload)
        return (f"event #{e['seq']}: {e['emotion']:<9} {e['confidence']:.2f}  "
                f"{e['start'][11:23]}-{e['end'][11:23]} UTC ({e['duration_s']:.1f} s)  id {e['id'][:8]}")  # fmt: skip
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
    with tempfile.TemporaryDirectory(prefix="ser-demo-") as tmp, LocalBroker(Path(tmp) / "broker") as broker:
        print(f"== Mosquitto (Debian package) listening on 127.0.0.1:{broker.port}")
        received: list[tuple[str, str]] = []
        lock = threading.Lock()

        def on_message(topic: str, payload: bytes) -> None:
            with lock:
                received.append((topic, payload.decode()))
            if not topic.endswith("/stats"):
                print(f"   subscriber <- {topic:<36} {_show(topic, payload.decode())}", flush=True)

        sub = subscribe(broker.port, ["ser/#", "homeassistant/#"], on_message)

        config = Path(tmp) / "config.yaml"
        config.write_text(
            "device: {id: demo, name: Demo emotion sensor}\n"
            f"source: {{kind: replay, files: [{samples}], realtime: {str(args.realtime).lower()}}}\n"
            f"model: {{bundle: {REPO / 'deploy/models/ser-base'}}}\n"
            f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
            f"spool: {{path: {tmp}/spool.sqlite}}\n"
        )  # fmt: skip
        print(f"== ser-edge run --config {config}  (8 RAVDESS sample clips, ser-base: Whisper encoder + head)")
        ser_edge = Path(sys.executable).with_name("ser-edge")
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
        print(f"\n== {len(events)} events delivered; the daemon exited with status {daemon.returncode}; "
              "stopping Mosquitto")  # fmt: skip
    return daemon.returncode


if __name__ == "__main__":
    sys.exit(main())
