"""The integer front end: raw int16 frames in, int8 feature rows out.

Every stage is integer arithmetic with round-half-up right shifts, written so that a
C99 port can reproduce it bit for bit (see edge/docs/frontend.md for the Q formats).

NumPy has no BLAS for integer matrix products, so by default the integers travel in
float64 arrays: every value is an integer below 2**53 in magnitude (bounds checked in
tables.py), which float64 represents exactly, so each product and sum is exact whatever
the summation order. ``carrier=np.int64`` runs the very same code on int64 arrays; a
test asserts both give identical bits.
"""

from __future__ import annotations

import numpy as np

from .config import FrontendConfig
from .tables import (
    LOG_FRAC_BITS,
    LOG_TABLE_BITS,
    MEL_WEIGHT_BITS,
    NORM_BITS,
    POWER_SHIFT,
    SPECTRUM_SHIFT,
    Tables,
)

Carrier = type[np.floating] | type[np.integer]

#: A log2 value below every floor, standing for log2(0).
_LOG_ZERO = -(1 << 30)


def _is_float(x: np.ndarray) -> bool:
    return x.dtype.kind == "f"


def shr_round(x: np.ndarray, bits: int) -> np.ndarray:
    """(x + 2**(bits-1)) >> bits: arithmetic right shift rounding half up (in place
    for float carriers, so pass a temporary)."""
    if _is_float(x):
        x *= 1.0 / (1 << bits)
        x += 0.5
        return np.floor(x, out=x)
    return (x + (1 << (bits - 1))) >> bits


def shr_floor(x: np.ndarray, bits: int) -> np.ndarray:
    """x >> bits: arithmetic right shift (floor); in place for float carriers."""
    if _is_float(x):
        x *= 1.0 / (1 << bits)
        return np.floor(x, out=x)
    return x >> bits


def matmul_shr(a: np.ndarray, b: np.ndarray, bits: int = 15) -> np.ndarray:
    """(a @ b) shr_round bits, for an integer matrix b of Q<bits> constants."""
    if _is_float(a):
        # Scaling b by 2^-bits is exact and saves a pass over the product.
        product = np.matmul(a, b * (1.0 / (1 << bits)))
        product += 0.5
        return np.floor(product, out=product)
    return shr_round(np.matmul(a, b), bits)


def emphasise_and_window(frames: np.ndarray, prev: np.ndarray, t: Tables) -> np.ndarray:
    """v[n] = ((x[n] << 15) - a x[n-1]) w[n], exact: pre-emphasis with a in Q15, then the
    Q15 periodic Hann window; |v| < 2^46 (int64).

    Computed as x[n] (2^15 w[n]) - x[n-1] (a w[n]) to save passes over the frames.
    """
    v = frames * (t.window_q15 << 15)
    v[:, 1:] -= frames[:, :-1] * (t.window_q15[1:] * t.preemphasis_q15)
    v[:, 0] -= prev * (t.window_q15[0] * t.preemphasis_q15)
    return v


def msb(x: np.ndarray) -> np.ndarray:
    """Index of the highest set bit of positive integers (floor(log2 x)); C: 63 - clz."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64) - 1


def normalise(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Block floating point: u = round(v * 2^s), s per frame so the peak of |u| is in
    [2^22, 2^23] (NORM_BITS).

    The exact windowed products are rounded only here, relative to each frame's own
    peak, so a quiet frame keeps the same FFT precision as a loud one; s is undone
    exactly in the log domain.
    """
    peak = np.abs(v).max(axis=1)
    shift = np.where(peak > 0, NORM_BITS - msb(np.maximum(peak, 1)), 0)
    if _is_float(v):
        v *= np.exp2(shift)[:, None]
        v += 0.5
        return np.floor(v, out=v), shift
    s = shift[:, None]
    down = np.maximum(-s, 1)
    return np.where(s >= 0, v << np.maximum(s, 0), (v + (1 << (down - 1))) >> down), shift


