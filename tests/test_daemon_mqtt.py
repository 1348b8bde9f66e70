"""The daemon end to end: replayed real speech -> real Mosquitto -> subscriber.

Every test starts its own broker on a free loopback port and runs ``ser-edge run`` as a
child process, exactly as systemd would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_edge.tools.localbroker import LocalBroker, free_port
from tests.conftest import SAMPLES
from tests.daemon_harness import (
    SHIPPED,
    Daemon,
    Subscriber,
    classify,
    event_samples,
    sample_events,
    ser_edge,
    write_config,
)

LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
MANIFEST = json.loads((SHIPPED / "manifest.json").read_text())
NAME, VERSION = MANIFEST["name"], MANIFEST["version"]


def _truth(path: Path) -> str:
    return LABELS[int(path.name.split("-")[2]) - 1]


@pytest.fixture
def broker(tmp_path: Path):
    with LocalBroker(tmp_path / "broker") as b:
        yield b


def _answers(files: list[Path]) -> list[str]:
    """The shipped model's emotion for each clip, as `classify` gives it (not the truth)."""
    return [x["emotion"] for x in classify(files)]


def test_replay_publishes_the_classify_results(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.port)
    daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port))
    assert daemon.wait(60) == 0, daemon.log
    assert sub.wait(lambda s: s.on("/availability")[-1:] == ["offline"], 10), daemon.log
    events = sub.events()
    # The same emotions, confidences and utterance times as `ser-edge classify` on the files,
    expected = classify(SAMPLES)
    assert [(e["emotion"], e["confidence"]) for e in events] == [(x["emotion"], x["confidence"]) for x in expected]
    # ... one event per clip that classify decides (a clip below the threshold has none), numbered in order.
    assert len(expected) == sample_events() >= len(SAMPLES) - 2
    assert [e["seq"] for e in events] == list(range(1, sample_events() + 1))
    assert len({e["id"] for e in events}) == len(events)
    for e in events:
        assert e["schema"] == 1 and e["device"] == "test" and e["event_type"] == e["emotion"]
        assert set(e["scores"]) == set(LABELS) and abs(sum(e["scores"].values()) - 1) < 0.02
        assert e["start"].endswith("Z") and e["start"] < e["end"] and 0.5 < e["duration_s"] < 8
        assert e["model"] == {"name": NAME, "version": VERSION}
    assert json.loads(sub.on("/state")[-1])["emotion"] == events[-1]["emotion"]
    stats = json.loads(sub.on("/stats")[-1])
    assert stats["events"] == sample_events() and stats["spool_depth"] == 0 and stats["model"] == NAME
    assert sub.on("/availability")[0] == "online"
    assert "as ser-edge-test (p5, c1" in broker.log.read_text()  # MQTT 5 by default
    sub.close()

    # A subscriber arriving later sees the retained discovery, state and availability.
    late = Subscriber(broker.port)
    assert late.wait(lambda s: s.on("/config") and s.on("/availability") and s.on("/state"), 10)
    assert late.on("/availability") == ["offline"]
    discovery = json.loads(late.on("homeassistant/device/test/config")[0])
    components = discovery["cmps"]
    event = components["ser_edge_test_event"]
    assert event["p"] == "event" and event["event_types"] == list(LABELS) and event["state_topic"] == "ser/test/event"
    sensor = components["ser_edge_test_emotion"]
    assert sensor["p"] == "sensor" and sensor["device_class"] == "enum" and sensor["options"] == [*LABELS, "uncertain"]
    assert sensor["state_topic"] == "ser/test/state"
    diagnostics = [c for c in components.values() if c.get("entity_category") == "diagnostic"]
    assert len(diagnostics) >= 5 and all(c["state_topic"] == "ser/test/stats" for c in diagnostics)
    # Home Assistant keeps statistics only of sensors with a state class: every number has one
    numeric = [c for c in diagnostics if c.get("unit_of_measurement")]
    assert len(numeric) >= 5 and all(c["state_class"] in ("measurement", "total_increasing") for c in numeric)
    assert {c["name"]: c["state_class"] for c in numeric}["Dropped events"] == "total_increasing"
    assert components["ser_edge_test_confidence"]["state_class"] == "measurement"
    restart = components["ser_edge_test_started"]
    assert restart["device_class"] == "timestamp" and "state_class" not in restart
    assert stats["started"].endswith("Z") and stats["started"] <= events[0]["end"]
    # the device is the kind of device; the ML model, which changes with rollouts, a sensor of it
    assert discovery["dev"]["mdl"] == "Speech emotion sensor"
    assert (
        components["ser_edge_test_model"]["value_template"] == "{{ value_json.model }} {{ value_json.model_version }}"
    )
    assert discovery["availability_topic"] == "ser/test/availability" and discovery["o"]["name"] == "ser-edge"
    assert len({c["unique_id"] for c in components.values()}) == len(components)
    late.close()


