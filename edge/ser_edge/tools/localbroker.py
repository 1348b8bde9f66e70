"""A throwaway Mosquitto on a free loopback port, for the demo, the benchmark and the
tests: the real broker (Debian's mosquitto package), never a fake one."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).exists():
            return candidate
    raise OSError("mosquitto is not installed (Debian: apt-get install mosquitto)")


@dataclass(frozen=True)
class BrokerTls:
    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = False


class LocalBroker:
    """Start with ``with LocalBroker(dir) as broker:``; ``stop``/``start`` keep the port."""

    def __init__(
        self,
        workdir: Path,
        users: dict[str, str] | None = None,
        tls: BrokerTls | None = None,
        port: int = 0,
        persistent: bool = False,
        acl: str = "",
        options: tuple[str, ...] = (),
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = users
        self.tls = tls
        self.persistent = persistent
        """Keep sessions and queued messages across stop/start, as a real deployment would."""
        self.acl = acl
        self.options = options
        """More mosquitto.conf lines (``max_packet_size 2000``, say)."""
        """Mosquitto acl_file text ("" for none): which client may publish or read which topic."""
        self.log = self.workdir / "mosquitto.log"
        self._process: subprocess.Popen | None = None

    def _config(self) -> Path:
        lines = [f"listener {self.port} 127.0.0.1", f"log_dest file {self.log}",
                 "log_type error", "log_type warning", "log_type notice"]  # fmt: skip
        if os.geteuid() == 0:  # as root mosquitto would switch to its own user, who cannot write here
            lines.append("user root")
        if self.persistent:
            lines += ["persistence true", f"persistence_location {self.workdir}/"]
        else:
            lines.append("persistence false")
        if self.users is not None:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for user, password in self.users.items():
                subprocess.run([self._passwd_tool(), "-b", str(passwd), user, password], check=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl:
            acl = self.workdir / "acl"
            acl.write_text(self.acl)
            lines.append(f"acl_file {acl}")
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}", f"keyfile {self.tls.key_file}"]
            lines.append(f"require_certificate {'true' if self.tls.require_client_cert else 'false'}")
        lines += self.options
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    @staticmethod
    def _passwd_tool() -> str:
        return shutil.which("mosquitto_passwd") or str(Path(mosquitto_binary()).with_name("mosquitto_passwd"))

    def start(self, timeout: float = 10.0) -> LocalBroker:
        conf = self._config()
        self._process = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise OSError(f"mosquitto exited at start: {self.log.read_text() if self.log.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise OSError(f"mosquitto did not listen on port {self.port} within {timeout:.0f} s")

    def send_signal(self, sig: int) -> None:
        """Freeze (SIGSTOP), thaw (SIGCONT) or kill the broker: fault tests."""
        if self._process is not None:
            self._process.send_signal(sig)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a frozen broker cannot act on SIGTERM
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


def subscribe(port: int, topics: list[str], on_message: Callable[[str, bytes], None]) -> mqtt.Client:
    """A running MQTT client on the local broker calling ``on_message(topic, payload)``
    for everything on ``topics`` (QoS 1); stop it with loop_stop() and disconnect()."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, m: on_message(m.topic, m.payload)
    client.connect("127.0.0.1", port)
    client.subscribe([(t, 1) for t in topics])
    client.loop_start()
    return client
