"""Model bundles: a folder with model.tflite and manifest.json, checked before use.

Two kinds. A frame model (ser-tiny, the speech gate) scores windows of the integer front
end's rows. An encoder model (ser-base) also carries encoder.tflite, a frozen pretrained
speech encoder, and model.tflite is the head that scores the encoder's pooled output of
the utterance's audio; its manifest has an ``encoder`` section.

A bundle is refused, with the reason, when its manifest is unreadable or incomplete,
when a model file's SHA-256 differs from the manifest's (corrupt or swapped), or when
it was made for another front end than the one running here.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ser_edge.frontend import DEFAULT_CONFIG, FrontendConfig
from ser_edge.recognition.logmel import WHISPER, LogMelConfig

SUPPORTED_SCHEMAS = (1,)

UNCERTAIN = "uncertain"
"""The state published for an utterance whose top score is below ``model.threshold``
(recognition.decision); so never one of a model's labels."""


class BundleError(ValueError):
    """A model bundle that must not be used; the message says why."""


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder bundle's frozen encoder and how its input is made."""

    name: str
    """The pretrained encoder, e.g. whisper-base."""
    layers: int
    """Blocks kept: the hidden states of the last one are pooled."""
    file: str
    model: bytes
    sha256: str
    n_mels: int
    embedding: int
    """Length of the pooled vector the head takes (mean and standard deviation: 2 x width)."""
    level_dbfs: float
    """Active speech level the audio is set to before the log-mel."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    name: str
    version: str
    labels: tuple[str, ...]
    frontend: FrontendConfig
    """The integer front end: the rows a frame model scores, and the speech gate's."""
    window_frames: int
    """Frame models: rows per scoring window (0 in an encoder bundle)."""
    hop_frames: int
    model: bytes
    sha256: str
    encoder: EncoderSpec | None = None
    """Encoder bundles only."""

    @property
    def kind(self) -> str:
        """encoder (ser-base: scores audio) or frames (ser-tiny: scores front-end rows)."""
        return "encoder" if self.encoder is not None else "frames"


def load_bundle(path: Path, frontend: FrontendConfig | None = DEFAULT_CONFIG) -> Bundle:
    """The bundle at ``path``, checked; made for ``frontend`` (None: whichever front end its
    manifest names, as evaluation tools that run any front end need)."""
    path = Path(path)
    manifest_path, model_path = path / "manifest.json", path / "model.tflite"
    if not manifest_path.is_file() or not model_path.is_file():
        raise BundleError(f"{path}: not a model bundle (needs manifest.json and model.tflite)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{manifest_path}: not valid JSON ({e})") from None
    except RecursionError:
        raise BundleError(f"{manifest_path}: not a manifest (nested too deeply)") from None
    try:
        m = _Manifest(manifest)
        schema = m.get("schema_version", int)
        if schema not in SUPPORTED_SCHEMAS:
            raise BundleError(f"schema version {schema} is not supported (need {SUPPORTED_SCHEMAS})")
        expected_sha = m.get("model.sha256", str)
        if not re.fullmatch(r"[0-9a-f]{64}", expected_sha):
            raise BundleError(f"model.sha256 must be 64 lower-case hex digits, got {expected_sha!r}")
        bundle_frontend = FrontendConfig.from_dict(m.get("frontend.config", dict))
        recorded_hash = m.get("frontend.hash", str)
        labels = tuple(m.get("labels", list))
        if len(labels) < 2 or not all(isinstance(x, str) and x for x in labels) or len(set(labels)) < len(labels):
            raise BundleError(f"labels must be two or more different names, got {list(labels)!r}")
        if UNCERTAIN in labels:
            raise BundleError(f"labels must not include {UNCERTAIN!r}: the state topic says that below the threshold")
        name, version = m.get("name", str), m.get("version", str)
        encoder = _encoder_spec(m, path) if "encoder" in manifest else None
        window, hop = (0, 0) if encoder else (m.get("scoring.window_frames", int), m.get("scoring.hop_frames", int))
        if encoder is None and not (1 <= window <= 10_000 and 1 <= hop <= window):
            raise BundleError(f"scoring needs 1 <= hop_frames <= window_frames <= 10000, got {hop} and {window}")
    except (BundleError, TypeError, ValueError) as e:
        raise BundleError(f"{manifest_path}: {e}") from None
    model = model_path.read_bytes()
    sha = hashlib.sha256(model).hexdigest()
    if sha != expected_sha:
        raise BundleError(f"{model_path}: SHA-256 {sha[:12]}... does not match the manifest's {expected_sha[:12]}...")
    if bundle_frontend.hash != recorded_hash:
        raise BundleError(f"{manifest_path}: front-end config does not match its recorded hash {recorded_hash}")
    if frontend is not None and recorded_hash != frontend.hash:
        raise BundleError(
            f"{path}: made for front end {recorded_hash}, but this front end is {frontend.hash}; "
            f"use a bundle exported for this version of ser-edge"
        )
    return Bundle(path, name, version, labels, bundle_frontend, window, hop, model, sha, encoder)


def _checked_file(path: Path, expected: str) -> bytes:
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise BundleError(f"the SHA-256 of {path.name} must be 64 lower-case hex digits, got {expected!r}")
    if not path.is_file():
        raise BundleError(f"{path.name} is missing")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if sha != expected:
        raise BundleError(f"{path.name}: SHA-256 {sha[:12]}... does not match the manifest's {expected[:12]}...")
    return data


def _encoder_spec(m: _Manifest, path: Path) -> EncoderSpec:
    """The encoder section, its file checked, its log-mel the one this version computes."""
    file = m.get("encoder.file", str)
    if "/" in file or "\\" in file or file.startswith("."):
        raise BundleError(f"encoder.file must be a file name in the bundle, got {file!r}")
    logmel = m.get("encoder.logmel", dict)
    try:
        mine = LogMelConfig(**logmel)
    except TypeError as e:
        raise BundleError(f"encoder.logmel: {e}") from None
    if mine != WHISPER:
        raise BundleError(f"encoder.logmel {logmel} is not the log-mel this version computes ({WHISPER})")
    layers, embedding = m.get("encoder.layers", int), m.get("encoder.embedding", int)
    level = m.get("encoder.level_dbfs", float)
    if not (1 <= layers <= 64 and 1 <= embedding <= 100_000 and -60.0 <= level <= 0.0):
        raise BundleError(f"encoder: layers {layers}, embedding {embedding} or level_dbfs {level} out of range")
    model = _checked_file(path / file, m.get("encoder.sha256", str))
    return EncoderSpec(m.get("encoder.name", str), layers, file, model, hashlib.sha256(model).hexdigest(),
                       WHISPER.n_mels, embedding, level)  # fmt: skip


class _Manifest:
    """Typed access to a manifest's keys: every wrong type or missing key a BundleError."""

    def __init__(self, data: object) -> None:
        if not isinstance(data, dict):
            raise BundleError(f"a manifest is a JSON object, not {type(data).__name__}")
        self.data = data

    def get(self, dotted: str, kind: type) -> Any:
        value: object = self.data
        for key in dotted.split("."):
            if not isinstance(value, dict) or key not in value:
                raise BundleError(f"missing key {dotted}")
            value = value[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise BundleError(f"{dotted} must be {_KINDS[kind]}, got {value!r}"[:200])
        if kind is float and not math.isfinite(value):
            raise BundleError(f"{dotted} must be a finite number, got {value!r}")
        return value


_KINDS = {int: "an integer", float: "a number", str: "a string", list: "a list", dict: "an object"}
