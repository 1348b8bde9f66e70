/* ser-node serial protocol v1 (deploy/arduino/PROTOCOL.md): COBS frames carrying
 * version | type | seq | length | payload | CRC-16/CCITT-FALSE. C99, no malloc. */
#ifndef SER_PROTOCOL_H
#define SER_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define SER_PROTOCOL_VERSION 1
#define SER_HEADER_BYTES 6
#define SER_MAX_PAYLOAD 4096
/* Decoded frame (header + payload + CRC) and its worst-case COBS encoding with delimiter. */
#define SER_MAX_RAW (SER_HEADER_BYTES + SER_MAX_PAYLOAD + 2)
#define SER_MAX_FRAME (SER_MAX_RAW + SER_MAX_RAW / 254 + 2)
/* A deframer's buffer for frames of up to payload bytes (their COBS bytes, no delimiter). */
#define SER_DEFRAMER_BYTES(payload) \
    ((SER_HEADER_BYTES + (payload) + 2) + (SER_HEADER_BYTES + (payload) + 2) / 254 + 1)

enum ser_type {
    SER_HELLO = 1,
    SER_AUDIO = 2,
    SER_FEATURES = 3,
    SER_RESULT = 4,
    SER_HEARTBEAT = 5,
    SER_LOG = 6,
    SER_CONFIG = 7, /* Pi -> node */
};

uint16_t ser_crc16(const uint8_t *data, size_t n, uint16_t crc);

/* COBS-encode n bytes into out (room for n + n/254 + 1); returns the encoded length. */
size_t ser_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);

/* COBS-decode n bytes (no delimiter) into out (room for n); returns the length, or -1. */
long ser_cobs_decode(const uint8_t *in, size_t n, uint8_t *out);

/* One whole frame, delimiter included, into out (room for SER_MAX_FRAME);
 * returns its length, or 0 when the payload is too long. */
size_t ser_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t n, uint8_t *out);

/* A payload in pieces (a header and rows, say), sent as one. */
struct ser_part {
    const uint8_t *data;
    size_t n;
};

/* Where an encoded frame goes, a piece (at most 255 bytes) at a time. */
typedef void (*ser_sink)(void *ctx, const uint8_t *data, size_t n);

/* The frame of the payload parts[0] .. parts[count - 1], delimiter included, to sink as it
 * is encoded (the bytes ser_frame_encode writes, with no buffer of the whole frame);
 * returns its length, or 0 (and writes nothing) when the payload is too long. */
size_t ser_frame_write(uint8_t type, uint16_t seq, const struct ser_part *parts, size_t count, ser_sink sink,
                       void *ctx);

/* Receiver state: feed bytes one at a time. The frame is collected in, and decoded in
 * place in, the caller's buffer: frames longer than it are dropped as errors, so its size
 * is the longest message this side accepts (SER_DEFRAMER_BYTES(payload)). */
struct ser_deframer {
    uint8_t *frame;
    size_t capacity;
    size_t used;
    uint32_t errors; /* frames dropped: bad COBS, short, too long, CRC, version, length, type */
    /* The last message, valid after ser_deframer_feed returned 1. */
    uint8_t type;
    uint16_t seq;
    const uint8_t *payload;
    size_t length;
};

void ser_deframer_init(struct ser_deframer *d, uint8_t *buffer, size_t capacity);

/* Returns 1 when byte completed a valid message (fields set), else 0. */
int ser_deframer_feed(struct ser_deframer *d, uint8_t byte);

#endif
