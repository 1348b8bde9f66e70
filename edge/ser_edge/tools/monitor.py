"""`ser-edge monitor`: a live terminal view of a device (rich; works over ssh).

Two feeds fill one ``View``, which ``render`` draws four times a second:

- local: the daemon's own stages run here, on the microphone or on replayed files: input
  level, gate state, the front end's MFCC rows, every recognition (with its arousal and
  valence, each a bar from -1 to 1 around the middle);
- mqtt: a running daemon's topics (event, state, stats, availability). The level comes
  from the stats topic; the gate state and the MFCC strip are not published, so they
  show as such.

Ctrl-C ends it cleanly.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ser_edge.audio.sources import MicrophoneSource, ReplaySource
from ser_edge.delivery.discovery import Topics
from ser_edge.delivery.events import affect_fields, iso_utc
from ser_edge.frontend import StreamingFrontend
from ser_edge.gate.vad import Gate
from ser_edge.recognition.affect import AXES
from ser_edge.recognition.decision import UNCERTAIN, Recognition, recognise
from ser_edge.recognition.model import load_model
from ser_edge.settings import Settings

STRIP_ROWS = 400  # 8 s of front-end rows kept for the strip
SHOWN_STATS = ("uptime_s", "cpu_percent", "rss_mb", "utterances", "events", "undecided", "not_speech",
               "speech_probability", "latency_p95_ms", "inference_p95_ms", "dropped_frames", "spool_depth",
               "link_state", "link_errors")  # fmt: skip
# A dark-to-bright ramp for int8 values in the MFCC strip.
RAMP = ["#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06", "#f7d13d", "#fcffa4"]


@dataclass
class View:
    """What the screen shows; feeds write it from their thread, the screen reads it."""

    source: str
    level_db: float | None = None
    voiced: bool | None = None
    in_speech: bool | None = None
    rows: deque = field(default_factory=lambda: deque(maxlen=STRIP_ROWS))
    emotion: str = ""
    """The state: the last utterance's emotion, or ``uncertain`` below the threshold."""
    confidence: float = 0.0
    best: str = ""
    """Under the threshold: the emotion that scored highest."""
    affect: dict[str, float] = field(default_factory=dict)
    """The last utterance's arousal and valence; empty for a model without them."""
    events: deque = field(default_factory=lambda: deque(maxlen=8))
    stats: dict = field(default_factory=dict)
    availability: str = ""
    note: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recognised(self, r: Recognition) -> None:
        with self.lock:
            self.emotion, self.confidence, self.best = r.state, r.confidence, "" if r.emitted else r.emotion
            self.affect = affect_fields(r)
            if r.emitted:
                self.events.appendleft((iso_utc(r.end)[11:19], r.emotion, r.confidence, r.seconds))


# -- drawing ------------------------------------------------------------------------------


def bar(fraction: float, width: int) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def signed_bar(value: float, width: int) -> str:
    """A bar of ``value`` in [-1, 1] growing from the middle (│): left for negative, right
    for positive, ``width // 2`` cells each side."""
    half = width // 2
    cells = round(min(1.0, abs(value)) * half)
    left = "░" * (half - cells) + "█" * cells if value < 0 else "░" * half
    right = "█" * cells + "░" * (half - cells) if value > 0 else "░" * half
    return f"{left}│{right}"


def axes_lines(affect: dict[str, float], width: int) -> Text:
    """One line per axis the utterance has: its value, and a bar between the meanings of -1 and 1."""
    text = Text()
    for key, low, high in AXES:
        if key in affect:
            text.append(f"\n{key:<8} {affect[key]:+.2f} {low:>8} ").append(signed_bar(affect[key], width), "cyan")
            text.append(f" {high}")
    return text


