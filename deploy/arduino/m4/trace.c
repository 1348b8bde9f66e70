/* The node's core on the target, driven from a host file (m4.py writes it) and measured
 * in instructions. Three runs:
 *   'F' the front end: a row per 20 ms frame, as the node computes them;
 *   'G' the voice gate: its utterances (a live stream: one still open at the end is not flushed);
 *   'N' the whole node (gate, front end, windows, protocol) as the sketch drives it, a
 *       CONFIG from the Pi first, then a frame at a time with the timers ticked.
 * Outputs go to trace.out (rows, utterances, or the bytes the node sends) and the cost of
 * every frame to trace.cost. The model is the one stand-in (TFLite Micro's C++ is not
 * here): it hands back the scores the host's TFLite Micro gave each window, in order, and
 * logs a CRC of the window it was given, so the host can check the node passed the right
 * rows; its own instructions are not counted. */
#include <string.h>

#include "board.h"
#include "node.h"

#define MAGIC 0x54524553u /* "SERT" */
#define MAX_SCORES 1024

struct header {
    uint32_t magic, frames;
    uint8_t run, pad[3];
    uint8_t config[SER_NODE_CONFIG_BYTES]; /* the CONFIG payload: mode, then the gate */
    uint8_t pad2[3];
    int32_t labels, window_frames, hop_frames;
    char sha256[16];
    uint32_t windows; /* injected score vectors that follow, labels bytes each */
};

static struct header h;
static int8_t scores[MAX_SCORES * SER_NODE_MAX_LABELS];
static uint32_t scored, crcs[MAX_SCORES];
static uint64_t not_counted; /* the stand-in's own instructions */
static int out_fd, cost_fd;
static struct ser_node node;
static int16_t frames[2][SER_VAD_FRAME];

/* Instructions at each of the front end's stage marks (frontend.c's MARK), per frame. */
#define STAGES 6
static uint64_t marks[STAGES];

void trace_mark(int stage) {
    marks[stage] = board_instructions();
}

static void fail(const char *why) {
    board_print(why);
    board_exit(1);
}

static void out(int fd, const void *data, size_t n) {
    if (board_write(fd, data, n) != 0) {
        fail("m4: the host refused a write");
    }
}

static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++) {
            c = c >> 1 ^ (0xEDB88320u & -(c & 1u));
        }
    }
    return ~c;
}

static void write_bytes(void *ctx, const uint8_t *data, size_t n) {
    (void)ctx;
    uint64_t t0 = board_instructions();
    out(out_fd, data, n);
    not_counted += board_instructions() - t0;
}

static int classify(void *ctx, const int8_t *window, int8_t *result) {
    (void)ctx;
    uint64_t t0 = board_instructions();
    if (scored == h.windows) {
        fail("m4: the node scored more windows than the host prepared");
    }
    crcs[scored] = crc32((const uint8_t *)window, (size_t)h.window_frames * SER_NFEATURES);
    memcpy(result, scores + scored * h.labels, (size_t)h.labels);
    scored++;
    not_counted += board_instructions() - t0;
    return 0;
}

static void read_frame(int in, int16_t *frame) {
    if (board_read(in, frame, sizeof frames[0]) != sizeof frames[0]) {
        fail("m4: trace.in ends early");
    }
}

static void run_frontend(int in) {
    struct ser_frontend_state s;
    ser_frontend_reset(&s);
    int16_t x[SER_WINDOW], prev = 0;
    read_frame(in, frames[0]);
    for (uint32_t f = 1; f < h.frames; f++) {
        read_frame(in, frames[f & 1]);
        memcpy(x, frames[(f - 1) & 1], sizeof frames[0]);
        memcpy(x + SER_VAD_FRAME, frames[f & 1], (SER_WINDOW - SER_VAD_FRAME) * sizeof x[0]);
        int8_t row[SER_NFEATURES];
        marks[0] = board_instructions();
        ser_frontend_frame(&s, x, prev, row);
        uint64_t end = board_instructions();
        uint32_t cost[STAGES + 1] = {(uint32_t)(end - marks[0])};
        for (int k = 1; k < STAGES; k++) { /* each stage's share: mark k-1 to mark k */
            cost[k] = (uint32_t)(marks[k] - marks[k - 1]);
        }
        cost[STAGES] = (uint32_t)(end - marks[STAGES - 1]);
        prev = x[SER_VAD_FRAME - 1];
        out(out_fd, row, sizeof row);
        out(cost_fd, cost, sizeof cost);
    }
}

