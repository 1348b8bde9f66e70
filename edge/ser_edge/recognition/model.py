"""The model stage: int8 windows of front-end rows in, emotion scores out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser_edge.frontend import DEFAULT_CONFIG, FrontendConfig
from ser_edge.gate.vad import Utterance
from ser_edge.recognition.base_model import BaseModel
from ser_edge.recognition.bundle import Bundle, BundleError, load_bundle
from ser_edge.recognition.interpreter import tflite_interpreter
from ser_edge.recognition.scoring import silence_row, utterance_score, utterance_windows


class EmotionModel:
    """Runs a bundle's int8 model with the shared scoring rule."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        try:
            self._interp = tflite_interpreter(bundle.model, reference_kernels=True)
        except (ValueError, RuntimeError) as e:
            raise BundleError(f"{bundle.path}: the interpreter cannot load model.tflite ({e})") from None
        inp, out = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        expected = (1, bundle.window_frames, bundle.frontend.n_features)
        shape = tuple(int(x) for x in inp["shape"])
        scale, zero = (float(inp["quantization"][0]), int(inp["quantization"][1]))
        if inp["dtype"] != np.int8 or shape != expected or (scale, zero) != (1.0, 0):
            raise BundleError(
                f"{bundle.path}: model input is {inp['dtype'].__name__} {shape} with scale {scale:g}, zero point "
                f"{zero}; need int8 {expected} with scale 1, zero point 0"
            )
        if int(out["shape"][-1]) != len(bundle.labels):
            raise BundleError(
                f"{bundle.path}: model has {int(out['shape'][-1])} outputs for {len(bundle.labels)} labels"
            )
        self._in, self._out = inp["index"], out["index"]
        self._scale, self._zero = out["quantization"]
        self._pad = silence_row(bundle.frontend)

    def window_scores(self, windows: np.ndarray) -> np.ndarray:
        """(n, labels) scores; recurrent state is reset before each window."""
        raw = np.empty((len(windows), len(self.bundle.labels)), np.int8)
        for i, window in enumerate(windows):
            self._interp.reset_all_variables()
            self._interp.set_tensor(self._in, window[None])
            self._interp.invoke()
            raw[i] = self._interp.get_tensor(self._out)[0]
        return self.dequantise(raw)

    def dequantise(self, raw: np.ndarray) -> np.ndarray:
        """The model's int8 outputs as scores."""
        return (raw.astype(np.float64) - self._zero) * self._scale

    def utterance_scores(self, features: np.ndarray) -> np.ndarray:
        """Scores of one utterance's int8 front-end rows: the mean over its windows."""
        windows = utterance_windows(features, self.bundle.window_frames, self.bundle.hop_frames, self._pad)
        return utterance_score(self.window_scores(windows))

    @property
    def input_key(self) -> str:
        """Models with the same key score the same inputs: here, one front end's rows."""
        return f"rows/{self.bundle.frontend.hash}"

    def inputs(self, u: Utterance) -> np.ndarray:
        """What this model scores of an utterance: its front-end rows (the gate's when it made them)."""
        return u.features(self.bundle.frontend)

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        """Scores of an utterance's inputs (rows from here or from a node)."""
        return self.utterance_scores(inputs)


def load_model(path: Path, frontend: FrontendConfig | None = DEFAULT_CONFIG,
               encoders: dict | None = None) -> EmotionModel | BaseModel:  # fmt: skip
    """The model stage for the bundle at ``path``, of whichever kind it is (``encoders``:
    see BaseModel)."""
    bundle = load_bundle(path, frontend)
    return BaseModel(bundle, encoders=encoders) if bundle.kind == "encoder" else EmotionModel(bundle)
