/* The node's processing core, shared by the sketch and the host emulator: 20 ms frames
 * of PCM in; the gate, the front end and (results mode) the model; protocol frames out.
 * What differs between a board and the emulator (microphone, serial port, TFLite Micro,
 * clock) is the caller's; C99, no malloc, no floating point.
 *
 * The Pi drives it (PROTOCOL.md): until a CONFIG arrives the node only beacons HELLO;
 * CONFIG sets the mode and the gate, and the node answers with HELLO again. Without word
 * from the Pi for SER_NODE_LINK_TIMEOUT_MS the node goes back to beaconing. */
#ifndef SER_NODE_H
#define SER_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "frontend.h"
#include "protocol.h"
#include "speech_rule.h"
#include "vad.h"

#define SER_NODE_RING 24          /* PCM frames kept for the pre-roll: preroll + onset <= this (480 ms) */
#define SER_NODE_MAX_ROWS 512     /* feature rows of the longest utterance (max_frames - 1) */
#define SER_NODE_MAX_LABELS 16
#define SER_NODE_AUDIO_FRAMES 5   /* 20 ms frames per AUDIO message */
#define SER_NODE_BEACON_MS 1000   /* HELLO period while unconfigured */
#define SER_NODE_HEARTBEAT_MS 1000
#define SER_NODE_LINK_TIMEOUT_MS 5000
#define SER_NODE_CONFIG_BYTES 37  /* mode u8 + the nine int32 of ser_vad_settings */
#define SER_NODE_CONFIG_SPEECH_BYTES 53 /* ... + the four int32 of ser_speech_rule_settings (gate.kind speech) */
#define SER_NODE_ROWS_PER_FRAME 2 /* feature rows per audio frame at most while an utterance is open: the
                                   * pre-roll's rows catch up one a frame instead of all at the gate's opening */
#define SER_NODE_RX_PAYLOAD 64    /* the longest message the node takes from the Pi: CONFIG, 53 bytes at most;
                                   * a longer frame is dropped as damaged (PROTOCOL.md) */
#define SER_NODE_PAYLOAD 1024     /* HELLO, and a results-mode utterance's scores (8 + windows x labels bytes);
                                   * FEATURES and AUDIO go out from the rows and the ring themselves */

enum ser_node_mode { SER_NODE_IDLE = 0, SER_NODE_AUDIO = 1, SER_NODE_FEATURES = 2, SER_NODE_RESULTS = 3 };

struct ser_node_io {
    /* Bytes for the serial port. */
    void (*write)(void *ctx, const uint8_t *data, size_t n);
    /* One window (window_frames x SER_NFEATURES int8) -> one int8 score per label;
     * returns 0 on success. NULL when the node has no model (no results mode). */
    int (*classify)(void *ctx, const int8_t *window, int8_t *scores);
    void *ctx;
    /* The speech gate's model: one window (speech_window_frames x SER_NFEATURES int8) ->
     * its int8 P(speech) score; returns 0 on success. NULL when the node has none. */
    int (*speech)(void *ctx, const int8_t *window, int8_t *score);
};

struct ser_node_model { /* from the bundles' manifests (model_data.h on the board) */
    const char *sha256;      /* model.tflite's SHA-256, all 64 hex digits; "" without a model */
    int32_t labels, window_frames, hop_frames;
    const char *speech_sha256; /* the speech gate's model, when io.speech is set */
    int32_t speech_window_frames, speech_hop_frames;
};

struct ser_node {
    struct ser_node_io io;
    struct ser_node_model model;
    const char *firmware;
    int mode;
    struct ser_deframer rx;
    uint8_t rx_frame[SER_DEFRAMER_BYTES(SER_NODE_RX_PAYLOAD)]; /* the deframer's buffer */
    uint8_t payload[SER_NODE_PAYLOAD];
    uint16_t seq;
    uint32_t last_heard_ms, last_sent_ms;
    struct ser_vad vad;
    uint32_t frames;                           /* audio frames since boot: the node's clock */
    uint32_t vad_origin;                       /* frames before the gate started (its frame 0) */
    int16_t ring[SER_NODE_RING][SER_VAD_FRAME]; /* the last frames, by frame index */
    int32_t audio_frames;                       /* audio mode: the last ones not sent yet (in the ring) */
    int8_t rows[SER_NODE_MAX_ROWS][SER_NFEATURES]; /* the open utterance's features */
    struct ser_frontend_state fe;                  /* the front end's memory within the utterance */
    int32_t n_rows;
    int32_t windows; /* results mode: windows of the open utterance scored so far */
    int failed;      /* ... and whether the model failed on one */
    uint32_t utterance_start; /* gate frame index; valid while utterance_open */
    int utterance_open;
    int8_t pad[SER_NFEATURES]; /* the front end's row for silence: what short windows are padded with */
    int speech_on;                 /* gate.kind speech: the gate's stretches go through the speech rule */
    struct ser_speech_rule rule;   /* ... over the speech model's windows of the open stretch */
    int32_t speech_windows;        /* windows of the open stretch scored so far */
    int span_pending;              /* a span has ended, its hangover's rows are still to come */
    struct ser_speech_span pending;
};

/* Returns 0, or -1 when the model's shape exceeds the compiled-in limits. */
int ser_node_init(struct ser_node *n, const struct ser_node_io *io, const struct ser_node_model *model,
                  const char *firmware);

/* Bytes from the serial port, at wall time now_ms. */
void ser_node_receive(struct ser_node *n, const uint8_t *data, size_t len, uint32_t now_ms);

/* Timers (HELLO beacon, heartbeat, link timeout); call often with the wall time. */
void ser_node_tick(struct ser_node *n, uint32_t now_ms);

/* A LOG message to the Pi (it logs it as a warning). */
void ser_node_log(struct ser_node *n, const char *text);

/* One 20 ms frame from the microphone. */
void ser_node_audio(struct ser_node *n, const int16_t frame[SER_VAD_FRAME]);

#endif
