/* test_mqtt.c: the MQTT 5.0 codec (lc_mqtt_codec) against the spec's byte layouts: Variable Byte
 * Integers (table 1.1), the UTF-8 string example (1.5.4), CONNECT, PUBLISH, PUBACK, SUBSCRIBE,
 * PINGREQ, DISCONNECT; encode/decode round trips; and the malformed packets a server could send
 * (each answered with the reason code the client disconnects with, never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lc_mqtt_codec.h"

static void test_vbi_spec_table(void **state)
{
    (void)state;
    static const struct {
        uint32_t v;
        uint8_t b[4];
        size_t n;
    } t[] = {{0, {0x00}, 1},
             {127, {0x7f}, 1},
             {128, {0x80, 0x01}, 2},
             {16383, {0xff, 0x7f}, 2},
             {16384, {0x80, 0x80, 0x01}, 3},
             {2097151, {0xff, 0xff, 0x7f}, 3},
             {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
             {268435455, {0xff, 0xff, 0xff, 0x7f}, 4}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint8_t out[4];
        assert_int_equal(lc_mqtt_vbi_encode(out, t[i].v), t[i].n);
        assert_memory_equal(out, t[i].b, t[i].n);
        uint32_t v = 0;
        size_t used = 0;
        assert_int_equal(lc_mqtt_vbi_decode(t[i].b, t[i].n, &v, &used), 0);
        assert_int_equal(v, t[i].v);
        assert_int_equal(used, t[i].n);
        if (t[i].n > 1) /* cut short: more bytes needed */
            assert_int_equal(lc_mqtt_vbi_decode(t[i].b, t[i].n - 1, &v, &used), LC_ERR_TIMEOUT);
    }
    uint8_t out[4];
    assert_int_equal(lc_mqtt_vbi_encode(out, 268435456), 0);
    static const uint8_t five[] = {0x80, 0x80, 0x80, 0x80, 0x01};
    uint32_t v;
    size_t used;
    assert_int_equal(lc_mqtt_vbi_decode(five, sizeof five, &v, &used), LC_ERR_INVALID);
}

