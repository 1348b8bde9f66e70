"""ser-base's recipe: the frozen encoder, the renderings it hears, the head and the
evaluation (training/configs/base.yaml), read into frozen dataclasses like every config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .augment import AugmentConfig
from .config import DataConfig, load_yaml_as

LABELLED = ("ravdess", "tess", "emodb", "ased", "turev", "emospeech")
"""Every labelled corpus the project can read."""


@dataclass(frozen=True)
class EncoderConfig:
    name: str = "whisper-base"
    """The pinned checkpoint (whisper_weights.SOURCES)."""
    blocks: tuple[int, ...] = (2, 3)
    """Blocks (from 1) whose hidden states are averaged: the encoder keeps up to the last."""
    form: str = "int8"
    """Weights in the shipped encoder.tflite: int8 (dynamic range), float16 or float32."""
    level_dbfs: float = -26.0
    """Active speech level every utterance is set to before the log-mel."""
    file: str = "deploy/models/ser-base/encoder.tflite"
    """The committed encoder (built once by `ser-train encoder`; retrains reuse it)."""


@dataclass(frozen=True)
class HeadConfig:
    hidden: int = 256
    """Units of the head's hidden layer (0: a linear head on the standardised embedding)."""
    dropout: float = 0.3
    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 0.001
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    logit_adjust: float = 0.0
    """tau of the logit-adjusted loss: training logits get tau log(prior) added, so the head
    learns balanced scores although corpora bring classes in unequal shares (0: off)."""
    p_original: float = 0.4
    """Share of each epoch's samples that are a clip as recorded (the rest: a rendering)."""
    calibrate: bool = True
    """Fit a softmax temperature on the validation speakers (minimum NLL) and fold it in."""
    calibrate_views: str = "all"
    """Which of the validation speakers' views the temperature is fitted on: clean (as
    recorded) or all (with the renderings: rooms and noise, as a device hears)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibrate_views not in ("clean", "all"):
            raise ValueError(f"calibrate_views must be clean or all, got {self.calibrate_views!r}")


@dataclass(frozen=True)
class BaseConfig:
    name: str = "ser-base"
    version: str = "0.1.0"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    corpora: tuple[str, ...] = LABELLED
    """Labelled corpora the head trains on (each a data.<name> folder)."""
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    folds: int = 5
    """RAVDESS actor folds of the speaker-independent CV."""
    validation_speakers: float = 0.15
    """Share of each training corpus's speakers kept for calibration and model choice."""
    cache: str = ".cache/embeddings"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.corpora) - set(LABELLED))
        if unknown:
            raise ValueError(f"corpora: unknown corpus {unknown[0]!r} (known: {', '.join(LABELLED)})")


def load_base_config(path: Path) -> BaseConfig:
    return load_yaml_as(BaseConfig, path)