def real_fft(u: np.ndarray, n_fft: int, t: Tables) -> tuple[np.ndarray, np.ndarray]:
    """Real FFT of the zero-padded frames: Y[k] = 2X[k] / 2^SPECTRUM_SHIFT, where
    X[k] = sum u[n] e^{-2 pi i kn/N}.

    The N real samples are packed into M = N/2 complex ones z[m] = u[2m] + i u[2m+1]
    (m = r2*n1 + n2, M = r1*r2) and transformed in two passes of small DFTs with Q15
    coefficients, each followed by one rounding shift:

        A[k1, n2] = sum_n1 z[r2*n1 + n2] W_r1^(n1*k1)                       >> 15
        Y[k]      = sum_n2 A[k1, n2] alpha(n2, k) + conj(A[-k1, n2]) beta(n2, k)
                                                                      >> 15 + 8

    for k = k1 + r1*k2; the second pass folds in the twiddles and the split of the
    packed transform into the real spectrum (tables._second_pass). With |u| <= 2^23:
    |A| < 2^28, accumulators < 2^50, |Y| < 2^25.
    """
    n_frames, r1, r2, half = u.shape[0], t.radix1, t.radix2, n_fft // 2
    dtype = u.dtype
    padded = np.zeros((n_frames, r1, r2, 2), dtype=dtype)
    padded.reshape(n_frames, n_fft)[:, : u.shape[1]] = u
    # Pass 1: one product on rows [re n1; im n1], columns (frame, n2).
    stacked = padded.transpose(3, 1, 0, 2).reshape(2 * r1, n_frames * r2)
    a = matmul_shr(t.pass1_q15.astype(dtype), stacked)
    # Pass 2: per group k1, rows (frame), columns [re n2, im n2] -> [re k2, im k2].
    a = a.reshape(2, r1, n_frames, r2).transpose(1, 2, 0, 3).reshape(r1, n_frames, 2 * r2)
    x2 = np.matmul(a, t.pass2_direct_q15.astype(dtype))
    x2 += np.matmul(a, t.pass2_mirror_q15.astype(dtype))[t.mirror]
    x2 = shr_round(x2, 15 + SPECTRUM_SHIFT).reshape(r1, n_frames, 2, r2 + 1)
    x2 = x2.transpose(2, 1, 3, 0).reshape(2, n_frames, r1 * (r2 + 1))[:, :, : half + 1]
    return x2[0], x2[1]


def mel_energies(yr: np.ndarray, yi: np.ndarray, t: Tables) -> np.ndarray:
    """Mel band energies: (|Y|^2 >> POWER_SHIFT) times Q10 weights, summed per band."""
    power = shr_floor(yr * yr + yi * yi, POWER_SHIFT)
    return np.matmul(power, t.mel_q10.astype(power.dtype))


def log2_q10(x: np.ndarray, t: Tables) -> np.ndarray:
    """log2(x) in Q10 for integers x >= 1 (x = 0 gives a value below every floor).

    Exponent from the highest set bit; mantissa from a 65-entry Q16 table of
    log2(1 + i/64) with linear interpolation on the next 24 bits.
    """
    xi = x.astype(np.int64)
    positive = xi > 0
    e = msb(np.maximum(xi, 1))
    frac = np.where(e <= 30, xi << np.maximum(30 - e, 0), xi >> np.maximum(e - 30, 0))
    frac &= (1 << 30) - 1
    idx = frac >> (30 - LOG_TABLE_BITS)
    rem = frac & ((1 << (30 - LOG_TABLE_BITS)) - 1)
    lo, hi = t.log2_q16[idx], t.log2_q16[idx + 1]
    mant_q16 = lo + (((hi - lo) * rem) >> (30 - LOG_TABLE_BITS))
    out = (e << LOG_FRAC_BITS) + ((mant_q16 + 32) >> 6)
    return np.where(positive, out, _LOG_ZERO)


def log_mel(mel: np.ndarray, shift: np.ndarray, cfg: FrontendConfig, t: Tables) -> np.ndarray:
    """log2 of the mel energies of the unnormalised signal at full scale 1.0, Q10, floored.

    Y is 2^(46 + s - SPECTRUM_SHIFT) times the float spectrum of x/32768 (Q15 sample,
    Q15 pre-emphasis, Q15 window, normalisation shift s, doubling), so mel = E *
    2^(2 (46 - SPECTRUM_SHIFT + s) - POWER_SHIFT + MEL_WEIGHT_BITS), E the float energy.
    """
    scale = 2 * (46 - SPECTRUM_SHIFT) - POWER_SHIFT + MEL_WEIGHT_BITS
    offset = (scale + 2 * shift[:, None]) << LOG_FRAC_BITS
    return np.maximum(log2_q10(mel, t) - offset, cfg.log_floor << LOG_FRAC_BITS)