def test_a_low_confidence_utterance_publishes_uncertain_and_no_event(tmp_path: Path, broker: LocalBroker) -> None:
    """Issue 29: below model.threshold the retained state says `uncertain` (no event is
    spooled or published); above it, the emotion and its event; both states carry arousal
    and valence. Two sample clips: ser-tiny
    hears RAVDESS's angry clip as angry with a high score and its happy clip as angry with
    a low one; model.threshold 0.5 puts one on each side."""
    files = [next(p for p in SAMPLES if p.name.split("-")[2] == code) for code in ("05", "03")]
    config = write_config(tmp_path / "c.yaml", broker.port, files=files, threshold=0.5)
    found = json.loads(ser_edge("classify", "--json", "--config", str(config), *map(str, files)).stdout)["results"]
    assert [x["event"] for x in found] == [True, False], found  # the premise: one clip on each side
    sub = Subscriber(broker.port)
    daemon = Daemon(config)
    assert daemon.wait(60) == 0, daemon.log
    assert sub.wait(lambda s: s.on("/availability")[-1:] == ["offline"], 10), daemon.log
    events, states = sub.events(), [json.loads(p) for p in sub.on("/state")]
    assert [(e["emotion"], e["confidence"]) for e in events] == [(found[0]["emotion"], found[0]["confidence"])]
    assert [s["emotion"] for s in states] == [found[0]["emotion"], "uncertain"], states
    assert states[0]["seq"] == events[0]["seq"] == 1
    low = states[1]
    assert low["seq"] is None and low["best"] == found[1]["emotion"]
    assert low["confidence"] == found[1]["confidence"] < 0.5
    # arousal and valence (issue 29, part 2): those `classify` computes, on the event and on both states
    assert (events[0]["arousal"], events[0]["valence"]) == (found[0]["arousal"], found[0]["valence"])
    assert [(s["arousal"], s["valence"]) for s in states] == [(x["arousal"], x["valence"]) for x in found]
    assert low["arousal"] > 0.3  # heard as a weak angry: no event, but an agitated voice
    assert events[0]["end"] <= low["time"] and low["time"].endswith("Z")
    stats = json.loads(sub.on("/stats")[-1])
    assert (stats["utterances"], stats["events"], stats["undecided"], stats["spool_depth"]) == (2, 1, 1, 0)
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:  # nothing of the uncertain utterance waits to be sent
        assert db.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
    sub.close()
    late = Subscriber(broker.port, "ser/test/state")  # retained: a dashboard that connects now sees it
    assert late.wait(lambda s: s.on("/state"), 10) and json.loads(late.on("/state")[-1])["emotion"] == "uncertain"
    late.close()


def test_kill_leaves_offline_through_the_will(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.port, "ser/test/availability")
    daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, realtime=True))
    try:
        assert sub.wait(lambda s: s.on("availability") == ["online"], 30), daemon.log
        daemon.process.kill()
        assert sub.wait(lambda s: s.on("availability") == ["online", "offline"], 10)
    finally:
        daemon.stop()


def test_home_assistant_restart_gets_discovery_again(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.port, "homeassistant/device/#")
    daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, realtime=True))
    try:
        assert sub.wait(lambda s: len(s.messages) == 1, 30), daemon.log
        ha = Subscriber(broker.port, "nothing")
        ha.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        assert sub.wait(lambda s: len(s.messages) == 2, 10)
        assert sub.messages[0][1] == sub.messages[1][1]
        ha.close()
    finally:
        daemon.stop()


