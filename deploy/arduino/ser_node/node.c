/* The node's processing core; see node.h. Feature rows are computed as
 * ser_edge.frontend.compute_features computes them on the utterance's own samples: row j
 * starts j hops after the utterance's first sample, and row 0's pre-emphasis sees a zero
 * before it. So the Pi gets exactly the rows it would have computed itself. */
#include "node.h"

#include <stdio.h>
#include <string.h>

static const char *const MODE_NAMES[] = {"idle", "audio", "features", "results"};

static void put_u16(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v) {
    put_u16(p, v);
    put_u16(p + 2, v >> 16);
}

static int32_t get_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* A message of payload parts, encoded straight to the port (no frame buffer). */
static void send_parts(struct ser_node *n, uint8_t type, const struct ser_part *parts, size_t count) {
    const uint8_t delimiter = 0; /* ends whatever line noise came before, so it costs only itself */
    n->io.write(n->io.ctx, &delimiter, 1);
    ser_frame_write(type, n->seq++, parts, count, n->io.write, n->io.ctx);
}

static void send(struct ser_node *n, uint8_t type, const uint8_t *payload, size_t len) {
    struct ser_part part = {payload, len};
    send_parts(n, type, &part, 1);
}

void ser_node_log(struct ser_node *n, const char *text) {
    send(n, SER_LOG, (const uint8_t *)text, strlen(text));
}

/* The node's clock (ms since boot, counted in audio frames) at the gate's frame f. */
static uint32_t clock_ms(const struct ser_node *n, uint32_t f) {
    return (n->vad_origin + f) * 20u;
}

static void send_hello(struct ser_node *n, uint32_t now_ms) {
    int len = snprintf((char *)n->payload, sizeof n->payload,
                       "{\"firmware\":\"%s\",\"frontend\":\"%s\",\"model\":\"%s\",\"speech_model\":\"%s\","
                       "\"modes\":[\"audio\",\"features\"%s],\"mode\":\"%s\",\"speech\":%s,\"uptime_ms\":%lu}",
                       n->firmware, ser_frontend_hash(), n->model.sha256, n->io.speech ? n->model.speech_sha256 : "",
                       n->io.classify ? ",\"results\"" : "", MODE_NAMES[n->mode], n->speech_on ? "true" : "false",
                       (unsigned long)n->frames * 20u);
    len = len < 0 ? 0 : len >= (int)sizeof n->payload ? (int)sizeof n->payload - 1 : len; /* as snprintf cut it */
    send(n, SER_HELLO, n->payload, (size_t)len);
    n->last_sent_ms = now_ms;
}

int ser_node_init(struct ser_node *n, const struct ser_node_io *io, const struct ser_node_model *model,
                  const char *firmware) {
    memset(n, 0, sizeof *n);
    n->io = *io;
    n->model = *model;
    n->firmware = firmware;
    ser_deframer_init(&n->rx, n->rx_frame, sizeof n->rx_frame);
    int16_t silence[SER_WINDOW] = {0};
    ser_frontend_reset(&n->fe);
    ser_frontend_frame(&n->fe, silence, 0, n->pad); /* a stream's first row of silence, as in Python */
    if (io->classify && (model->labels < 1 || model->labels > SER_NODE_MAX_LABELS || model->window_frames < 1 ||
                         model->window_frames > SER_NODE_MAX_ROWS || model->hop_frames < 1 ||
                         8 + (SER_NODE_MAX_ROWS / model->hop_frames + 2) * model->labels > SER_NODE_PAYLOAD)) {
        return -1;
    }
    if (io->speech && (model->speech_window_frames < 1 || model->speech_window_frames > SER_NODE_MAX_ROWS ||
                       model->speech_hop_frames < 1 || !model->speech_sha256)) {
        return -1;
    }
    return 0;
}

/* NULL when the Pi's CONFIG can be applied, else why not. */
static const char *config_problem(const struct ser_node *n, int mode, const struct ser_vad_settings *s, int speech) {
    if (mode < SER_NODE_AUDIO || mode > SER_NODE_RESULTS) {
        return "config refused: unknown mode";
    }
    if (speech && !n->io.speech) {
        return "config refused: the speech gate needs its model and this firmware has none";
    }
    if (speech && mode != SER_NODE_FEATURES) {
        return "config refused: the speech gate runs in features mode only";
    }
    if (mode == SER_NODE_RESULTS && !n->io.classify) {
        return "config refused: results mode needs a model and this firmware has none";
    }
    if (s->onset < 1 || s->preroll < 0 || s->preroll + s->onset > SER_NODE_RING) {
        return "config refused: pre-roll + onset exceed the node's ring (SER_NODE_RING frames)";
    }
    if (s->max_frames < 2 || s->max_frames - 1 > SER_NODE_MAX_ROWS) {
        return "config refused: max utterance exceeds the node's rows (SER_NODE_MAX_ROWS)";
    }
    return NULL;
}