static void test_utf8(void **state)
{
    (void)state;
    /* Spec 1.5.4's example: "A" then U+2A6D4 as F0 AA 9B 94. */
    assert_true(lc_mqtt_utf8_valid("A\xf0\xaa\x9b\x94", 5));
    assert_false(lc_mqtt_utf8_valid("a\0b", 3));             /* U+0000 */
    assert_false(lc_mqtt_utf8_valid("\xc0\x80", 2));         /* overlong NUL */
    assert_false(lc_mqtt_utf8_valid("\xed\xa0\x80", 3));     /* a surrogate */
    assert_false(lc_mqtt_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(lc_mqtt_utf8_valid("\xe2\x82", 2));         /* cut */
    assert_true(lc_mqtt_utf8_valid("\xe2\x82\xac", 3));      /* U+20AC */
}

static void test_frame(void **state)
{
    (void)state;
    uint8_t hdr;
    size_t off, total;
    static const uint8_t ping[] = {0xd0, 0x00};
    assert_int_equal(lc_mqtt_frame(ping, 2, 0, &hdr, &off, &total), 0);
    assert_int_equal(hdr, 0xd0);
    assert_int_equal(off, 2);
    assert_int_equal(total, 2);
    static const uint8_t big[] = {0x30, 0xff, 0xff, 0x03}; /* 65535 bytes to come */
    assert_int_equal(lc_mqtt_frame(big, 4, 0, &hdr, &off, &total), LC_ERR_TIMEOUT);
    assert_int_equal(total, 65539);
    assert_int_equal(lc_mqtt_frame(big, 4, 1000, &hdr, &off, &total), LC_ERR_TOOBIG);
    assert_int_equal(lc_mqtt_frame(big, 2, 0, &hdr, &off, &total), LC_ERR_TIMEOUT);
    static const uint8_t bad[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
    assert_int_equal(lc_mqtt_frame(bad, sizeof bad, 0, &hdr, &off, &total), LC_ERR_INVALID);
}

static void test_encode_connect(void **state)
{
    (void)state;
    lc_mqtt_connect_t c = {.client_id = "gw",
                           .username = "u",
                           .password = (const uint8_t *)"p",
                           .password_len = 1,
                           .keep_alive_s = 10,
                           .clean_start = 0,
                           .session_expiry_s = 10,
                           .receive_max = 100};
    /* Spec 3.1.2: protocol name, version 5, flags (user name, password; Clean Start 0), keep
     * alive 10, properties (Session Expiry 10, Receive Maximum 100), then the payload. */
    static const uint8_t want[] = {0x10, 29,   0x00, 0x04, 'M',  'Q',  'T',  'T',  0x05, 0xc0, 0x00,
                                   0x0a, 0x08, 0x11, 0x00, 0x00, 0x00, 0x0a, 0x21, 0x00, 0x64, 0x00,
                                   0x02, 'g',  'w',  0x00, 0x01, 'u',  0x00, 0x01, 'p'};
    uint8_t out[64];
    assert_int_equal(lc_mqtt_encode_connect(NULL, 0, &c), sizeof want);
    assert_int_equal(lc_mqtt_encode_connect(out, sizeof out, &c), sizeof want);
    assert_memory_equal(out, want, sizeof want);
}

static void test_small_encoders(void **state)
{
    (void)state;
    uint8_t out[64];
    assert_int_equal(lc_mqtt_encode_puback(out, sizeof out, 10, 0), 4);
    assert_memory_equal(out, "\x40\x02\x00\x0a", 4);
    assert_int_equal(lc_mqtt_encode_puback(out, sizeof out, 0x1234, 0x80), 5);
    assert_memory_equal(out, "\x40\x03\x12\x34\x80", 5);
    assert_int_equal(lc_mqtt_encode_pingreq(out, sizeof out), 2);
    assert_memory_equal(out, "\xc0\x00", 2);
    assert_int_equal(lc_mqtt_encode_disconnect(out, sizeof out, 0), 2);
    assert_memory_equal(out, "\xe0\x00", 2);
    assert_int_equal(lc_mqtt_encode_disconnect(out, sizeof out, LC_MQTT_RC_MALFORMED), 3);
    assert_memory_equal(out, "\xe0\x01\x81", 3);
    const char *filters[] = {"$share/g/a/+"};
    static const uint8_t want[] = {0x82, 18,  0x00, 0x07, 0x00, 0x00, 12,  '$', 's', 'h',
                                   'a',  'r', 'e',  '/',  'g',  '/',  'a', '/', '+', 0x01};
    assert_int_equal(lc_mqtt_encode_subscribe(out, sizeof out, 7, filters, 1, 1), sizeof want);
    assert_memory_equal(out, want, sizeof want);
    /* Too small a buffer: the length it needs. */
    assert_int_equal(lc_mqtt_encode_subscribe(out, 3, 7, filters, 1, 1), sizeof want);
}

/* A received PUBLISH, laid out by hand: QoS 1, topic "a/b", packet id 10, properties Payload
 * Format 1, Response Topic "r/x", Correlation Data 01 02, then the payload "hi". */
static const uint8_t s_publish[] = {0x32, 23,   0x00, 0x03, 'a',  '/',  'b', 0x00, 0x0a,
                                    0x0d, 0x01, 0x01, 0x08, 0x00, 0x03, 'r', '/',  'x',
                                    0x09, 0x00, 0x02, 0x01, 0x02, 'h',  'i'};

static void test_decode_publish(void **state)
{
    (void)state;
    uint8_t hdr;
    size_t off, total;
    assert_int_equal(lc_mqtt_frame(s_publish, sizeof s_publish, 0, &hdr, &off, &total), 0);
    assert_int_equal(total, sizeof s_publish);
    lc_mqtt_publish_t p;
    assert_int_equal(lc_mqtt_decode_publish(hdr & 0x0f, s_publish + off, total - off, &p), 0);
    assert_int_equal(p.qos, 1);
    assert_int_equal(p.dup, 0);
    assert_int_equal(p.pid, 10);
    assert_int_equal(p.topic_len, 3);
    assert_memory_equal(p.topic, "a/b", 3);
    assert_int_equal(p.payload_format, 1);
    assert_int_equal(p.response_topic_len, 3);
    assert_memory_equal(p.response_topic, "r/x", 3);
    assert_int_equal(p.correlation_len, 2);
    assert_memory_equal(p.correlation, "\x01\x02", 2);
    assert_int_equal(p.payload_len, 2);
    assert_memory_equal(p.payload, "hi", 2);
}

static void test_publish_round_trip(void **state)
{
    (void)state;
    uint8_t corr[300];
    for (size_t i = 0; i < sizeof corr; i++)
        corr[i] = (uint8_t)i;
    static char payload[70000]; /* a Remaining Length of three bytes */
    memset(payload, 'x', sizeof payload);
    lc_mqtt_publish_t in = {.qos = 1,
                            .dup = 1,
                            .pid = 65535,
                            .topic = "lcore/v1/d1/result",
                            .topic_len = 18,
                            .payload = (const uint8_t *)payload,
                            .payload_len = sizeof payload,
                            .response_topic = "lcore/v1/d1/r",
                            .response_topic_len = 13,
                            .correlation = corr,
                            .correlation_len = sizeof corr,
                            .payload_format = 1,
                            .content_type = "application/json",
                            .content_type_len = 16};
    size_t n = lc_mqtt_encode_publish(NULL, 0, &in);
    static uint8_t buf[80000];
    assert_true(n > sizeof payload && n <= sizeof buf);
    assert_int_equal(lc_mqtt_encode_publish(buf, sizeof buf, &in), n);
    uint8_t hdr;
    size_t off, total;
    assert_int_equal(lc_mqtt_frame(buf, n, 0, &hdr, &off, &total), 0);
    assert_int_equal(off, 4);
    assert_int_equal(total, n);
    lc_mqtt_publish_t out;
    assert_int_equal(lc_mqtt_decode_publish(hdr & 0x0f, buf + off, total - off, &out), 0);
    assert_int_equal(out.qos, 1);
    assert_int_equal(out.dup, 1);
    assert_int_equal(out.pid, 65535);
    assert_int_equal(out.topic_len, 18);
    assert_memory_equal(out.topic, in.topic, 18);
    assert_int_equal(out.payload_len, sizeof payload);
    assert_memory_equal(out.payload, payload, sizeof payload);
    assert_int_equal(out.correlation_len, sizeof corr);
    assert_memory_equal(out.correlation, corr, sizeof corr);
    assert_memory_equal(out.response_topic, "lcore/v1/d1/r", 13);
    assert_int_equal(out.content_type_len, 16);
    assert_int_equal(out.payload_format, 1);
    /* QoS 0: no packet id, no properties. */
    lc_mqtt_publish_t q0 = {.topic = "t", .topic_len = 1, .payload_format = -1};
    n = lc_mqtt_encode_publish(buf, sizeof buf, &q0);
    assert_int_equal(n, 6);
    assert_memory_equal(buf, "\x30\x04\x00\x01t\x00", 6);
}

/* Decodes a PUBLISH body after the given flags. */
static int s_publish_rc(uint8_t flags, const uint8_t *body, size_t len)
{
    lc_mqtt_publish_t p;
    return lc_mqtt_decode_publish(flags, body, len, &p);
}

static void test_malformed_publish(void **state)
{
    (void)state;
    const uint8_t *body = s_publish + 2;
    size_t len = sizeof s_publish - 2;
    assert_int_equal(s_publish_rc(0x06, body, len), LC_MQTT_RC_MALFORMED); /* QoS 3 */
    for (size_t cut = 0; cut < 21; cut++) /* every cut before the payload */
        assert_int_not_equal(s_publish_rc(0x02, body, cut), 0);
    static const uint8_t dup_qos0[] = {0x00, 0x01, 't', 0x00};
    assert_int_equal(s_publish_rc(0x08, dup_qos0, sizeof dup_qos0), LC_MQTT_RC_PROTOCOL);
    static const uint8_t pid0[] = {0x00, 0x01, 't', 0x00, 0x00, 0x00};
    assert_int_equal(s_publish_rc(0x02, pid0, sizeof pid0), LC_MQTT_RC_MALFORMED);
    static const uint8_t wildcard[] = {0x00, 0x03, 'a', '/', '+', 0x00};
    assert_int_equal(s_publish_rc(0x00, wildcard, sizeof wildcard), LC_MQTT_RC_PROTOCOL);
    static const uint8_t bad_utf8[] = {0x00, 0x02, 0xc0, 0x80, 0x00};
    assert_int_equal(s_publish_rc(0x00, bad_utf8, sizeof bad_utf8), LC_MQTT_RC_MALFORMED);
    static const uint8_t long_topic[] = {0x00, 0x09, 'a', 0x00};
    assert_int_equal(s_publish_rc(0x00, long_topic, sizeof long_topic), LC_MQTT_RC_MALFORMED);
    static const uint8_t long_props[] = {0x00, 0x01, 't', 0x05, 0x01, 0x01};
    assert_int_equal(s_publish_rc(0x00, long_props, sizeof long_props), LC_MQTT_RC_MALFORMED);
    static const uint8_t twice[] = {0x00, 0x01, 't', 0x04, 0x01, 0x01, 0x01, 0x01};
    assert_int_equal(s_publish_rc(0x00, twice, sizeof twice), LC_MQTT_RC_PROTOCOL);
    static const uint8_t not_here[] = {0x00, 0x01, 't', 0x03, 0x21, 0x00, 0x05}; /* Receive Max */
    assert_int_equal(s_publish_rc(0x00, not_here, sizeof not_here), LC_MQTT_RC_PROTOCOL);
    static const uint8_t unknown[] = {0x00, 0x01, 't', 0x02, 0x7f, 0x00};
    assert_int_equal(s_publish_rc(0x00, unknown, sizeof unknown), LC_MQTT_RC_PROTOCOL);
    static const uint8_t format2[] = {0x00, 0x01, 't', 0x02, 0x01, 0x02};
    assert_int_equal(s_publish_rc(0x00, format2, sizeof format2), LC_MQTT_RC_PROTOCOL);
    static const uint8_t alias0[] = {0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00};
    assert_int_equal(s_publish_rc(0x00, alias0, sizeof alias0), LC_MQTT_RC_TOPIC_ALIAS);
    static const uint8_t no_topic[] = {0x00, 0x00, 0x00};
    assert_int_equal(s_publish_rc(0x00, no_topic, sizeof no_topic), LC_MQTT_RC_PROTOCOL);
    static const uint8_t rt_wild[] = {0x00, 0x01, 't', 0x04, 0x08, 0x00, 0x01, '#'};
    assert_int_equal(s_publish_rc(0x00, rt_wild, sizeof rt_wild), LC_MQTT_RC_PROTOCOL);
    /* A user property may repeat; its strings must be well-formed. */
    static const uint8_t users[] = {0x00, 0x01, 't',  0x0e, 0x26, 0x00, 0x01, 'k',  0x00,
                                    0x01, 'v',  0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'w'};
    assert_int_equal(s_publish_rc(0x00, users, sizeof users), 0);
}

static void test_connack(void **state)
{
    (void)state;
    lc_mqtt_connack_t ca;
    /* Session present, success, Receive Maximum 20, Maximum Packet Size 1000, Server Keep
     * Alive 30, a reason string. */
    static const uint8_t ok[] = {0x01, 0x00, 0x0f, 0x21, 0x00, 0x14, 0x27, 0x00, 0x00,
                                 0x03, 0xe8, 0x13, 0x00, 0x1e, 0x1f, 0x00, 0x01, 'k'};
    assert_int_equal(lc_mqtt_decode_connack(0, ok, sizeof ok, &ca), 0);
    assert_int_equal(ca.session_present, 1);
    assert_int_equal(ca.reason, 0);
    assert_int_equal(ca.receive_max, 20);
    assert_int_equal(ca.max_packet, 1000);
    assert_int_equal(ca.server_keep_alive, 30);
    static const uint8_t bare[] = {0x00, 0x87, 0x00};
    assert_int_equal(lc_mqtt_decode_connack(0, bare, sizeof bare, &ca), 0);
    assert_int_equal(ca.reason, 0x87);
    assert_int_equal(ca.receive_max, 65535);
    assert_int_equal(ca.max_packet, 0);
    assert_int_equal(ca.server_keep_alive, -1);
    static const uint8_t reserved[] = {0x02, 0x00, 0x00};
    assert_int_equal(lc_mqtt_decode_connack(0, reserved, sizeof reserved, &ca),
                     LC_MQTT_RC_MALFORMED);
    assert_int_equal(lc_mqtt_decode_connack(1, bare, sizeof bare, &ca), LC_MQTT_RC_MALFORMED);
    static const uint8_t trailing[] = {0x00, 0x00, 0x00, 0x00};
    assert_int_equal(lc_mqtt_decode_connack(0, trailing, sizeof trailing, &ca),
                     LC_MQTT_RC_MALFORMED);
    static const uint8_t rm0[] = {0x00, 0x00, 0x03, 0x21, 0x00, 0x00};
    assert_int_equal(lc_mqtt_decode_connack(0, rm0, sizeof rm0, &ca), LC_MQTT_RC_PROTOCOL);
    static const uint8_t qos2[] = {0x00, 0x00, 0x02, 0x24, 0x02};
    assert_int_equal(lc_mqtt_decode_connack(0, qos2, sizeof qos2, &ca), LC_MQTT_RC_PROTOCOL);
    static const uint8_t alias[] = {0x00, 0x00, 0x03, 0x23, 0x00, 0x01}; /* PUBLISH-only */
    assert_int_equal(lc_mqtt_decode_connack(0, alias, sizeof alias, &ca), LC_MQTT_RC_PROTOCOL);
}

static void test_acks(void **state)
{
    (void)state;
    uint16_t pid;
    uint8_t reason, reasons[4];
    size_t n;
    assert_int_equal(lc_mqtt_decode_puback(0, (const uint8_t *)"\x00\x05", 2, &pid, &reason), 0);
    assert_int_equal(pid, 5);
    assert_int_equal(reason, 0);
    assert_int_equal(
        lc_mqtt_decode_puback(0, (const uint8_t *)"\x00\x05\x10\x00", 4, &pid, &reason), 0);
    assert_int_equal(reason, 0x10);
    assert_int_equal(lc_mqtt_decode_puback(0, (const uint8_t *)"\x00\x00", 2, &pid, &reason),
                     LC_MQTT_RC_MALFORMED);
    assert_int_equal(lc_mqtt_decode_puback(0, (const uint8_t *)"\x00", 1, &pid, &reason),
                     LC_MQTT_RC_MALFORMED);
    assert_int_equal(lc_mqtt_decode_suback(0, (const uint8_t *)"\x00\x07\x00\x01\x87", 5, &pid,
                                           reasons, sizeof reasons, &n),
                     0);
    assert_int_equal(pid, 7);
    assert_int_equal(n, 2);
    assert_int_equal(reasons[1], 0x87);
    assert_int_equal(lc_mqtt_decode_suback(0, (const uint8_t *)"\x00\x07\x00", 3, &pid, reasons,
                                           sizeof reasons, &n),
                     LC_MQTT_RC_PROTOCOL);
    assert_int_equal(
        lc_mqtt_decode_suback(0, (const uint8_t *)"\x00\x07\x00\x01\x01", 5, &pid, reasons, 1, &n),
        LC_MQTT_RC_PROTOCOL);
    assert_int_equal(lc_mqtt_decode_disconnect(0, NULL, 0, &reason), 0);
    assert_int_equal(reason, 0);
    assert_int_equal(lc_mqtt_decode_disconnect(0, (const uint8_t *)"\x8e\x00", 2, &reason), 0);
    assert_int_equal(reason, 0x8e);
    assert_int_equal(lc_mqtt_decode_disconnect(0, (const uint8_t *)"\x8e\x05", 2, &reason),
                     LC_MQTT_RC_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vbi_spec_table),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_frame),
        cmocka_unit_test(test_encode_connect),
        cmocka_unit_test(test_small_encoders),
        cmocka_unit_test(test_decode_publish),
        cmocka_unit_test(test_publish_round_trip),
        cmocka_unit_test(test_malformed_publish),
        cmocka_unit_test(test_connack),
        cmocka_unit_test(test_acks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
