"""Integer constant tables of the front end, derived once per config.

These are the numbers a C port compiles in. Each is the rounded value of a textbook
formula; the rounding is the only place floating point touches the front end.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .config import FrontendConfig

Q15 = 1 << 15
#: log2 values inside the front end are integers in Q10 (1/1024 of a log2 unit).
LOG_FRAC_BITS = 10
#: Segments of the log2 mantissa table (linear interpolation between entries).
LOG_TABLE_BITS = 6
#: Normalised frames peak in [2^NORM_BITS, 2^(NORM_BITS+1)).
NORM_BITS = 22
#: The FFT's second pass rounds its output down by this many bits beyond Q15.
SPECTRUM_SHIFT = 8
#: The power spectrum is shifted right by this before the mel filterbank.
POWER_SHIFT = 12
#: Mel filter weights are Q10.
MEL_WEIGHT_BITS = 10
#: The per-band curves of normalise.py are tabulated every 2^-CURVE_STEP_BITS log2 units ...
CURVE_STEP_BITS = 4
#: ... over 0 .. CURVE_SPAN log2 units (beyond it both are 0).
CURVE_SPAN = 16
#: The per-band states of normalise.py keep this many bits below Q10.
STATE_EXTRA_BITS = 6
#: Largest magnitude every intermediate must stay below (float64 carries it exactly).
EXACT_LIMIT = 1 << 53


@dataclass(frozen=True)
class Tables:
    """Everything the integer pipeline multiplies by, as int64 arrays."""

    preemphasis_q15: int
    window_q15: np.ndarray  # (window_samples,)
    radix1: int  # first-pass DFT size (n1 axis)
    radix2: int  # second-pass DFT size (n2 axis)
    pass1_q15: np.ndarray  # (2*radix1, 2*radix1) real block form of the radix1 DFT
    pass2_direct_q15: np.ndarray  # (radix1, 2*radix2, 2*(radix2+1)), see real_fft
    pass2_mirror_q15: np.ndarray  # same shape; entry j serves output group (-j) mod radix1
    mirror: np.ndarray  # (radix1,) (-k1) mod radix1
    mel_q10: np.ndarray  # (n_fft/2 + 1, n_mels)
    log2_q16: np.ndarray  # (2**LOG_TABLE_BITS + 1,) log2(1 + i/64) in Q16
    dct_q15: np.ndarray  # (n_mfcc, n_mels) orthonormal DCT-II
    log2_window_q10: int  # round(1024 * log2(window_samples)), for the RMS channel
    noise_gain_q10: np.ndarray  # (CURVE_SPAN * 2^CURVE_STEP_BITS + 1,) log2(max(1 - 2^-d, noise_keep)), Q10
    softplus_q10: np.ndarray  # same grid: log2(1 + 2^-d), Q10
    noise_rise_q15: int  # one-pole coefficient of the noise floor's rise
    noise_bias_q10: int
    agc_smooth_q15: int  # one-pole coefficient of the smoothed band energy
    agc_strength_q15: int
    agc_offset_q10: int


def _q15(values: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(values, dtype=np.float64) * Q15).astype(np.int64)


def _first_pass(r1: int) -> np.ndarray:
    """Real (2 r1 x 2 r1) matrix of the r1-point DFT, acting on columns [re; im]."""
    angle = 2.0 * np.pi * np.outer(np.arange(r1), np.arange(r1)) / r1
    c, s = _q15(np.cos(angle)), _q15(np.sin(angle))
    return np.block([[c, s], [-s, c]])


def _second_pass(r1: int, r2: int) -> tuple[np.ndarray, np.ndarray]:
    """Second FFT pass with the twiddles and the real-FFT split folded in.

    For output group k1 (bins k = k1 + r1*k2, k2 = 0..r2) the doubled spectrum is
        2X[k] = sum_n2 A[k1, n2] alpha(n2, k) + conj(A[-k1 mod r1, n2]) beta(n2, k)
    with alpha = W_M^(n2 k) (1 - i W_N^k), beta = W_M^(n2 k) (1 + i W_N^k), because
    Z[k] = sum_n2 A[k1, n2] W_M^(n2 k) and 2X[k] = Z[k] (1 - i W_N^k) +
    conj(Z[M-k]) (1 + i W_N^k). Returned as real matrices acting on rows
    [re n2, im n2] and giving [re k2, im k2].
    """
    m, n = r1 * r2, 2 * r1 * r2
    k1, n2, k2 = np.ix_(np.arange(r1), np.arange(r2), np.arange(r2 + 1))
    k = k1 + r1 * k2
    rot = np.exp(-2j * np.pi * n2 * k / m)
    w = np.exp(-2j * np.pi * k / n)
    alpha, beta = rot * (1 - 1j * w), rot * (1 + 1j * w)
    ar, ai, br, bi = (_q15(v) for v in (alpha.real, alpha.imag, beta.real, beta.imag))
    direct = np.concatenate([np.concatenate([ar, ai], axis=2), np.concatenate([-ai, ar], axis=2)], axis=1)
    mirror = np.concatenate([np.concatenate([br, bi], axis=2), np.concatenate([bi, -br], axis=2)], axis=1)
    return direct, mirror


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def mel_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """Triangular HTK-mel filters with peak 1, shape (n_fft/2 + 1, n_mels), float64."""
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin_hz), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2))
    freqs = np.arange(cfg.n_fft // 2 + 1) * cfg.sample_rate / cfg.n_fft
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs[:, None] - lo) / (mid - lo)
    falling = (hi - freqs[:, None]) / (hi - mid)
    return np.maximum(0.0, np.minimum(rising, falling))


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II, shape (n_out, n_in), float64."""
    m = np.arange(n_in)
    d = np.sqrt(2.0 / n_in) * np.cos(np.pi * np.outer(np.arange(n_out), 2 * m + 1) / (2 * n_in))
    d[0] /= np.sqrt(2.0)
    return d


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window (the STFT convention), float64."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


