"""The ser-edge command as a user runs it: real files, one-line errors, exit codes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from .conftest import SAMPLES


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ser_edge", *args], capture_output=True, text=True, timeout=300)


def test_features_prints_a_summary_and_writes_int8_matrices(tmp_path: Path) -> None:
    r = run("features", *map(str, SAMPLES), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert f"{len(SAMPLES)} clips" in r.stdout
    for sample in SAMPLES:
        assert sample.name in r.stdout
        m = np.load(tmp_path / f"{sample.stem}.npy")
        assert m.dtype == np.int8 and m.shape[1] == 13 and m.shape[0] > 100


def test_unreadable_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"not audio at all")
    r = run("features", str(SAMPLES[0]), str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "broken.flac: not a readable audio file" in r.stderr


def test_classify_answers_for_the_good_files_among_a_bad_one(tmp_path: Path) -> None:
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"not audio at all")
    r = run("classify", str(SAMPLES[0]), str(bad), str(SAMPLES[4]))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "broken.flac: not a readable audio file" in r.stderr
    lines = r.stdout.splitlines()
    assert any(SAMPLES[0].name in x and "s " in x for x in lines) and any(SAMPLES[4].name in x for x in lines)
    assert any("broken.flac" in x and "unreadable" in x for x in lines)


def test_bench_frontend_prints_both_timings_and_their_ratio() -> None:
    r = run("bench", "frontend", str(SAMPLES[0]), str(SAMPLES[1]), "--repeat", "3")
    assert r.returncode == 0, r.stderr
    one = re.search(r"one clip per call\s+fixed-point\s+([\d.]+) ms.*?([\d.]+) ms\s+ratio ([\d.]+)x", r.stdout)
    assert one, r.stdout
    fixed_ms, librosa_ms, ratio = map(float, one.groups())
    assert fixed_ms > 0 and librosa_ms > 0
    assert abs(ratio - fixed_ms / librosa_ms) < 0.01 + 0.01 * ratio
