"""Training configuration: one YAML file per model (training/configs/), read into frozen
dataclasses. Unknown keys and wrong types are errors that name the key path."""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ser_edge.frontend import FrontendConfig

from .augment import AugmentConfig


class ConfigError(ValueError):
    """A training config that cannot be used; the message names the key."""


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "ds_cnn"
    """ds_cnn (the tiny default), cnn (the starting point's baseline) or cnn_lstm."""
    filters: int = 48
    """Channels of the convolutions (ds_cnn, cnn_lstm)."""
    blocks: int = 4
    """Depthwise-separable blocks (ds_cnn)."""
    first_kernel: tuple[int, int] = (10, 4)
    """First convolution's kernel over (frames, coefficients) (ds_cnn)."""
    first_stride: tuple[int, int] = (2, 2)
    lstm_units: int = 32
    """cnn_lstm only."""
    dropout: float = 0.3
    pool: str = "average"
    """How ds_cnn summarises time and frequency: average, or average_max (the average and
    the maximum side by side, so a short emotional peak is not averaged away)."""
    window_mean: bool = False
    """Subtract each window's per-coefficient mean over time (cepstral mean normalisation
    inside the model: MEAN and SUB ops), removing the speaker's and channel's average
    spectral shape."""

    def __post_init__(self) -> None:
        if self.pool not in ("average", "average_max"):
            raise ValueError(f"pool must be average or average_max, got {self.pool!r}")


@dataclass(frozen=True)
class WindowConfig:
    frames: int = 149
    """Frames per scoring window (149 = 3 s at the default 20 ms hop)."""
    hop: int = 50
    """Frames between scoring windows of one utterance."""


@dataclass(frozen=True)
class DataConfig:
    ravdess: str = "${SER_DATASETS}/ravdess-16k"
    """RAVDESS root: the evaluation corpus (speaker folds over its actors)."""
    tess: str | None = "${SER_DATASETS}/tess"
    crema: str | None = None
    emodb: str | None = "${SER_DATASETS}/emodb"
    """German, 10 actors: a cross-corpus test, or training data once that is measured."""
    ased: str | None = "${SER_CORPORA:-.cache/corpora}/ased"
    """Corpora fetched by hand (shared/datasets/README.md says from where) live under SER_CORPORA."""
    turev: str | None = "${SER_CORPORA:-.cache/corpora}/turev"
    emospeech: str | None = "${SER_CORPORA:-.cache/corpora}/emospeech"
    baved: str | None = "${SER_CORPORA:-.cache/corpora}/baved"
    """Arabic words (arousal levels, not emotions): more voices for the speech gate only."""
    folder: str | None = None
    """A user's own <label>/<file> recordings (training side only)."""
    extra_training: tuple[str, ...] = ("tess",)
    """Corpora added to the training side only."""
    noise: str = "${SER_DATASETS}/noise"
    """Background recordings: whole files are split between training and evaluation (noise.py)."""
    gate: bool = False
    """Featurise each clip (and rendering) as the device hears it: the longest utterance
    the gate finds (``gate_kind``), so a front end with memory starts where it starts on
    the device (at the pre-roll), not at the file's first sample."""
    gate_kind: str = "energy"
    """The gate ``gate`` cuts with: energy, or speech (the daemon's default; its rows are
    the span's rows of the stretch's front end, which must be this config's)."""

    def __post_init__(self) -> None:
        if self.gate_kind not in ("energy", "speech"):
            raise ValueError(f"gate_kind must be energy or speech, got {self.gate_kind!r}")

    cache: str = ".cache/features"
    """Where featurised clips are cached (relative to the working directory)."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 0.002
    early_stopping_patience: int = 15
    reduce_lr_patience: int = 6
    label_smoothing: float = 0.1
    p_original: float = 0.25
    """Chance that an epoch uses a clip's original instead of a rendering."""
    mixup: float = 0.0
    """Mixup's Beta(a, a) parameter: each training window is blended with another one of
    the epoch, and so are their targets and weights (0: off)."""
    extra_per_epoch: int | None = 700
    """Clips of the extra training corpora (TESS ...) drawn afresh for each epoch; None: all."""
    select: str = "best"
    """best: keep the epoch with the best validation accuracy (early stopping on the
    validation speakers); last: train the whole schedule and keep the last epoch."""
    schedule: str = "plateau"
    """plateau: halve the learning rate when validation loss stalls; cosine: decay it to
    zero over the epochs, independent of the validation speakers."""
    calibrate: bool = False
    """Fit a softmax temperature on the validation speakers' utterances (minimum NLL) and
    fold it into the last layer, so that confidences mean what they say."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.select not in ("best", "last"):
            raise ValueError(f"select must be best or last, got {self.select!r}")
        if self.schedule not in ("plateau", "cosine"):
            raise ValueError(f"schedule must be plateau or cosine, got {self.schedule!r}")


@dataclass(frozen=True)
class CvConfig:
    folds: int = 5
    validation_per_gender: int = 1
    """Validation speakers of each gender carved from each fold's training speakers."""


