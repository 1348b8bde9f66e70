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

size_t ser_frame_encode(uint8_t type, uint16_t seq, const uint8_t *payload, size_t n, uint8_t *out) {
    static uint8_t raw[SER_MAX_RAW];
    if (n > SER_MAX_PAYLOAD) {
        return 0;
    }
    raw[0] = SER_PROTOCOL_VERSION;
    raw[1] = type;
    raw[2] = (uint8_t)(seq & 0xFF);
    raw[3] = (uint8_t)(seq >> 8);
    raw[4] = (uint8_t)(n & 0xFF);
    raw[5] = (uint8_t)(n >> 8);
    if (n) {
        memcpy(raw + SER_HEADER_BYTES, payload, n);
    }
    uint16_t crc = ser_crc16(raw, SER_HEADER_BYTES + n, 0xFFFF);
    raw[SER_HEADER_BYTES + n] = (uint8_t)(crc & 0xFF);
    raw[SER_HEADER_BYTES + n + 1] = (uint8_t)(crc >> 8);
    size_t len = ser_cobs_encode(raw, SER_HEADER_BYTES + n + 2, out);
    out[len++] = 0;
    return len;
}

void ser_deframer_init(struct ser_deframer *d) {
    memset(d, 0, sizeof *d);
}

static int accept(struct ser_deframer *d) {
    if (d->used > SER_MAX_RAW + SER_MAX_RAW / 254 + 1) {
        return 0; /* overlong: cannot be a frame */
    }
    long n = ser_cobs_decode(d->frame, d->used, d->raw);
    if (n < SER_HEADER_BYTES + 2) {
        return 0;
    }
    size_t body = (size_t)n - 2;
    uint16_t crc = (uint16_t)(d->raw[body] | (d->raw[body + 1] << 8));
    if (ser_crc16(d->raw, body, 0xFFFF) != crc || d->raw[0] != SER_PROTOCOL_VERSION) {
        return 0;
    }
    size_t length = (size_t)(d->raw[4] | (d->raw[5] << 8));
    if (length != body - SER_HEADER_BYTES || d->raw[1] < SER_HELLO || d->raw[1] > SER_CONFIG) {
        return 0;
    }
    d->type = d->raw[1];
    d->seq = (uint16_t)(d->raw[2] | (d->raw[3] << 8));
    d->payload = d->raw + SER_HEADER_BYTES;
    d->length = length;
    return 1;
}

int ser_deframer_feed(struct ser_deframer *d, uint8_t byte) {
    if (byte) {
        if (d->used < sizeof d->frame) {
            d->frame[d->used] = byte;
        }
        d->used++; /* counts past the buffer so an overlong frame is recognised */
        return 0;
    }
    if (d->used == 0) {
        return 0; /* back-to-back delimiters */
    }
    int ok = d->used <= sizeof d->frame && accept(d);
    d->used = 0;
    if (!ok) {
        d->errors++;
    }
    return ok;
}
