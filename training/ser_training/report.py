"""`ser-train report BUNDLE`: one self-contained HTML page, PNGs beside it, for judging a
model by eye: the data it learned from, what emotions look like through the front end,
how training went, the speaker-independent results, what the model listens to, and a
model card.

Results come from the bundle's manifest (the cross-validation recorded at export), the
robustness tables and the threshold's reliability table beside it.
Examples and feature importance need the corpora (``SER_DATASETS``); feature importance
is measured on the shipped model's validation speakers, whose clips it never trained on.
"""

from __future__ import annotations

import html
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import FrontendConfig, compute_features
from ser_edge.recognition.bundle import load_bundle
from ser_edge.recognition.model import EmotionModel
from ser_edge.recognition.scoring import silence_row

from . import plots
from .config import load_config
from .corpora import EMOTIONS, Clip, licence_terms
from .cost import macs_per_inference
from .dataset import evaluation_windows, featurise, label_index
from .export import m4_cost
from .pipeline import load_corpora

TIME_REGIONS = 10


@dataclass
class Page:
    """The report being built: HTML sections in order, and the files they reference."""

    out: Path
    sections: list[str] = field(default_factory=list)
    titles: list[tuple[str, str]] = field(default_factory=list)
    """(anchor, title) of each section, for the contents line."""
    images: list[str] = field(default_factory=list)

    def image(self, name: str, draw: Callable[[Path], Path], alt: str) -> str:
        draw(self.out / name)
        self.images.append(name)
        return f'<img src="{name}" alt="{html.escape(alt)}">'

    def add(self, title: str, body: str) -> None:
        anchor = "".join(c if c.isalnum() else "-" for c in title.lower())
        self.titles.append((anchor, title))
        self.sections.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>')


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# -- the model card's figures --------------------------------------------------------------


def m4_estimate(model: bytes) -> str:
    """The node's cost of one window, as the card's line."""
    cost = m4_cost(model)
    if not cost:
        return "not estimated (an op without a measured cost)"
    total, per_op = cost["m4_instructions_per_window"], cost["m4_instructions_per_op"]
    parts = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in per_op.items())
    share = total / 64e4
    return f"{total / 1e6:.1f} M, estimated from measured per-op costs ({parts}); {share:.0f} % of a 64 MHz second"


def latency_ms(pi: EmotionModel, window: np.ndarray, arena: int, repeat: int = 50) -> dict[str, float]:
    """Median time of one window on this machine: the Pi's model stage, and TFLite Micro."""
    from tflite_micro import runtime

    micro = runtime.Interpreter.from_bytes(pi.bundle.model, arena_size=arena + 4096)

    def run_litert() -> None:
        pi.window_scores(window[None])

    def run_micro() -> None:
        micro.set_input(window[None], 0)
        micro.invoke()

    out = {}
    for name, run in (("LiteRT, built-in int8 kernels (the Pi)", run_litert), ("TFLite Micro kernels", run_micro)):
        run()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) * 1000)
        out[name] = float(np.median(times))
    return out


# -- feature importance -------------------------------------------------------------------


def occlusion(score: Callable[[np.ndarray], np.ndarray], windows: np.ndarray, truth: np.ndarray) -> dict:
    """Drop in the true emotion's mean score when one MFCC column, or one time region, of
    every window is replaced by that column's mean over the windows (occlusion)."""
    fill = windows.reshape(-1, windows.shape[2]).mean(axis=0).round().astype(np.int8)

    def true_score(w: np.ndarray) -> float:
        return float(score(w)[np.arange(len(w)), truth].mean())

    base = true_score(windows)
    columns = []
    for c in range(windows.shape[2]):
        w = windows.copy()
        w[:, :, c] = fill[c]
        columns.append(base - true_score(w))
    regions = []
    edges = np.linspace(0, windows.shape[1], TIME_REGIONS + 1).astype(int)
    for a, b in itertools.pairwise(edges):
        w = windows.copy()
        w[:, a:b, :] = fill
        regions.append(base - true_score(w))
    return {"base": [base], "columns": columns, "regions": regions}


# -- the report ---------------------------------------------------------------------------