def test_broker_outage_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """The broker goes away after the first event and comes back seconds later: every
    event arrives, in order, none twice beyond at-least-once."""
    broker = LocalBroker(tmp_path / "broker", persistent=True).start()
    sub = Subscriber(broker.port, "ser/test/event", client_id="consumer", persistent=True)
    files = list(event_samples()[:4])  # four clips that each give an event
    daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, files=files, realtime=True))
    try:
        assert sub.wait(lambda s: len(s.events()) >= 1, 30), daemon.log
        broker.stop()
        assert daemon.wait_log("lost the broker connection", 10), daemon.log
        assert daemon.wait_log("event 3:", 30), daemon.log  # made while the broker is down
        time.sleep(1)
        broker.start()
        assert daemon.wait(60) == 0, daemon.log
        assert sub.wait(lambda s: len({e["seq"] for e in s.events()}) == 4, 20), sub.events()
    finally:
        daemon.stop()
        sub.close()
        broker.stop()
    seqs = [e["seq"] for e in sub.events()]
    assert sorted(set(seqs)) == [1, 2, 3, 4]
    assert seqs == sorted(seqs)  # in order (a repeat may follow its original)
    # subscribers can tell the backlog from live events: how late each was published
    delays = {e["seq"]: e["delayed_s"] for e in sub.events()}
    assert delays[1] < 2 and delays[3] >= 1, delays
    assert [e["emotion"] for e in {e["seq"]: e for e in sub.events()}.values()] == _answers(files)


def test_sigkill_then_restart_delivers_the_spool(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path / "c.yaml", port)  # no broker yet
    daemon = Daemon(config)
    try:
        assert daemon.wait_log(f"event {sample_events()}:", 60), daemon.log
        assert daemon.wait_log("the replay is over", 10)
        daemon.process.send_signal(signal.SIGKILL)
        daemon.wait(10)
    finally:
        daemon.stop()
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == sample_events()

    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000, np.int16), 16000)
    with LocalBroker(tmp_path / "broker", port=port) as _broker:
        sub = Subscriber(port, "ser/test/event")
        again = Daemon(write_config(config, port, files=[silence]))
        try:
            assert again.wait(60) == 0, again.log
            assert sub.wait(lambda s: len(s.events()) == sample_events(), 10)
        finally:
            again.stop()
            sub.close()
    events = sub.events()
    assert [e["seq"] for e in events] == list(range(1, sample_events() + 1))
    assert [e["emotion"] for e in events] == _answers(SAMPLES)


def test_an_event_sent_but_not_acknowledged_stays_in_the_spool(tmp_path: Path, broker: LocalBroker) -> None:
    """The spool forgets an event only at the broker's PUBACK: with the broker frozen, events
    handed to the client stay; a SIGKILL then loses none of them (issue 13's mutation audit)."""
    sub = Subscriber(broker.port, "ser/test/event")
    config = write_config(tmp_path / "c.yaml", broker.port, realtime=True)
    config.write_text(config.read_text().replace("realtime: true}", "realtime: true, loop: true}"))
    daemon = Daemon(config)
    try:
        assert sub.wait(lambda s: len(s.events()) >= 1, 30), daemon.log
        delivered = {e["seq"] for e in sub.events()}
        broker.send_signal(signal.SIGSTOP)  # connected, reading nothing, acknowledging nothing
        made = max(delivered)
        assert daemon.wait_log(f"event {made + 2}:", 30), daemon.log  # two more handed to the client
        daemon.process.send_signal(signal.SIGKILL)
        daemon.wait(10)
    finally:
        daemon.stop()
        broker.send_signal(signal.SIGCONT)
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:
        spooled = {seq for (seq,) in db.execute("SELECT seq FROM events")}
    assert {made + 1, made + 2} <= spooled
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000, np.int16), 16000)
    again = Daemon(write_config(config, broker.port, files=[silence]))
    try:
        assert again.wait(60) == 0, again.log
        assert sub.wait(lambda s: spooled <= {e["seq"] for e in s.events()}, 10)  # at least once
    finally:
        again.stop()
        sub.close()


def _fake_microphone(plan: str) -> dict:
    """Environment for a daemon whose PyAudio is tests/fake_mic (no microphone here)."""
    fake = Path(__file__).parent / "fake_mic"
    angry = next(p for p in SAMPLES if _truth(p) == "angry")
    return {
        "PYTHONPATH": f"{fake}:{os.environ.get('PYTHONPATH', '')}",
        "FAKE_MIC_CLIP": str(angry),
        "FAKE_MIC_PLAN": plan,
    }


