/* ser-node serial protocol v1; see protocol.h and deploy/arduino/PROTOCOL.md. */
#include "protocol.h"

#include <string.h>

uint16_t ser_crc16(const uint8_t *data, size_t n, uint16_t crc) {
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(data[i] << 8);
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

size_t ser_cobs_encode(const uint8_t *in, size_t n, uint8_t *out) {
    size_t code_at = 0, len = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i]) {
            out[len++] = in[i];
            code++;
        }
        if (!in[i] || code == 0xFF) {
            out[code_at] = code;
            code_at = len++;
            code = 1;
        }
    }
    out[code_at] = code;
    return len;
}

long ser_cobs_decode(const uint8_t *in, size_t n, uint8_t *out) {
    size_t i = 0, len = 0;
    while (i < n) {
        uint8_t code = in[i];
        if (code == 0 || i + code > n) {
            return -1;
        }
        for (size_t k = 1; k < code; k++) {
            if (in[i + k] == 0) {
                return -1;
            }
            out[len++] = in[i + k];
        }
        i += code;
        if (code < 0xFF && i < n) {
            out[len++] = 0;
        }
    }
    return (long)len;
}

/* The COBS encoder as a stream: a block (its code byte first) goes to the sink when a zero
 * or its 254th byte ends it, as ser_cobs_encode ends them. */
struct cobs_stream {
    uint8_t block[255];
    size_t len; /* bytes in block, the code byte's place included */
    size_t total;
    ser_sink sink;
    void *ctx;
};

static void cobs_flush(struct cobs_stream *c) {
    c->block[0] = (uint8_t)c->len;
    c->sink(c->ctx, c->block, c->len);
    c->total += c->len;
    c->len = 1;
}

static void cobs_put(struct cobs_stream *c, const uint8_t *data, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (data[i]) {
            c->block[c->len++] = data[i];
        }
        if (!data[i] || c->len == 0xFF) {
            cobs_flush(c);
        }
    }
}

size_t ser_frame_write(uint8_t type, uint16_t seq, const struct ser_part *parts, size_t count, ser_sink sink,
                       void *ctx) {
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        n += parts[i].n;
    }
    if (n > SER_MAX_PAYLOAD) {
        return 0;
    }
    const uint8_t header[SER_HEADER_BYTES] = {SER_PROTOCOL_VERSION, type,           (uint8_t)(seq & 0xFF),
                                              (uint8_t)(seq >> 8),  (uint8_t)(n & 0xFF), (uint8_t)(n >> 8)};
    uint16_t crc = ser_crc16(header, sizeof header, 0xFFFF);
    for (size_t i = 0; i < count; i++) {
        crc = ser_crc16(parts[i].data, parts[i].n, crc);
    }
    const uint8_t tail[2] = {(uint8_t)(crc & 0xFF), (uint8_t)(crc >> 8)};
    struct cobs_stream c;
    c.len = 1;
    c.total = 0;
    c.sink = sink;
    c.ctx = ctx;
    cobs_put(&c, header, sizeof header);
    for (size_t i = 0; i < count; i++) {
        cobs_put(&c, parts[i].data, parts[i].n);
    }
    cobs_put(&c, tail, sizeof tail);
    cobs_flush(&c);
    const uint8_t delimiter = 0;
    sink(ctx, &delimiter, 1);
    return c.total + 1;
}

struct buffer_sink {
    uint8_t *out;
    size_t len;
};

static void to_buffer(void *ctx, const uint8_t *data, size_t n) {
    struct buffer_sink *b = ctx;
    memcpy(b->out + b->len, data, n);
    b->len += n;
}

size_t ser_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t n, uint8_t *out) {
    struct ser_part part = {payload, n};
    struct buffer_sink b = {out, 0};
    return ser_frame_write(type, seq, &part, 1, to_buffer, &b);
}

void ser_deframer_init(struct ser_deframer *d, uint8_t *buffer, size_t capacity) {
    memset(d, 0, sizeof *d);
    d->frame = buffer;
    d->capacity = capacity;
}

static int accept(struct ser_deframer *d) {
    long n = ser_cobs_decode(d->frame, d->used, d->frame); /* in place: it never writes ahead of what it reads */
    if (n < SER_HEADER_BYTES + 2) {
        return 0;
    }
    size_t body = (size_t)n - 2;
    const uint8_t *raw = d->frame;
    uint16_t crc = (uint16_t)(raw[body] | (raw[body + 1] << 8));
    if (ser_crc16(raw, body, 0xFFFF) != crc || raw[0] != SER_PROTOCOL_VERSION) {
        return 0;
    }
    size_t length = (size_t)(raw[4] | (raw[5] << 8));
    if (length != body - SER_HEADER_BYTES || raw[1] < SER_HELLO || raw[1] > SER_CONFIG) {
        return 0;
    }
    d->type = raw[1];
    d->seq = (uint16_t)(raw[2] | (raw[3] << 8));
    d->payload = raw + SER_HEADER_BYTES;
    d->length = length;
    return 1;
}

int ser_deframer_feed(struct ser_deframer *d, uint8_t byte) {
    if (byte) {
        if (d->used < d->capacity) {
            d->frame[d->used] = byte;
        }
        d->used++; /* counts past the buffer so an overlong frame is recognised */
        return 0;
    }
    if (d->used == 0) {
        return 0; /* back-to-back delimiters */
    }
    int ok = d->used <= d->capacity && accept(d);
    d->used = 0;
    if (!ok) {
        d->errors++;
    }
    return ok;
}
