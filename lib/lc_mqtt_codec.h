/* lc_mqtt_codec.h: the MQTT 5.0 packets lcore speaks (OASIS MQTT Version 5.0, 2019), as pure
 * functions: no socket, no allocation, no globals. lc_mqtt (the client) frames and sends with
 * them; the unit tests check them against the spec's byte layouts and the fuzz target feeds the
 * decoders any bytes.
 *
 * The subset: CONNECT, CONNACK, PUBLISH (QoS 0 and 1, both ways), PUBACK (both ways),
 * SUBSCRIBE / SUBACK, PINGREQ / PINGRESP, DISCONNECT (both ways). The decoders never trust the
 * peer: every length is checked against what is left, strings must be well-formed UTF-8 without
 * U+0000, a property must be one its packet may carry and appear at most once (User Property
 * excepted), reserved flag bits must be zero. A decoder returns 0 or the MQTT reason code the
 * client disconnects with (LC_MQTT_RC_MALFORMED, LC_MQTT_RC_PROTOCOL, ...). What a decoder
 * fills points into the bytes it was given. */
#ifndef LC_MQTT_CODEC_H
#define LC_MQTT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "lc_common.h"

/* Control packet types (the fixed header's high nibble). */
enum {
    LC_MQTT_CONNECT = 1,
    LC_MQTT_CONNACK = 2,
    LC_MQTT_PUBLISH = 3,
    LC_MQTT_PUBACK = 4,
    LC_MQTT_SUBSCRIBE = 8,
    LC_MQTT_SUBACK = 9,
    LC_MQTT_PINGREQ = 12,
    LC_MQTT_PINGRESP = 13,
    LC_MQTT_DISCONNECT = 14,
};

/* Reason codes lcore sends or acts on (spec 2.4). */
enum {
    LC_MQTT_RC_SUCCESS = 0x00,
    LC_MQTT_RC_UNSPECIFIED = 0x80,
    LC_MQTT_RC_MALFORMED = 0x81,
    LC_MQTT_RC_PROTOCOL = 0x82,
    LC_MQTT_RC_NOT_AUTHORIZED = 0x87,
    LC_MQTT_RC_KEEP_ALIVE = 0x8D,
    LC_MQTT_RC_RECEIVE_MAX = 0x93,
    LC_MQTT_RC_TOPIC_ALIAS = 0x94,
    LC_MQTT_RC_TOO_LARGE = 0x95,
};

/* The largest Remaining Length a Variable Byte Integer can carry. */
#define LC_MQTT_MAX_REMAINING 268435455u

/* Variable Byte Integer (spec 1.5.5). encode: writes 1..4 bytes into out, returns how many (0
 * when v > LC_MQTT_MAX_REMAINING). decode: 0 with *v and *used; LC_ERR_TIMEOUT when more bytes
 * are needed (in[0..len) ends mid-integer); LC_ERR_INVALID for a fifth byte. */
size_t lc_mqtt_vbi_encode(uint8_t out[4], uint32_t v);
int lc_mqtt_vbi_decode(const uint8_t *in, size_t len, uint32_t *v, size_t *used);

/* One frame at the start of in[0..len): its first byte in *hdr, the body (Remaining Length
 * bytes) at in + *body_off, *total bytes in all. 0 when the frame is complete; LC_ERR_TIMEOUT
 * when more bytes are needed; LC_ERR_INVALID for a malformed length; LC_ERR_TOOBIG when the
 * frame would be longer than max_packet bytes (the whole packet, as Maximum Packet Size counts;
 * 0: no limit but the spec's). */
int lc_mqtt_frame(const uint8_t *in, size_t len, uint32_t max_packet, uint8_t *hdr,
                  size_t *body_off, size_t *total);

typedef struct {
    const char *client_id, *username; /* NUL-terminated; username NULL: none */
    const uint8_t *password;          /* NULL: none */
    size_t password_len;
    uint16_t keep_alive_s;
    int clean_start;
    uint32_t session_expiry_s; /* 0: the session ends with the connection */
    uint16_t receive_max;      /* QoS 1 messages the server may have unacknowledged at once */
    uint32_t max_packet;       /* the largest packet we take in (0: no property) */
} lc_mqtt_connect_t;

