"""Helpers for tests that run the real daemon against a real Mosquitto."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import REPO, SAMPLES

SHIPPED = REPO / "deploy" / "models" / "ser-tiny"


def ser_edge(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """A ``ser-edge`` command as a user runs it (its own process, stdout and stderr kept)."""
    return subprocess.run([sys.executable, "-m", "ser_edge", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})  # fmt: skip


def classify(files: list[Path], config: Path | None = None) -> list[dict]:
    """`ser-edge classify --json` on files (with a daemon config's gate and threshold):
    the utterances that become events, in order."""
    extra = ["--config", str(config)] if config else ["--bundle", str(SHIPPED)]
    r = subprocess.run([sys.executable, "-m", "ser_edge", "classify", "--json", *extra, *map(str, files)],
                       capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return [x for x in json.loads(r.stdout)["results"] if x.get("event")]


@functools.cache
def event_samples() -> tuple[Path, ...]:
    """The sample clips the shipped model turns into events (the others stay below the
    confidence threshold): what a replay of them publishes."""
    names = {Path(x["file"]).name for x in classify(SAMPLES)}
    return tuple(p for p in SAMPLES if p.name in names)


def sample_events() -> int:
    return len(event_samples())


class Subscriber:
    """A real MQTT client recording everything under a topic filter."""

    def __init__(
        self, port: int, topic: str = "#", client_id: str = "", persistent: bool = False,
        auth: tuple[str, str] | None = None, **tls,
    ) -> None:  # fmt: skip
        self.messages: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  protocol=mqtt.MQTTv311, clean_session=not persistent)  # fmt: skip
        if auth:
            self.client.username_pw_set(*auth)
        if tls:
            self.client.tls_set(**tls)
        self.subscriptions = 0
        """SUBACKs so far: one per (re)connection."""

        def acked(*_) -> None:
            self.subscriptions += 1
            subscribed.set()

        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = acked
        self.client.on_message = self._record
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(15):  # only then can a test rely on receiving what follows
            raise TimeoutError(f"subscriber: no SUBACK for {topic} from 127.0.0.1:{port}")

    def _record(self, _c, _u, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((m.topic, m.payload.decode(), bool(m.retain)))

    def on(self, suffix: str) -> list[str]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def events(self) -> list[dict]:
        return [json.loads(p) for p in self.on("/event")]

    def wait(self, predicate: Callable[[Subscriber], bool], timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_config(path: Path, port: int, files: list[Path] | None = None, realtime: bool = False, device: str = "test",
                 extra: str = "", source: str = "", threshold: float | None = None) -> Path:  # fmt: skip
    """A config for a replay of files, or for ``source`` (a YAML flow mapping) when given;
    ``threshold``: model.threshold (else the default)."""
    files = files or sorted((REPO / "deploy" / "samples").glob("*.flac"))
    source = source or f"{{kind: replay, files: [{', '.join(map(str, files))}], realtime: {str(realtime).lower()}}}"
    path.write_text(
        f"device: {{id: {device}}}\n"
        f"source: {source}\n"
        f"model: {{bundle: {SHIPPED}{'' if threshold is None else f', threshold: {threshold}'}}}\n"
        f"spool: {{path: {path.parent / 'spool.sqlite'}}}\n"
        f"mqtt:\n  host: 127.0.0.1\n  port: {port}\n  stats_interval_s: 1\n  reconnect_max_s: 2\n" + extra
    )  # fmt: skip
    return path


def stop_process(process: subprocess.Popen | None, timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within ``timeout`` seconds."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Daemon:
    """``ser-edge run`` as a child process, its log in a file."""

    def __init__(self, config: Path, env: dict | None = None, prefix: tuple[str, ...] = ()) -> None:
        """``prefix``: a command that execs the rest (a private mount namespace, say)."""
        self.log_path = config.parent / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "ser_edge", "run", "--config", str(config)],
            stdout=self._log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )  # fmt: skip

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return True
            if self.process.poll() is not None:
                return text in self.log
            time.sleep(0.05)
        return False

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