static void configure(struct ser_node *n, const uint8_t *p, size_t len, uint32_t now_ms) {
    if (len != SER_NODE_CONFIG_BYTES && len != SER_NODE_CONFIG_SPEECH_BYTES) {
        ser_node_log(n, "config refused: wrong length");
        return;
    }
    int32_t v[13];
    for (int i = 0; i < (int)(len - 1) / 4; i++) {
        v[i] = get_i32(p + 1 + 4 * i);
    }
    struct ser_vad_settings s = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]};
    int speech = len == SER_NODE_CONFIG_SPEECH_BYTES;
    const char *problem = config_problem(n, p[0], &s, speech);
    struct ser_speech_rule_settings rule = {0, 0, 0, 0};
    if (!problem && speech) {
        rule = (struct ser_speech_rule_settings){v[9], v[10], v[11], v[12]};
        if (ser_speech_rule_init(&n->rule, &rule) != 0) {
            problem = "config refused: speech rule out of range";
        }
    }
    if (problem) {
        n->mode = SER_NODE_IDLE;
        ser_node_log(n, problem);
        return;
    }
    n->mode = p[0];
    n->speech_on = speech;
    ser_vad_init(&n->vad, &s);
    n->vad_origin = n->frames;
    n->utterance_open = 0;
    n->audio_frames = 0;
    send_hello(n, now_ms);
}

void ser_node_receive(struct ser_node *n, const uint8_t *data, size_t len, uint32_t now_ms) {
    for (size_t i = 0; i < len; i++) {
        if (!ser_deframer_feed(&n->rx, data[i])) {
            continue;
        }
        n->last_heard_ms = now_ms;
        if (n->rx.type == SER_CONFIG) {
            configure(n, n->rx.payload, n->rx.length, now_ms);
        }
    }
}

void ser_node_tick(struct ser_node *n, uint32_t now_ms) {
    if (n->mode != SER_NODE_IDLE && now_ms - n->last_heard_ms >= SER_NODE_LINK_TIMEOUT_MS) {
        n->mode = SER_NODE_IDLE; /* the Pi went away: beacon until it configures us again */
    }
    if (n->mode == SER_NODE_IDLE) {
        if (now_ms - n->last_sent_ms >= SER_NODE_BEACON_MS) {
            send_hello(n, now_ms);
        }
    } else if (now_ms - n->last_sent_ms >= SER_NODE_HEARTBEAT_MS) {
        uint8_t uptime[4];
        put_u32(uptime, n->frames * 20u);
        send(n, SER_HEARTBEAT, uptime, sizeof uptime);
        n->last_sent_ms = now_ms;
    }
}

/* Rows first..last of the utterance starting at frame s; their frames are in the ring. */
static void compute_rows(struct ser_node *n, uint32_t s, int32_t last) {
    int16_t x[SER_WINDOW];
    for (; n->n_rows <= last; n->n_rows++) {
        uint32_t f = n->vad_origin + s + (uint32_t)n->n_rows;
        memcpy(x, n->ring[f % SER_NODE_RING], sizeof n->ring[0]);
        memcpy(x + SER_VAD_FRAME, n->ring[(f + 1) % SER_NODE_RING], (SER_WINDOW - SER_VAD_FRAME) * sizeof x[0]);
        int16_t prev = n->n_rows ? n->ring[(f - 1) % SER_NODE_RING][SER_VAD_FRAME - 1] : 0;
        if (n->n_rows == 0) {
            ser_frontend_reset(&n->fe); /* each utterance is a stream of its own, from its pre-roll */
        }
        ser_frontend_frame(&n->fe, x, prev, n->rows[n->n_rows]);
    }
}

/* FEATURES pieces of rows first .. first + rows - 1 (at most what one message holds each),
 * for the span start_ms .. end_ms; the rows go out from n->rows itself. */
