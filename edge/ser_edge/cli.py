"""Command line: parses arguments, hands them to the library, reports errors in one line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from ser_edge import __version__
from ser_edge.audio.audio_io import AudioFileError, read_audio
from ser_edge.command import run
from ser_edge.frontend import DEFAULT_CONFIG, compute_features_batch


def _features(args: argparse.Namespace) -> int:
    cfg = DEFAULT_CONFIG
    start = time.perf_counter()
    clips = [read_audio(f, cfg.sample_rate) for f in args.files]
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    feats = compute_features_batch(clips, cfg.sample_rate, cfg)
    feat_s = time.perf_counter() - start
    print(f"front end {cfg.hash}: {cfg.window_ms:g} ms window, {cfg.hop_ms:g} ms hop, "
          f"{cfg.n_mels} mels -> {cfg.n_features} int8 columns {list(cfg.channels)}")  # fmt: skip
    print(f"{'file':<34} {'seconds':>7} {'frames':>6} {'c0 mean':>8} {'c0 max':>7}")
    for path, pcm, f in zip(args.files, clips, feats, strict=True):
        c0 = f[:, 0].astype(int) if f.size else np.zeros(1, int)
        print(f"{Path(path).name:<34} {pcm.size / cfg.sample_rate:7.2f} {f.shape[0]:6d} "
              f"{c0.mean():8.1f} {c0.max():7d}")  # fmt: skip
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            np.save(args.out / (Path(path).stem + ".npy"), f)
    total = sum(p.size for p in clips) / cfg.sample_rate
    print(f"{len(clips)} clips, {total:.1f} s of audio: read in {read_s * 1000:.0f} ms, "
          f"featurised in {feat_s * 1000:.0f} ms ({total / max(feat_s, 1e-9):.0f}x real time)")  # fmt: skip
    if args.out:
        print(f"int8 feature matrices written to {args.out}/")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from ser_edge.delivery.events import affect_fields
    from ser_edge.pipeline import recognise_file
    from ser_edge.preflight import check_bundle, check_speech_gate

    settings = _settings(args.config)
    model = check_bundle(args.bundle or settings.model.bundle)
    check_speech_gate(settings, model)
    results = []
    failed = 0
    for path in args.files:  # one bad file does not hide the others' answers
        try:
            found = recognise_file(path, model, settings.gate, settings.model.threshold)
        except AudioFileError as e:
            results.append({"file": str(path), "emotion": None, "error": str(e)})
            print(f"ser-edge: error: {e}", file=sys.stderr)
            failed += 1
            continue
        for r in found:
            results.append({
                "file": str(path), "start_s": round(r.start, 2), "end_s": round(r.end, 2),
                "emotion": r.emotion, "confidence": r.confidence, "scores": r.scores, **affect_fields(r),
                "event": r.emitted,
            })  # fmt: skip
        if not found:
            results.append({"file": str(path), "emotion": None, "note": "no speech found"})
    status = 2 if failed else 0
    if args.json:
        print(json.dumps({"model": f"{model.bundle.name} {model.bundle.version}", "results": results}, indent=1))
        return status
    print(f"model {model.bundle.name} {model.bundle.version} ({model.bundle.path})")
    for r in results:
        name = Path(r["file"]).name
        if r["emotion"] is None:
            print(f"{name:<34} {'':>12} {'unreadable' if 'error' in r else 'no speech found'}")
            continue
        below = "" if r["event"] else "  (below the threshold: no event; the state says uncertain)"
        print(f"{name:<34} {r['start_s']:5.2f}-{r['end_s']:5.2f} s {r['emotion']:<10} {r['confidence']:.2f}{below}")
    return status


def _settings(config: Path | None):
    from ser_edge.settings import Settings, load_settings

    return load_settings(config) if config else Settings()


def _run(args: argparse.Namespace) -> int:
    from ser_edge.configfile import ConfigError
    from ser_edge.daemon import Daemon
    from ser_edge.delivery.spool import SpoolError
    from ser_edge.preflight import check_source, check_spool
    from ser_edge.recognition.bundle import BundleError

    settings = _settings(args.config)
    journald = bool(os.environ.get("JOURNAL_STREAM"))  # journald stamps the time itself
    stamp = "" if journald else "%(asctime)s "
    logging.basicConfig(level=args.log_level.upper(), format=stamp + "%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ser_edge").info("ser-edge %s starting, config %s", __version__, args.config or "(defaults)")
    check_spool(settings.spool.path)  # what check-config refuses, run refuses alike (78)
    check_source(settings)
    try:
        daemon = Daemon(settings, args.config)
    except BundleError as e:  # a config error (78), as check-config says, not exit 2
        raise ConfigError(f"model.bundle: {e}") from None
    except SpoolError as e:  # a folder or file this user cannot use (a damaged one is recovered)
        raise ConfigError(str(e)) from None
    return daemon.run()


def _check_config(args: argparse.Namespace) -> int:
    from ser_edge.delivery.spool import damage
    from ser_edge.preflight import preflight

    settings = _settings(args.file)
    bundle = preflight(settings, args.bundle).bundle
    s, m = settings, settings.mqtt
    print(f"{args.file}: OK. device {s.device.id}, source {s.source.kind}, model {bundle.name} {bundle.version}, "
          f"broker {m.host}:{m.port} (MQTT {m.protocol}{', TLS' if m.tls else ''}), spool {s.spool.path}")  # fmt: skip
    if problem := damage(s.spool.path):  # not a config error: run recovers from it
        print(f"warning: spool {s.spool.path} is damaged ({problem}); run will move it aside, keep its readable "
              "events and start a fresh one")  # fmt: skip
    return 0


def _selftest(args: argparse.Namespace) -> int:
    from ser_edge.tools.selftest import SelftestError, check_availability, check_delivery, check_model

    if bool(args.clip) != bool(args.expect):
        raise ValueError("--clip and --expect go together")
    from ser_edge.configfile import ConfigError
    from ser_edge.preflight import preflight

    settings = _settings(args.config)
    try:
        preflight(settings)
    except ConfigError as e:
        print(f"config {args.config or '(defaults)'}: FAILED: {e}")
        return 1
    print(f"config {args.config or '(defaults)'}: valid")
    failed = False
    checks = [lambda: check_model(settings, args.clip, args.expect)] if args.clip else []
    if args.availability:
        checks.append(lambda: check_availability(settings, args.timeout))
    if args.delivery:
        checks.append(lambda: check_delivery(settings, args.timeout))
    for check in checks:
        try:
            print(check())
        except SelftestError as e:
            print(f"FAILED: {e}")
            failed = True
    return 1 if failed else 0


def _devices(args: argparse.Namespace) -> int:
    from ser_edge.audio.sources import list_devices

    devices = list_devices()
    if not devices:
        print("no audio input devices found")
        return 1
    for index, name, channels in devices:
        print(f"{index:3d}  {name}  ({channels} channel{'s' if channels > 1 else ''})")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ser_edge.tools.bench import bench_frontend, format_frontend

    files = args.files or sorted(Path(__file__).resolve().parents[2].glob("deploy/samples/*.flac"))
    if not files:
        raise AudioFileError("no clips to benchmark: pass audio files")
    print(format_frontend(bench_frontend(files, seconds=args.seconds, repeat=args.repeat)))
    return 0


def _bench_daemon(args: argparse.Namespace) -> int:
    from ser_edge.tools.bench_daemon import bench_daemon, format_daemon, format_model_ratio, format_ratio

    clips = args.files or [Path(__file__).resolve().parents[2] / "deploy/samples"]
    reference = bench_daemon(clips, args.seconds, args.bundle, "energy")
    print(format_daemon(reference))
    r = reference
    if args.gate == "speech":
        r = bench_daemon(clips, args.seconds, args.bundle, "speech")
        print(format_daemon(r))
        print(format_ratio(r, reference))
    if args.reference_bundle:
        other = bench_daemon(clips, args.seconds, args.reference_bundle, args.gate)
        print(format_daemon(other))
        print(format_model_ratio(r, other))
    return 0


def _bench_model(args: argparse.Namespace) -> int:
    from ser_edge.settings import SourceSettings, default_bundle
    from ser_edge.tools.bench_model import bench_model, format_model

    clip = args.clip or sorted((Path(__file__).resolve().parents[2] / "deploy/samples").glob("*.flac"))[4]
    r = bench_model(args.bundle or default_bundle(SourceSettings()), clip, args.seconds, args.repeat)
    reference = bench_model(args.reference_bundle, clip, args.seconds, args.repeat) if args.reference_bundle else None
    print(format_model(r, reference))
    return 0


def _accuracy(args: argparse.Namespace) -> int:
    from ser_edge.frontend.error import format_report, measure_error

    # The stateless stages of the device's front end: the float reference has no others.
    cfg = dataclasses.replace(DEFAULT_CONFIG, channels=tuple(args.channels), noise_reduction=False, agc_strength=0.0)
    clips = [read_audio(f, cfg.sample_rate) for f in args.files]
    print(format_report(measure_error(clips, cfg), cfg))
    return 0


def _monitor(args: argparse.Namespace) -> int:
    import dataclasses

    from ser_edge.settings import DeviceSettings, SourceSettings
    from ser_edge.tools.monitor import LocalFeed, MqttFeed, View, monitor

    settings = _settings(args.config)
    if args.mqtt:
        mqtt = dataclasses.replace(settings.mqtt, host=args.host or settings.mqtt.host,
                                   port=args.port or settings.mqtt.port)  # fmt: skip
        device = DeviceSettings(id=args.device) if args.device else settings.device
        settings = dataclasses.replace(settings, mqtt=mqtt, device=device)
        view = View(f"device {device.id} on {mqtt.host}:{mqtt.port}")
        return monitor(MqttFeed(settings, view), view)
    if args.files:
        source = SourceSettings(kind="replay", files=tuple(args.files), loop=args.loop)
        settings = dataclasses.replace(settings, source=source)
    s = settings.source
    names = ", ".join(p.name for p in s.files) if s.kind == "replay" else f"microphone {s.device or '(default)'}"
    view = View(names)
    return monitor(LocalFeed(settings, view), view)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser-edge", description="Speech emotion recognition on the edge.")
    parser.add_argument("--version", action="version", version=f"ser-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("features", help="featurise audio files with the fixed-point front end")
    p.add_argument("files", nargs="+", type=Path, help="WAV/FLAC/AIFF files, any rate and channels")
    p.add_argument("--out", type=Path, help="directory for one int8 .npy matrix per file")
    p.set_defaults(func=_features)

    p = sub.add_parser("classify", help="the emotion of each utterance in audio files, through the device pipeline")
    p.add_argument("files", nargs="+", type=Path, help="WAV/FLAC/AIFF files, any rate and channels")
    p.add_argument("--bundle", type=Path, help="model bundle (default: the config's, else the shipped model)")
    p.add_argument("--config", type=Path, help="daemon config whose gate and threshold to use")
    p.add_argument("--json", action="store_true", help="machine-readable output with all scores")
    p.set_defaults(func=_classify)

    p = sub.add_parser("run", help="the daemon: listen, recognise, publish to MQTT")
    p.add_argument("--config", type=Path, help="YAML config (see deploy/config/config.example.yaml)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_run)

    p = sub.add_parser("check-config", help="validate a daemon config file (exit 78 if it is invalid)")
    p.add_argument("file", type=Path)
    p.add_argument("--bundle", type=Path, help="check against this model bundle instead of the config's")
    p.set_defaults(func=_check_config)

    p = sub.add_parser("selftest", help="check the config, the model on a known clip, and the broker link")
    p.add_argument("--config", type=Path, help="daemon config")
    p.add_argument("--clip", type=Path, help="speech clip with a known emotion")
    p.add_argument("--expect", help="the emotion the clip must be recognised as (with --clip)")
    p.add_argument(
        "--availability",
        action="store_true",
        help="the broker must hold this device's 'online', and its stats no refused events",
    )
    p.add_argument(
        "--delivery",
        action="store_true",
        help="a probe published with the device's credentials must come back (<base>/<id>/selftest)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker")
    p.set_defaults(func=_selftest)

    p = sub.add_parser("monitor", help="live terminal view: level, gate, MFCC strip, emotion, events, stats")
    p.add_argument("files", nargs="*", type=Path, help="replay these (in real time) instead of the microphone")
    p.add_argument("--config", type=Path, help="daemon config (microphone, gate, model; broker and device for --mqtt)")
    p.add_argument("--loop", action="store_true", help="replay the files again and again")
    p.add_argument("--mqtt", action="store_true", help="watch a running device through its MQTT topics instead")
    p.add_argument("--device", help="with --mqtt: the device id (default: the config's)")
    p.add_argument("--host", help="with --mqtt: the broker (default: the config's)")
    p.add_argument("--port", type=int, help="with --mqtt: the broker's port (default: the config's)")
    p.set_defaults(func=_monitor)

    p = sub.add_parser("devices", help="list the audio input devices")
    p.set_defaults(func=_devices)

    p = sub.add_parser("bench", help="print benchmark figures")
    bench = p.add_subparsers(dest="target", required=True)
    p = bench.add_parser("frontend", help="fixed-point front end vs librosa.feature.mfcc")
    p.add_argument("files", nargs="*", type=Path, help="clips to time (default: deploy/samples)")
    p.add_argument("--seconds", type=float, default=3.0, help="clip length (crop or zero-pad)")
    p.add_argument("--repeat", type=int, default=30, help="timed calls per clip")
    p.set_defaults(func=_bench)
    p = bench.add_parser("daemon", help="the whole daemon on real-time audio: CPU, memory, latency")
    p.add_argument("files", nargs="*", type=Path, help="clips or folders to replay (default: deploy/samples)")
    p.add_argument("--seconds", type=float, default=120, help="at least this much audio (the clips repeat)")
    p.add_argument("--bundle", type=Path, help="model bundle (default: the shipped one)")
    p.add_argument(
        "--gate",
        choices=("energy", "speech"),
        default="speech",
        help="speech (the daemon's default): the speech gate, against the energy gate in the same run; energy: alone",
    )
    p.add_argument("--reference-bundle", type=Path,
                   help="also run this model with the same gate and print the model's cost against it")  # fmt: skip
    p.set_defaults(func=_bench_daemon)
    p = bench.add_parser("model", help="one utterance through a model stage on one core: milliseconds by stage")
    p.add_argument("--bundle", type=Path, help="model bundle (default: ser-base, the Pi's model)")
    p.add_argument("--reference-bundle", type=Path, help="also time this bundle and print the ratio")
    p.add_argument("--clip", type=Path, help="real speech to time it on (default: a sample clip)")
    p.add_argument("--seconds", type=float, default=3.0, help="utterance length (default 3 s)")
    p.add_argument("--repeat", type=int, default=30, help="runs per figure (the median is printed)")
    p.set_defaults(func=_bench_model)
    p = bench.add_parser("accuracy", help="fixed-point error against the float64 reference")
    p.add_argument("files", nargs="+", type=Path, help="real speech clips")
    p.add_argument("--channels", nargs="+", default=["mfcc", "logmel", "zcr", "rms"], help="columns to measure")
    p.set_defaults(func=_accuracy)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ser_edge.configfile import ConfigError

    # AudioFileError, BundleError and bad input are ValueErrors; unreadable paths OSErrors.
    return run(build_parser(), argv, (ValueError, OSError), (ConfigError,))
