"""The MQTT stage: spooled events to the broker, plus availability, state, stats and
Home Assistant discovery (paho-mqtt 2.x).

Delivery: a worker thread owns the map from MQTT message ids to spool sequence numbers.
It hands the broker the spool's events in order (a bounded window in flight); paho
re-sends unacknowledged ones itself after a reconnect; a successful PUBACK deletes the
event from the spool, a refusing one (MQTT 5 reason code) leaves it there. A restart
hands over whatever the spool still holds, so an event the broker accepted is delivered
at least once, in order, through outages, restarts and kills; one the broker keeps
refusing waits in the spool (up to ``spool.max_events``) and the log says why.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import ssl
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ser_edge.configfile import ConfigError
from ser_edge.delivery.discovery import Topics, discovery_topic
from ser_edge.delivery.events import stamped
from ser_edge.delivery.spool import Spool
from ser_edge.settings import DeviceSettings, MqttSettings

log = logging.getLogger(__name__)

SESSION_TAKEN_OVER = 0x8E  # MQTT 5 reason code
UNSPECIFIED = 0x80  # MQTT 5 "Unspecified error": what paho says when the socket just closed
SHORT_S = 10.0  # a connection that ends sooner than this counts as dropped at once

#: Events handed to paho and not yet acknowledged, at most.
WINDOW = 50
#: The largest packet the broker may send us (MQTT 5 Maximum Packet Size): the daemon
#: subscribes only to Home Assistant's birth message, a few bytes.
MAX_PACKET = 4096
#: A broker that has not answered CONNECT this long after the TCP connection is named.
CONNACK_S = 10.0
#: Discovery is re-sent on Home Assistant's birth message at most this often.
DISCOVERY_EVERY_S = 10.0


def read_password(mqtt_settings: MqttSettings) -> str | None:
    """The broker password from its file (a bare name is a systemd credential)."""
    path = mqtt_settings.password_file
    if path is None:
        return None
    if not path.is_absolute() and os.environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / path
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"mqtt.password_file: cannot read {path} ({getattr(e, 'strerror', None) or e})") from None


class _Client(mqtt.Client):
    """paho's client, remembering why the last connection attempt failed (paho's retry
    loop swallows the exception; the operator needs it, e.g. a certificate error), when
    the last TCP connection was made, and paho's last error message (a TLS alert, say)."""

    last_error: OSError | None = None
    opened_at = 0.0
    """Monotonic time the last TCP (and TLS) connection was made; 0 while there is none."""
    last_log = ""

    def reconnect(self) -> int:
        self.opened_at = 0.0
        try:
            rc = super().reconnect()
        except OSError as e:
            self.last_error = e
            raise
        self.opened_at = time.monotonic()
        return rc


def _remember_errors(client: _Client, _u, level: int, text: str) -> None:
    """paho's own log: its errors (a TLS alert on read, say) explain a dropped connection."""
    if level in (mqtt.MQTT_LOG_ERR, mqtt.MQTT_LOG_WARNING):
        client.last_log = text


def refusal(m: MqttSettings, reason) -> str:
    """A CONNACK's failure in one line, with what to check for bad credentials."""
    hint = " (check mqtt.username and mqtt.password_file)" if reason.value in (0x86, 0x87, 4, 5) else ""
    return f"broker {m.host}:{m.port} refused the connection: {reason}{hint}"


def mqtt_client(m: MqttSettings, client_id: str) -> _Client:
    """A paho client with the configured protocol, credentials and TLS (not connected);
    ConfigError when a secret or certificate file cannot be used."""
    v5 = m.protocol == "5"
    client = _Client(
        CallbackAPIVersion.VERSION2, client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True,
    )  # fmt: skip
    client.on_log = _remember_errors
    if m.username:
        client.username_pw_set(m.username, read_password(m))
    if m.tls is not None:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(m.tls, name)
            if path is not None and not os.access(path, os.R_OK):
                raise ConfigError(f"mqtt.tls.{name}: cannot read {path}")
        ca, cert, key = (str(p) if p else None for p in (m.tls.ca_file, m.tls.cert_file, m.tls.key_file))
        try:
            client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED)
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(f"mqtt.tls: cannot use the certificate files ({e})") from None
    return client


