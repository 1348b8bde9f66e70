"""`ser-train robustness`: how a model holds up where it is deployed.

Every clip goes through the daemon's own path (``ser_edge.pipeline.utterances_in``: the
voice gate, then the front end and the int8 model with the shared scoring rule on each
utterance), so a clip the gate cuts in two counts twice and a clip it misses counts as
a wrong answer, as on a device. The conditions (training/configs/robustness.yaml):

- clean: the evaluation corpus's speakers the model never heard (a CV run: each fold's
  test actors with that fold's model);
- gain: the same clips at other input levels, clipped to int16 where they clip;
- rooms: the same clips in seeded simulated rooms (RT60 x SNR grid, talker 1-4 m away),
  with noise from recordings held out of training (noise.noise_split) and synthetic noise;
- cross-corpus: every clip of each other corpus the model never trained on, answered
  8-way, on the corpus's own classes, and on angry/happy/neutral/sad (EmoBox's
  cross-corpus protocol) where it has those four.

With the clean condition and each cross corpus, the tables record what the daemon's
``model.threshold`` means there (metrics.reliability): per threshold, the share of
utterances published as events and the share of those events that are right.

Every random choice is keyed by the protocol seed and the clip's name, so two runs give
the same table.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from ser_edge.audio.audio_io import read_audio, to_int16
from ser_edge.pipeline import utterances_in
from ser_edge.recognition.model import load_model
from ser_edge.settings import GateSettings

from .acoustics import Room, active_power, noise_at_snr, reverberate, room_bank, scale_to, with_gain
from .affect_eval import AXES, heard_affect, target
from .config import Config, DataConfig, expand, load_config, load_yaml_as
from .corpora import EMOTIONS, check_audio, load_ravdess
from .metrics import corpus_reports, device_report, format_reliability, reliability
from .noise import SYNTH_KINDS, NoisePool, key_rng, noise_split
from .pipeline import EVAL_CORPUS, load_corpus

SAMPLE_RATE = 16000
PROTOCOL_FILE = Path(__file__).resolve().parents[1] / "configs" / "protocols" / "robustness.yaml"

#: Noise tail after the reverberant speech, so the gate closes on noise as it would live.
_TAIL_S = 0.5


@dataclass(frozen=True)
class Protocol:
    """The conditions of the harness (training/configs/robustness.yaml)."""

    gains_db: tuple[float, ...] = (-30.0, -20.0, -10.0, 0.0, 10.0)
    rt60_s: tuple[float, ...] = (0.3, 0.6, 0.9)
    snr_db: tuple[float, ...] = (20.0, 10.0, 5.0, 0.0)
    distance_m: tuple[float, float] = (1.0, 4.0)
    rooms_per_rt60: int = 24
    lead_s: float = 1.0
    """Noise heard before the talker starts."""
    corpora: tuple[str, ...] = ("emodb", "tess", "ased", "turev", "emospeech")
    every: int = 1
    """Score every n-th clip of each set (quick looks); reported figures use 1."""
    seed: int = 20261201


def load_protocol(path: Path = PROTOCOL_FILE) -> Protocol:
    return load_yaml_as(Protocol, path)


@dataclass(frozen=True)
class Condition:
    """One way of hearing a clip."""

    name: str
    section: str
    """clean, gain, rooms or corpus."""
    gain_db: float = 0.0
    rt60: float | None = None
    snr_db: float | None = None


def conditions(p: Protocol) -> list[Condition]:
    """Clean, then the gain sweep, then the room grid (the evaluation corpus's clips hear all)."""
    out = [Condition("clean", "clean")]
    out += [Condition(f"gain {g:+g} dB", "gain", gain_db=g) for g in p.gains_db]
    out += [Condition(f"RT60 {r:g} s, SNR {s:g} dB", "rooms", rt60=r, snr_db=s) for r in p.rt60_s for s in p.snr_db]
    return out


@dataclass(frozen=True)
class Scorer:
    """A model under test and what it never heard."""

    path: Path
    held_out: frozenset[str]
    """Speakers of the evaluation corpus it neither trained nor chose checkpoints on."""
    corpora: frozenset[str]
    """Corpora it trained on."""


def scorers(target: Path) -> list[Scorer]:
    """A CV run's fold models (``folds/*/``), or one bundle."""
    folds = sorted((target / "folds").glob("*/manifest.json"), key=lambda p: int(p.parent.name))
    if folds:
        out = []
        for manifest in folds:
            training = json.loads(manifest.read_text())["training"]
            out.append(Scorer(manifest.parent, frozenset(training["test_speakers"]), frozenset(training["corpora"])))
        return out
    if not (target / "manifest.json").is_file():
        raise ValueError(f"{target}: neither a model bundle nor a CV run with fold models (folds/*/manifest.json)")
    training = json.loads((target / "manifest.json").read_text()).get("training", {})
    heard = set(training.get("speakers", [])) | set(training.get("validation_speakers", []))
    ravdess = {f"{EVAL_CORPUS}/{a:02d}" for a in range(1, 25)}
    return [Scorer(target, frozenset(ravdess - heard), frozenset(training.get("corpora", [EVAL_CORPUS])))]


def data_config(target: Path) -> DataConfig:
    """Where the corpora are: the target's own training config when it has one."""
    for candidate in (target / "config.yaml", target / "folds" / "1" / "config.yaml"):
        if candidate.is_file():
            recipe = yaml.safe_load(candidate.read_text())
            if isinstance(recipe, dict) and "encoder" in recipe:  # a ser-base recipe
                from .base_config import load_base_config

                return load_base_config(candidate).data
            return load_config(candidate).data
    return Config().data


# --- rendering one clip under one condition -------------------------------------------------------


def in_room(pcm: np.ndarray, room: Room, noise: np.ndarray, snr_db: float, lead_s: float) -> np.ndarray:
    """The clip spoken in ``room`` (its active level kept), with ``noise`` played from the
    room's noise source around it at ``snr_db``: lead-in, speech with its reverberant tail,
    a short tail."""
    x = pcm.astype(np.float64) / 32768.0
    speech = scale_to(reverberate(x, room.speech_rir), active_power(x))
    lead = round(lead_s * SAMPLE_RATE)
    total = lead + speech.size + round(_TAIL_S * SAMPLE_RATE)
    heard = reverberate(noise[:total], room.noise_rir)[:total]
    mix = noise_at_snr(speech, heard, snr_db)
    mix[lead : lead + speech.size] += speech
    return to_int16(mix)


@dataclass(frozen=True)
class Job:
    """One clip, the models that score it, and whether it hears the whole grid or only as recorded."""

    path: Path
    label: str
    models: tuple[int, ...]
    grid: bool
    corpus: str = EVAL_CORPUS
    intensity: str | None = None


_WORKER: dict = {}


def _init_worker(model_paths: Sequence[Path], protocol: Protocol, bank: dict[float, list[Room]],
                 noise_files: Sequence[Path], gate: GateSettings) -> None:  # fmt: skip
    encoders: dict = {}  # the fold heads share one encoder interpreter
    _WORKER.update(
        models=[load_model(p, frontend=None, encoders=encoders) for p in model_paths], protocol=protocol, bank=bank,
        noise=NoisePool(noise_files, SYNTH_KINDS[1:]), gate=gate, conditions=conditions(protocol),
    )  # fmt: skip


def render(job: Job, pcm: np.ndarray, c: Condition) -> tuple[np.ndarray, float]:
    """The clip as the condition makes the microphone hear it, and the gap of digital
    silence the replay would add after it (none in a noisy room)."""
    w, key = _WORKER, job.path.name
    p: Protocol = w["protocol"]
    if c.section == "rooms":
        rooms = w["bank"][c.rt60]
        room = rooms[int(key_rng(p.seed, key, "room", c.rt60).integers(len(rooms)))]
        n = round((p.lead_s + _TAIL_S) * SAMPLE_RATE) + pcm.size + room.speech_rir.size
        noise, _ = w["noise"].segment(n, key_rng(p.seed, key, "noise"))
        return in_room(pcm, room, noise, c.snr_db, p.lead_s), 0.0
    if c.gain_db:
        return to_int16(with_gain(pcm.astype(np.float64) / 32768.0, c.gain_db)), 1.0
    return pcm, 1.0


def score_job(job: Job) -> list[tuple[int, int, np.ndarray]]:
    """(condition index, model index, score rows of the utterances found) for one clip."""
    w = _WORKER
    pcm = read_audio(job.path, SAMPLE_RATE)
    out = []
    for ci, c in enumerate(w["conditions"] if job.grid else w["conditions"][:1]):
        heard, gap = render(job, pcm, c)
        utterances = utterances_in(heard, w["gate"], gap_s=gap)
        inputs: dict = {}  # models with one input key (front end, or encoder) share their inputs
        for mi in job.models:
            model = w["models"][mi]
            if model.input_key not in inputs:  # the speech gate's rows, or the encoder's embedding, as the daemon
                inputs[model.input_key] = [model.inputs(u) for u in utterances]
            rows = np.array([model.scores(x) for x in inputs[model.input_key]]).reshape(len(utterances), len(EMOTIONS))
            out.append((ci, mi, rows))
    return out


def run_jobs(jobs: Sequence[Job], model_paths: Sequence[Path], protocol: Protocol, bank: dict, noise_files,
             gate: GateSettings, workers: int = 2) -> list[list[tuple[int, int, np.ndarray]]]:  # fmt: skip
    """score_job for every job, in worker processes, in job order."""
    init = (list(model_paths), protocol, bank, list(noise_files), gate)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # one BLAS thread per worker process
        os.environ.setdefault(var, "1")
    if workers <= 1:
        _init_worker(*init)
        return [score_job(j) for j in tqdm(jobs, desc="robustness")]
    with multiprocessing.get_context("spawn").Pool(workers, _init_worker, init) as pool:
        return list(tqdm(pool.imap(score_job, jobs, chunksize=4), total=len(jobs), desc="robustness"))


# --- the whole harness ------------------------------------------------------------------------------


def plan(target: Path, protocol: Protocol, data: DataConfig, log=print) -> tuple[list[Scorer], list[Job], list[str]]:
    """The models, the clip jobs (evaluation corpus first, then each cross corpus) and notes
    on what could not be measured."""
    models = scorers(target)
    notes: list[str] = []
    jobs: list[Job] = []
    ravdess = check_audio(load_ravdess(expand(data.ravdess))).clips[:: protocol.every]
    for clip in ravdess:
        owners = tuple(i for i, m in enumerate(models) if clip.speaker in m.held_out)
        if owners:
            jobs.append(Job(clip.path, clip.label, owners[:1], grid=True, intensity=clip.intensity))
    if not jobs:
        notes.append(f"no {EVAL_CORPUS} speaker is held out of {target}: clean, gain and rooms need a CV run's folds")
    for name in protocol.corpora:
        owners = tuple(i for i, m in enumerate(models) if name not in m.corpora)
        if not owners:
            notes.append(f"{name}: every model trained on it, so it is not a cross-corpus test here")
            continue
        if getattr(data, name, None) is None:
            notes.append(f"{name}: no folder configured (data.{name}); not measured")
            continue
        try:
            clips = check_audio(load_corpus(data, name, "protocol corpora")).clips
        except FileNotFoundError as e:
            notes.append(f"{e}; not measured")
            continue
        jobs += [Job(c.path, c.label, owners, grid=False, corpus=name) for c in clips[:: protocol.every]]
    for note in notes:
        log(f"note: {note}")
    return models, jobs, notes


def tables(jobs: Sequence[Job], results: Sequence[list], protocol: Protocol) -> dict:
    """Device reports for every condition and corpus, and the summary figures."""
    conds = conditions(protocol)
    per: dict[tuple[str, str], tuple[list[int], list[np.ndarray], list]] = {}
    for job, rows in zip(jobs, results, strict=True):
        for ci, _, scores in rows:
            key = (job.corpus, conds[ci].name) if job.grid else (job.corpus, "as recorded")
            labels, found, truth = per.setdefault(key, ([], [], []))
            labels.append(EMOTIONS.index(job.label))
            found.append(scores)
            truth.append(target(job.label, job.corpus, job.intensity))
    out: dict = {"protocol": asdict(protocol), "conditions": {}, "corpora": {}, "reliability": {}, "affect": {}}
    for (corpus, name), (labels, found, truth) in per.items():
        y = np.array(labels)
        out["affect"][name if corpus == EVAL_CORPUS else corpus] = heard_affect(truth, found)
        if corpus == EVAL_CORPUS:
            out["conditions"][name] = device_report(y, found)
            if name == "clean":  # what model.threshold means: held-out speakers, as recorded
                out["reliability"]["clean"] = reliability(y, found)
            continue
        out["corpora"][corpus] = corpus_reports(y, found)
        out["reliability"][corpus] = reliability(y, found)
    out["summary"] = summary(out, protocol)
    return out


def summary(t: dict, p: Protocol) -> dict:
    """The figures the targets are about."""
    s: dict = {}
    cond = t["conditions"]
    if "clean" in cond:
        clean = cond["clean"]["accuracy"]
        s["clean_accuracy"] = clean
        s["clean_uar"] = cond["clean"]["uar"]
        s["clean_ece"] = cond["clean"]["ece"]
        gains = [cond[f"gain {g:+g} dB"]["accuracy"] for g in p.gains_db]
        s["gain_max_change"] = float(max(abs(a - clean) for a in gains))
        mild = [cond[f"RT60 {r:g} s, SNR {n:g} dB"]["accuracy"] for r in p.rt60_s for n in p.snr_db
                if n >= 10 and r <= 0.6]  # fmt: skip
        harsh = [cond[f"RT60 {r:g} s, SNR {n:g} dB"]["accuracy"] for r in p.rt60_s for n in p.snr_db if n <= 5]
        if mild:
            s["rooms_mild_drop"] = clean - float(np.mean(mild))
        if harsh:
            s["rooms_harsh_drop"] = clean - float(np.mean(harsh))
        s["max_share_clean"] = cond["clean"]["max_share"]
    for corpus, entry in t["corpora"].items():
        s[f"{corpus}_uar_4class"] = entry["4-class"]["uar"] if "4-class" in entry else None
        s[f"{corpus}_max_share"] = entry["8-way"]["max_share"]
    for name, r in t.get("affect", {}).items():
        if name == "clean" or name in t["corpora"]:
            for axis in AXES:
                if axis in r:
                    s[f"{name}_{axis}_ccc"] = r[axis]["ccc"]
    return s


def robustness(target: Path, protocol: Protocol, out: Path, workers: int = 2, cache: Path | None = None,
               gate: GateSettings | None = None, log=print) -> dict:  # fmt: skip
    """Run the harness on a bundle or CV run; write robustness.json and the plot into ``out``."""
    data = data_config(target)
    models, jobs, notes = plan(target, protocol, data, log)
    if not jobs:
        raise ValueError(f"{target}: nothing to measure ({'; '.join(notes)})")
    needs_rooms = any(j.grid for j in jobs)
    bank = room_bank(protocol.rt60_s, protocol.rooms_per_rt60, protocol.distance_m, protocol.seed, cache) \
        if needs_rooms else {}  # fmt: skip
    noise_files = noise_split(expand(data.noise)).test if needs_rooms else ()
    gate = gate or GateSettings()
    results = run_jobs(jobs, [m.path for m in models], protocol, bank, noise_files, gate, workers)
    t = tables(jobs, results, protocol)
    t["gate"] = gate.kind  # the figures differ by gate: say which one cut the utterances
    t["target"] = str(target)
    t["models"] = [str(m.path) for m in models]
    t["notes"] = notes
    t["noise_files"] = [f.name for f in noise_files]
    t["rooms"] = {str(r): [{"dims": room.dims, "distance": room.distance, "measured_rt60": room.measured_rt60}
                           for room in rooms] for r, rooms in bank.items()}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(t, indent=1) + "\n")
    draw(t, out, target.name)
    return t


