"""Fixed-point audio front end shared by training, the daemon and the firmware.

int16 PCM at 16 kHz in, int8 feature rows out; see edge/docs/frontend.md.
"""

from .config import FrontendConfig
from .features import (
    DEFAULT_CONFIG,
    StreamingFrontend,
    check_pcm,
    compute_features,
    compute_features_batch,
)
from .reference import dequantise, reference_features

__all__ = [
    "DEFAULT_CONFIG",
    "FrontendConfig",
    "StreamingFrontend",
    "check_pcm",
    "compute_features",
    "compute_features_batch",
    "dequantise",
    "reference_features",
]
