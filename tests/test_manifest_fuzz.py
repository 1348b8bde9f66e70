"""Any manifest gives a bundle or one BundleError, never another exception (issue 13)."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ser_edge.recognition.bundle import BundleError, load_bundle
from ser_edge.recognition.model import EmotionModel
from tests.conftest import REPO

SHIPPED = REPO / "deploy" / "models" / "ser-tiny"
MANIFEST = json.loads((SHIPPED / "manifest.json").read_text())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=5,
)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of the manifest, e.g. ("scoring", "hop_frames")."""
    if isinstance(node, dict):
        return [prefix] + [p for k, v in node.items() for p in _paths(v, (*prefix, k))]
    return [prefix]


PATHS = [p for p in _paths(MANIFEST) if p]


def _load(manifest_text: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        bundle = Path(d) / "b"
        bundle.mkdir()
        shutil.copy(SHIPPED / "model.tflite", bundle / "model.tflite")
        (bundle / "manifest.json").write_bytes(manifest_text)
        try:  # loaded, the daemon builds the model and scores a long utterance with it
            model = EmotionModel(load_bundle(bundle))
            scores = model.utterance_scores(np.zeros((400, model.bundle.frontend.n_features), np.int8))
            assert scores.shape == (len(model.bundle.labels),)
        except BundleError as e:
            assert str(e) and "\n" not in str(e)


@settings(max_examples=300, deadline=None)
@example([(("model", "sha256"), 5)])  # the review's cases
@example([(("scoring", "hop_frames"), -5)])
@example([(("scoring", "hop_frames"), 0)])
@example([(("labels",), "angry")])
@given(st.lists(st.tuples(st.sampled_from(PATHS), json_values | st.just("<delete>")), min_size=1, max_size=3))
def test_a_manifest_with_wrong_values_is_refused_in_one_line(changes: list) -> None:
    m = copy.deepcopy(MANIFEST)
    for path, value in changes:
        node = m
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            if value == "<delete>":
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    _load(json.dumps(m).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_as_a_manifest_are_refused_in_one_line(data: bytes) -> None:
    _load(data)