def draw(t: dict, out: Path, name: str) -> list[Path]:
    """robustness.png (accuracy by room, gain and corpus) and shares.png (answers per class)."""
    from . import plots

    return [plots.robustness_png(t, out / "robustness.png", f"{name}: through the device path"),
            plots.shares_png(t, out / "shares.png", f"{name}: share of answers per class")]  # fmt: skip


def compact(t: dict) -> dict:
    """What a bundle's manifest keeps of the tables: the figures, not the confusion matrices."""
    keys = ("clips", "missed", "accuracy", "uar", "macro_f1", "ece", "max_share")
    corpora = {c: {kind: {k: r[k] for k in (*keys, "classes")} for kind, r in entry.items()}
               for c, entry in t["corpora"].items()}  # fmt: skip
    kept = ("clips", "utterances", "missed", "thresholds")
    return {
        "protocol": t["protocol"],
        "gate": t.get("gate"),  # None: tables written before the gate was recorded (either gate)
        "models": t["models"],
        "summary": t["summary"],
        "conditions": {n: {k: r[k] for k in keys} for n, r in t["conditions"].items()},
        "corpora": corpora,
        "reliability": {n: {k: r[k] for k in kept} for n, r in t.get("reliability", {}).items()},
        "affect": t.get("affect", {}),
    }


