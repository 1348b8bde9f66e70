"""`ser-train`: parses arguments, runs the job, reports a user's mistake in one line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

from ser_edge.command import run

from .config import ConfigError, load_config
from .corpora import LOADERS, Manifest, check_audio, counts, load_crema, load_folder, load_ravdess
from .int8 import ConversionError

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
DISTIL_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-distil.yaml"
BASE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "base.yaml"


def _encoder(args: argparse.Namespace) -> int:
    from .base_config import load_base_config
    from .encoder_export import build_checked

    cfg = load_base_config(args.config)
    out = args.out or Path(cfg.encoder.file)
    print(build_checked(cfg.encoder, out, args.clips))
    return 0


def _base_cv(args: argparse.Namespace) -> int:
    from .base_config import load_base_config
    from .serbase import run_cv

    cfg = load_base_config(args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.config, args.out / "config.yaml")
    run_cv(cfg, args.out, args.loco, args.workers)
    print(f"results in {args.out / 'cv.json'}; through the daemon's path: ser-train robustness {args.out}")
    return 0


def _base_train(args: argparse.Namespace) -> int:
    from .base_config import load_base_config
    from .serbase import train_shipped

    if args.cv and not (args.cv / "cv.json").is_file():
        raise FileNotFoundError(f"{args.cv}: no cv.json (run ser-train base-cv --out {args.cv} first)")
    train_shipped(load_base_config(args.config), args.out, args.workers, args.cv)
    shutil.copy(args.config, args.out / "config.yaml")
    return 0


def _affect(args: argparse.Namespace) -> int:
    from .affect_eval import evaluate_cv
    from .base_config import load_base_config

    if not (args.cv / "cv.json").is_file():
        raise FileNotFoundError(f"{args.cv}: no cv.json (run ser-train base-cv --out {args.cv} first)")
    evaluate_cv(load_base_config(args.config), args.cv, args.workers)
    print(f"results in {args.cv / 'affect'}")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    manifest = Manifest()
    for name, load in LOADERS.items():
        if name in ("crema", "folder") or getattr(args, name) is None:
            continue
        manifest.extend(load(getattr(args, name)))
    if args.crema:
        manifest.extend(load_crema(args.crema, args.crema_meta, verify=args.verify))
    for folder in args.folder or []:
        manifest.extend(load_folder(folder))
    if not manifest.clips and not manifest.problems:
        raise ValueError("name at least one dataset: " + ", ".join(f"--{n}" for n in LOADERS))
    manifest = check_audio(manifest)
    if not manifest.clips:
        raise ValueError("no usable clips found in the given folders")
    for key in ("corpus", "label", "gender", "speaker"):
        table = counts(manifest.clips, key)
        print(f"{key}: " + ", ".join(f"{k} {v}" for k, v in table.items()))
    print(f"{len(manifest.clips)} usable clips; {len(manifest.problems)} problem(s)")
    for problem in manifest.problems:
        print(f"  problem: {problem}")
    return 0


def _cv(args: argparse.Namespace) -> int:
    from .distil import Lesson
    from .metrics import format_report
    from .pipeline import cross_validate, make_folds, prepare
    from .plots import confusion_png, curves_png

    cfg = load_config(args.config)
    if args.func is _distil and cfg.distil is None:
        raise ConfigError(f"{args.config}: no distil section (who teaches, at what temperature)")
    clips, bank = prepare(cfg, args.cache)
    lesson = Lesson.prepare(cfg, clips, args.cache) if cfg.distil else None
    folds = make_folds(cfg, clips)
    if args.folds:
        folds = [folds[i - 1] for i in args.folds]
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.config, args.out / "config.yaml")  # what the fold models were trained with
    results = cross_validate(cfg, clips, bank, folds, args.out, lesson=lesson)
    (args.out / "cv.json").write_text(json.dumps(results, indent=1) + "\n")
    for kind in ("float", "int8"):
        print(f"pooled {kind}: " + format_report(results["pooled"][kind]))
        confusion_png(results["pooled"][kind]["confusion"], args.out / f"confusion_{kind}.png",
                      f"{cfg.name}: pooled {kind} confusion, speaker-independent CV")  # fmt: skip
    curves_png([f["history"] for f in results["folds"]], args.out / "learning_curves.png", f"{cfg.name}: CV folds")
    print(f"results in {args.out / 'cv.json'}")
    return 0


def _distil(args: argparse.Namespace) -> int:
    """`ser-train cv` of a config with a distil section: ser-tiny taught by ser-base."""
    return _cv(args)


def _train(args: argparse.Namespace) -> int:
    from .pipeline import prepare, train_final

    cfg = load_config(args.config)
    clips, bank = prepare(cfg, args.cache)
    training = train_final(cfg, clips, bank, args.out)
    shutil.copy(args.config, args.out / "config.yaml")
    print(f"trained on {training['clips']} clips of {len(training['speakers'])} speakers, "
          f"{training['epochs']} epochs; model in {args.out}; next: ser-train export --run {args.out}")  # fmt: skip
    return 0


def _export(args: argparse.Namespace) -> int:
    from .pipeline import export_run, prepare
    from .robustness import compact

    cfg = load_config(args.run / "config.yaml")
    evaluation = json.loads(args.cv.read_text()) if args.cv else {"note": "no cross-validation given"}
    tables = args.cv.parent / "robustness" / "robustness.json" if args.cv else None
    robustness = json.loads(tables.read_text()) if tables and tables.is_file() else None
    clips, bank = prepare(cfg, args.cache)
    manifest = export_run(cfg, clips, bank, args.run, args.out, evaluation, robustness and compact(robustness))
    shutil.copy(args.run / "config.yaml", args.out / "config.yaml")  # how it was trained, for `report`
    if robustness:  # the CV's fold models through the device path, for `report`
        shutil.copy(tables, args.out / "robustness.json")
    for picture in ("confusion_float.png", "confusion_int8.png", "learning_curves.png") if args.cv else ():
        if (args.cv.parent / picture).is_file():  # the CV's plots, the bundle's evidence
            shutil.copy(args.cv.parent / picture, args.out / picture)
    v, m = manifest["verification"], manifest["model"]
    print(f"{args.out}/model.tflite: {m['tflite_bytes']} bytes, {m['parameters']} parameters, "
          f"TFLM arena {v['tflm_arena_bytes']} bytes, TFLM == TFLite reference on {v['verified_windows']} "
          f"windows: {v['tflm_equals_tflite_reference']} (max diff {v['tflm_max_abs_diff_steps']} step)")  # fmt: skip
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_bundle
    from .metrics import format_report

    manifest = Manifest()
    if args.ravdess:
        manifest.extend(load_ravdess(args.ravdess))
    for folder in args.folder or []:
        manifest.extend(load_folder(folder))
    clips = [c for c in check_audio(manifest).clips if not args.speakers or c.speaker in args.speakers]
    if not clips:
        raise ValueError("no clips to evaluate: give --ravdess and/or --folder (and matching --speakers)")
    result = evaluate_bundle(args.bundle, clips)
    print(json.dumps(result, indent=1) if args.json else format_report(result))
    return 0


def _robustness(args: argparse.Namespace) -> int:
    from ser_edge.settings import GateSettings

    from .gatebench import speech_settings
    from .robustness import PROTOCOL_FILE, format_tables, load_protocol, robustness

    protocol = load_protocol(args.protocol or PROTOCOL_FILE)
    if args.every:
        protocol = dataclasses.replace(protocol, every=args.every)
    out = args.out or (args.target / "robustness")
    if args.gate_bundle:
        gate = speech_settings(args.gate_bundle)
    else:
        gate = GateSettings(kind=args.gate) if args.gate else GateSettings()
    t = robustness(args.target, protocol, out, workers=args.workers, cache=args.cache, gate=gate)
    print(format_tables(t))
    print(f"tables in {out / 'robustness.json'}")
    return 0


def _bench_gate(args: argparse.Namespace) -> int:
    from .config import DataConfig, expand
    from .gatebench import TV, bench, header, write
    from .nonspeech import HOUSEHOLD

    data = DataConfig()
    m = f"{args.minutes:g} min"
    print(f"held-out speakers and sounds; non-speech: {m} of the held-out noise recordings looped and mixed, {m} of "
          f"rendered music, {m} of household sounds ({', '.join(HOUSEHOLD)}); and {args.tv_minutes:g} min of "
          f"{TV} (speech: reported apart)")  # fmt: skip
    print(header(["noise recordings", "music", "household sounds", TV]))
    gate = args.gate_bundle if args.gate_bundle.is_dir() else None
    result = bench(expand(data.ravdess), expand(data.noise), args.bundle, args.minutes, args.every, args.cache, gate,
                   args.tv_minutes, only=args.only)  # fmt: skip
    print(f"figures in {write(result, args.out)}")
    return 0


def _gate_model(args: argparse.Namespace) -> int:
    from .config import DataConfig, expand
    from .speechgate import choose_rule, export, gate_data, record_rule, speech_clips, stretches, train

    data = DataConfig()
    roots = {name: expand(getattr(data, name)) for name in ("tess", "baved") if getattr(data, name)}
    speech = speech_clips(expand(data.ravdess), roots.get("tess"), roots.get("baved"))
    corpora = ["ravdess"] + [name for name, root in roots.items() if root.is_dir()]
    valid = sum(role is not None for _, role in speech)
    print(f"speech: {len(speech)} clips of {', '.join(corpora)} ({valid} for validation)")
    training, validation = stretches(speech, expand(data.noise), args.minutes, args.music_minutes, args.every,
                                     args.cache)  # fmt: skip
    if not args.rule_only:
        windows = gate_data(training)
        print(f"{len(windows.labels)} windows, {windows.labels.mean():.0%} speech")
        export(train(windows, args.epochs), windows, args.out, corpora)
    rule, table = choose_rule(args.out, validation)
    manifest = record_rule(args.out, rule, table)
    r = manifest["rule"]
    f = r["validation"]
    print(f"rule: P(speech) >= {r['threshold']:g} in {r['min_windows']} of {r['of_windows']} windows; validation: "
          f"{100 * f['miss']:.1f} % of sentences missed ({100 * f['miss_0db']:.1f} % at 0 dB), "
          f"{100 * f['word_miss']:.1f} % of words ({100 * f['word_miss_0db']:.1f} % at 0 dB), "
          f"{f['false_per_hour']:.0f} non-speech utterances per hour")  # fmt: skip
    v = manifest["verification"]
    print(f"{args.out}: {manifest['model']['tflite_bytes']} bytes int8, {manifest['model']['parameters']} parameters, "
          f"TFLite Micro arena {v['tflm_arena_bytes']} bytes, "
          f"equal to TFLite's reference: {v['tflm_equals_tflite_reference']}")  # fmt: skip
    return 0


def _summary(args: argparse.Namespace) -> int:
    from .metrics import cv_table
    from .robustness import ablation_table

    print(cv_table({path.parent.name: json.loads(path.read_text()) for path in args.results}))
    harness = {p.parent.name: p.parent / "robustness" / "robustness.json" for p in args.results}
    found = {name: json.loads(path.read_text()) for name, path in harness.items() if path.is_file()}
    if found:
        print("\nthrough the device path (ser-train robustness; drops and changes in points of accuracy):")
        print(ablation_table(found))
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import write_report

    if not (args.bundle / "manifest.json").is_file():
        raise ValueError(f"{args.bundle}: not a model bundle (no manifest.json)")
    path = write_report(args.bundle, args.out or args.bundle / "report")
    print(f"report: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ser-train", description="Train and export ser-edge emotion models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="count clips per corpus, label, speaker and gender; list problems")
    p.add_argument("--ravdess", type=Path, help="RAVDESS speech folder (Actor_*/...)")
    p.add_argument("--tess", type=Path, help="TESS folder (<SPEAKER>_<emotion>/...)")
    p.add_argument("--emodb", type=Path, help="EmoDB folder (wav/SSTTTEV files)")
    p.add_argument("--ased", type=Path, help="ASED v1 folder (01Neutral ... 05Angry)")
    p.add_argument("--turev", type=Path, help="TurEV-DB 'Sound Source' folder")
    p.add_argument("--emospeech", type=Path, help="Indian EmoSpeech Command folder")
    p.add_argument("--crema", type=Path, help="CREMA-D folder holding AudioWAV/")
    p.add_argument("--crema-meta", type=Path, help="folder with VideoDemographics.csv (default: --crema)")
    p.add_argument("--verify", action="store_true", help="check CREMA-D files against their SHA-256 list")
    p.add_argument("--folder", type=Path, action="append", help="a folder of <label>/<file> recordings")
    p.set_defaults(func=_datasets)

    for name, func, text in (("cv", _cv, "speaker-independent cross-validation"),
                             ("distil", _distil, "cross-validation of ser-tiny taught by ser-base (issue 28)"),
                             ("train", _train, "train the model to ship (then: export)"),
                             ("export", _export, "convert a trained run to a verified int8 bundle")):  # fmt: skip
        p = sub.add_parser(name, help=text)
        if name == "export":
            p.add_argument("--run", type=Path, required=True, help="folder written by `ser-train train`")
            p.add_argument("--cv", type=Path, help="cv.json to record as the bundle's evaluation")
        else:
            p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="training YAML (default: %(default)s)")
            if name == "distil":
                p.set_defaults(config=DISTIL_CONFIG)
        p.add_argument("--out", type=Path, required=True, help="output folder")
        p.add_argument("--cache", type=Path, default=Path(".cache/features"), help="feature cache folder")
        p.set_defaults(func=func)
    for name in ("cv", "distil"):
        sub.choices[name].add_argument("--folds", type=int, nargs="+", help="run only these folds (1-based)")

    p = sub.add_parser("encoder", help="build ser-base's frozen encoder.tflite from the pinned Whisper weights")
    p.add_argument("--config", type=Path, default=BASE_CONFIG, help="ser-base recipe (default: base.yaml)")
    p.add_argument("--out", type=Path, help="output file (default: the recipe's encoder.file)")
    p.add_argument("--clips", type=Path, nargs="*", default=[], help="audio to check it on (default: the samples)")
    p.set_defaults(func=_encoder)

    p = sub.add_parser("base-cv", help="ser-base: RAVDESS actor folds and leave-one-corpus-out heads")
    p.add_argument("--config", type=Path, default=BASE_CONFIG, help="ser-base recipe (default: base.yaml)")
    p.add_argument("--out", type=Path, required=True, help="output folder (fold bundles, cv.json)")
    p.add_argument("--loco", nargs="*", default=["emodb", "ased", "turev", "emospeech", "tess"],
                   help="corpora each left out of one head's training")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="processes embedding clips (default 2)")
    p.set_defaults(func=_base_cv)

    p = sub.add_parser("base-train", help="ser-base: train the head to ship and write its bundle")
    p.add_argument("--config", type=Path, default=BASE_CONFIG, help="ser-base recipe (default: base.yaml)")
    p.add_argument("--out", type=Path, default=Path("deploy/models/ser-base"), help="bundle folder")
    p.add_argument("--cv", type=Path, help="a base-cv folder whose results (and robustness) the manifest records")
    p.add_argument("--workers", type=int, default=2, help="processes embedding clips (default 2)")
    p.set_defaults(func=_base_train)

    p = sub.add_parser("affect", help="ser-base: arousal and valence CCC of a base-cv folder's heads")
    p.add_argument("cv", type=Path, help="a base-cv output folder")
    p.add_argument("--config", type=Path, default=BASE_CONFIG, help="the recipe base-cv used (default: base.yaml)")
    p.add_argument("--workers", type=int, default=2, help="processes embedding clips (default 2)")
    p.set_defaults(func=_affect)

    p = sub.add_parser("evaluate", help="score a bundle's int8 model on labelled clips (the daemon's rule)")
    p.add_argument("bundle", type=Path, help="model bundle folder")
    p.add_argument("--ravdess", type=Path, help="RAVDESS folder")
    p.add_argument("--folder", type=Path, action="append", help="a folder of <label>/<file> recordings")
    p.add_argument("--speakers", nargs="+", help="only these speakers, e.g. ravdess/03 ravdess/04")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("report", help="HTML evaluation report of a bundle (data, examples, results, model card)")
    p.add_argument("bundle", type=Path, help="model bundle folder")
    p.add_argument("--out", type=Path, help="output folder (default: BUNDLE/report)")
    p.set_defaults(func=_report)

    p = sub.add_parser("robustness", help="accuracy through the device path: clean, gain, rooms, other corpora")
    p.add_argument("target", type=Path, help="a model bundle, or a `ser-train cv` output folder (its fold models)")
    p.add_argument("--out", type=Path, help="output folder (default: TARGET/robustness)")
    p.add_argument("--protocol", type=Path, help="conditions (default: configs/protocols/robustness.yaml)")
    p.add_argument("--every", type=int, help="score every n-th clip only (a quick look; not for reported figures)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--gate", choices=("energy", "speech"), help="gate.kind (default: the daemon's, speech)")
    p.add_argument("--gate-bundle", type=Path, help="gate.kind speech with this speech gate bundle and its rule")
    p.add_argument("--cache", type=Path, default=Path(".cache/rooms"), help="simulated rooms cache folder")
    p.set_defaults(func=_robustness)

    p = sub.add_parser("bench-gate", help="voice gates on held-out speech, noise, music and household sounds")
    p.add_argument("--bundle", type=Path, default=Path("deploy/models/ser-tiny"), help="model for published events")
    p.add_argument(
        "--gate-bundle",
        type=Path,
        default=Path("edge/ser_edge/gate/bundle"),
        help="the speech gate's model bundle (measured when it exists)",
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=60.0,
        help="minutes of each non-speech kind: mixed noise recordings, music, household sounds",
    )
    p.add_argument("--tv-minutes", type=float, default=10.0, help="minutes of speech over music (reported apart)")
    p.add_argument("--every", type=int, default=1, help="every n-th speech clip only (a quick look)")
    p.add_argument("--only", help="the detectors whose name contains this only, e.g. 'speech gate' (a quick look)")
    p.add_argument("--cache", type=Path, default=Path(".cache/nonspeech"), help="rendered music cache folder")
    p.add_argument("--out", type=Path, default=Path(".cache/bench-gate"), help="output folder")
    p.set_defaults(func=_bench_gate)

    p = sub.add_parser("gate-model", help="train and export the speech gate's model (speech / not speech)")
    p.add_argument("--out", type=Path, default=Path("edge/ser_edge/gate/bundle"), help="bundle folder")
    p.add_argument("--minutes", type=float, default=60.0, help="minutes of household sounds")
    p.add_argument("--music-minutes", type=float, default=60.0, help="minutes of made music")
    p.add_argument("--every", type=int, default=1, help="every n-th speech clip only")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--rule-only", action="store_true", help="keep the bundle's model; choose its rule again")
    p.add_argument("--cache", type=Path, default=Path(".cache/nonspeech"), help="rendered music and rooms cache")
    p.set_defaults(func=_gate_model)

    p = sub.add_parser("summary", help="markdown table of cross-validation results")
    p.add_argument("results", nargs="+", type=Path, help="cv.json files (named by their folder)")
    p.set_defaults(func=_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .nonspeech import RenderError

    return run(build_parser(), argv, (ConfigError, ValueError, FileNotFoundError, ConversionError, RenderError))