@dataclass(frozen=True)
class DistilConfig:
    """ser-tiny taught by ser-base (issue 28): the teacher's answer on each clip as recorded
    is the target of every rendering and crop of it, so the student learns to say in a room
    what the teacher says in the studio."""

    teacher: str = "training/configs/base.yaml"
    """The teacher's recipe (a ser-base config: encoder, renderings, head); for each fold a
    teacher head is trained on the student's own training clips, never on the fold's test
    speakers; it reads the student's corpus folders (data)."""
    temperature: float = 2.0
    """Softens the teacher's probabilities (p^(1/T), renormalised): the student learns how
    the teacher ranks the other emotions, not only its first answer."""
    label_weight: float = 0.3
    """Share of the human label in each labelled clip's target; the rest is the teacher's."""
    held_out: tuple[str, ...] = ("emodb",)
    """Corpora neither the student nor its teachers train on: the CV scores both there and
    reports how often they agree."""

    def __post_init__(self) -> None:
        if not 0 <= self.label_weight <= 1:
            raise ValueError(f"label_weight must be in [0, 1], got {self.label_weight!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be above 0, got {self.temperature!r}")


@dataclass(frozen=True)
class Config:
    name: str = "ser-tiny"
    version: str = "0.1.0"
    model: ModelConfig = field(default_factory=ModelConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cv: CvConfig = field(default_factory=CvConfig)
    distil: DistilConfig | None = None
    """Teach the model with ser-base's answers (None: human labels only)."""


def expand(path: str) -> Path:
    """${VAR}, ${VAR:-default} and ~ in a configured path; an unset variable without a
    default is an error naming it."""

    def env(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(f"path {path!r} uses ${{{name}}}, which is not set")
        return default

    return Path(re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", env, path)).expanduser()


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        return _convert(value, next(o for o in options if o is not type(None)), where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        inner = [args[0]] * len(value) if args[-1] is Ellipsis else list(args)
        if len(inner) != len(value):
            raise ConfigError(f"{where}: expected {len(inner)} values, got {len(value)}")
        return tuple(_convert(v, h, f"{where}[{i}]") for i, (v, h) in enumerate(zip(value, inner, strict=True)))
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str) and (not isinstance(value, hint) or isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _build(cls: Any, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"{where + '.' if where else ''}{unknown[0]}: unknown key (known: {', '.join(hints)})")
    values = {k: _convert(v, hints[k], f"{where + '.' if where else ''}{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except ValueError as e:
        raise ConfigError(f"{where or 'config'}: {e}") from None


def load_yaml_as(cls: Any, path: Path) -> Any:
    """A YAML file read into the frozen dataclass ``cls``; every mistake a ConfigError
    naming the file and the key."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    try:
        return _build(cls, data, "")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def load_config(path: Path) -> Config:
    return load_yaml_as(Config, path)