# --- printing -----------------------------------------------------------------------------------------


def _row(name: str, r: dict) -> str:
    top = r["max_share"]
    return (f"| {name} | {r['clips']} | {r['missed']} | {100 * r['accuracy']:.1f} | {100 * r['uar']:.1f} | "
            f"{100 * r['macro_f1']:.1f} | {r['ece']:.3f} | {top['class']} {100 * top['share']:.0f} % |")  # fmt: skip


def format_tables(t: dict) -> str:
    """Markdown tables: each condition and corpus with WA, UA, macro-F1, ECE and the top class share."""
    head = ("| condition | clips | missed | WA % | UA % | macro-F1 % | ECE | most answered |\n"
            "|---|---|---|---|---|---|---|---|")  # fmt: skip
    lines = [f"{EVAL_CORPUS}, 8 classes ({', '.join(EMOTIONS)}), held-out speakers:", head]
    lines += [_row(name, r) for name, r in t["conditions"].items()]
    if t["corpora"]:
        lines += ["", "cross-corpus (never in training):", head]
        for corpus, entry in t["corpora"].items():
            lines += [_row(f"{corpus} {kind}" + (f" ({', '.join(r['classes'])})" if kind != "8-way" else ""), r)
                      for kind, r in entry.items()]  # fmt: skip
    lines += ["", "shares of answers per class:"]
    for name, r in [*t["conditions"].items(), *((f"{c} 8-way", e["8-way"]) for c, e in t["corpora"].items())]:
        lines.append(f"  {name}: " + ", ".join(f"{k} {100 * v:.0f}" for k, v in r["shares"].items()))
    for name, r in t.get("reliability", {}).items():
        where = f"{EVAL_CORPUS} held-out speakers, as recorded" if name == "clean" else f"{name}, never trained on"
        lines += ["", f"model.threshold, {where} (an utterance under it publishes the state uncertain):"]
        lines.append(format_reliability(r))
    if t.get("affect"):
        lines += ["", "arousal and valence as published (CCC, Pearson's r in brackets):"]
        lines += [f"  {name}: " + _affect_cells(r) for name, r in t["affect"].items()]
    s = t["summary"]
    lines += ["", "summary: " + ", ".join(f"{k} {v if isinstance(v, dict) else _fmt(v)}" for k, v in s.items())]
    return "\n".join(lines)