class Publisher:
    """Owns the broker connection; every method is safe to call from any thread."""

    def __init__(self, m: MqttSettings, device: DeviceSettings, spool: Spool) -> None:
        self.settings = m
        self.topics = Topics.of(m, device.id)
        self.spool = spool
        self.discovery = ""
        self.connected = threading.Event()
        self.connects = 0
        self.last_error = ""
        self._said: set[str] = set()  # kinds of problem logged since the link was last stable
        self.latencies_ms: list[float] = []
        """Utterance end to PUBACK, for events acknowledged since the last ``take_latencies``."""
        self.refused = 0
        """Events the broker answered with a failure code (MQTT 5 PUBACK), all kept in the spool."""
        self.delivery_error = ""
        """Why the broker refuses events now ("" while it accepts them)."""
        self._last_state: str | None = None
        self._discovery_sent_at = -DISCOVERY_EVERY_S
        self._discovery_due = False
        self._inbox: queue.Queue[tuple] = queue.Queue()
        self._stop = threading.Event()
        self._connected_at = 0.0
        self._quick_drops = 0  # connections in a row that ended within SHORT_S
        self._backoff = 1  # s, the reconnect delay while another client holds our id
        self._client = self._make_client(m, device)
        self._worker = threading.Thread(target=self._run, name="mqtt-spool", daemon=True)
        self._network = threading.Thread(target=self._network_loop, name="mqtt-network", daemon=True)

    def _make_client(self, m: MqttSettings, device: DeviceSettings) -> _Client:
        self.client_id = f"ser-edge-{device.id}"
        client = mqtt_client(m, self.client_id)
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, m.reconnect_max_s)
        client.max_inflight_messages_set(20)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = lambda _c, _u, mid, rc, _p: self._inbox.put(("acked", mid, time.monotonic(), rc))
        client.on_message = self._on_message
        return client

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()
        properties = None
        if self.settings.protocol == "5":  # the broker must not send us more than this, whoever publishes it
            properties = Properties(PacketTypes.CONNECT)
            properties.MaximumPacketSize = MAX_PACKET
        self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s,
                                   properties=properties)  # fmt: skip
        self._network.start()

    def _network_loop(self) -> None:
        """paho's network loop, kept alive: paho's own thread dies silently on any exception
        but OSError (one raised in a callback, say), leaving the daemon READY and sending
        nothing; here it is logged and the loop resumes."""
        while not self._stop.is_set():
            try:
                self._client.loop_forever(retry_first_connection=True)
            except Exception as e:
                self._error(f"the MQTT network loop failed ({type(e).__name__}: {e})", "restarting it")
            self._stop.wait(1.0)

    def stop(self, timeout: float = 3.0) -> None:
        """Publish ``offline`` (the will is not sent on a clean disconnect), then disconnect."""
        self._stop.set()
        self._inbox.put(("stop",))
        if self.connected.is_set():
            info = self._client.publish(self.topics.availability, "offline", qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout)
        self._client.disconnect()
        if self._network.is_alive():
            self._network.join(timeout)
        self._worker.join(timeout)

    # -- what the daemon sends ----------------------------------------------------------

    def event_added(self, seq: int, ended: float) -> None:
        """A new event is in the spool; ``ended`` is the monotonic time its speech ended."""
        self._inbox.put(("added", seq, ended))

    def publish_state(self, payload: str) -> None:
        """The last emotion, retained (re-sent on every connect)."""
        self._last_state = payload
        if self.connected.is_set():
            self._client.publish(self.topics.state, payload, qos=1, retain=True)

    def publish_stats(self, stats: dict) -> None:
        if self.connected.is_set():
            self._client.publish(self.topics.stats, json.dumps(stats), qos=0, retain=True)

    def set_discovery(self, payload: str) -> None:
        """Home Assistant's view of the device (it changes with the model's labels)."""
        changed, self.discovery = payload != self.discovery, payload
        if changed and self.connected.is_set() and self.settings.discovery:
            self._send_discovery()

    def take_latencies(self) -> list[float]:
        out, self.latencies_ms = self.latencies_ms, []
        return out

    # -- paho callbacks (network thread) -------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u, _flags, reason, _props) -> None:
        client.opened_at = 0.0
        if reason.is_failure:
            self._error(refusal(self.settings, reason))
            return
        client.last_log = ""  # an old connection's error must not explain the next drop
        self.connects += 1
        self._connected_at = time.monotonic()
        self.last_error = ""
        log.info("connected to %s:%d", self.settings.host, self.settings.port)
        client.publish(self.topics.availability, "online", qos=1, retain=True)
        if self.settings.discovery:
            client.subscribe(f"{self.settings.discovery_prefix}/status", qos=1)
            self._send_discovery()
        if self._last_state is not None:
            client.publish(self.topics.state, self._last_state, qos=1, retain=True)
        self.connected.set()
        self._inbox.put(("connected",))

    def _on_connect_fail(self, _client, _u) -> None:
        why = self._client.last_error
        self._error(f"cannot reach broker {self.settings.host}:{self.settings.port} ({why})", "retrying")

    def _on_disconnect(self, client, _u, _flags, reason, _props) -> None:
        """A lost connection; one the broker hands to another client with our id (MQTT 5's
        "session taken over", or with 3.1.1 three connections in a row dropped within
        SHORT_S) is a duplicate device.id: said so, and retried ever more slowly, so two
        devices do not toss the session between them every second."""
        was = self.connected.is_set()
        self.connected.clear()
        client.opened_at = 0.0
        if self._stop.is_set():
            return
        where = f"{self.settings.host}:{self.settings.port}"
        why = self._why(reason)
        if not was:  # before any CONNACK: the wrong port, TLS on one side only, a missing client certificate
            self._error(f"broker {where} closed the connection before answering CONNECT ({why}); check mqtt.port "
                        "and mqtt.tls against the broker's listener", "retrying", kind="before CONNACK")  # fmt: skip
            return
        code = getattr(reason, "value", None)
        taken = code == SESSION_TAKEN_OVER
        named = code not in (None, 0, UNSPECIFIED) and reason.is_failure  # MQTT 5's DISCONNECT says why
        quick = time.monotonic() - self._connected_at < SHORT_S
        self._quick_drops = self._quick_drops + 1 if quick or taken else 0
        if taken or self._quick_drops >= 3:
            self._backoff = min(self._backoff * 2, self.settings.reconnect_max_s)
            client.reconnect_delay_set(self._backoff, self.settings.reconnect_max_s)
        elif not quick:
            self._backoff = 1
            client.reconnect_delay_set(1, self.settings.reconnect_max_s)
        if taken:
            kind, cause = "taken", f"another client uses id {self.client_id} (the broker gave it this session)"
            action = f"reconnecting in {self._backoff} s. Give each device its own device.id"
        elif self._quick_drops >= 3 and not named:  # no reason given: both likely causes
            kind = "quick"
            cause = (f"the broker drops the connection within {SHORT_S:g} s, again and again ({why}): another "
                     f"client uses id {self.client_id}, or the broker refuses what this client sends (its log "
                     "says which)")  # fmt: skip
            action = f"reconnecting in {self._backoff} s. Give each device its own device.id"
        else:
            kind = f"closed {code}" if named else "closed"
            cause, action = f"lost the broker connection ({why})", "reconnecting with backoff"
        self._error(cause, action, kind=kind)

    def _why(self, reason) -> str:
        """A disconnect's reason in words: MQTT 5's code, else paho's last error, else what
        the code says (paho's "Unspecified error" is all a stopped broker gives)."""
        if getattr(reason, "is_failure", False) and reason.value != UNSPECIFIED:
            return str(reason)
        return self._client.last_log or "closed without a reason: the broker stopped, restarted or dropped us"

    def tick(self) -> None:
        """Called now and then by the daemon: a deferred discovery re-send goes out, and a
        broker that took the TCP connection but never answers CONNECT is named."""
        if self._said and self.connected.is_set() and time.monotonic() - self._connected_at >= SHORT_S:
            self._said.clear()  # stable again: the next problem is news
        opened = self._client.opened_at
        if opened and not self.connected.is_set() and time.monotonic() - opened > CONNACK_S:
            self._error(f"broker {self.settings.host}:{self.settings.port} took the connection but has not "
                        f"answered CONNECT in {CONNACK_S:g} s (not an MQTT listener? TLS expected there?)",
                        "waiting, then retrying")  # fmt: skip
        due = self._discovery_due and time.monotonic() - self._discovery_sent_at >= DISCOVERY_EVERY_S
        if due and self.connected.is_set() and self.settings.discovery:
            log.info("re-sending discovery (Home Assistant announced itself again)")
            self._send_discovery()

    def _on_message(self, _client, _u, message: mqtt.MQTTMessage) -> None:
        """Home Assistant's birth message. Anyone on the broker can send it, as often as
        they like: at most one re-send per DISCOVERY_EVERY_S, the last one deferred."""
        if message.payload != b"online":
            return
        now = time.monotonic()
        if now - self._discovery_sent_at < DISCOVERY_EVERY_S:
            self._discovery_due = True
            return
        log.info("Home Assistant is online: re-sending discovery")
        self._send_discovery()

    def _send_discovery(self) -> None:
        self._discovery_sent_at, self._discovery_due = time.monotonic(), False
        topic = discovery_topic(self.settings.discovery_prefix, self.topics.base.rsplit("/", 1)[-1])
        self._client.publish(topic, self.discovery, qos=1, retain=True)

    def _error(self, problem: str, action: str = "", kind: str = "") -> None:
        """Log the problem and what is done about it, once per ``kind`` (default: the line
        itself; a kind keeps details that vary from retry to retry, such as a TLS alert or
        a backoff, from logging every retry) until the link has been up for SHORT_S again;
        ``last_error`` (the daemon's STATUS) keeps the problem alone."""
        line = f"{problem}; {action}" if action else problem
        kind = kind or line
        if kind not in self._said:
            log.error("%s", line)
        self._said.add(kind)
        self.last_error = problem

    # -- the spool worker ----------------------------------------------------------------

    def _run(self) -> None:
        """Hands spooled events to paho and deletes each on its PUBACK. A PUBACK with a
        failure code (an ACL that denies the topic: 0x87) is not a delivery: the event
        stays, the reason is logged once, and the spool is offered again from its oldest
        event after a backoff that doubles up to ``reconnect_max_s``."""
        mids: dict[int, int] = {}  # message id -> spool seq
        ended: dict[int, float] = {}  # seq -> monotonic time the utterance ended
        handed = 0  # highest seq handed to paho
        retry_at = 0.0  # after a refusal: when to offer the spool again (0: no refusal pending)
        backoff = 0.0
        while True:
            wait = max(0.05, retry_at - time.monotonic()) if retry_at else None
            try:
                message = self._inbox.get(timeout=wait)
            except queue.Empty:
                message = ("tick",)
            kind = message[0]
            if kind == "stop":
                return
            if kind == "added":
                ended[message[1]] = message[2]
            elif kind == "acked":
                seq = mids.pop(message[1], None)
                if seq is None:
                    continue  # availability, state, discovery
                if message[3].is_failure:
                    self.refused += 1
                    self.delivery_error = str(message[3])
                    backoff = min(max(1.0, backoff * 2), self.settings.reconnect_max_s)
                    retry_at = time.monotonic() + backoff
                    self._error(f"the broker refuses events on {self.topics.event} ({message[3]})",
                                "keeping them in the spool and offering them again with backoff")  # fmt: skip
                    continue
                if backoff:
                    log.info("the broker accepts events again")
                    backoff, self.last_error, self.delivery_error = 0.0, "", ""
                    self._said.clear()
                self.spool.delete(seq)
                if seq in ended:
                    self.latencies_ms.append((message[2] - ended.pop(seq)) * 1000)
            if retry_at:
                if mids or time.monotonic() < retry_at:
                    continue  # the refused window settles before the spool is offered again
                retry_at, handed = 0.0, 0
            if not self.connected.is_set() or len(mids) >= WINDOW:
                continue
            for seq, payload in self.spool.pending(handed, WINDOW - len(mids)):
                since = time.monotonic() - ended[seq] if seq in ended else None  # None: from an earlier run
                info = self._client.publish(self.topics.event, stamped(payload, time.time(), since), qos=1)
                mids[info.mid] = seq
                handed = seq