def test_an_unplugged_microphone_is_reopened(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.port, "ser/test/event")
    config = write_config(tmp_path / "c.yaml", broker.port, source="{kind: microphone, reopen_s: 0.2}")
    daemon = Daemon(config, env=_fake_microphone("6,fail,fail,60"))  # unplugged after 6 s, back two tries later
    try:
        assert sub.wait(lambda s: len(s.events()) >= 1, 30), daemon.log
        assert daemon.wait_log("audio source reopened", 30), daemon.log
        n = len(sub.events())
        assert sub.wait(lambda s: len(s.events()) > n, 30), daemon.log  # events again, from the same process
        assert daemon.process.poll() is None
    finally:
        daemon.stop()
        sub.close()
    log = daemon.log
    assert "audio source failed: it stopped delivering audio; reopening in 0.2 s (attempt 1 of 5)" in log
    assert "reopening in 0.4 s (attempt 2 of 5)" in log and "reopening in 0.8 s (attempt 3 of 5)" in log
    assert "Invalid input device" in log and "Traceback" not in log


def test_a_microphone_that_stays_gone_ends_the_run_with_69(tmp_path: Path, broker: LocalBroker) -> None:
    """Not exit 0: systemd's Restart=on-failure must see it (issue 13)."""
    config = write_config(
        tmp_path / "c.yaml", broker.port, source="{kind: microphone, reopen_s: 0.05, reopen_attempts: 3}"
    )
    daemon = Daemon(config, env=_fake_microphone("2"))
    assert daemon.wait(60) == 69, daemon.log
    daemon.stop()
    assert "gave up after 3 attempts to reopen it" in daemon.log and "Traceback" not in daemon.log
    assert "the replay is over" not in daemon.log


def test_a_broker_that_never_answers_does_not_stall_the_audio(tmp_path: Path) -> None:
    """It accepts TCP and says nothing (no CONNACK): audio is processed all the same (issue 13)."""
    silent = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.extend(silent.accept() for _ in range(20)), daemon=True).start()
    clips = list(event_samples()[:4])
    config = write_config(tmp_path / "c.yaml", silent.getsockname()[1], files=clips, realtime=True)
    daemon = Daemon(config)
    try:
        assert daemon.wait_log(f"event {len(clips)}:", 40), daemon.log  # each clip, live, none dropped
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0, daemon.log
    finally:
        daemon.stop()
        silent.close()
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:  # kept for a broker that answers
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == len(clips)


