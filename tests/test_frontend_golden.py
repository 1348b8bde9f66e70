"""Golden vectors: the int8 output for real clips must never drift, not even by one bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import FrontendConfig, compute_features

GOLDEN = Path(__file__).resolve().parent / "golden"
INDEX = json.loads((GOLDEN / "index.json").read_text())
SAMPLES = GOLDEN.parents[1] / "deploy" / "samples"


@pytest.mark.parametrize("name", sorted(INDEX))
def test_output_equals_golden_vector_bit_for_bit(name: str) -> None:
    entry = INDEX[name]
    cfg = FrontendConfig.from_dict(entry["config"])
    assert cfg.hash == entry["hash"], "config hash changed: the bundle contract is broken"
    expected = np.load(GOLDEN / name)
    actual = compute_features(read_audio(SAMPLES / entry["clip"]), cfg=cfg)
    assert actual.dtype == np.int8
    assert actual.shape == expected.shape
    diff = np.flatnonzero(actual != expected)
    assert diff.size == 0, f"{diff.size} values drifted, first at flat index {diff[:5]}"


def test_golden_vectors_cover_every_channel_kind() -> None:
    kinds = {k for e in INDEX.values() for k in e["config"]["channels"]}
    assert kinds == {"mfcc", "logmel", "zcr", "rms"}
