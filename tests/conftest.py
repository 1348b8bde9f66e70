"""Shared fixtures: where the real data lives, and the bundled sample clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "deploy" / "samples").glob("*.flac"))
PLAIN = {"log_floor": -24, "noise_reduction": False, "agc_strength": 0.0}
"""FrontendConfig settings of the front end of 0.1: no noise reduction, no gain control."""


@pytest.fixture(scope="session")
def datasets() -> Path:
    """Root of the shared datasets, from SER_DATASETS (the Makefile sets it)."""
    root = os.environ.get("SER_DATASETS")
    if not root or not Path(root).is_dir():
        pytest.fail(f"SER_DATASETS must name the shared datasets folder (got {root!r}); run via make test")
    return Path(root)


@pytest.fixture(scope="session")
def ravdess(datasets: Path) -> Path:
    return datasets / "ravdess-16k"
