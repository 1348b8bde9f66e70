"""The ser-base model stage: an utterance's audio in, emotion scores out.

    int16 audio -> level to TARGET_DBFS -> Whisper log-mel -> frozen encoder (TFLite)
                -> mean and standard deviation over time -> head (TFLite) -> scores

The encoder runs on the utterance's real length. The gate still decides what is speech
on the integer front end; this stage only scores the audio the gate cut.
"""

from __future__ import annotations

import numpy as np

from ser_edge.recognition.bundle import Bundle, BundleError
from ser_edge.recognition.interpreter import tflite_interpreter
from ser_edge.recognition.level import normalise_level
from ser_edge.recognition.logmel import log_mel

MIN_SAMPLES = 3200
"""Utterances shorter than 0.2 s are padded with silence to this (the encoder needs frames)."""


def encoder_input(pcm: np.ndarray, level_dbfs: float) -> np.ndarray:
    """(1, T, n_mels) log-mel of int16 audio at ``level_dbfs``, T even (the encoder halves it)."""
    audio = pcm.astype(np.float32) / 32768.0
    if audio.size < MIN_SAMPLES:
        audio = np.pad(audio, (0, MIN_SAMPLES - audio.size))
    mel = log_mel(normalise_level(audio, level_dbfs))
    return mel[None, : mel.shape[0] // 2 * 2]


def pooled(hidden: np.ndarray) -> np.ndarray:
    """(2 C,) float32: the mean and the standard deviation over time of (T, C) hidden states."""
    hidden = np.asarray(hidden, np.float32)
    return np.concatenate([hidden.mean(axis=0), hidden.std(axis=0)]).astype(np.float32)


class Encoder:
    """The frozen encoder of a ser-base bundle: log-mel in, hidden states out, any length."""

    def __init__(self, model: bytes, n_mels: int, threads: int = 1, where: str = "encoder") -> None:
        try:
            self._interp = tflite_interpreter(model, threads=threads)
        except (ValueError, RuntimeError) as e:
            raise BundleError(f"{where}: the interpreter cannot load it ({e})") from None
        inp = self._interp.get_input_details()[0]
        if inp["dtype"] != np.float32 or int(inp["shape"][-1]) != n_mels:
            shape = list(inp["shape"])
            raise BundleError(f"{where}: input is {inp['dtype'].__name__} {shape}; need float32 (1, T, {n_mels})")
        self._in, self._out = inp["index"], self._interp.get_output_details()[0]["index"]
        self._frames = -1

    def hidden(self, mel: np.ndarray) -> np.ndarray:
        """(T / 2, width) hidden states of (1, T, n_mels) log-mel."""
        if mel.shape[1] != self._frames:  # a new length: the interpreter re-plans its tensors
            self._interp.resize_tensor_input(self._in, mel.shape, strict=False)
            self._interp.allocate_tensors()
            self._frames = mel.shape[1]
        self._interp.set_tensor(self._in, np.ascontiguousarray(mel, np.float32))
        self._interp.invoke()
        return self._interp.get_tensor(self._out)[0]


class BaseModel:
    """Runs a ser-base bundle: encoder, pooling and head on an utterance's audio."""

    def __init__(self, bundle: Bundle, threads: int = 1, encoders: dict[str, Encoder] | None = None) -> None:
        """``encoders``: encoders by SHA-256 already loaded, shared by heads on one encoder
        (the harness scores ten); a new one is added to it."""
        spec = bundle.encoder
        if spec is None:
            raise BundleError(f"{bundle.path}: not a ser-base bundle (no encoder)")
        self.bundle = bundle
        encoders = {} if encoders is None else encoders
        if spec.sha256 not in encoders:
            encoders[spec.sha256] = Encoder(spec.model, spec.n_mels, threads, f"{bundle.path}/{spec.file}")
        self.encoder = encoders[spec.sha256]
        try:
            self._head = tflite_interpreter(bundle.model)
        except (ValueError, RuntimeError) as e:
            raise BundleError(f"{bundle.path}: the interpreter cannot load model.tflite ({e})") from None
        inp, out = self._head.get_input_details()[0], self._head.get_output_details()[0]
        if tuple(inp["shape"]) != (1, spec.embedding) or int(out["shape"][-1]) != len(bundle.labels):
            raise BundleError(
                f"{bundle.path}: head maps {list(inp['shape'])} to {int(out['shape'][-1])} scores; "
                f"need (1, {spec.embedding}) to {len(bundle.labels)}"
            )
        self._in, self._out = inp["index"], out["index"]

    def embedding(self, pcm: np.ndarray) -> np.ndarray:
        """The pooled encoder output of int16 audio: what the head scores (and training caches)."""
        return pooled(self.encoder.hidden(encoder_input(pcm, self.bundle.encoder.level_dbfs)))

    def head_scores(self, embedding: np.ndarray) -> np.ndarray:
        """Scores (summing to 1) of one pooled embedding."""
        self._head.set_tensor(self._in, np.asarray(embedding, np.float32)[None])
        self._head.invoke()
        return self._head.get_tensor(self._out)[0].astype(np.float64)

    @property
    def input_key(self) -> str:
        """Models with the same key score the same inputs: here, one encoder's embeddings."""
        return f"encoder/{self.bundle.encoder.sha256}/{self.bundle.encoder.level_dbfs:g}"

    def inputs(self, u) -> np.ndarray:
        """What this model scores of an utterance (a gate.vad.Utterance): its audio's embedding."""
        return self.embedding(u.pcm)

    def scores(self, inputs: np.ndarray) -> np.ndarray:
        """Scores of an utterance's embedding."""
        return self.head_scores(inputs)
