/* fuzz_mqtt.c: the MQTT 5.0 decoders (lc_mqtt_codec.h) on whatever a hostile broker could send.
 * The input is a stream of frames, split as lc_mqtt_frame splits them (at most 64 KiB a packet,
 * as lc_mqtt's owner would set); each body is copied to a heap buffer of its exact size (ASan sees
 * any read past it) and given to the decoder of its type. A PUBLISH that decodes is checked to
 * point inside its body, then encoded again and decoded again: the same fields must come back. */
#include "lc_mqtt_codec.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A pointer range [p, p + n) inside [b, b + len). */
static int s_inside(const void *p, size_t n, const uint8_t *b, size_t len)
{
    const uint8_t *q = p;
    return q >= b && q <= b + len && n <= (size_t)(b + len - q);
}

static void s_publish(uint8_t flags, const uint8_t *body, size_t len)
{
    lc_mqtt_publish_t p;
    if (lc_mqtt_decode_publish(flags, body, len, &p) != 0)
        return;
    assert(s_inside(p.topic, p.topic_len, body, len));
    assert(s_inside(p.payload, p.payload_len, body, len));
    assert(!p.response_topic || s_inside(p.response_topic, p.response_topic_len, body, len));
    assert(!p.correlation || s_inside(p.correlation, p.correlation_len, body, len));
    assert(lc_mqtt_utf8_valid(p.topic, p.topic_len));
    size_t n = lc_mqtt_encode_publish(NULL, 0, &p);
    if (p.topic_alias || n == 0)
        return; /* aliases are not encoded */
    uint8_t *out = malloc(n);
    assert(out && lc_mqtt_encode_publish(out, n, &p) == n);
    uint8_t hdr;
    size_t off, total;
    assert(lc_mqtt_frame(out, n, 0, &hdr, &off, &total) == 0 && total == n);
    lc_mqtt_publish_t q;
    assert(lc_mqtt_decode_publish(hdr & 0x0f, out + off, n - off, &q) == 0);
    assert(q.qos == p.qos && q.pid == (p.qos ? p.pid : 0) && q.topic_len == p.topic_len &&
           q.payload_len == p.payload_len && q.correlation_len == p.correlation_len &&
           q.response_topic_len == p.response_topic_len);
    assert(memcmp(q.topic, p.topic, p.topic_len) == 0);
    assert(p.payload_len == 0 || memcmp(q.payload, p.payload, p.payload_len) == 0);
    free(out);
}

static void s_packet(uint8_t hdr, const uint8_t *body, size_t len)
{
    uint8_t flags = hdr & 0x0f, reason, reasons[16];
    uint16_t pid;
    size_t n;
    lc_mqtt_connack_t ca;
    switch (hdr >> 4) {
    case LC_MQTT_CONNACK:
        (void)lc_mqtt_decode_connack(flags, body, len, &ca);
        break;
    case LC_MQTT_PUBLISH:
        s_publish(flags, body, len);
        break;
    case LC_MQTT_PUBACK:
        (void)lc_mqtt_decode_puback(flags, body, len, &pid, &reason);
        break;
    case LC_MQTT_SUBACK:
        if (lc_mqtt_decode_suback(flags, body, len, &pid, reasons, sizeof reasons, &n) == 0)
            assert(n >= 1 && n <= sizeof reasons);
        break;
    default:
        (void)lc_mqtt_decode_disconnect(flags, body, len, &reason);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        uint8_t hdr;
        size_t body_off, total;
        if (lc_mqtt_frame(data + off, size - off, 65536, &hdr, &body_off, &total) != 0)
            break;
        size_t len = total - body_off;
        uint8_t *body = malloc(len ? len : 1);
        if (!body)
            break;
        memcpy(body, data + off + body_off, len);
        s_packet(hdr, body, len);
        free(body);
        off += total;
    }
    return 0;
}
