/* The speech gate's k-of-n rule in C99, integer only: the same spans as
 * ser_edge.gate.speech_gate.speech_spans, one window's int8 P(speech) score at a time. A window
 * is speech when its score is at least threshold_q, the smallest int8 output whose
 * dequantised value reaches gate.speech_threshold (SpeechModel.threshold_q on the Pi). */
#ifndef SER_SPEECH_RULE_H
#define SER_SPEECH_RULE_H

#include <stdint.h>

#define SER_SPEECH_MAX_OF 16 /* the largest of_windows */

struct ser_speech_rule_settings {
    int32_t threshold_q; /* int8 score that makes a window speech */
    int32_t min_windows; /* speech starts when this many ... */
    int32_t of_windows;  /* ... of the last this many windows are speech */
    int32_t hangover;    /* windows in a row below the threshold that end it */
};

struct ser_speech_rule {
    struct ser_speech_rule_settings s;
    int32_t recent[SER_SPEECH_MAX_OF]; /* the last windows while no speech is open: index, or -1 */
    int32_t n_recent, oldest;
    int32_t window;              /* windows seen */
    int32_t first, last, misses; /* the open span (first < 0: none) */
};

struct ser_speech_span {
    int32_t first, last; /* window indices, both in the span */
};

/* Returns 0, or -1 when the settings are out of range. */
int ser_speech_rule_init(struct ser_speech_rule *r, const struct ser_speech_rule_settings *s);

/* One window's score; returns 1 when it ended a span (*span set). */
int ser_speech_rule_window(struct ser_speech_rule *r, int8_t score, struct ser_speech_span *span);

/* End of the candidate stretch: returns 1 with the span still open, or with the whole
 * stretch when it had fewer than min_windows windows, all of them speech; then starts afresh. */
int ser_speech_rule_flush(struct ser_speech_rule *r, struct ser_speech_span *span);

#endif