static void run_gate(int in) {
    struct ser_vad v;
    struct ser_vad_settings s;
    memcpy(&s, h.config + 1, sizeof s); /* little-endian int32, as on the wire */
    ser_vad_init(&v, &s);
    struct ser_utterance u;
    for (uint32_t f = 0; f < h.frames; f++) {
        read_frame(in, frames[0]);
        uint64_t t0 = board_instructions();
        int closed = ser_vad_frame(&v, frames[0], &u);
        uint32_t cost = (uint32_t)(board_instructions() - t0);
        out(cost_fd, &cost, sizeof cost);
        if (closed) {
            out(out_fd, &u, sizeof u);
        }
    }
}

static void run_node(int in) {
    struct ser_node_io io = {write_bytes, h.windows ? classify : NULL, NULL, NULL}; /* no speech gate yet */
    struct ser_node_model model = {h.sha256, h.labels, h.window_frames, h.hop_frames, NULL, 0, 0};
    if (ser_node_init(&node, &io, &model, "0.1.0-m4") != 0) {
        fail("m4: the model's shape exceeds the node's limits");
    }
    uint8_t config[1 + SER_MAX_FRAME];
    size_t n = ser_frame_encode(SER_CONFIG, 0, h.config, sizeof h.config, config);
    ser_node_receive(&node, config, n, 0);
    uint8_t heartbeat[1 + SER_MAX_FRAME];
    const uint8_t ignored[4] = {0};
    for (uint32_t f = 0; f < h.frames; f++) {
        read_frame(in, frames[0]);
        uint32_t before = scored, now_ms = f * 20u;
        not_counted = 0;
        uint64_t t0 = board_instructions();
        if (f % 50 == 49) { /* the Pi's heartbeat, every second, keeps the link up */
            n = ser_frame_encode(SER_HEARTBEAT, (uint16_t)(f / 50 + 1), ignored, sizeof ignored, heartbeat);
            ser_node_receive(&node, heartbeat, n, now_ms);
        }
        ser_node_tick(&node, now_ms);
        ser_node_audio(&node, frames[0]);
        uint32_t cost[2] = {(uint32_t)(board_instructions() - t0 - not_counted), scored - before};
        out(cost_fd, cost, sizeof cost);
    }
    int crc_fd = board_open("trace.crc", 1);
    out(crc_fd, crcs, scored * sizeof crcs[0]);
    board_close(crc_fd);
}

int main(void) {
    int in = board_open("trace.in", 0);
    if (in < 0 || board_read(in, &h, sizeof h) != sizeof h || h.magic != MAGIC) {
        fail("m4: trace.in is missing or not a trace");
    }
    if (h.windows > MAX_SCORES || h.labels > SER_NODE_MAX_LABELS ||
        board_read(in, scores, h.windows * (size_t)h.labels) != h.windows * (size_t)h.labels) {
        fail("m4: trace.in's scores are cut short or too many");
    }
    out_fd = board_open("trace.out", 1);
    cost_fd = board_open("trace.cost", 1);
    if (out_fd < 0 || cost_fd < 0) {
        fail("m4: cannot create the output files");
    }
    h.run == 'F' ? run_frontend(in) : h.run == 'G' ? run_gate(in) : run_node(in);
    board_close(out_fd);
    board_close(cost_fd);
    board_close(in);
    return 0;
}
