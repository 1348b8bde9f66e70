#include "speech_rule.h"

#include <string.h>

int ser_speech_rule_init(struct ser_speech_rule *r, const struct ser_speech_rule_settings *s) {
    memset(r, 0, sizeof *r);
    if (s->min_windows < 1 || s->of_windows < s->min_windows || s->of_windows > SER_SPEECH_MAX_OF ||
        s->hangover < 1 || s->threshold_q < -128 || s->threshold_q > 128) {
        return -1;
    }
    r->s = *s;
    r->first = -1;
    return 0;
}

/* Speech windows among the recent verdicts, and the first of them (-1: none). */
static int32_t recent_speech(const struct ser_speech_rule *r, int32_t *first) {
    int32_t count = 0;
    *first = -1;
    for (int32_t i = 0; i < r->n_recent; i++) {
        int32_t w = r->recent[(r->oldest + i) % r->s.of_windows];
        if (w >= 0) {
            count++;
            *first = *first < 0 ? w : *first;
        }
    }
    return count;
}

int ser_speech_rule_window(struct ser_speech_rule *r, int8_t score, struct ser_speech_span *span) {
    int speech = score >= r->s.threshold_q;
    int32_t j = r->window++;
    if (r->first < 0) {
        /* the last of_windows verdicts, oldest first from r->oldest */
        if (r->n_recent == r->s.of_windows) {
            r->recent[r->oldest] = speech ? j : -1;
            r->oldest = (r->oldest + 1) % r->s.of_windows;
        } else {
            r->recent[(r->oldest + r->n_recent++) % r->s.of_windows] = speech ? j : -1;
        }
        int32_t first;
        if (recent_speech(r, &first) >= r->s.min_windows) {
            r->first = first;
            r->last = j;
            r->misses = 0;
            r->n_recent = r->oldest = 0;
        }
        return 0;
    }
    if (speech) {
        r->last = j;
        r->misses = 0;
        return 0;
    }
    if (++r->misses < r->s.hangover) {
        return 0;
    }
    span->first = r->first;
    span->last = r->last;
    r->first = -1;
    return 1;
}

int ser_speech_rule_flush(struct ser_speech_rule *r, struct ser_speech_span *span) {
    int open = r->first >= 0;
    if (open) {
        span->first = r->first;
        span->last = r->last;
    } else if (r->window > 0 && r->window < r->s.min_windows) {
        /* A stretch shorter than min_windows windows (no span can have opened and ended, and
         * recent holds every window): speech when all of its windows are. */
        int32_t first;
        if (recent_speech(r, &first) == r->window) {
            span->first = 0;
            span->last = r->window - 1;
            open = 1;
        }
    }
    struct ser_speech_rule_settings s = r->s;
    ser_speech_rule_init(r, &s);
    return open;
}