def write_report(bundle: Path, out: Path, log: Callable[[str], None] = print) -> Path:
    manifest = json.loads((bundle / "manifest.json").read_text())
    if "encoder" in manifest:
        return write_base_report(bundle, manifest, out, log)
    model = (bundle / "model.tflite").read_bytes()
    fe = FrontendConfig.from_dict(manifest["frontend"]["config"])
    out.mkdir(parents=True, exist_ok=True)
    page = Page(out)
    ev, training = manifest["evaluation"], manifest["training"]

    log("model card: MACs and latency")
    macs, per_op = macs_per_inference(model)
    pi = EmotionModel(load_bundle(bundle, frontend=None))
    window = np.zeros(manifest["input"]["shape"][1:], np.int8)
    latency = latency_ms(pi, window, manifest["verification"]["tflm_arena_bytes"])
    reference = next(iter(latency.values()))
    if "pooled" not in ev:
        raise ValueError(f"{bundle}: the manifest records no cross-validation (export with --cv cv.json)")
    pooled, scoring = ev["pooled"]["int8"], manifest["scoring"]
    card = [
        ("model", f"{manifest['name']} {manifest['version']} ({manifest['model']['kind']})"),
        ("parameters", f"{manifest['model']['parameters']:,}"),
        ("int8 model", f"{manifest['model']['tflite_bytes']:,} bytes (SHA-256 {manifest['model']['sha256'][:12]})"),
        ("TFLite Micro arena", f"{manifest['verification']['tflm_arena_bytes']:,} bytes"),
        ("MACs per inference (one window)", f"{macs:,} ({', '.join(f'{k} {v:,}' for k, v in per_op.items())})"),
        ("Cortex-M4 instructions per window", m4_estimate(model)),
        *((f"latency per window, {k}", f"{v:.2f} ms (median of 50, this machine; {v / reference:.1f}x the Pi's)")
          for k, v in latency.items()),
        ("window", f"{scoring['window_frames']} frames of 20 ms, every {scoring['hop_frames']}"),
        ("front end", f"{fe.hash}: {', '.join(fe.channels)}, {fe.n_features} columns per 20 ms"),
        ("accuracy (int8, speaker-independent)", f"{pooled['accuracy']:.1%}, UAR {pooled['uar']:.1%}, "
                                                 f"macro-F1 {pooled['macro_f1']:.1%} over {pooled['n']} clips"),
        ("evaluation protocol", "; ".join(f"{k}: {v}" for k, v in ev["protocol"].items() if k != "folds_run")),
        ("training data", f"{training['clips']} clips of {', '.join(training['corpora'])}; "
                          f"{len(training['speakers'])} training speakers, "
                          f"validation {', '.join(training['validation_speakers'])}"),
        ("licence", licence_terms(training["corpora"])),
    ]  # fmt: skip
    page.add("Model card", table(("", ""), card))

    try:
        cfg = load_config(bundle / "config.yaml")
        clips = list(load_corpora(cfg).clips)
    except (OSError, ValueError) as e:
        clips = []
        note = f"<p>The corpora were not found ({html.escape(str(e))}); set SER_DATASETS.</p>"
        page.add("Dataset composition", note)
    if clips:
        log("dataset composition")
        page.add("Dataset composition", composition(page, clips))
        held_out = [c for c in clips if c.speaker in set(training["validation_speakers"])]
        log(f"examples per emotion from {', '.join(training['validation_speakers'])}")
        page.add("What each emotion looks like", examples(page, held_out, fe))

    log("training curves")
    histories = [training["history"]] + [f["history"] for f in ev.get("folds", [])]
    curves = page.image("curves.png", lambda p: plots.curves_png(histories, p, "accuracy and loss per epoch"), "curves")
    page.add("Training curves", "<p>Line pair 1: the shipped model (validation = its two validation speakers); "
             "the others: each cross-validation fold.</p>" + curves)  # fmt: skip

    log("results")
    page.add("Results (speaker-independent cross-validation)", results(page, ev))

    log("robustness: simulated rooms, input level, other corpora")
    page.add("Robustness: rooms, input level, other corpora", robustness_section(page, bundle, log))
    page.add(THRESHOLD_TITLE, threshold_section(page, bundle))

    if clips and held_out:
        log("feature importance (occlusion)")
        page.add("What the model listens to", importance(page, pi, fe, held_out))

    return write_html(page, manifest)


