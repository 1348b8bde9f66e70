/* Fixed-point front end; see frontend.h. Mirrors edge/ser_edge/frontend/fixed.py stage by
 * stage (same names); every value is an integer and every rounding the same. Right
 * shifts of negative numbers are arithmetic (true of gcc and arm-none-eabi-gcc). */
#include "frontend.h"

#include "fixed_point.h"

#define HALF (SER_NFFT / 2)

/* Stage marks for the M4 image's per-stage instruction counts (m4/trace.c defines it). */
#ifdef SER_FRONTEND_MARK
void SER_FRONTEND_MARK(int stage);
#define MARK(stage) SER_FRONTEND_MARK(stage)
#else
#define MARK(stage) ((void)0)
#endif

static int64_t shr_round(int64_t x, int bits) {
    return (x + ((int64_t)1 << (bits - 1))) >> bits;
}

static int8_t clip8(int64_t v) {
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

static int64_t quantise(int64_t q10, int step_shift) {
    return shr_round(q10, SER_LOG_FRAC_BITS - step_shift);
}

static inline int64_t mul(int32_t x, int32_t w) {
    return (int64_t)x * w;
}

/* Pre-emphasis and window of sample n, exact: |v| < 2^46. */
SER_ALWAYS_INLINE int64_t emphasised(const int16_t *x, int16_t prev, int n) {
    int32_t w = SER_WINDOW_Q15[n]; /* < 2^15, so both weights fit 31 bits */
    return mul(x[n], w << 15) - mul(n ? x[n - 1] : prev, w * SER_PREEMPHASIS_Q15);
}

/* dot() takes four at a time: both FFT passes' lengths must be multiples of 4 (C99 has no static_assert). */
typedef char ser_radix_multiple_of_4[(SER_R1 % 2 == 0 && SER_R2 % 4 == 0) ? 1 : -1];

/* acc + sum x[i] w[i], n a multiple of 4: four SMLALs per loop pass (each product added
 * to the accumulator on its own, so none needs a 64-bit add of its own). */
SER_ALWAYS_INLINE int64_t dot(int64_t acc, const int32_t *x, const int32_t *w, int n) {
    for (const int32_t *end = x + n; x != end; x += 4, w += 4) {
        acc += mul(x[0], w[0]);
        acc += mul(x[1], w[1]);
        acc += mul(x[2], w[2]);
        acc += mul(x[3], w[3]);
    }
    return acc;
}

void ser_frontend_reset(struct ser_frontend_state *s) {
    s->started = 0;
}

#if SER_NOISE_REDUCTION || SER_AGC
/* A tabulated curve at d >= 0 (Q10), linearly interpolated; 0 beyond the table. */
static int64_t curve(const int32_t *table, int64_t d) {
    const int step = SER_LOG_FRAC_BITS - SER_CURVE_STEP_BITS;
    if (d >= ((int64_t)SER_CURVE_SPAN << SER_LOG_FRAC_BITS)) {
        return 0;
    }
    int64_t i = d >> step, frac = d & ((1 << step) - 1);
    return table[i] + (((int64_t)(table[i + 1] - table[i]) * frac) >> step);
}

/* state += c (x - state), x in Q10, state in Q(10 + SER_STATE_EXTRA_BITS). */
static int32_t smooth(int32_t state, int64_t x, int32_t c_q15) {
    return (int32_t)(state + ((((x << SER_STATE_EXTRA_BITS) - state) * c_q15) >> 15));
}

/* normalise_bands for one frame: log2 mel energies (Q10, floored) -> values over the floor. */
static void normalise_bands(struct ser_frontend_state *s, int64_t *x) {
    int first = !s->started;
    s->started = 1;
    for (int b = 0; b < SER_NMELS; b++) {
        int64_t v = x[b];
#if SER_NOISE_REDUCTION
        if (first) {
            s->noise[b] = (int32_t)(v << SER_STATE_EXTRA_BITS);
        }
        int64_t tracked = s->noise[b] >> SER_STATE_EXTRA_BITS;
        int64_t noise = tracked + SER_NOISE_BIAS_Q10;
        int64_t cleaned = v + (v > noise ? curve(SER_NOISE_GAIN_Q10, v - noise) : SER_NOISE_GAIN_Q10[0]);
        int64_t floor_q10 = (int64_t)SER_LOG_FLOOR * (1 << SER_LOG_FRAC_BITS);
        s->noise[b] = v < tracked ? (int32_t)(v << SER_STATE_EXTRA_BITS) : smooth(s->noise[b], v, SER_NOISE_RISE_Q15);
        v = cleaned > floor_q10 ? cleaned : floor_q10;
#endif
#if SER_AGC
        s->level[b] = first ? (int32_t)(v << SER_STATE_EXTRA_BITS) : smooth(s->level[b], v, SER_AGC_SMOOTH_Q15);
        int64_t level = s->level[b] >> SER_STATE_EXTRA_BITS;
        int64_t gap = level > SER_AGC_OFFSET_Q10 ? level - SER_AGC_OFFSET_Q10 : SER_AGC_OFFSET_Q10 - level;
        int64_t reference = (level > SER_AGC_OFFSET_Q10 ? level : SER_AGC_OFFSET_Q10) + curve(SER_SOFTPLUS_Q10, gap);
        v -= (reference * SER_AGC_STRENGTH_Q15 + (1 << 14)) >> 15;
        int64_t agc_floor = (int64_t)SER_AGC_FLOOR * (1 << SER_LOG_FRAC_BITS);
        x[b] = (v > agc_floor ? v : agc_floor) - agc_floor;
#else
        x[b] = v - (int64_t)SER_LOG_FLOOR * (1 << SER_LOG_FRAC_BITS);
#endif
    }
}
#endif

void ser_frontend_frame(struct ser_frontend_state *s, const int16_t *x, int16_t prev, int8_t out[SER_NFEATURES]) {
    /* Working memory of one frame, 8.5 KB on the stack rather than static: on the board it
     * lives on the main thread's stack (32 KB, counted in Mbed OS's RAM), which the model's
     * windows use at other times, instead of RAM of its own. Every element is written
     * before it is read. Values are bounded so that every product is 32 x 32 -> 64 bits
     * (one SMULL/SMLAL on the Cortex-M4): samples normalised to |u| <= 2^23, pass 1's
     * outputs |a| < 2^28, spectrum |y| < 2^27. */
    int32_t u[SER_NFFT];
    int32_t a[2 * SER_R1][SER_R2];
    int32_t y[2][HALF + 1];
    int64_t power[HALF + 1];
    int64_t over_floor[SER_NMELS];
    /* emphasise_and_window: exact products, |v| < 2^46 */
    int64_t peak = 0;
    for (int n = 0; n < SER_WINDOW; n++) {
        int64_t v = emphasised(x, prev, n);
        int64_t mag = v < 0 ? -v : v;
        peak = mag > peak ? mag : peak;
    }
    /* normalise: block floating point, peak into [2^22, 2^23] (the products again: two
     * multiplies per sample are cheaper in RAM than keeping 480 64-bit values) */
    int shift = peak > 0 ? SER_NORM_BITS - ser_msb((uint64_t)peak) : 0;
    for (int n = 0; n < SER_WINDOW; n++) {
        int64_t v = emphasised(x, prev, n);
        u[n] = (int32_t)(shift >= 0 ? v * ((int64_t)1 << shift) : shr_round(v, -shift));
    }
    for (int n = SER_WINDOW; n < SER_NFFT; n++) {
        u[n] = 0;
    }
    MARK(1);
    /* real_fft pass 1: stacked[r][n2] = u[2 (n1 r2 + n2) + part], r = part r1 + n1 */
    for (int n2 = 0; n2 < SER_R2; n2++) {
        int32_t column[2 * SER_R1];
        for (int r = 0; r < 2 * SER_R1; r++) {
            int part = r / SER_R1, n1 = r % SER_R1;
            column[r] = u[2 * (n1 * SER_R2 + n2) + part];
        }
        for (int c = 0; c < 2 * SER_R1; c++) {
            a[c][n2] = (int32_t)shr_round(dot(0, column, SER_PASS1_Q15[c], 2 * SER_R1), 15);
        }
    }
    MARK(2);
    /* pass 2: group k1 reads row [re A[k1][n2]..., im A[r1+k1][n2]...] of its own and
     * of its mirror group; output column j = part (r2+1) + k2 is bin k = k2 r1 + k1. */
    for (int k1 = 0; k1 < SER_R1; k1++) {
        int m = SER_MIRROR[k1];
        const int32_t *own_re = a[k1], *own_im = a[SER_R1 + k1], *mirror_re = a[m], *mirror_im = a[SER_R1 + m];
        for (int j = 0; j < 2 * (SER_R2 + 1); j++) {
            int part = j / (SER_R2 + 1), k = (j % (SER_R2 + 1)) * SER_R1 + k1;
            if (k > HALF) {
                continue;
            }
            const int32_t *direct = SER_PASS2_DIRECT_Q15[k1][j], *mirror = SER_PASS2_MIRROR_Q15[m][j];
            int64_t acc = dot(0, own_re, direct, SER_R2);
            acc = dot(acc, own_im, direct + SER_R2, SER_R2);
            acc = dot(acc, mirror_re, mirror, SER_R2);
            acc = dot(acc, mirror_im, mirror + SER_R2, SER_R2);
            y[part][k] = (int32_t)shr_round(acc, 15 + SER_SPECTRUM_SHIFT);
        }
    }
    MARK(3);
    /* mel_energies: the power of each bin once, then the weighted sums */
    for (int k = 0; k <= HALF; k++) {
        power[k] = (mul(y[0][k], y[0][k]) + mul(y[1][k], y[1][k])) >> SER_POWER_SHIFT;
    }
    /* log_mel */
    int64_t offset = (int64_t)(2 * (46 - SER_SPECTRUM_SHIFT) - SER_POWER_SHIFT + SER_MEL_WEIGHT_BITS + 2 * shift)
                     << SER_LOG_FRAC_BITS;
    for (int b = 0; b < SER_NMELS; b++) {
        int64_t mel = 0;
        for (int k = SER_MEL_BINS[b][0]; k <= SER_MEL_BINS[b][1]; k++) { /* the bins the filter covers */
            mel += power[k] * SER_MEL_Q10[k][b];
        }
        int64_t logmel = ser_log2_q10(mel) - offset;
        int64_t floor_q10 = (int64_t)SER_LOG_FLOOR * (1 << SER_LOG_FRAC_BITS);
        over_floor[b] = logmel > floor_q10 ? logmel : floor_q10;
    }
    MARK(4);
#if SER_NOISE_REDUCTION || SER_AGC
    normalise_bands(s, over_floor); /* the floored levels become values over the floor */
#else
    (void)s;
    for (int b = 0; b < SER_NMELS; b++) {
        over_floor[b] -= (int64_t)SER_LOG_FLOOR * (1 << SER_LOG_FRAC_BITS);
    }
#endif
    MARK(5);
    /* the output columns, channel by channel */
    int col = 0;
    for (int ch = 0; ch < SER_NCHANNELS; ch++) {
        if (SER_CHANNELS[ch] == 1) { /* mfcc */
            for (int i = 0; i < SER_NMFCC; i++) {
                int64_t acc = 0;
                for (int b = 0; b < SER_NMELS; b++) {
                    acc += mul((int32_t)over_floor[b], SER_DCT_Q15[i][b]); /* values over the floor: < 2^21 */
                }
                int64_t c = shr_round(acc, 15);
                out[col++] = clip8(i == 0 ? quantise(c, SER_C0_STEP_SHIFT) - 128 : quantise(c, SER_MFCC_STEP_SHIFT));
            }
        } else if (SER_CHANNELS[ch] == 2) { /* logmel */
            for (int b = 0; b < SER_NMELS; b++) {
                out[col++] = clip8(quantise(over_floor[b], SER_LOGMEL_STEP_SHIFT) - 128);
            }
        } else if (SER_CHANNELS[ch] == 3) { /* zcr: sign changes, 0 counts as positive */
            int64_t count = 0;
            for (int n = 1; n < SER_WINDOW; n++) {
                count += (x[n] >= 0) != (x[n - 1] >= 0);
            }
            out[col++] = clip8((count * 510 + (SER_WINDOW - 1)) / (2 * (SER_WINDOW - 1)) - 128);
        } else { /* rms: log2 mean square over the floor */
            int64_t energy = 0;
            for (int n = 0; n < SER_WINDOW; n++) {
                energy += (int64_t)x[n] * x[n];
            }
            int64_t log_ms = ser_log2_q10(energy) - SER_LOG2_WINDOW_Q10 - ((int64_t)30 << SER_LOG_FRAC_BITS);
            int64_t floor_q10 = (int64_t)SER_LOG_FLOOR * (1 << SER_LOG_FRAC_BITS);
            int64_t e = (log_ms > floor_q10 ? log_ms : floor_q10) - floor_q10;
            out[col++] = clip8(quantise(e, SER_LOGMEL_STEP_SHIFT) - 128);
        }
    }
}

size_t ser_frontend_clip(const int16_t *pcm, size_t n, int8_t *out, size_t max_rows) {
    struct ser_frontend_state s;
    ser_frontend_reset(&s);
    size_t rows = 0;
    for (size_t start = 0; start + SER_WINDOW <= n && rows < max_rows; start += SER_HOP, rows++) {
        ser_frontend_frame(&s, pcm + start, start ? pcm[start - 1] : 0, out + rows * SER_NFEATURES);
    }
    return rows;
}

const char *ser_frontend_hash(void) {
    return SER_FRONTEND_HASH;
}