def _colour(v: int) -> str:
    return RAMP[min(len(RAMP) - 1, (v + 128) * len(RAMP) // 256)]


def strip(rows: list[np.ndarray], width: int) -> Text:
    """The last ``width`` front-end rows, one character column each, coloured by value;
    two coefficients per text line (upper half block: the odd one), c0 at the bottom."""
    text = Text()
    if not rows:
        return text.append("(no front-end rows yet)")
    shown = np.array(rows[-width:], dtype=np.int16)
    for low in reversed(range(0, shown.shape[1], 2)):
        high = low + 1
        for v in shown:
            top = _colour(int(v[high])) if high < shown.shape[1] else "black"
            text.append("▀", Style(color=top, bgcolor=_colour(int(v[low]))))
        text.append(f" c{low}" + (f"/{high}" if high < shown.shape[1] else "") + ("\n" if low else ""))
    return text


def render(view: View, width: int, height: int) -> Group:
    with view.lock:
        rows, events, stats = list(view.rows), list(view.events), dict(view.stats)
        level, voiced, in_speech = view.level_db, view.voiced, view.in_speech
        emotion, confidence, best, affect = view.emotion, view.confidence, view.best, dict(view.affect)
    if level is None:
        level = stats.get("input_level_db")
    input_line = Text(f"level {level:6.1f} dBFS " if level is not None else "level  n/a ")
    if level is not None:
        input_line.append(bar((level + 90) / 90, max(10, width - 55)), "green")  # leaves room for the gate
    if in_speech is None:
        gate = Text("   gate: not published over MQTT", "dim")
    else:
        gate = Text("   gate: ").append("SPEECH" if in_speech else ("voiced" if voiced else "silence"),
                                       "bold red" if in_speech else "dim")  # fmt: skip
    colour = "yellow" if emotion == UNCERTAIN else "magenta"
    now = Text(f"{emotion.upper():<10}", f"bold {colour}") if emotion else Text("(nothing recognised yet)", "dim")
    if emotion:
        now.append(f" {confidence:.2f} ").append(bar(confidence, 30), colour)
    if emotion == UNCERTAIN and best:
        now.append(f"  best guess {best}, under the threshold", "dim")
    if emotion:
        now.append(axes_lines(affect, 30))
    table = Table(expand=True, box=None, show_edge=False)
    for name in ("time (UTC)", "emotion", "confidence", "seconds"):
        table.add_column(name)
    for t, e, c, s in events[: max(1, height - 26)]:  # the rest of the screen; the panels above take 24 lines
        table.add_row(t, e, f"{c:.2f}", f"{s:.1f}")
    figures = "  ".join(f"{k} {stats[k]}" for k in SHOWN_STATS if stats.get(k) is not None) or "(no stats yet)"
    mfcc = strip(rows, max(15, width - 13)) if rows or in_speech is not None else Text("not published over MQTT", "dim")
    title = f"ser-edge monitor: {view.source}" + (f" ({view.availability})" if view.availability else "")
    top = Group(input_line + gate, Text(view.note, "yellow")) if view.note else input_line + gate
    return Group(
        Panel(top, title=title),
        Panel(now, title="emotion"),
        Panel(Text(figures), title="stats"),
        Panel(mfcc, title="MFCC (front end, newest right)"),
        Panel(table, title="last events"),
    )


# -- feeds --------------------------------------------------------------------------------


class LocalFeed:
    """The daemon's stages, here: source -> gate + front end -> recognition."""

    def __init__(self, settings: Settings, view: View) -> None:
        self.settings, self.view = settings, view
        self.model = load_model(settings.model.bundle)
        s = settings.source
        if s.kind == "serial":
            raise ValueError("source.kind is serial: the daemon owns the node's port; watch it with --mqtt")
        self.source = ReplaySource(s) if s.kind == "replay" else MicrophoneSource(s)

    def run(self, stop: threading.Event) -> None:
        gate, frontend = Gate(self.settings.gate), StreamingFrontend(self.model.bundle.frontend)
        counts = {"utterances": 0, "events": 0, "undecided": 0}
        started = time.monotonic()
        for chunk in self.source:
            if stop.is_set():
                break
            utterances = gate.push(chunk.pcm, chunk.time)
            rows = frontend.push(chunk.pcm)
            with self.view.lock:
                self.view.rows.extend(rows)
                self.view.level_db, self.view.voiced, self.view.in_speech = gate.level_db, gate.voiced, gate.in_speech
            for u in utterances:
                self._recognise(u, counts)
            counts["uptime_s"] = round(time.monotonic() - started)
            with self.view.lock:
                self.view.stats = dict(counts)
        if isinstance(self.source, MicrophoneSource):
            self.source.close()
        for u in gate.flush():
            self._recognise(u, counts)
        with self.view.lock:
            self.view.stats = dict(counts)
            self.view.note = "" if stop.is_set() else "the replay is over; Ctrl-C to quit"

    def _recognise(self, u, counts: dict) -> None:
        r = recognise(self.model, u, self.settings.model.threshold)
        counts["utterances"] += 1
        counts["events" if r.emitted else "undecided"] += 1
        self.view.recognised(r)


_EVENT_FIELDS = {"end": str, "duration_s": (int, float)}


def _affect(message: dict) -> dict[str, float]:
    """The arousal and valence a state or event carries (none from a model without them);
    ValueError when one is there but not a number."""
    out = {}
    for key, *_ in AXES:
        value = message.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} is not a number")
        out[key] = float(value)
    return out


def _fields(text: str, wanted: dict) -> dict:
    """A JSON object holding ``wanted`` keys of the given types; ValueError naming the first problem."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {text[:40]!r}")
    for key, kind in wanted.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            raise ValueError(f"{key} missing or of the wrong type")
    return data


class MqttFeed:
    """A running daemon's topics on its broker."""

    def __init__(self, settings: Settings, view: View) -> None:
        from ser_edge.delivery.publisher import mqtt_client

        self.view = view
        self.mqtt = m = settings.mqtt
        self.topics = Topics.of(m, settings.device.id)
        self.client = mqtt_client(m, client_id="")
        self.client.on_connect = self._connected
        self.client.on_connect_fail = lambda c, _u: self._note(f"cannot reach broker {m.host}:{m.port} "
                                                               f"({c.last_error}); retrying")  # fmt: skip
        self.client.on_message = self._message
        self.client.on_disconnect = self._disconnected
        self._refusal = ""
        self._note(f"connecting to {m.host}:{m.port} ...")
        self.client.connect_async(m.host, m.port, m.keepalive_s)

    def _connected(self, client, _u, _flags, reason, _props) -> None:
        from ser_edge.delivery.publisher import refusal

        if reason.is_failure:
            self._refusal = refusal(self.mqtt, reason)
            self._note(self._refusal)
            return
        self._refusal = ""
        self._note(f"connected to {self.mqtt.host}:{self.mqtt.port}; waiting for the daemon's messages")
        client.subscribe(f"{self.topics.base}/#", qos=1)

    def _disconnected(self, client, _u, _flags, reason, _props) -> None:
        """The reason stays on screen: a refused CONNECT is followed by a disconnect that
        says only "Protocol error"."""
        why = self._refusal or (reason if reason.is_failure else client.last_log or reason)
        self._note(f"disconnected from {self.mqtt.host}:{self.mqtt.port} ({why}); retrying")

    def _note(self, text: str) -> None:
        with self.view.lock:
            self.view.note = text

    def _message(self, _c, _u, m) -> None:
        """Anything a broker may hold under our topics (retained junk included) is shown or
        named as unreadable; none of it may end this thread."""
        text = m.payload.decode("utf-8", "replace")
        try:
            if m.topic == self.topics.availability:
                with self.view.lock:
                    self.view.availability = text[:20]
            elif m.topic == self.topics.stats:
                stats = _fields(text, {})
                if not isinstance(stats.get("input_level_db"), int | float | None):
                    raise ValueError("input_level_db is not a number")
                with self.view.lock:
                    self.view.stats = stats
            elif m.topic in (self.topics.state, self.topics.event):
                event = m.topic == self.topics.event
                e = _fields(text, {"emotion": str, "confidence": (int, float), **(_EVENT_FIELDS if event else {})})
                best = e.get("best") if isinstance(e.get("best"), str) else ""
                affect = _affect(e)
                with self.view.lock:
                    self.view.emotion, self.view.confidence, self.view.best = e["emotion"], float(e["confidence"]), best
                    self.view.affect = affect
                    if event:
                        self.view.events.appendleft((e["end"][11:19], e["emotion"], e["confidence"], e["duration_s"]))
            self._note("")
        except ValueError as e:
            self._note(f"unreadable message on {m.topic}: {e}")

    def run(self, stop: threading.Event) -> None:
        self.client.loop_start()
        stop.wait()
        self.client.loop_stop()
        self.client.disconnect()


def monitor(feed: LocalFeed | MqttFeed, view: View, console: Console | None = None) -> int:
    console = console or Console()
    stop = threading.Event()
    # Ctrl-C ends the view even when a shell started it with SIGINT ignored (as shells do
    # for background jobs): a terminal UI must answer to it.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def feed_safely() -> None:
        try:
            feed.run(stop)
        except Exception as e:  # a broken sound card or file: say so on the screen, keep it up
            with view.lock:
                view.note = f"the feed stopped: {e}"

    worker = threading.Thread(target=feed_safely, name="feed", daemon=True)
    worker.start()
    try:
        with Live(render(view, console.width, console.height), console=console, auto_refresh=False,
                  screen=True) as live:  # fmt: skip
            while True:
                live.update(render(view, console.width, console.height), refresh=True)
                time.sleep(0.25)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        worker.join(timeout=2)
    return 0