def write_base_report(bundle: Path, manifest: dict, out: Path, log: Callable[[str], None] = print) -> Path:
    """The report of a ser-base bundle: model card, data, the RAVDESS folds and the
    leave-one-corpus-out heads (recorded from `ser-train base-cv`), robustness."""
    from .base_config import load_base_config
    from .serbase import corpus_clips

    out.mkdir(parents=True, exist_ok=True)
    page = Page(out)
    enc, head, training = manifest["encoder"], manifest["model"], manifest["training"]
    ev = manifest.get("evaluation")
    if ev is None:
        raise ValueError(f"{bundle}: the manifest records no evaluation (base-train --cv RUN)")
    pooled = ev["ravdess_pooled"]
    card = [
        (
            "model",
            f"{manifest['name']} {manifest['version']}: {enc['name']} encoder (frozen, blocks "
            f"{', '.join(map(str, enc['blocks']))} averaged) + {head['kind']}",
        ),
        (
            "encoder",
            f"{(bundle / enc['file']).stat().st_size:,} bytes ({enc['form']}, SHA-256 {enc['sha256'][:12]}); "
            f"weights {enc['weights']['sha256'][:12]} from {', '.join(enc['weights']['packages'])}",
        ),
        ("head", f"{head['parameters']:,} parameters, {head['tflite_bytes']:,} bytes (SHA-256 {head['sha256'][:12]})"),
        (
            "input",
            f"the utterance's audio at {enc['level_dbfs']:g} dBFS active level, Whisper log-mel "
            f"({enc['logmel']['n_mels']} bands, {enc['logmel']['hop']} samples hop); mean and standard "
            f"deviation over time ({enc['embedding']} values)",
        ),
        (
            "accuracy (RAVDESS, speaker-independent)",
            f"{pooled['accuracy']:.1%}, UA {pooled['uar']:.1%}, ECE {pooled['ece']:.3f} over {pooled['clips']} clips",
        ),
        (
            "training data",
            f"{training['clips']} clips of {', '.join(training['corpora'])}, each with "
            f"{training['views_per_clip'] - 1} renderings; {len(training['speakers'])} speakers, "
            f"{len(training['validation_speakers'])} validation speakers (temperature "
            f"{training['temperature']:.2f})",
        ),
        ("licence", manifest["licence"]),
    ]
    page.add("Model card", table(("", ""), card))
    try:
        cfg = load_base_config(bundle / "config.yaml")
        clips = [c for name in cfg.corpora for c in corpus_clips(cfg, name)]
    except (OSError, ValueError) as e:
        clips = []
        page.add("Dataset composition", f"<p>The corpora were not found ({html.escape(str(e))}).</p>")
    if clips:
        log("dataset composition")
        page.add("Dataset composition", composition(page, clips))
    log("results")
    rows = []
    for trial in ev["trials"]:
        for kind, r in trial["reports"].items():
            top = r["max_share"]
            rows.append((trial["trial"], kind, r["clips"], r["accuracy"], r["uar"], r["ece"],
                         f"{top['class']} {top['share']:.0%}"))  # fmt: skip
    matrices = "".join(
        page.image(f"confusion_{i}.png", lambda p, t=t: plots.confusion_png(
            t["reports"]["own classes"]["confusion"], p, f"{t['trial']}: own classes", normalised=True), t["trial"])
        for i, t in enumerate(ev["trials"]) if t["held_out_corpus"]
    )  # fmt: skip
    ravdess = page.image(
        "confusion_ravdess.png",
        lambda p: plots.confusion_png(
            pooled["confusion"], p, "RAVDESS folds pooled: share of each true emotion", normalised=True
        ),
        "RAVDESS",
    )
    page.add("Results: RAVDESS folds and corpora left out of training",
             "<p>Each clip as recorded, through the speech gate, scored by a head that never trained on its "
             "speaker (RAVDESS folds) or its corpus (the others).</p>"
             + table(("head", "classes", "clips", "accuracy", "UA", "ECE", "most answered"), rows)
             + ravdess + matrices)  # fmt: skip
    log("robustness")
    page.add("Robustness: rooms, input level, other corpora", robustness_section(page, bundle, log))
    page.add(THRESHOLD_TITLE, threshold_section(page, bundle))
    return write_html(page, manifest)


