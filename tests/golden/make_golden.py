"""Regenerate the front end's golden vectors. Only after a deliberate change of the
arithmetic (bump frontend.config.ALGORITHM_VERSION too), never to make a test pass.

    .venv/bin/python tests/golden/make_golden.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ser_edge.audio.audio_io import read_audio
from ser_edge.frontend import FrontendConfig, compute_features

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parents[1] / "deploy" / "samples"
CLIPS = ["03-01-01-01-01-01-03.flac", "03-01-05-02-01-01-07.flac", "03-01-08-02-01-01-10.flac"]
PLAIN = {"log_floor": -24, "noise_reduction": False, "agc_strength": 0.0}  # the front end of 0.1
CONFIGS = {
    "default": FrontendConfig(),
    "plain": FrontendConfig(**PLAIN),
    "all_channels": FrontendConfig(channels=("mfcc", "logmel", "zcr", "rms"), **PLAIN),
    "normalised": FrontendConfig(
        channels=("mfcc", "logmel"), log_floor=-40, noise_reduction=True, agc_strength=0.95, agc_offset=-36.0
    ),
}


def main() -> None:
    index = {}
    for name, cfg in CONFIGS.items():
        for clip in CLIPS:
            out = f"{name}__{Path(clip).stem}.npy"
            np.save(HERE / out, compute_features(read_audio(SAMPLES / clip), cfg=cfg))
            index[out] = {"clip": clip, "config": cfg.to_dict(), "hash": cfg.hash}
    (HERE / "index.json").write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