def test_a_full_disk_loses_no_event_and_stops_nothing(tmp_path: Path, broker: LocalBroker) -> None:
    """The spool on a 1 MiB tmpfs in the daemon's own mount namespace, filled while events
    flow, then emptied (issue 13: it used to die at the first event it could not store)."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    config = write_config(tmp_path / "c.yaml", broker.port, realtime=True)
    text = config.read_text().replace(str(tmp_path / "spool.sqlite"), str(spool_dir / "spool.sqlite"))
    config.write_text(text.replace("realtime: true}", "realtime: true, loop: true}"))
    mount = f'mount -t tmpfs -o size=1m tmpfs {spool_dir} && exec "$@"'
    sub = Subscriber(broker.port, "ser/test/event")
    daemon = Daemon(config, prefix=("unshare", "-m", "--propagation", "private", "sh", "-c", mount, "sh"))
    inside = ["nsenter", "-t", str(daemon.process.pid), "-m"]
    try:
        assert sub.wait(lambda s: len(s.events()) >= 1, 30), daemon.log
        subprocess.run([*inside, "dd", "if=/dev/zero", f"of={spool_dir}/fill", "bs=64k"], capture_output=True)
        assert daemon.wait_log(f"spool.path {spool_dir / 'spool.sqlite'}: cannot write", 30), daemon.log
        n = len(sub.events())
        assert sub.wait(lambda s: len(s.events()) >= n + 2, 30), daemon.log  # delivered from memory
        subprocess.run([*inside, "rm", f"{spool_dir}/fill"], check=True)
        assert daemon.wait_log("writable again", 30), daemon.log
        n = len(sub.events())
        assert sub.wait(lambda s: len(s.events()) >= n + 1, 30), daemon.log
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0, daemon.log
    finally:
        daemon.stop()
        sub.close()
    seqs = {e["seq"] for e in sub.events()}
    assert seqs == set(range(1, max(seqs) + 1))  # none lost
    assert daemon.log.count("cannot write") == 1 and "Traceback" not in daemon.log


def test_two_devices_with_one_id_say_so_and_back_off(tmp_path: Path, broker: LocalBroker) -> None:
    """Each takes the other's MQTT session; each says why, and retries ever more slowly
    (issue 13: availability flipped 76 times in 37 s, and no log line said why)."""
    daemons = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        config = write_config(tmp_path / name / "c.yaml", broker.port, realtime=True)
        text = config.read_text().replace("realtime: true}", "realtime: true, loop: true}")
        config.write_text(text.replace("reconnect_max_s: 2", "reconnect_max_s: 60"))
        daemons.append(Daemon(config))
        time.sleep(2)
    try:
        time.sleep(20)
        assert all(d.process.poll() is None for d in daemons)
    finally:
        for d in daemons:
            d.stop()
    for d in daemons:
        assert "another client uses id ser-edge-test" in d.log, d.log
        assert d.log.count("connected to 127.0.0.1") <= 6, d.log  # 1 s retries made about 20


def test_the_daemon_replays_half_an_hour_in_bounded_memory(
    tmp_path: Path, broker: LocalBroker, half_hour: Path
) -> None:
    """issue 13: replaying a 30-minute file took 987 MB (target 150 MB)."""
    from tests.conftest import peak_rss_mb

    config = write_config(tmp_path / "c.yaml", broker.port, files=[half_hour])
    sub = Subscriber(broker.port, "ser/test/event")
    code, _, peak = peak_rss_mb([sys.executable, "-m", "ser_edge", "run", "--config", str(config)])
    assert code == 0
    assert sub.wait(lambda s: len(s.events()) == 30, 10)
    sub.close()
    print(f"daemon replaying 30 min at 48 kHz: peak RSS {peak:.0f} MB")
    assert peak < 150, f"peak RSS {peak:.0f} MB"


def test_a_broker_killed_mid_drain_loses_nothing_it_did_not_acknowledge(tmp_path: Path) -> None:
    """300 spooled events draining; the broker SIGKILLed after about a tenth, restarted:
    the daemon re-sends everything it has no PUBACK for and the spool empties. What the
    dead broker had acknowledged but not yet passed on is the broker's loss (the guarantee
    ends at PUBACK): at most the daemon's window of 50 in flight, right after the last
    event the consumer saw."""
    from ser_edge.delivery.spool import Spool

    spool = Spool(tmp_path / "spool.sqlite", 10_000)
    for _ in range(300):
        spool.add(lambda n: json.dumps({"seq": n, "emotion": "calm"}))
    spool.close()
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(16000, np.int16), 16000)
    broker = LocalBroker(tmp_path / "broker").start()
    sub = Subscriber(broker.port, "ser/test/event")
    config = write_config(tmp_path / "c.yaml", broker.port, files=[silence], realtime=True)
    config.write_text(config.read_text().replace("realtime: true}", "realtime: true, loop: true}"))
    daemon = Daemon(config)
    try:
        assert sub.wait(lambda s: len(s.events()) >= 30, 30), daemon.log
        broker.send_signal(signal.SIGKILL)
        got = {e["seq"] for e in sub.events()}
        daemon.process.send_signal(signal.SIGSTOP)  # until the consumer is back, or it would miss them
        broker.stop()
        broker.start()
        assert sub.wait(lambda s: s.subscriptions >= 2, 20)  # subscribed again to the new broker
        daemon.process.send_signal(signal.SIGCONT)
        with sqlite3.connect(tmp_path / "spool.sqlite") as db:
            drained = lambda: db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0  # noqa: E731
            deadline = time.monotonic() + 30
            while not drained() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert drained(), daemon.log  # every event reached a broker that acknowledged it
        time.sleep(0.5)
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0, daemon.log
    finally:
        daemon.stop()
        sub.close()
        broker.stop()
    assert 30 <= len(got) < 300  # the kill came mid-drain
    missing = set(range(1, 301)) - {e["seq"] for e in sub.events()}
    assert all(max(got) < seq <= max(got) + 50 for seq in missing), sorted(missing)


def test_sigterm_finishes_and_publishes_offline(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.port)
    daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, realtime=True))
    try:
        assert sub.wait(lambda s: len(s.events()) >= 1, 30), daemon.log
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0, daemon.log
    finally:
        daemon.stop()
    assert sub.wait(lambda s: s.on("/availability")[-1:] == ["offline"], 5)
    assert "stopped" in daemon.log and "Traceback" not in daemon.log
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:  # everything made was delivered before exit
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    sub.close()


def _bundle_copy(tmp_path: Path, name: str, version: str | None = None, corrupt: bool = False) -> Path:
    import shutil

    copy = tmp_path / name
    shutil.copytree(SHIPPED, copy)
    if version:
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["version"] = version
        (copy / "manifest.json").write_text(json.dumps(manifest))
    if corrupt:
        (copy / "model.tflite").write_bytes((copy / "model.tflite").read_bytes()[:-100])
    return copy


def test_sighup_reloads_atomically_or_keeps_the_old(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.port, "ser/test/event")
    config = write_config(tmp_path / "c.yaml", broker.port, realtime=True)
    daemon = Daemon(config)
    try:
        assert sub.wait(lambda s: len(s.events()) >= 1, 30), daemon.log
        # A corrupt bundle: refused, the old model keeps working.
        text = config.read_text()
        config.write_text(text.replace(str(SHIPPED), str(_bundle_copy(tmp_path, "bad", corrupt=True))))
        daemon.process.send_signal(signal.SIGHUP)
        assert daemon.wait_log("reload failed; keeping the running config and model", 10), daemon.log
        assert "does not match the manifest" in daemon.log
        # A bad config: refused the same way.
        config.write_text(text + "gate:\n  start_db: loud\n")
        daemon.process.send_signal(signal.SIGHUP)
        assert daemon.wait_log("gate.start_db: expected a number", 10), daemon.log
        # Files that once killed the running daemon on SIGHUP (issue 13): each refused.
        negative_hop = _bundle_copy(tmp_path, "hop")
        manifest = json.loads((negative_hop / "manifest.json").read_text())
        manifest["scoring"]["hop_frames"] = -5
        (negative_hop / "manifest.json").write_text(json.dumps(manifest))
        for bad, says in [
            (text + "gate:\n  start_db: \x07\n", "unacceptable character #x0007"),
            ("? [a, b]\n: 1\n", "a key must be a name"),
            ("[" * 20000, "nested too deeply"),
            (text.replace("model: {", "model: {threshold: .nan, "), "model.threshold: expected a number from 0 to 1"),
            (text.replace(str(SHIPPED), str(negative_hop)), "1 <= hop_frames <= window_frames"),
        ]:
            config.write_text(bad)
            daemon.process.send_signal(signal.SIGHUP)
            assert daemon.wait_log(says, 10), daemon.log
        # A good new bundle and threshold: taken.
        v2 = text.replace(str(SHIPPED), str(_bundle_copy(tmp_path, "v2", version="9.9.9")))
        config.write_text(v2.replace("model: {", "model: {threshold: 0.45, "))
        daemon.process.send_signal(signal.SIGHUP)
        assert daemon.wait_log(f"reloaded: model {NAME} 9.9.9", 10), daemon.log
        assert "threshold 0.45" in daemon.log
        n = len(sub.events())
        assert sub.wait(lambda s: len(s.events()) > n, 30)
        assert daemon.process.poll() is None
    finally:
        daemon.stop()
    versions = [e["model"]["version"] for e in sub.events()]
    assert versions[0] == VERSION and versions[-1] == "9.9.9"
    assert versions == sorted(versions)
    sub.close()


def test_an_unreachable_threshold_publishes_nothing_and_counts_undecided(tmp_path: Path, broker: LocalBroker) -> None:
    sub = Subscriber(broker.port, "ser/test/#")
    config = write_config(tmp_path / "c.yaml", broker.port, files=SAMPLES[:4])
    # 1.0 is out of reach: the int8 softmax tops out at 255/256 (the shipped model says calm 1.00 at 0.996)
    config.write_text(config.read_text().replace("model: {", "model: {threshold: 1.0, "))
    daemon = Daemon(config)
    assert daemon.wait(60) == 0, daemon.log
    daemon.stop()
    below = daemon.log.count("is below the threshold; no event")
    assert below >= 4 and sub.events() == [], daemon.log  # every utterance of the four clips, none sent
    assert sub.wait(lambda s: any(json.loads(m)["undecided"] >= 1 for m in s.on("stats")), 10)
    sub.close()


def test_bad_bundle_at_start_is_a_one_line_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", free_port())
    config.write_text(config.read_text().replace(str(SHIPPED), str(_bundle_copy(tmp_path, "bad", corrupt=True))))
    daemon = Daemon(config)
    assert daemon.wait(30) == 78  # a config error, as check-config says
    daemon.stop()
    assert "ser-edge: error: model.bundle:" in daemon.log and "does not match the manifest" in daemon.log
    assert "Traceback" not in daemon.log


def test_unreadable_audio_is_skipped_with_its_name(tmp_path: Path, broker: LocalBroker) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF" + os.urandom(2000))
    sub = Subscriber(broker.port, "ser/test/event")
    daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, files=[garbage, SAMPLES[4]]))
    assert daemon.wait(60) == 0, daemon.log
    daemon.stop()
    assert f"replay: {garbage}: not a readable audio file" in daemon.log and "skipped" in daemon.log
    assert sub.wait(lambda s: [e["emotion"] for e in s.events()] == ["angry"], 10)
    sub.close()


def test_refused_credentials_are_named_and_good_ones_work(tmp_path: Path) -> None:
    with LocalBroker(tmp_path / "broker", users={"pi": "s3cret"}) as broker:
        secret = tmp_path / "password"
        secret.write_text("wrong\n")
        auth = "  username: pi\n  password_file: " + str(secret) + "\n"
        config = write_config(tmp_path / "c.yaml", broker.port, files=SAMPLES[:1], extra=auth)
        daemon = Daemon(config)
        try:
            assert daemon.wait_log("refused the connection", 30), daemon.log
            assert "(check mqtt.username and mqtt.password_file)" in daemon.log
            assert daemon.wait_log("event 1:", 30), daemon.log  # spooled until the password is fixed
        finally:
            daemon.stop()
        # The right password as a systemd credential (a bare name in $CREDENTIALS_DIRECTORY), over MQTT 3.1.1.
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "mqtt-password").write_text("s3cret\n")
        auth = "  username: pi\n  password_file: mqtt-password\n  protocol: 3.1.1\n"
        config = write_config(tmp_path / "c.yaml", broker.port, files=SAMPLES[:1], extra=auth)
        sub = Subscriber(broker.port, "ser/test/event", auth=("pi", "s3cret"))
        daemon = Daemon(config, env={"CREDENTIALS_DIRECTORY": str(credentials)})
        assert daemon.wait(60) == 0, daemon.log
        daemon.stop()
        assert "as ser-edge-test (p2, c1" in broker.log.read_text()  # mosquitto's code 2 is MQTT 3.1.1 (5 is MQTT 5)
        # The event spooled while the credentials were wrong, then this run's own.
        assert sub.wait(lambda s: [e["seq"] for e in s.events()] == [1, 2], 10), sub.events()
        sub.close()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_pki(d: Path, name: str) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1 and a client certificate, made now."""
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name} CA",
             "-keyout", "ca.key", "-out", "ca.crt", cwd=d)  # fmt: skip
    for who, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=pi")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{who}.key",
                 "-out", f"{who}.csr", cwd=d)  # fmt: skip
        (d / f"{who}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{who}.ext", "-out", f"{who}.crt", cwd=d)  # fmt: skip
    return {f.stem + "_" + f.suffix[1:]: f for f in d.iterdir()}