def composition(page: Page, clips: Sequence[Clip]) -> str:
    keys = sorted({(c.corpus, c.gender or "unknown") for c in clips})
    counts = np.zeros((len(keys), len(EMOTIONS)), int)
    for c in clips:
        counts[keys.index((c.corpus, c.gender or "unknown")), EMOTIONS.index(c.label)] += 1
    rows = [(corpus, gender, *row, row.sum()) for (corpus, gender), row in zip(keys, counts, strict=True)]
    img = page.image("composition.png", lambda p: plots.composition_png(keys, counts, p), "clips per emotion")
    speakers = len({c.speaker for c in clips})
    return (f"<p>{len(clips)} clips from {speakers} speakers.</p>"
            + table(("corpus", "gender", *EMOTIONS, "total"), rows) + img)  # fmt: skip


def examples(page: Page, clips: Sequence[Clip], fe: FrontendConfig) -> str:
    spectrum = FrontendConfig.from_dict(fe.to_dict() | {"channels": ["logmel"]})
    parts = []
    for emotion in EMOTIONS:
        clip = next((c for c in clips if c.label == emotion), None)
        if clip is None:
            continue
        pcm = read_audio(clip.path, fe.sample_rate)
        mfcc, mel = compute_features(pcm, cfg=fe), compute_features(pcm, cfg=spectrum)
        title = f"{emotion}: {clip.path.name} ({clip.speaker})"
        draw = lambda p, pcm=pcm, mel=mel, mfcc=mfcc, title=title: plots.example_png(pcm, mel, mfcc, p, title)  # noqa: E731
        parts.append(page.image(f"example_{emotion}.png", draw, title))
    return ("<p>One clip per emotion from a speaker the shipped model did not train on: the waveform, the "
            "front end's int8 log-mel spectrogram and its int8 MFCC rows (what the model sees).</p>"
            + "".join(parts))  # fmt: skip


def results(page: Page, ev: dict) -> str:
    parts = []
    for kind in ("float", "int8"):
        r = ev["pooled"][kind]
        for normalised in (False, True):
            name = f"confusion_{kind}_{'normalised' if normalised else 'counts'}.png"
            title = f"{kind}: {'share of each true emotion' if normalised else 'clips'}"
            parts.append(page.image(name, lambda p, r=r, t=title, n=normalised: plots.confusion_png(
                r["confusion"], p, t, normalised=n), title))  # fmt: skip
    report_rows = []
    for emotion in [e for e in EMOTIONS if e in ev["pooled"]["int8"]["classes"]]:  # those with test clips
        f, q = ev["pooled"]["float"]["classes"][emotion], ev["pooled"]["int8"]["classes"][emotion]
        report_rows.append((emotion, f["precision"], f["recall"], f["f1"], q["precision"], q["recall"], q["f1"],
                            q["support"]))  # fmt: skip
    header = ("emotion", "float precision", "float recall", "float F1", "int8 precision", "int8 recall", "int8 F1",
              "clips")  # fmt: skip
    speakers = sorted(ev["pooled"]["int8"]["per_speaker"])
    per_speaker = {k: [ev["pooled"][k]["per_speaker"][s] for s in speakers] for k in ("float", "int8")}
    bars = page.image("per_speaker.png", lambda p: plots.per_speaker_png(speakers, per_speaker, p), "per speaker")
    summary = [(k, *(ev["pooled"][k][m] for m in ("accuracy", "uar", "macro_f1", "n"))) for k in ("float", "int8")]
    return (
        "<p>Every clip scored by a model that never heard its speaker (the folds of the model card's protocol).</p>"
        + table(("model", "accuracy", "UAR", "macro-F1", "clips"), summary)
        + "<h3>Confusion matrices</h3>" + "".join(parts)
        + "<h3>Classification report</h3>" + table(header, report_rows)
        + "<h3>Accuracy per speaker</h3>" + bars
        + table(("speaker", "float", "int8"), list(zip(speakers, *per_speaker.values(), strict=True)))
    )  # fmt: skip