def _affect_cells(r: dict) -> str:
    cells = [f"{axis} {r[axis]['ccc']:.2f} ({r[axis]['pearson']:.2f})" for axis in AXES if axis in r]
    return ", ".join(cells) + (f"; {r['unheard']} clips unheard" if r.get("unheard") else "")


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def ablation_table(runs: dict[str, dict]) -> str:
    """Markdown: each run's harness summary against the issue's targets (name -> robustness.json)."""
    rows = [
        "| run | clean WA | clean UA | rooms SNR>=10, RT60<=0.6: drop | rooms 0-5 dB: drop | gain: max change | "
        "EmoDB 4-class UA | top share, held-out corpora | ECE clean |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in runs.items():
        s = t["summary"]
        tops = [(c, e["8-way"]["max_share"]) for c, e in t["corpora"].items()]
        worst = max(tops, key=lambda x: x[1]["share"], default=None)
        top = f"{100 * worst[1]['share']:.0f} % {worst[1]['class']} ({worst[0]})" if worst else "n/a"
        emodb = t["corpora"].get("emodb", {}).get("4-class")
        cells = [_pct(s.get(k)) for k in ("clean_accuracy", "clean_uar", "rooms_mild_drop", "rooms_harsh_drop",
                                          "gain_max_change")]  # fmt: skip
        cells += [_pct(emodb["uar"] if emodb else None), top, _fmt(s.get("clean_ece"))]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
