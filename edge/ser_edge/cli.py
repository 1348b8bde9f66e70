"""Command line: parses arguments, hands them to the library, reports errors in one line."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from . import __version__
from .audio_io import AudioFileError, read_audio
from .command import run
from .frontend import DEFAULT_CONFIG, compute_features, compute_features_batch

#: The shipped model when running from a checkout; SER_BUNDLE overrides it.
DEFAULT_BUNDLE = Path(os.environ.get("SER_BUNDLE", Path(__file__).resolve().parents[2] / "deploy/models/ser-tiny"))


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
    from .bundle import load_bundle
    from .model import EmotionModel

    model = EmotionModel(load_bundle(args.bundle))
    labels = model.bundle.labels
    results = []
    for path in args.files:
        pcm = read_audio(path, model.bundle.frontend.sample_rate)
        scores = model.utterance_scores(compute_features(pcm, cfg=model.bundle.frontend))
        best = int(np.argmax(scores))
        results.append({
            "file": str(path), "emotion": labels[best], "confidence": round(float(scores[best]), 4),
            "scores": {label: round(float(s), 4) for label, s in zip(labels, scores, strict=True)},
            "seconds": round(pcm.size / model.bundle.frontend.sample_rate, 2),
        })  # fmt: skip
    if args.json:
        print(json.dumps({"model": f"{model.bundle.name} {model.bundle.version}", "results": results}, indent=1))
        return 0
    print(f"model {model.bundle.name} {model.bundle.version} ({args.bundle})")
    for r in results:
        print(f"{Path(r['file']).name:<34} {r['emotion']:<10} {r['confidence']:.2f}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import bench_frontend, format_frontend

    files = args.files or sorted(Path(__file__).resolve().parents[2].glob("deploy/samples/*.flac"))
    if not files:
        raise AudioFileError("no clips to benchmark: pass audio files")
    print(format_frontend(bench_frontend(files, seconds=args.seconds, repeat=args.repeat)))
    return 0


def _accuracy(args: argparse.Namespace) -> int:
    from .frontend import FrontendConfig
    from .frontend.error import format_report, measure_error

    cfg = FrontendConfig(channels=tuple(args.channels))
    clips = [read_audio(f, cfg.sample_rate) for f in args.files]
    print(format_report(measure_error(clips, cfg), cfg))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser-edge", description="Speech emotion recognition on the edge.")
    parser.add_argument("--version", action="version", version=f"ser-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("features", help="featurise audio files with the fixed-point front end")
    p.add_argument("files", nargs="+", type=Path, help="WAV/FLAC/AIFF files, any rate and channels")
    p.add_argument("--out", type=Path, help="directory for one int8 .npy matrix per file")
    p.set_defaults(func=_features)

    p = sub.add_parser("classify", help="the emotion of each audio file, through the device pipeline")
    p.add_argument("files", nargs="+", type=Path, help="WAV/FLAC/AIFF files, any rate and channels")
    p.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help=f"model bundle (default: {DEFAULT_BUNDLE})")
    p.add_argument("--json", action="store_true", help="machine-readable output with all scores")
    p.set_defaults(func=_classify)

    p = sub.add_parser("bench", help="print benchmark figures")
    bench = p.add_subparsers(dest="target", required=True)
    p = bench.add_parser("frontend", help="fixed-point front end vs librosa.feature.mfcc")
    p.add_argument("files", nargs="*", type=Path, help="clips to time (default: deploy/samples)")
    p.add_argument("--seconds", type=float, default=3.0, help="clip length (crop or zero-pad)")
    p.add_argument("--repeat", type=int, default=30, help="timed calls per clip")
    p.set_defaults(func=_bench)
    p = bench.add_parser("accuracy", help="fixed-point error against the float64 reference")
    p.add_argument("files", nargs="+", type=Path, help="real speech clips")
    p.add_argument("--channels", nargs="+", default=["mfcc", "logmel", "zcr", "rms"], help="columns to measure")
    p.set_defaults(func=_accuracy)
    return parser


def main(argv: list[str] | None = None) -> int:
    # AudioFileError, BundleError and bad input are ValueErrors; unreadable paths OSErrors.
    return run(build_parser(), argv, (ValueError, OSError))