@lru_cache(maxsize=16)
def tables_for(cfg: FrontendConfig) -> Tables:
    half = cfg.n_fft // 2
    bits = half.bit_length() - 1
    r1, r2 = 1 << (bits // 2), 1 << (bits - bits // 2)

    mel = mel_filterbank(cfg)
    mel_q10 = np.round(mel * (1 << MEL_WEIGHT_BITS)).astype(np.int64)
    empty = np.flatnonzero(mel_q10.sum(axis=0) == 0)
    if empty.size:
        raise ValueError(
            f"mel filter(s) {empty.tolist()} cover no FFT bin: use fewer n_mels, a wider "
            f"fmin_hz..fmax_hz or a larger n_fft"
        )
    direct, mirror = _second_pass(r1, r2)
    window = np.minimum(_q15(hann_window(cfg.window_samples)), Q15 - 1)
    tables = Tables(
        preemphasis_q15=round(cfg.preemphasis * Q15),
        window_q15=window,
        radix1=r1,
        radix2=r2,
        pass1_q15=_first_pass(r1),
        pass2_direct_q15=direct,
        pass2_mirror_q15=mirror[(-np.arange(r1)) % r1],
        mirror=(-np.arange(r1)) % r1,
        mel_q10=mel_q10,
        log2_q16=np.round(np.log2(1.0 + np.arange(65) / 64.0) * (1 << 16)).astype(np.int64),
        dct_q15=_q15(dct_matrix(cfg.n_mfcc, cfg.n_mels)),
        log2_window_q10=round(float(np.log2(cfg.window_samples)) * (1 << LOG_FRAC_BITS)),
        **_normalisation_tables(cfg),
    )
    _check_bounds(cfg, tables)
    return tables


def one_pole_q15(hop_ms: float, time_ms: float) -> int:
    """Q15 coefficient c of y += c (x - y) for a time constant of time_ms at one update per hop."""
    return max(1, round(Q15 * (1.0 - np.exp(-hop_ms / time_ms))))


def _normalisation_tables(cfg: FrontendConfig) -> dict:
    d = np.arange(CURVE_SPAN * (1 << CURVE_STEP_BITS) + 1) / (1 << CURVE_STEP_BITS)
    with np.errstate(divide="ignore"):
        kept = np.log2(np.maximum(1.0 - 2.0**-d, cfg.noise_keep))
    q10 = 1 << LOG_FRAC_BITS
    return {
        "noise_gain_q10": np.round(kept * q10).astype(np.int64),
        "softplus_q10": np.round(np.log2(1.0 + 2.0**-d) * q10).astype(np.int64),
        "noise_rise_q15": one_pole_q15(cfg.hop_ms, cfg.noise_rise_ms),
        "noise_bias_q10": round(cfg.noise_bias * q10),
        "agc_smooth_q15": one_pole_q15(cfg.hop_ms, cfg.agc_time_ms),
        "agc_strength_q15": round(cfg.agc_strength * Q15),
        "agc_offset_q10": round(cfg.agc_offset * q10),
    }


def _check_bounds(cfg: FrontendConfig, t: Tables) -> None:
    """Refuse a config whose worst case would leave the exactly representable range."""
    peak = 1 << (NORM_BITS + 1)  # |u[n]|
    stages = {
        "pass 1": 2 * t.radix1 * peak * Q15,
        "pass 2": 4 * t.radix2 * (t.radix1 * peak * 3 // 2) * 2 * Q15,  # |A| <= r1 * peak * sqrt 2
    }
    spectrum_max = (2 * cfg.window_samples * peak) >> SPECTRUM_SHIFT  # |2X| / 2^SPECTRUM_SHIFT
    stages["power"] = 2 * spectrum_max**2
    stages["mel"] = (stages["power"] >> POWER_SHIFT) * int(t.mel_q10.sum(axis=0).max())
    for stage, worst in stages.items():
        if worst >= EXACT_LIMIT:
            raise ValueError(
                f"front-end config overflows the {stage} accumulator ({worst:.3g} >= 2^53): "
                f"shorten window_samples or use more, narrower mel filters"
            )
