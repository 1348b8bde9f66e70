"""The long-running process: wires the stages and runs them until told to stop.

    source --(capture thread, bounded queue)--> gate -> recognise -> spool -> publisher

A serial node in features or results mode has cut (and scored) the utterance itself;
its items join at ``recognise``.

The main thread runs the processing loop, so a hang there stops the systemd watchdog
pings. SIGTERM/SIGINT: the open utterance is finished, the spool gets a few seconds to
drain, ``offline`` is published, exit 0. SIGHUP: the config and the model bundle are
re-read and validated together; on any problem the running ones stay and the log says
why.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import signal
import threading
import time
from pathlib import Path

from ser_edge.audio.sources import SAMPLE_RATE, Chunk, FlatInputWatch, MicrophoneSource, ReplaySource
from ser_edge.configfile import ConfigError
from ser_edge.delivery.discovery import discovery_payload
from ser_edge.delivery.events import event_payload, state_payload
from ser_edge.delivery.publisher import Publisher
from ser_edge.delivery.spool import Spool
from ser_edge.gate.speech_gate import GateBundleError, SpeechGate, make_gate, same_gate
from ser_edge.gate.vad import FRAME_SAMPLES, Gate, GateUnits, Utterance
from ser_edge.link.serial_link import AudioGap, NodeSpeech, NodeUtterance, SerialSource
from ser_edge.notify import Notifier
from ser_edge.preflight import check_bundle
from ser_edge.recognition.base_model import BaseModel
from ser_edge.recognition.bundle import BundleError
from ser_edge.recognition.decision import Recognition, recognise, recognise_features, recognise_scores
from ser_edge.recognition.model import EmotionModel
from ser_edge.settings import GateSettings, Settings, load_settings
from ser_edge.stats import Stats

log = logging.getLogger(__name__)

#: Sections a SIGHUP cannot change in a running process (they need a restart).
RESTART_SECTIONS = ("device", "source", "mqtt", "spool")
_END = object()  # the replay is over
_FAILED = object()  # the audio source failed and could not be reopened
#: sysexits.h EX_UNAVAILABLE: the audio source is gone; systemd's Restart=on-failure tries again.
EX_UNAVAILABLE = 69
#: A serial source's reading loop that has not gone round for this long is hung.
SOURCE_ALIVE_S = 3.0


def load_model(settings: Settings) -> EmotionModel | BaseModel:
    """The configured model; a ConfigError when it cannot serve the configured source."""
    return check_bundle(settings.model.bundle, settings)


def board_model(path: Path = Path("/proc/device-tree/model")) -> str:
    """The board's name (a Raspberry Pi's device tree has it), or "" where there is none."""
    try:
        return path.read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip()
    except OSError:
        return ""


class Daemon:
    def __init__(self, settings: Settings, config_path: Path | None = None, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.model = load_model(settings)
        self.gate = self._start_gate(settings)
        self._next_gate: Gate | SpeechGate | None = None  # a reloaded gate, waiting for the utterance in progress
        self.watch = FlatInputWatch(settings.source.dead_after_s)
        self.stats = Stats()
        self.spool = Spool(settings.spool.path, settings.spool.max_events)
        self.publisher = Publisher(settings.mqtt, settings.device, self.spool)
        self.publisher.set_discovery(self._discovery())
        chunks = max(1, round(settings.source.queue_s * 1000 / settings.source.chunk_ms))
        self._chunks: queue.Queue = queue.Queue(maxsize=chunks)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._last_event = "none yet"
        self._source: ReplaySource | MicrophoneSource | SerialSource | None = None
        self._stop_signal = 0  # the signal that asked for the stop (0: none)
        self._live = True  # audio arrives as it is heard (not a fast replay)
        self._arrived = time.monotonic()  # when the item being processed came from the source
        self._audio_clock = 0.0  # monotonic time minus the live audio's time

    def _start_gate(self, settings: Settings) -> Gate | SpeechGate:
        """The configured gate; a configured speech gate bundle that cannot be used (damaged
        on disk since check-config passed it) gives way to the packaged one with a loud
        error rather than a service that never starts again."""
        try:
            return make_gate(settings.gate, self.model.bundle)
        except GateBundleError as e:
            packaged = GateSettings().speech_bundle
            if settings.gate.speech_bundle == packaged:
                raise ConfigError(str(e)) from None
            gate = make_gate(dataclasses.replace(settings.gate, speech_bundle=packaged), self.model.bundle)
            log.error("%s; running with the packaged speech gate %s until it is fixed", e, packaged)
            self.notifier.status(f"{e}; running with the packaged speech gate")
            return gate

    def _discovery(self) -> str:
        d = self.settings.device
        return discovery_payload(d.id, d.name, self.publisher.topics, self.model.bundle.labels, board_model())

    # -- capture ------------------------------------------------------------------------

    def _open_source(self):
        s = self.settings.source
        if s.kind == "serial":
            gate, speech = self._node_gate()
            return SerialSource(s.serial, gate, lambda: self.model.bundle, self._stop, speech=speech)
        return ReplaySource(s) if s.kind == "replay" else MicrophoneSource(s)

    def _node_gate(self) -> tuple[tuple[int, ...], NodeSpeech | None]:
        """The node's gate settings: the energy gate's; with gate.kind speech in features
        mode, the speech gate's wake thresholds and its rule, which the node then runs."""
        g = self.gate
        if not isinstance(g, SpeechGate) or self.settings.source.serial.mode != "features":
            return dataclasses.astuple(GateUnits.of(self.settings.gate)), None
        r = g.rule
        rule = (g.model.threshold_q(r.threshold), r.min_windows, r.of_windows, r.hangover)
        return dataclasses.astuple(GateUnits.of(g.energy.settings)), NodeSpeech(g.model.bundle.sha256, rule)

    def _capture(self, source) -> None:
        """Feeds the queue. A replay's end ends the run; a live source that ends or fails
        (a USB microphone unplugged) is reopened after 1, 2, 4 ... times ``reopen_s``, and
        when that fails ``reopen_attempts`` times in a row the run ends with status 69."""
        s = self.settings.source
        failures = 0
        while not self._stop.is_set():
            delivered = 0
            try:
                if source is None:
                    source = self._source = self._open_source()
                    log.info("audio source reopened")
                delivered = self._feed(source)
                if isinstance(source, ReplaySource):
                    self.stats.skipped_files = len(source.skipped)
                    self._chunks.put(_END)
                    return
                problem = "it stopped delivering audio"
            except Exception as e:  # a broken sound card must not leave the loop waiting forever
                problem = str(e) or type(e).__name__
            if self._stop.is_set():
                return
            if isinstance(source, MicrophoneSource):
                source.close()
            source = None
            failures = 1 if delivered else failures + 1  # audio came: this is a new outage
            if s.kind == "replay" or failures > s.reopen_attempts:
                tried = "" if s.kind == "replay" else f"; gave up after {s.reopen_attempts} attempts to reopen it"
                log.error("audio source failed: %s%s", problem, tried)
                self._chunks.put(_FAILED)
                return
            wait = s.reopen_s * 2 ** (failures - 1)
            log.error("audio source failed: %s; reopening in %.1f s (attempt %d of %d)", problem, wait, failures,
                      s.reopen_attempts)  # fmt: skip
            self._stop.wait(wait)

    def _feed(self, source) -> int:
        """Items from the source into the queue until it ends or the run stops; how many."""
        live = self._live = not (isinstance(source, ReplaySource) and not self.settings.source.realtime)
        delivered = 0
        for item in source:
            if self._stop.is_set():
                break
            delivered += 1
            stamped = (item, time.monotonic())  # when it arrived: the clock latencies are measured on
            if not live or not isinstance(item, Chunk):  # a fast replay waits for the pipeline; live audio cannot
                self._chunks.put(stamped)
                continue
            try:
                self._chunks.put_nowait(stamped)
            except queue.Full:
                self.stats.dropped_frames += item.pcm.size // FRAME_SAMPLES
        return delivered

    # -- processing ---------------------------------------------------------------------

    def _process(self, item: Chunk | NodeUtterance | AudioGap) -> None:
        if isinstance(item, NodeUtterance):
            self._node_utterance(item)
        elif isinstance(item, AudioGap):
            self.gate.flush()  # an utterance with a hole in it is not one
            if isinstance(self.gate, SpeechGate):
                self.gate.take_rejected()  # nor is it a stretch of sound without speech
        else:
            self._audio(item)

    def _swap_gate(self) -> None:
        """A reloaded gate takes over between utterances: one in progress is not cut."""
        if self._next_gate is not None and not self.gate.in_speech:
            self.gate, self._next_gate = self._next_gate, None
            if isinstance(self._source, SerialSource):
                self._source.configure(*self._node_gate())
            log.info("reload: the new gate runs from here")

    def _audio(self, chunk: Chunk) -> None:
        self._audio_clock = self._arrived - (chunk.time + chunk.pcm.size / SAMPLE_RATE)
        change = self.watch.update(chunk.pcm)
        if change is True:
            log.warning("no signal: the input has been flat for %.0f s (microphone unplugged or muted?)",
                        self.watch.flat_seconds)  # fmt: skip
        elif change is False:
            log.info("the input signal is back")
        for utterance in self.gate.push(chunk.pcm, chunk.time):
            self._utterance(utterance)
        self._count_not_speech()
        self._swap_gate()

    def _utterance(self, u: Utterance) -> None:
        """Scored and emitted; its speech ended at ``u.end`` on the audio's clock, which live
        audio maps onto the monotonic clock (the gate may close an utterance seconds after
        its speech ended: that wait is part of the latency)."""
        now = time.monotonic()
        ended = min(now, u.end + self._audio_clock) if self._live else now
        self._emit(recognise(self.model, u, self.settings.model.threshold), ended)

    def _count_not_speech(self) -> None:
        """The speech gate's stretches of sound without speech, in the stats and the log."""
        if not isinstance(self.gate, SpeechGate):
            return
        self.stats.speech_probability = self.gate.probability
        if new := self.gate.take_rejected():
            self.stats.utterances += new
            self.stats.not_speech += new
            log.info("%d stretch(es) of sound not speech (P(speech) %.2f); no event", new, self.gate.probability)

    def _node_utterance(self, n: NodeUtterance) -> None:
        """An utterance the node cut (with gate.kind speech in features mode, the node's
        speech gate did; in results mode its energy gate, unchecked)."""
        threshold = self.settings.model.threshold
        if n.features is not None:
            r = recognise_features(self.model, n.features, n.start, n.end, threshold)
        else:
            r = recognise_scores(self.model, n.scores, n.start, n.end, threshold)
        self._emit(r, self._arrived)

    def _emit(self, r: Recognition, ended: float) -> None:
        """``ended``: the monotonic time the utterance's speech ended."""
        self.stats.utterances += 1
        self.stats.inference_ms.append(r.inference_ms)
        if not r.emitted:  # no event; the state says so, rather than keep the last confident answer
            self.stats.undecided += 1
            self.publisher.publish_state(state_payload(r, None))
            log.info("utterance %.1f s: %s %.2f is below the threshold; no event", r.seconds, r.emotion, r.confidence)
            return
        b = self.model.bundle
        seq = self.spool.add(lambda n: event_payload(r, n, self.settings.device.id, b.name, b.version))
        self.publisher.event_added(seq, ended)
        self.stats.events += 1
        self.publisher.publish_state(state_payload(r, seq))
        self._last_event = f"{r.emotion} {r.confidence:.2f}"
        log.info("event %d: %s %.2f (%.1f s utterance)", seq, r.emotion, r.confidence, r.seconds)

    def _reload_now(self) -> None:
        try:
            new = load_settings(self.config_path) if self.config_path else self.settings
            model = load_model(new)
            gate = make_gate(new.gate, model.bundle)  # also re-checks a gate bundle damaged on disk
        except (ConfigError, BundleError, ValueError, OSError) as e:
            log.error("reload failed; keeping the running config and model: %s", e)
            self.notifier.status(f"reload failed: {e}")
            return
        fixed = [name for name in RESTART_SECTIONS if getattr(new, name) != getattr(self.settings, name)]
        if fixed:
            log.warning("reload: changes to %s take effect after a restart", ", ".join(fixed))
        self.settings = dataclasses.replace(self.settings, model=new.model, gate=new.gate)
        self.model = model
        self.publisher.set_discovery(self._discovery())
        self._next_gate = None if same_gate(gate, self.gate) else gate
        if isinstance(self._source, SerialSource) and self._next_gate is None:
            self._source.configure(*self._node_gate())  # a new model: its HELLO is checked again
        self._swap_gate()
        b = model.bundle
        log.info("reloaded: model %s %s (%s), threshold %.2f", b.name, b.version, b.sha256[:12], new.model.threshold)

    def _status(self) -> str:
        link = "connected" if self.publisher.connected.is_set() else f"broker down ({self.publisher.last_error})"
        mic = "; NO SIGNAL" if self.watch.dead else ""
        node = f"; node {self._source.stats.state}" if isinstance(self._source, SerialSource) else ""
        return f"{self.stats.events} events, last {self._last_event}; {link}; {len(self.spool)} unsent{mic}{node}"

    def _stats(self) -> dict:
        b = self.model.bundle
        if isinstance(self._source, ReplaySource):  # a loop never ends: count as it goes
            self.stats.skipped_files = len(self._source.skipped)
        if isinstance(self._source, MicrophoneSource):
            self.stats.input_overflows = self._source.overflows
        figures = self.stats.period(self.publisher.take_latencies())
        if isinstance(self._source, SerialSource):
            figures |= self._source.stats.as_dict()
        return figures | {
            "model": b.name, "model_version": b.version, "spool_depth": len(self.spool),
            "spool_dropped": self.spool.dropped, "spool_writable": not self.spool.failing,
            "spool_recovered": self.spool.recoveries,
            "audio_queue": self._chunks.qsize(),
            "input_level_db": round(self.gate.level_db, 1), "input_dead": self.watch.dead,
            "broker_connects": self.publisher.connects,
            "events_refused": self.publisher.refused,
            "delivery_error": self.publisher.delivery_error,
        }  # fmt: skip

    # -- the loop -----------------------------------------------------------------------

    def request_stop(self, signum: int = signal.SIGTERM, _frame=None) -> None:
        self._stop_signal = signum
        self._stop.set()

    def request_reload(self, *_args) -> None:
        self._reload.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        self.publisher.start()
        source = self._source = self._open_source()
        capture = threading.Thread(target=self._capture, args=(source,), name="capture", daemon=True)
        capture.start()  # audio is processed from here on, whatever the broker does
        b = self.model.bundle
        self.notifier.ready(f"listening with {b.name} {b.version}; {self._status()}")
        log.info("ready: model %s %s, device %s, broker %s:%d", b.name, b.version, self.settings.device.id,
                 self.settings.mqtt.host, self.settings.mqtt.port)  # fmt: skip
        try:
            status = self._loop()
        finally:
            self._shutdown()
        return status

    def _loop(self) -> int:
        """Until a stop (0), the end of a replay once the spool is empty (0), or a failed
        audio source (69, the spool kept for the next start)."""
        interval = self.settings.mqtt.stats_interval_s
        ping = self.notifier.watchdog_s / 2 if self.notifier.watchdog_s else 0.0
        next_stats = next_ping = next_status = time.monotonic()
        ended = False
        while not self._stop.is_set():
            try:
                item = self._chunks.get(timeout=0.2)
            except queue.Empty:
                item = None
            progressed = item is not None
            if isinstance(item, tuple):
                item, self._arrived = item
            if item is _END:
                for utterance in self.gate.flush():
                    self._utterance(utterance)
                ended = True
                log.info("the replay is over; delivering what is left, then exiting")
            elif item is _FAILED:
                return EX_UNAVAILABLE
            elif item is not None:
                self._process(item)
            if self._reload.is_set():
                self._reload.clear()
                self._reload_now()
            now = time.monotonic()
            if ping and now >= next_ping and (progressed or ended or self._source_alive(now)):
                self.notifier.watchdog()
                next_ping = now + ping
            self.publisher.tick()
            if now >= next_status:
                self.notifier.status(self._status())
                next_status = now + 5
            if now >= next_stats:
                self.publisher.publish_stats(self._stats())
                next_stats = now + interval
            if ended and len(self.spool) == 0:
                return 0
        return 0

    def _source_alive(self, now: float) -> bool:
        """A serial source sends no items in a quiet room (the node cuts utterances
        itself) or while the node is unplugged; its reading loop going round is its life."""
        source = self._source
        return isinstance(source, SerialSource) and now - source.alive_at < SOURCE_ALIVE_S

    def _shutdown(self) -> None:
        if self._stop_signal:
            log.info("%s received: finishing the open utterance and delivering what the broker takes in 5 s",
                     signal.Signals(self._stop_signal).name)  # fmt: skip
        self.notifier.stopping()
        for utterance in self.gate.flush():
            self._utterance(utterance)
        self._stop.set()
        deadline = time.monotonic() + 5
        while len(self.spool) and self.publisher.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.publisher.publish_stats(self._stats())
        self.publisher.stop()
        if isinstance(self._source, MicrophoneSource):
            self._source.close()
        left = len(self.spool)
        failing = self.spool.failing
        lost = self.spool.close()
        if lost:
            log.error("stopped; %d events stay in the spool for the next start; %d more could not be written to "
                      "it (%s) and are lost", left - lost, lost, failing)  # fmt: skip
        elif left:
            log.info("stopped; %d events stay in the spool for the next start", left)
        else:
            log.info("stopped")
