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


SMOKE_ACTORS = ("01", "02", "03", "04", "05", "06", "07", "08")


def link_ravdess(ravdess: Path, root: Path) -> Path:
    """A small RAVDESS for end-to-end training runs: eight actors, eight clips each
    (every seventh file: several emotions), as links to the real files under root/ravdess."""
    for actor in SMOKE_ACTORS:
        folder = root / "ravdess" / f"Actor_{actor}"
        folder.mkdir(parents=True)
        for clip in sorted((ravdess / f"Actor_{actor}").glob("*.flac"))[::7][:8]:
            (folder / clip.name).symlink_to(clip)
    return root / "ravdess"


@pytest.fixture(scope="session")
def half_hour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 minutes at 48 kHz (172 MB): a minute of room tone around one sentence, 30 times."""
    import numpy as np
    import soundfile as sf

    from ser_edge.audio.audio_io import read_audio

    speech = np.repeat(read_audio(SAMPLES[4]).astype(np.float64) / 32768.0, 3)  # crude, but speech
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("long") / "half-hour.wav"
    with sf.SoundFile(path, "w", 48000, 1, "PCM_16") as f:
        for _ in range(30):
            minute = rng.normal(0, 0.001, 48000 * 60)
            minute[48000 * 20 : 48000 * 20 + speech.size] += speech
            f.write(minute)
    return path


def peak_rss_mb(command: list[str], timeout: float = 600) -> tuple[int, str, float]:
    """Run a command under a fresh parent; (exit status, its stdout, its peak RSS in MB)."""
    import subprocess
    import sys

    measure = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.stdout, end='')"
    )
    r = subprocess.run([sys.executable, "-c", measure, *command], capture_output=True, text=True, timeout=timeout)
    head, _, body = r.stdout.partition("\n")
    code, peak_kb = map(int, head.split())
    return code, body, peak_kb / 1024
