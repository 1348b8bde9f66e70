"""What `run` would refuse at start, found before it starts: the config, the model and gate
bundles, the spool's folder, the audio source and the credential files. `check-config`
and `selftest` say "OK"/"valid" only then. What they cannot know (the broker's answer, a
disk that fills later) the daemon reports as it runs. Each problem is a ConfigError
naming its key."""

from __future__ import annotations

import os
from pathlib import Path

from ser_edge.configfile import ConfigError
from ser_edge.recognition.base_model import BaseModel
from ser_edge.recognition.bundle import load_bundle
from ser_edge.recognition.model import EmotionModel, load_model
from ser_edge.settings import Settings, default_bundle


def check_bundle(path: Path, settings: Settings | None = None) -> EmotionModel | BaseModel:
    """The bundle loaded and its model built in the interpreter, as `run` does; one that
    scores audio (ser-base) refused for a node that sends only rows or scores."""
    source = settings.source if settings else None
    if source and not path.exists() and path == default_bundle(source):
        raise ConfigError(f"model.bundle: not set, and the default {path} does not exist (an installed package has "
                          "no deploy/models folder): set model.bundle in the config, or SER_BUNDLE")  # fmt: skip
    try:
        model = load_model(path)
    except ValueError as e:
        raise ConfigError(f"model.bundle: {e}") from None
    if model.bundle.kind == "encoder" and source and source.kind == "serial" and source.serial.mode != "audio":
        raise ConfigError(
            f"model.bundle: {model.bundle.name} scores the utterance's audio, but a node in "
            f"{source.serial.mode} mode sends no audio; use a frame model (ser-tiny) or source.serial.mode audio"
        )
    return model


def check_speech_gate(settings: Settings, model: EmotionModel | BaseModel) -> None:
    """gate.kind speech: the speech gate's bundle loads, is a speech/other model, and was
    made for the emotion model's front end (the check scores the same rows)."""
    g = settings.gate
    if g.kind != "speech":
        return
    from ser_edge.gate.speech_gate import SpeechModel

    try:
        speech = SpeechModel(load_bundle(g.speech_bundle, frontend=None))
    except ValueError as e:
        raise ConfigError(f"gate.speech_bundle: {e}") from None
    emotion = model.bundle.frontend
    if speech.bundle.frontend.hash != emotion.hash:
        raise ConfigError(f"gate.speech_bundle: made for front end {speech.bundle.frontend.hash}, but the emotion "
                          f"model's is {emotion.hash}; both must score the same rows")  # fmt: skip


def check_spool(path: Path) -> None:
    """The spool file can be created or opened for writing, on a filesystem that stores
    files (/proc and /sys accept root's writes to nothing)."""
    if path.is_dir():
        raise ConfigError(f"spool.path: {path} is a directory; name the SQLite file in it")
    if path.exists():
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(f"spool.path: {path} is not readable and writable by this user")
        return
    parent = path.parent
    while not parent.exists():  # created at start, from the nearest existing folder
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"spool.path: cannot create {path} ({parent} is not a writable folder)")
    if os.statvfs(parent).f_blocks == 0:
        raise ConfigError(f"spool.path: {parent} is on a filesystem that stores nothing (proc, sysfs); "
                          "use a folder on a disk, such as /var/lib/ser-edge")  # fmt: skip


def check_source(settings: Settings) -> None:
    """The audio source can start: PyAudio for a microphone, existing files for a replay."""
    source = settings.source
    if source.kind == "microphone":
        from ser_edge.audio.sources import load_pyaudio

        try:
            load_pyaudio()
        except OSError as e:
            raise ConfigError(f"source.kind: microphone, but {e}") from None
    elif source.kind == "replay":
        for i, f in enumerate(source.files):
            if not f.exists():
                raise ConfigError(f"source.files[{i}]: {f} does not exist")


def preflight(settings: Settings, bundle: Path | None = None) -> EmotionModel | BaseModel:
    """Every start-up check; the model built from ``bundle`` (default: the configured one)."""
    from ser_edge.delivery.publisher import mqtt_client

    model = check_bundle(bundle or settings.model.bundle, settings)
    check_speech_gate(settings, model)
    check_spool(settings.spool.path)
    check_source(settings)
    mqtt_client(settings.mqtt, "check-config")  # reads the password and certificate files
    return model
