/* Voice activity gate; see vad.h. Mirrors EnergyJudge and Gate in edge/ser_edge/vad.py. */
#include "vad.h"

#include <string.h>

#include "fixed_point.h"

void ser_vad_init(struct ser_vad *v, const struct ser_vad_settings *s) {
    memset(v, 0, sizeof *v);
    v->s = *s; /* the floor is set by the first frame with signal (has_floor) */
}

static int judge(struct ser_vad *v, int32_t level, int32_t crossings) {
    if (level < v->s.min_floor_q10) { /* no signal: unvoiced, and the floor stays ... */
        if (++v->silent == SER_VAD_BLOCK_FRAMES) { /* ... until half a second of it ends the recording */
            v->has_floor = 0;
            v->n_minima = v->next_minimum = v->block_frames = 0;
        }
        return 0;
    }
    v->silent = 0;
    if (!v->has_floor) { /* the floor starts at the first frame with signal */
        v->floor = level;
        v->has_floor = 1;
    }
    int32_t bar = v->floor + (v->open ? v->s.stop_q10 : v->s.start_q10);
    int voiced = level >= bar && crossings <= v->s.max_crossings;
    v->block_min = v->block_frames == 0 ? level : (level < v->block_min ? level : v->block_min);
    v->block_frames++;
    int32_t target = v->block_min;
    for (int i = 0; i < v->n_minima; i++) {
        target = v->minima[i] < target ? v->minima[i] : target;
    }
    if (v->block_frames == SER_VAD_BLOCK_FRAMES) { /* a ring of the last SER_VAD_BLOCKS block minima */
        v->minima[v->next_minimum] = v->block_min;
        v->next_minimum = (v->next_minimum + 1) % SER_VAD_BLOCKS;
        v->n_minima += v->n_minima < SER_VAD_BLOCKS;
        v->block_frames = 0;
    }
    v->floor = target < v->floor ? target : v->floor + ((target - v->floor) >> 3);
    v->floor = v->floor > v->s.min_floor_q10 ? v->floor : v->s.min_floor_q10;
    return voiced;
}

static int close_utterance(struct ser_vad *v, struct ser_utterance *u) {
    int32_t length = v->length, span = v->voiced_last - v->voiced_first + 1;
    uint32_t end = v->frame;
    v->length = 0;
    v->run = 0;
    v->voiced_first = 0;
    v->voiced_last = -1;
    if (length == 0 || span < v->s.min_frames) {
        return 0;
    }
    u->start = end - (uint32_t)length;
    u->end = end;
    return 1;
}

int ser_vad_frame(struct ser_vad *v, const int16_t x[SER_VAD_FRAME], struct ser_utterance *u) {
    int64_t energy = 0;
    int32_t crossings = 0;
    for (int n = 0; n < SER_VAD_FRAME; n++) {
        energy += (int64_t)x[n] * x[n];
        crossings += n && ((x[n] >= 0) != (x[n - 1] >= 0));
    }
    /* log2 of the mean square re full scale; round(1024 log2(320)) = 8522. Silence gives
     * about -2^30, still an int32. */
    v->level_q10 = (int32_t)(ser_log2_q10(energy) - 8522 - ((int64_t)30 << SER_LOG_FRAC_BITS));
    int voiced = v->voiced = judge(v, v->level_q10, crossings);
    v->frame++;
    if (!v->open) {
        int32_t cap = v->s.preroll + v->s.onset;
        /* the pre-roll is what came after the last frame without signal, never that frame */
        v->pre = v->level_q10 < v->s.min_floor_q10 ? 0 : v->pre + (v->pre < cap);
        v->run = voiced ? v->run + 1 : 0;
        if (v->run >= v->s.onset) {
            v->open = 1;
            v->length = v->pre;
            v->voiced_first = v->pre - v->run;
            v->voiced_last = v->pre - 1;
            v->pre = 0;
            v->run = 0;
        }
        return 0;
    }
    v->length++;
    v->run = voiced ? 0 : v->run + 1;
    if (voiced) {
        v->voiced_last = v->length - 1;
    }
    if (v->run >= v->s.hangover) {
        v->open = 0;
        return close_utterance(v, u);
    }
    if (v->length >= v->s.max_frames) { /* long speech is cut; the gate stays open */
        return close_utterance(v, u);
    }
    return 0;
}

int ser_vad_flush(struct ser_vad *v, struct ser_utterance *u) {
    int kept = close_utterance(v, u);
    v->open = 0;
    v->pre = 0;
    return kept;
}