def test_tls_with_a_test_ca_and_client_certificate(tmp_path: Path) -> None:
    from ser_edge.tools.localbroker import BrokerTls

    pki, other = _make_pki(tmp_path / "pki", "test"), _make_pki(tmp_path / "other", "other")
    tls = BrokerTls(pki["ca_crt"], pki["server_crt"], pki["server_key"], require_client_cert=True)
    with LocalBroker(tmp_path / "broker", tls=tls) as broker:
        client = f"    cert_file: {pki['client_crt']}\n    key_file: {pki['client_key']}\n"
        wrong = write_config(tmp_path / "wrong.yaml", broker.port, files=SAMPLES[:1],
                             extra=f"  tls:\n    ca_file: {other['ca_crt']}\n{client}")  # fmt: skip
        daemon = Daemon(wrong)
        try:
            assert daemon.wait_log("cannot reach broker", 30), daemon.log
            assert "certificate verify failed" in daemon.log
            assert daemon.wait_log("event 1:", 30), daemon.log  # spooled until TLS is fixed
        finally:
            daemon.stop()

        sub = Subscriber(broker.port, "ser/test/event", ca_certs=str(pki["ca_crt"]),
                         certfile=str(pki["client_crt"]), keyfile=str(pki["client_key"]))  # fmt: skip
        good = write_config(tmp_path / "good.yaml", broker.port, files=SAMPLES[:1],
                            extra=f"  tls:\n    ca_file: {pki['ca_crt']}\n{client}")  # fmt: skip
        daemon = Daemon(good)
        assert daemon.wait(60) == 0, daemon.log
        daemon.stop()
        assert sub.wait(lambda s: [e["emotion"] for e in s.events()] == _answers(SAMPLES[:1]) * 2, 10)
        assert [e["seq"] for e in sub.events()] == [1, 2]
        sub.close()


