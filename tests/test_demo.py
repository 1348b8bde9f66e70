"""`make demo` stays light (issue 29) and shows each clip's true label beside the answer.

The demo's setup (deploy/demo/setup.sh, its own venv .venv-demo) installs ser-edge with its
runtime dependencies and the Debian packages the demo runs, never the development and test
stack (TensorFlow, the training package, Home Assistant, Node-RED, the ARM toolchain, QEMU,
fluidsynth, Python 3.13). The scoreboard is checked on made-up events, without a daemon.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shlex
from pathlib import Path

import tomllib

from ser_edge.settings import SourceSettings
from tests.conftest import REPO, SAMPLES

SETUP = REPO / "deploy" / "demo" / "setup.sh"
HEAVY = ("tensorflow", "tf-keras", "tf_keras", "ser-training", "training", "homeassistant", "home-assistant",
         "node-red", "nodejs", "npm", "qemu", "arm-none-eabi", "fluidsynth", "python3.13", "pyenv", "torch",
         "requirements-dev", "deploy/dev/setup.sh")  # fmt: skip


def _demo():
    spec = importlib.util.spec_from_file_location("ser_demo", REPO / "deploy" / "demo" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _commands(script: Path) -> list[list[str]]:
    """The script's commands as words, comments and continuations left out."""
    text = re.sub(r"\\\n", " ", script.read_text())
    return [shlex.split(line, comments=True) for line in text.splitlines() if shlex.split(line, comments=True)]


def test_the_demo_setup_installs_ser_edge_and_the_demos_debian_packages_only() -> None:
    commands = _commands(SETUP)
    words = [w.lower() for c in commands for w in c]
    assert not [h for h in HEAVY if any(h in w for w in words)]
    apt = [c[1:] for c in commands if c[0] == "deploy/dev/apt-install-missing"]
    assert apt == [["mosquitto", "libsndfile1", "python3-venv"]]
    pips = [c[c.index("install") + 1 : c.index("2>&1")] for c in commands if "pip" in c and "install" in c]
    assert pips == [["-q", "--disable-pip-version-check", "-e", "./edge"]]  # no extras, no requirement files


def test_ser_edges_runtime_dependencies_are_light() -> None:
    project = tomllib.loads((REPO / "edge" / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    assert names and not [n for n in names if any(h in n for h in HEAVY)]


def test_make_demo_uses_its_own_setup_and_venv() -> None:
    make = (REPO / "Makefile").read_text()
    demo = re.search(r"^demo: (.*)\n((?:\t.*\n)+)", make, re.M)
    assert (
        demo
        and demo.group(1).strip() == "$(DEMO_STAMP)"
        and "$(DEMO_VENV)/bin/python deploy/demo/demo.py" in demo.group(2)
    )
    stamp = re.search(r"^\$\(DEMO_STAMP\): .*\n((?:\t.*\n)+)", make, re.M)
    assert stamp and "deploy/demo/setup.sh" in stamp.group(1) and "deploy/dev/setup.sh" not in stamp.group(1)
    assert re.search(r"^DEMO_VENV := \.venv-demo$", make, re.M) and ".venv-demo/" in (REPO / ".gitignore").read_text()


def test_every_sample_clip_has_its_true_label_in_its_name() -> None:
    demo = _demo()
    assert [demo.true_label(c) for c in SAMPLES] == list(demo.RAVDESS_EMOTIONS)
    assert demo.true_label(Path("speech.wav")) is None and demo.true_label(Path("03-01-09-01-01-01-01.wav")) is None


def _event(emotion: str, confidence: float, t0: float, start: float, end: float) -> dict:
    from ser_edge.delivery.events import iso_utc

    return {"emotion": emotion, "confidence": confidence, "start": iso_utc(t0 + start), "end": iso_utc(t0 + end),
            "arousal": 0.5, "valence": -0.25}  # fmt: skip


def test_events_are_put_beside_their_clips_true_labels() -> None:
    demo = _demo()
    spans = demo.clip_spans(SAMPLES, SourceSettings())
    assert spans[0][1] == 0 and all(a[2] == b[1] for a, b in itertools.pairwise(spans)) and len(spans) == len(SAMPLES)
    t0 = 1_800_000_000.0
    answers: dict[Path, list[dict]] = {}
    truths = list(demo.RAVDESS_EMOTIONS)
    for i, (clip, a, b) in enumerate(spans):
        if i == 5:
            continue  # no event for this clip
        emotion = "angry" if i == 2 else truths[i]  # one wrong answer
        event = _event(emotion, 0.8, t0 + 0.4, a + 0.5, b - 1.6)  # the daemon's start is known to 0.4 s here
        assert demo.clip_of(event, spans, t0) == clip
        answers.setdefault(clip, []).append(event)
    assert demo.verdict(answers[spans[0][0]][0], spans[0][0]) == "true neutral   right"
    assert demo.verdict(answers[spans[2][0]][0], spans[2][0]).endswith("WRONG")
    lines, right, labelled = demo.scoreboard(SAMPLES, answers)
    assert (right, labelled) == (6, 8)
    assert lines[0].split() == ["clip", "true", "label", "answer", "confidence", "arousal", "valence"]
    assert lines[3].split() == [SAMPLES[2].name, "happy", "angry", "0.80", "+0.50", "-0.25", "WRONG"]
    assert lines[6].split() == [SAMPLES[5].name, "fearful", "(no", "event)", "WRONG"]
    assert lines[8].split() == [SAMPLES[7].name, "surprised", "surprised", "0.80", "+0.50", "-0.25", "right"]
    # An event from a model without arousal and valence leaves the two columns blank.
    del answers[SAMPLES[7]][0]["arousal"], answers[SAMPLES[7]][0]["valence"]
    blank = demo.scoreboard(SAMPLES, answers)[0][8].split()
    assert blank == [SAMPLES[7].name, "surprised", "surprised", "0.80", "right"]
    event = json.dumps(answers[SAMPLES[0]][0] | {"seq": 1, "duration_s": 1.0})
    assert "arousal +0.50 valence -0.25" in demo._show("ser/demo/event", event)


def test_the_demo_config_keeps_the_replay_timing_the_scoreboard_assumes() -> None:
    """The scoreboard cuts the timeline with SourceSettings' defaults: the demo's config sets no gap or chunk."""
    text = (REPO / "deploy" / "demo" / "demo.py").read_text()
    assert "gap_s:" not in text and "chunk_ms:" not in text and "clip_spans(clips, SourceSettings())" in text