def robustness_section(page: Page, bundle: Path, log: Callable[[str], None]) -> str:
    """The robustness harness's tables and pictures: the CV's fold models' (recorded at
    export), or else the bundle's own on what it never heard."""
    from .robustness import load_protocol, robustness

    stored = bundle / "robustness.json"
    if stored.is_file():
        t = json.loads(stored.read_text())
        source = "the cross-validation's fold models, each on the speakers it never heard (recorded at export)"
    else:
        try:
            t = robustness(bundle, load_protocol(), page.out / "robustness", log=log)
        except (ValueError, OSError) as e:
            return f"<p>Not measured: {html.escape(str(e))}.</p>"
        source = "this bundle's own model, on speakers and corpora it never heard"
    rooms = page.image("robustness.png", lambda p: plots.robustness_png(t, p, "through the device path"), "rooms")
    shares = page.image("shares.png", lambda p: plots.shares_png(t, p, "share of answers per class"), "shares")
    header = ("condition", "clips", "missed", "accuracy", "UA", "macro-F1", "ECE", "most answered")

    def row(name: str, r: dict) -> tuple:
        top = r["max_share"]
        return (name, r["clips"], r["missed"], r["accuracy"], r["uar"], r["macro_f1"], r["ece"],
                f"{top['class']} {top['share']:.0%}")  # fmt: skip

    conditions = [row(n, r) for n, r in t["conditions"].items()]
    corpora = [row(f"{c} {kind} ({', '.join(r['classes'])})", r) for c, e in t["corpora"].items()
               for kind, r in e.items()]  # fmt: skip
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in t.get("notes", []))
    return (
        f"<p>Every clip through the daemon's own path (gate, front end, int8 model, mean of window scores); "
        f"a clip the gate misses counts as a wrong answer. Models: {source}. Rooms: shoebox simulations, "
        f"RT60 x SNR grid, talker {t['protocol']['distance_m'][0]:g}-{t['protocol']['distance_m'][1]:g} m away, "
        f"noise from recordings held out of training ({', '.join(t.get('noise_files', [])) or 'none'}) and "
        f"synthetic noise; seed {t['protocol']['seed']}.</p>"
        + rooms + table(header, conditions)
        + "<h3>Corpora never trained on</h3>" + (table(header, corpora) if corpora else "<p>none measured</p>")
        + (f"<ul>{notes}</ul>" if notes else "") + "<h3>Share of answers per class</h3>" + shares
        + affect_table(t.get("affect", {}))
    )  # fmt: skip


def affect_table(found: dict) -> str:
    """Arousal and valence as the daemon publishes them, per condition and corpus (empty for
    tables measured before they were)."""
    from .affect_eval import AXES

    if not found:
        return ""

    def cell(r: dict, axis: str) -> str:
        return f"{r[axis]['ccc']:.2f} ({r[axis]['pearson']:.2f})" if axis in r else "not rated"

    rows = [(name, r[next(a for a in AXES if a in r)]["n"], r.get("unheard", 0),
             *(cell(r, axis) for axis in AXES)) for name, r in found.items() if r]  # fmt: skip
    return (
        "<h3>Arousal and valence</h3><p>What the events' <code>arousal</code> and <code>valence</code> "
        "(the class probabilities weighting each class's place on the plane) agree with: the clip's class "
        "place. Lin's concordance correlation, Pearson's r in brackets; unheard clips publish nothing.</p>"
        + table(("condition or corpus", "clips", "unheard", "arousal CCC (r)", "valence CCC (r)"), rows)
    )


THRESHOLD_TITLE = "The threshold: what a published event is worth"


