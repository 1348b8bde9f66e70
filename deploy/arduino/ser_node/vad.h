/* The voice activity gate in C99, integer only: the same decisions and utterance
 * boundaries as ser_edge.gate.vad.Gate with the energy judge (edge/docs/daemon.md). It keeps no
 * audio: it reports frame indices, and the caller keeps what it needs (the pre-roll). */
#ifndef SER_VAD_H
#define SER_VAD_H

#include <stdint.h>

#define SER_VAD_FRAME 320 /* 20 ms at 16 kHz */
#define SER_VAD_BLOCK_FRAMES 25
#define SER_VAD_BLOCKS 6

struct ser_vad_settings { /* from GateSettings; levels in log2 Q10 (vad.db_to_q10) */
    int32_t min_floor_q10, start_q10, stop_q10, max_crossings;
    int32_t onset, hangover, min_frames, max_frames, preroll; /* in frames */
};

struct ser_vad {
    struct ser_vad_settings s;
    int32_t floor, minima[SER_VAD_BLOCKS], n_minima, next_minimum, block_min, block_frames;
    int has_floor;     /* a frame with signal has set the floor */
    int32_t silent;    /* frames in a row without signal */
    int open;
    int32_t run;       /* voiced frames in a row (closed) or unvoiced in a row (open) */
    int32_t pre;       /* frames held as pre-roll while closed */
    int32_t length;    /* frames in the open utterance */
    int32_t voiced_first, voiced_last; /* indices into the open utterance */
    uint32_t frame;    /* frames seen */
    int voiced;        /* the last frame's judgement */
    int32_t level_q10; /* the last frame's level */
};

struct ser_utterance {
    uint32_t start, end; /* frame indices, end exclusive */
};

void ser_vad_init(struct ser_vad *v, const struct ser_vad_settings *s);

/* One frame; returns 1 when it closed an utterance long enough to keep (*u set). */
int ser_vad_frame(struct ser_vad *v, const int16_t frame[SER_VAD_FRAME], struct ser_utterance *u);

/* End of stream: returns 1 with the open utterance if it is long enough. */
int ser_vad_flush(struct ser_vad *v, struct ser_utterance *u);

#endif
