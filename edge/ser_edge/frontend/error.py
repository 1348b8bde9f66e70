"""How far the integer front end is from its float64 reference, on real audio."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import FrontendConfig
from .features import compute_features_batch
from .reference import dequantise, reference_features


@dataclass(frozen=True)
class ErrorReport:
    """Per output column, over all frames of all clips."""

    frames: int
    rmse_steps: np.ndarray
    """RMS difference in int8 steps, against the reference clipped to the int8 range."""
    max_steps: np.ndarray
    """Largest absolute difference in int8 steps."""
    correlation: np.ndarray
    """Pearson correlation of the dequantised output with the reference (NaN if constant)."""
    clipped: np.ndarray
    """Fraction of frames whose reference value lies outside the int8 range."""


def measure_error(clips: Sequence[np.ndarray], cfg: FrontendConfig) -> ErrorReport:
    fixed = dequantise(np.concatenate(compute_features_batch(clips, cfg=cfg)), cfg)
    ref = np.concatenate([reference_features(c, cfg=cfg) for c in clips])
    steps, zeros = cfg.column_quantisation()
    lo, hi = (-128 - zeros) * steps, (127 - zeros) * steps
    inside = np.clip(ref, lo, hi)
    err = (fixed - inside) / steps
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.array([np.corrcoef(fixed[:, i], ref[:, i])[0, 1] for i in range(ref.shape[1])])
    return ErrorReport(
        frames=ref.shape[0],
        rmse_steps=np.sqrt(np.mean(err**2, axis=0)),
        max_steps=np.abs(err).max(axis=0),
        correlation=corr,
        clipped=np.mean((ref < lo) | (ref > hi), axis=0),
    )


def column_names(cfg: FrontendConfig) -> list[str]:
    names: list[str] = []
    for kind in cfg.channels:
        if kind == "mfcc":
            names += [f"c{i}" for i in range(cfg.n_mfcc)]
        elif kind == "logmel":
            names += [f"mel{i}" for i in range(cfg.n_mels)]
        else:
            names.append(kind)
    return names


def format_report(r: ErrorReport, cfg: FrontendConfig) -> str:
    lines = [
        f"fixed-point vs float64 reference, {r.frames} frames, front end {cfg.hash}",
        f"{'column':>8} {'RMSE steps':>10} {'max steps':>9} {'corr':>8} {'ref clipped':>11}",
    ]
    for i, name in enumerate(column_names(cfg)):
        lines.append(
            f"{name:>8} {r.rmse_steps[i]:10.3f} {r.max_steps[i]:9.2f} {r.correlation[i]:8.5f} "
            f"{100 * r.clipped[i]:10.2f}%"
        )
    return "\n".join(lines)