def reliability_tables(bundle: Path) -> tuple[dict, str] | None:
    """The bundle's reliability tables (name -> metrics.reliability; "clean" = held-out
    speakers as recorded) and where they come from: the harness's robustness.json, or a
    reliability.json measured beside it (a bundle whose harness tables predate them) for
    the version the manifest names."""
    stored = bundle / "robustness.json"
    if stored.is_file() and (found := json.loads(stored.read_text()).get("reliability")):
        return found, "the robustness harness (the CV's fold models through the daemon's path), recorded at export"
    extra = bundle / "reliability.json"
    if extra.is_file():
        r = json.loads(extra.read_text())
        version = json.loads((bundle / "manifest.json").read_text()).get("version")
        if r.get("version", version) == version:
            return {"clean": r}, r.get("source", str(extra))
    return None


def threshold_section(page: Page, bundle: Path, default: float = 0.3) -> str:
    """What ``model.threshold`` means on speakers the model never heard: an utterance under
    it publishes the state uncertain and no event."""
    found = reliability_tables(bundle)
    if found is None:
        return ("<p>Not recorded: `ser-train robustness` on the CV run records it (robustness.json, "
                "reliability), and export copies it into the bundle.</p>")  # fmt: skip
    tables, source = found
    parts = [
        "<p>The daemon publishes an utterance's answer as an event when its top score reaches "
        f"<code>model.threshold</code> (default {default:g}); under it, the state topic says "
        "<code>uncertain</code> and no event is sent. At threshold t: the share of published events that "
        f"are right, and the share of utterances published. Source: {html.escape(source)}.</p>"
    ]
    for name, r in tables.items():
        where = "held-out speakers, as recorded" if name == "clean" else f"{name}, a corpus never trained on"
        if "bins" in r and name == "clean":
            title = f"model.threshold on {where}"
            parts.append(page.image("reliability.png", lambda p, r=r, t=title: plots.reliability_png(
                r, p, t, default), "reliability diagram"))  # fmt: skip
        rows = [(f"{x['threshold']:g}" + (" (default)" if abs(x["threshold"] - default) < 1e-9 else ""),
                 "n/a" if x["right"] is None else f"{100 * x['right']:.1f} %",
                 "n/a" if x["published"] is None else f"{100 * x['published']:.1f} %",
                 f"{x['events']} of {r['utterances']}") for x in r["thresholds"]]  # fmt: skip
        parts.append(f"<h3>{html.escape(where)}</h3>")
        parts.append(table(("threshold", "published events right", "utterances published", "events"), rows))
    return "".join(parts)


def importance(page: Page, pi: EmotionModel, fe: FrontendConfig, clips: Sequence[Clip]) -> str:
    b = pi.bundle
    bank = featurise(clips, fe, None, workers=1, label="featurising held-out clips")
    windows, owners = evaluation_windows(clips, bank, b.window_frames, b.hop_frames, silence_row(fe))
    truth = label_index(clips)[owners]
    order = [b.labels.index(e) for e in EMOTIONS]  # the model's outputs in EMOTIONS order
    found = occlusion(lambda w: pi.window_scores(w)[:, order], windows, truth)
    seconds = b.window_frames * fe.hop_samples / fe.sample_rate
    img = page.image("importance.png", lambda p: plots.importance_png(found, fe, seconds, p), "occlusion")
    return (
        f"<p>Method: <b>occlusion</b>. On {len(windows)} windows of {len(clips)} clips from the validation "
        f"speakers ({', '.join(sorted({c.speaker for c in clips}))}), each MFCC coefficient in turn, then each "
        f"tenth of the {seconds:.1f} s window, is replaced by its mean value, and the drop in the int8 model's "
        f"mean score for the true emotion is measured (base score {found['base'][0]:.3f}). Larger drop: the model "
        f"relies more on that part. c0 is the frame's overall level.</p>" + img
    )


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:.5em 0}
section{margin-bottom:2em}"""


def write_html(page: Page, manifest: dict) -> Path:
    title = f"{manifest['name']} {manifest['version']}: evaluation report"
    nav = " · ".join(f'<a href="#{anchor}">{html.escape(title)}</a>' for anchor, title in page.titles)
    body = "\n".join(page.sections)
    text = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1><p>{nav}</p>\n{body}\n"
            f"<p><small>ser-train report, {time.strftime('%Y-%m-%d %H:%M')}</small></p></body></html>\n")  # fmt: skip
    path = page.out / "index.html"
    path.write_text(text)
    return path
