"""The node's C, built for this machine as a shared library the tests load with ctypes."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-shared", "-fPIC")


def c_library(sources: list[Path], out: Path) -> ctypes.CDLL:
    """gcc with the firmware's warnings as errors; the library loaded."""
    subprocess.run([shutil.which("gcc") or "gcc", *FLAGS, *map(str, sources), "-o", str(out)], check=True)
    return ctypes.CDLL(str(out))