typedef struct {
    int session_present;
    uint8_t reason;            /* 0 accepted, >= 0x80 refused */
    uint16_t receive_max;      /* ours to respect: the server's (65535 when absent) */
    uint32_t max_packet;       /* the largest packet the server takes (0: no limit) */
    uint8_t max_qos;           /* 2 when absent */
    int32_t server_keep_alive; /* -1 when absent */
    int32_t topic_alias_max;   /* the server's limit for aliases we send (unused by lcore) */
    uint32_t session_expiry_s; /* -1u when absent */
} lc_mqtt_connack_t;

/* A PUBLISH, received (decoded) or to send (encoded). */
typedef struct {
    uint8_t qos, dup, retain;
    uint16_t pid; /* QoS 1 */
    const char *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    const char *response_topic; /* NULL when absent */
    size_t response_topic_len;
    const uint8_t *correlation; /* NULL when absent */
    size_t correlation_len;
    int payload_format;       /* -1 absent, 0 bytes, 1 UTF-8 */
    const char *content_type; /* NULL when absent */
    size_t content_type_len;
    uint16_t topic_alias; /* 0 when absent */
} lc_mqtt_publish_t;

/* Decoders of what a server sends: flags is the fixed header's low nibble, body[0..len) the
 * Remaining Length bytes. Return 0 or a reason code to disconnect with. */
int lc_mqtt_decode_connack(uint8_t flags, const uint8_t *body, size_t len, lc_mqtt_connack_t *out);
int lc_mqtt_decode_publish(uint8_t flags, const uint8_t *body, size_t len, lc_mqtt_publish_t *out);
/* PUBACK: the packet id and reason (0 when the server left it out). */
int lc_mqtt_decode_puback(uint8_t flags, const uint8_t *body, size_t len, uint16_t *pid,
                          uint8_t *reason);
/* SUBACK: the packet id and up to max reason codes (one per filter, in order) in *n. */
int lc_mqtt_decode_suback(uint8_t flags, const uint8_t *body, size_t len, uint16_t *pid,
                          uint8_t *reasons, size_t max, size_t *n);
/* DISCONNECT from the server: its reason (0 when left out). */
int lc_mqtt_decode_disconnect(uint8_t flags, const uint8_t *body, size_t len, uint8_t *reason);

/* Encoders: write the whole packet into out[0..cap) and return its length; a return above cap
 * means it did not fit (nothing usable written; call again with that much room), 0 means the
 * packet cannot be encoded (a string over 65535 bytes, a body over LC_MQTT_MAX_REMAINING). */
size_t lc_mqtt_encode_connect(uint8_t *out, size_t cap, const lc_mqtt_connect_t *c);
/* PUBLISH: qos, dup, retain, pid (QoS 1), topic, payload, and the properties response_topic,
 * correlation, payload_format (>= 0) and content_type when set. */
size_t lc_mqtt_encode_publish(uint8_t *out, size_t cap, const lc_mqtt_publish_t *p);
/* PUBACK with a reason (0: the short form of 2 bytes). */
size_t lc_mqtt_encode_puback(uint8_t *out, size_t cap, uint16_t pid, uint8_t reason);
/* SUBSCRIBE of n filters, each with Maximum QoS qos (No Local off: shared subscriptions
 * forbid it; Retain As Published off; Retain Handling 0). */
size_t lc_mqtt_encode_subscribe(uint8_t *out, size_t cap, uint16_t pid, const char *const *filters,
                                size_t n, uint8_t qos);
size_t lc_mqtt_encode_pingreq(uint8_t *out, size_t cap);
size_t lc_mqtt_encode_disconnect(uint8_t *out, size_t cap, uint8_t reason);

/* Whether s[0..len) is a well-formed MQTT UTF-8 string (no U+0000, no surrogates, no overlong
 * forms). */
int lc_mqtt_utf8_valid(const char *s, size_t len);

#endif