static void send_rows(struct ser_node *n, uint32_t start_ms, uint32_t end_ms, int32_t first, int32_t rows) {
    const int32_t per_piece = (SER_MAX_PAYLOAD - 12) / SER_NFEATURES;
    int32_t sent = 0;
    do { /* an utterance always has rows; the loop also sends none for an empty one */
        int32_t k = rows - sent < per_piece ? rows - sent : per_piece;
        uint8_t header[12];
        put_u32(header, start_ms);
        put_u32(header + 4, end_ms);
        put_u16(header + 8, (uint32_t)rows);
        put_u16(header + 10, (uint32_t)sent);
        struct ser_part parts[2] = {{header, sizeof header}, {(const uint8_t *)n->rows[first + sent], (size_t)k * SER_NFEATURES}};
        send_parts(n, SER_FEATURES, parts, 2);
        sent += k;
    } while (sent < rows);
}

static void send_features(struct ser_node *n, const struct ser_utterance *u) {
    send_rows(n, clock_ms(n, u->start), clock_ms(n, u->end), 0, n->n_rows);
}

/* The scoring rule of ser_edge.recognition.scoring: windows of window_frames rows every hop_frames,
 * a last one aligned to the end, short utterances padded with silence rows. The regular
 * windows are scored as soon as their rows exist, so an utterance's end costs at most one
 * inference. The scores collect in the payload buffer, after the 8 bytes of times (in
 * results mode nothing else is sent from it while an utterance is open; init checked
 * that every window fits). */
static int score_window(struct ser_node *n, int32_t start) {
    int8_t *scores = (int8_t *)n->payload + 8 + n->windows * n->model.labels;
    if (n->failed || n->io.classify(n->io.ctx, n->rows[start], scores) != 0) {
        n->failed = 1;
        return -1;
    }
    n->windows++;
    return 0;
}

static void score_ready_windows(struct ser_node *n) {
    while (n->windows * n->model.hop_frames + n->model.window_frames <= n->n_rows) {
        if (score_window(n, n->windows * n->model.hop_frames) != 0) {
            return;
        }
    }
}

static void send_result(struct ser_node *n, const struct ser_utterance *u) {
    int32_t w = n->model.window_frames, rows = n->n_rows;
    if (rows < w) { /* short: one window, padded with silence */
        for (; rows < w; rows++) {
            memcpy(n->rows[rows], n->pad, SER_NFEATURES);
        }
        score_window(n, 0);
    } else if ((n->windows - 1) * n->model.hop_frames + w < rows) { /* the tail the regular windows missed */
        score_window(n, rows - w);
    }
    if (n->failed) {
        ser_node_log(n, "inference failed; utterance dropped");
        return;
    }
    put_u32(n->payload, clock_ms(n, u->start));
    put_u32(n->payload + 4, clock_ms(n, u->end));
    send(n, SER_RESULT, n->payload, 8 + (size_t)(n->windows * n->model.labels));
}

/* gate.kind speech: the FEATURES of one span of speech windows, first..last, of the open
 * stretch: its rows from the pre-roll before its first window to the hangover after its
 * last, as ser_edge.gate.speech_gate.SpeechGate.speech_in cuts it (rows of the stretch's own
 * front end). */
static int32_t span_end(const struct ser_node *n, const struct ser_speech_span *span) {
    return span->last * n->model.speech_hop_frames + n->model.speech_window_frames + n->vad.s.hangover;
}

static void send_span(struct ser_node *n, uint32_t start, const struct ser_speech_span *span) {
    int32_t a = span->first * n->model.speech_hop_frames - n->vad.s.preroll, b = span_end(n, span);
    int32_t frames = n->n_rows + 1; /* the stretch's frames: row j needs frames j and j + 1 */
    a = a < 0 ? 0 : a;
    b = b > frames ? frames : b;
    send_rows(n, clock_ms(n, start + (uint32_t)a), clock_ms(n, start + (uint32_t)b), a, b - a - 1);
}

/* A span that ended waits for its hangover's rows (or the stretch's close), then goes. */
static void hold_span(struct ser_node *n, uint32_t start, const struct ser_speech_span *span) {
    if (n->span_pending) {
        send_span(n, start, &n->pending);
    }
    n->pending = *span;
    n->span_pending = 1;
}

static void release_span(struct ser_node *n, uint32_t start, int closed) {
    if (n->span_pending && (closed || span_end(n, &n->pending) <= n->n_rows + 1)) {
        send_span(n, start, &n->pending);
        n->span_pending = 0;
    }
}

