/* Integer helpers shared by the front end and the voice gate (edge/ser_edge/frontend/fixed.py). */
#ifndef SER_FIXED_POINT_H
#define SER_FIXED_POINT_H

#include <stdint.h>

#include "frontend_tables.h" /* SER_LOG2_Q16, SER_LOG_FRAC_BITS, SER_LOG_TABLE_BITS */

/* Inlined even at -Os (the Arduino core's level), where a call per use would cost more
 * than the loop it wraps. */
#if defined(__GNUC__)
#define SER_ALWAYS_INLINE __attribute__((always_inline)) static inline
#else
#define SER_ALWAYS_INLINE static inline
#endif

/* A log2 value below every floor, standing for log2(0). */
#define SER_LOG_ZERO (-((int64_t)1 << 30))

/* floor(log2 x) for x > 0: 63 - clz, one CLZ instruction per word on the Cortex-M4. */
static inline int ser_msb(uint64_t x) {
#if defined(__GNUC__)
    return 63 - __builtin_clzll(x);
#else
    int e = 0;
    while (x >>= 1) {
        e++;
    }
    return e;
#endif
}

/* log2(x) in Q10: exponent from the top bit, mantissa from the 65-entry Q16 table with
 * linear interpolation on the next 24 bits. */
static inline int64_t ser_log2_q10(int64_t x) {
    if (x <= 0) {
        return SER_LOG_ZERO;
    }
    int e = ser_msb((uint64_t)x);
    int64_t frac = e <= 30 ? x << (30 - e) : x >> (e - 30);
    frac &= ((int64_t)1 << 30) - 1;
    int64_t idx = frac >> (30 - SER_LOG_TABLE_BITS);
    int64_t rem = frac & (((int64_t)1 << (30 - SER_LOG_TABLE_BITS)) - 1);
    int64_t lo = SER_LOG2_Q16[idx], hi = SER_LOG2_Q16[idx + 1];
    int64_t mant = lo + (((hi - lo) * rem) >> (30 - SER_LOG_TABLE_BITS));
    return ((int64_t)e << SER_LOG_FRAC_BITS) + ((mant + 32) >> 6);
}

#endif
