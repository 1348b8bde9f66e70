/* The fixed-point front end in C99: int16 PCM at 16 kHz in, int8 feature rows out,
 * bit for bit the same as ser_edge.frontend (edge/docs/frontend.md) for the config whose
 * tables and hash frontend_tables.h holds. No malloc, no floating point. */
#ifndef SER_FRONTEND_H
#define SER_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "frontend_tables.h"

/* What noise reduction and gain control remember between the frames of one stream (an
 * utterance on the node), per mel band in Q(10 + SER_STATE_EXTRA_BITS); unused when the
 * config has neither. */
struct ser_frontend_state {
    int started;
    int32_t noise[SER_NMELS];
    int32_t level[SER_NMELS];
};

/* Start a new stream. */
void ser_frontend_reset(struct ser_frontend_state *s);

/* One frame: SER_WINDOW samples, prev = the sample before them (0 at the stream's start). */
void ser_frontend_frame(struct ser_frontend_state *s, const int16_t *x, int16_t prev, int8_t out[SER_NFEATURES]);

/* Every complete frame of a clip (one stream), SER_HOP apart; returns the number of rows
 * written (out holds max_rows * SER_NFEATURES). */
size_t ser_frontend_clip(const int16_t *pcm, size_t n, int8_t *out, size_t max_rows);

/* The config hash compiled in, e.g. "50ef837fe42c". */
const char *ser_frontend_hash(void);

#endif