/* The speech model's windows of the open stretch as their rows exist (every hop rows from
 * its first; one padded window for a stretch shorter than a window, at its close), each
 * through the rule; a span that ends is sent once its hangover's rows exist. */
static void speech_windows(struct ser_node *n, uint32_t start, int closed) {
    int32_t hop = n->model.speech_hop_frames, w = n->model.speech_window_frames;
    struct ser_speech_span span;
    int8_t score;
    if (closed && n->speech_windows == 0 && n->n_rows < w) {
        for (int32_t r = n->n_rows; r < w; r++) {
            memcpy(n->rows[r], n->pad, SER_NFEATURES);
        }
        if (n->io.speech(n->io.ctx, n->rows[0], &score) == 0) {
            ser_speech_rule_window(&n->rule, score, &span); /* a single window cannot end a span */
        }
        n->speech_windows = 1;
    }
    while (n->speech_windows * hop + w <= n->n_rows) {
        if (n->io.speech(n->io.ctx, n->rows[n->speech_windows * hop], &score) != 0) {
            ser_node_log(n, "speech model failed; stretch dropped");
            n->speech_windows = SER_NODE_MAX_ROWS; /* no more windows of this stretch */
            ser_speech_rule_flush(&n->rule, &span);
            n->span_pending = 0;
            return;
        }
        n->speech_windows++;
        if (ser_speech_rule_window(&n->rule, score, &span)) {
            hold_span(n, start, &span);
        }
    }
    if (closed && ser_speech_rule_flush(&n->rule, &span)) {
        hold_span(n, start, &span);
    }
    release_span(n, start, closed);
}

static void utterance_frame(struct ser_node *n) {
    struct ser_utterance u;
    int closed = ser_vad_frame(&n->vad, n->ring[n->frames % SER_NODE_RING], &u);
    if (!closed && !n->vad.open) {
        n->utterance_open = 0; /* nothing open, or one too short to keep */
        return;
    }
    uint32_t start = closed ? u.start : n->vad.frame - (uint32_t)n->vad.length;
    uint32_t end = closed ? u.end : n->vad.frame;
    if (!n->utterance_open || n->utterance_start != start) {
        n->utterance_open = 1;
        n->utterance_start = start;
        n->n_rows = 0;
        n->windows = 0;
        n->failed = 0;
        n->speech_windows = 0;
        n->span_pending = 0;
        if (n->speech_on) {
            ser_speech_rule_flush(&n->rule, &(struct ser_speech_span){0, 0}); /* a stretch of its own */
        }
    }
    int32_t last = (int32_t)(end - start) - 2; /* row j needs frames j and j + 1 */
    if (!closed && last >= n->n_rows + SER_NODE_ROWS_PER_FRAME) {
        /* Catch up a row a frame: the oldest frame still needed gets no older, so it stays
         * in the ring (config_problem checked pre-roll + onset fit), and no call blocks
         * for the whole pre-roll. The close computes whatever is left. */
        last = n->n_rows + SER_NODE_ROWS_PER_FRAME - 1;
    }
    compute_rows(n, start, last);
    if (n->speech_on) {
        speech_windows(n, start, closed);
        n->utterance_open = !closed;
        return;
    }
    if (n->mode == SER_NODE_RESULTS) {
        score_ready_windows(n);
    }
    if (closed) {
        n->mode == SER_NODE_FEATURES ? send_features(n, &u) : send_result(n, &u);
        n->utterance_open = 0;
    }
}

void ser_node_audio(struct ser_node *n, const int16_t frame[SER_VAD_FRAME]) {
    memcpy(n->ring[n->frames % SER_NODE_RING], frame, sizeof n->ring[0]);
    if (n->mode == SER_NODE_AUDIO) {
        if (++n->audio_frames == SER_NODE_AUDIO_FRAMES) { /* the last frames, straight from the ring */
            struct ser_part parts[SER_NODE_AUDIO_FRAMES];
            for (int i = 0; i < SER_NODE_AUDIO_FRAMES; i++) {
                uint32_t f = n->frames - (SER_NODE_AUDIO_FRAMES - 1) + (uint32_t)i;
                parts[i] = (struct ser_part){(const uint8_t *)n->ring[f % SER_NODE_RING], sizeof n->ring[0]};
            }
            send_parts(n, SER_AUDIO, parts, SER_NODE_AUDIO_FRAMES); /* little-endian, as the Pi */
            n->audio_frames = 0;
        }
    } else if (n->mode != SER_NODE_IDLE) {
        utterance_frame(n);
    }
    n->frames++;
}