def test_notify_protocol_over_a_real_socket(tmp_path: Path, broker: LocalBroker) -> None:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(30)
    env = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": ""}
    daemon = Daemon(write_config(tmp_path / "c.yaml", broker.port, files=SAMPLES[:2], realtime=True), env=env)
    received: list[str] = []
    try:
        while received[-1:] != ["STOPPING=1\nSTATUS=stopping"]:
            try:
                received.append(sock.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        daemon.stop()
        sock.close()
    first_ready = next(i for i, m in enumerate(received) if m.startswith("READY=1"))
    assert f"STATUS=listening with {NAME} {VERSION}" in received[first_ready]
    assert any("; connected;" in m for m in received[first_ready:])  # READY does not wait for the broker
    assert received.count("WATCHDOG=1") >= 5  # every 0.5 s while ~10 s of audio flowed
    assert any(m.startswith("STATUS=") and "events, last" in m for m in received)
    assert received[-1] == "STOPPING=1\nSTATUS=stopping"


def test_flat_input_is_reported(tmp_path: Path, broker: LocalBroker) -> None:
    """A dead microphone (here: 5 s of digital silence) is a warning and a published diagnostic."""
    silence = tmp_path / "dead.wav"
    sf.write(silence, np.zeros(5 * 16000, np.int16), 16000)
    sub = Subscriber(broker.port, "ser/test/stats")
    config = write_config(tmp_path / "c.yaml", broker.port, files=[silence])
    config.write_text(config.read_text().replace("realtime: false}", "realtime: false, dead_after_s: 2}"))
    daemon = Daemon(config)
    assert daemon.wait(60) == 0, daemon.log
    daemon.stop()
    assert "no signal: the input has been flat for 2 s (microphone unplugged or muted?)" in daemon.log
    assert sub.wait(lambda s: s.on("stats") and json.loads(s.on("stats")[-1])["input_dead"] is True, 10)
    sub.close()


def _selftest(*args: str) -> subprocess.CompletedProcess:
    return ser_edge("selftest", *args)


def test_selftest_checks_model_and_availability(tmp_path: Path, broker: LocalBroker) -> None:
    angry = next(p for p in SAMPLES if _truth(p) == "angry")
    config = write_config(tmp_path / "c.yaml", broker.port, realtime=True)
    r = _selftest("--config", str(config), "--clip", str(angry), "--expect", "angry")
    assert r.returncode == 0 and f"{angry.name} -> angry" in r.stdout, r.stdout + r.stderr
    r = _selftest("--config", str(config), "--clip", str(angry), "--expect", "sad")
    assert r.returncode == 1 and f"FAILED: model {NAME} {VERSION}: {angry.name} recognised as angry" in r.stdout
    r = _selftest("--config", str(config), "--availability", "--timeout", "2")
    assert r.returncode == 1 and "ser/test/availability: nothing retained" in r.stdout
    daemon = Daemon(config)
    try:
        assert daemon.wait_log("ready:", 30), daemon.log
        r = _selftest("--config", str(config), "--availability")
        assert r.returncode == 0 and "ser/test/availability = online" in r.stdout, r.stdout
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.wait(15) == 0
        r = _selftest("--config", str(config), "--availability")
        assert r.returncode == 1 and "ser/test/availability is 'offline', not 'online'" in r.stdout
    finally:
        daemon.stop()
    r = _selftest("--config", str(config), "--clip", str(angry))
    assert r.returncode == 2 and "--clip and --expect go together" in r.stderr
    config.write_text(config.read_text().replace(str(SHIPPED), str(tmp_path / "no-bundle")))
    r = _selftest("--config", str(config))  # "valid" only for a config that will start
    assert r.returncode == 1 and "FAILED: model.bundle:" in r.stdout and "valid" not in r.stdout, r.stdout