def sign_changes(frames: np.ndarray) -> np.ndarray:
    """Zero crossings per frame: sign changes, 0 counting as positive."""
    sign = frames >= 0
    return np.count_nonzero(sign[:, 1:] != sign[:, :-1], axis=1).astype(np.int64)


def zcr_column(frames: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Zero crossings scaled to int8 [-128, 127]."""
    n = cfg.window_samples - 1
    return (sign_changes(frames) * 510 + n) // (2 * n) - 128


def log2_mean_square(frames: np.ndarray, log2_length_q10: int, t: Tables) -> np.ndarray:
    """log2 of each frame's mean square re full scale, Q10 (<= 0); log2_length_q10 is
    round(1024 log2(frame length))."""
    x = frames.astype(np.int64)
    energy = np.einsum("ij,ij->i", x, x)  # < 2^39
    return log2_q10(energy, t) - log2_length_q10 - (30 << LOG_FRAC_BITS)


def energy_column(frames: np.ndarray, cfg: FrontendConfig, t: Tables) -> np.ndarray:
    """log2 of the frame's mean square re full scale, over the floor, Q10."""
    log_ms = log2_mean_square(frames, t.log2_window_q10, t)
    return np.maximum(log_ms, cfg.log_floor << LOG_FRAC_BITS) - (cfg.log_floor << LOG_FRAC_BITS)


def _quantise(q10: np.ndarray, step_shift: int) -> np.ndarray:
    return shr_round(q10.astype(np.int64), LOG_FRAC_BITS - step_shift)


def log_mel_of_frames(
    frames: np.ndarray, prev: np.ndarray, cfg: FrontendConfig, t: Tables, carrier: Carrier = np.float64
) -> np.ndarray:
    """Floored log2 mel energies (Q10, int64) of raw int16 frames (F, window); prev[f] is
    the sample before frame f. Each frame on its own: no memory."""
    x = frames.astype(carrier)
    v = emphasise_and_window(x, prev.astype(carrier), t)
    u, shift = normalise(v)
    xr, xi = real_fft(u, cfg.n_fft, t)
    return log_mel(mel_energies(xr, xi, t), shift, cfg, t)


def columns(
    frames: np.ndarray, over_floor: np.ndarray, cfg: FrontendConfig, t: Tables, carrier: Carrier = np.float64
) -> np.ndarray:
    """The int8 feature columns from the mel values over the floor (Q10) and the raw frames."""
    out_columns = []
    for kind in cfg.channels:
        if kind == "mfcc":
            mfcc = matmul_shr(over_floor.astype(carrier), t.dct_q15.T.astype(carrier))
            mfcc = mfcc.astype(np.int64)
            c0 = _quantise(mfcc[:, :1], cfg.c0_step_shift) - 128
            out_columns += [c0, _quantise(mfcc[:, 1:], cfg.mfcc_step_shift)]
        elif kind == "logmel":
            out_columns.append(_quantise(over_floor, cfg.logmel_step_shift) - 128)
        elif kind == "zcr":
            out_columns.append(zcr_column(frames, cfg)[:, None])
        else:
            energy = energy_column(frames, cfg, t)[:, None]
            out_columns.append(_quantise(energy, cfg.logmel_step_shift) - 128)
    out = np.concatenate([np.asarray(c, dtype=np.int64) for c in out_columns], axis=1)
    return np.clip(out, -128, 127).astype(np.int8)


def features_from_frames(
    frames: np.ndarray, prev: np.ndarray, cfg: FrontendConfig, t: Tables, carrier: Carrier = np.float64
) -> np.ndarray:
    """int8 features of raw int16 frames of a front end without memory (no noise
    reduction or gain control: normalise.py adds those between the two halves)."""
    logmel = log_mel_of_frames(frames, prev, cfg, t, carrier)
    return columns(frames, logmel - (cfg.log_floor << LOG_FRAC_BITS), cfg, t, carrier)
