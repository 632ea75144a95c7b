/* lc_mqtt_codec.c: MQTT 5.0 packet encoding and decoding. See lc_mqtt_codec.h. */
#include "lc_mqtt_codec.h"

#include <string.h>

size_t lc_mqtt_vbi_encode(uint8_t out[4], uint32_t v)
{
    if (v > LC_MQTT_MAX_REMAINING)
        return 0;
    size_t n = 0;
    do {
        uint8_t b = v & 0x7f;
        v >>= 7;
        out[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

int lc_mqtt_vbi_decode(const uint8_t *in, size_t len, uint32_t *v, size_t *used)
{
    uint32_t value = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i == len)
            return LC_ERR_TIMEOUT;
        value |= (uint32_t)(in[i] & 0x7f) << (7 * i);
        if (!(in[i] & 0x80)) {
            *v = value;
            *used = i + 1;
            return 0;
        }
    }
    return LC_ERR_INVALID;
}

int lc_mqtt_frame(const uint8_t *in, size_t len, uint32_t max_packet, uint8_t *hdr,
                  size_t *body_off, size_t *total)
{
    if (len < 1)
        return LC_ERR_TIMEOUT;
    uint32_t rem = 0;
    size_t used = 0;
    int rc = lc_mqtt_vbi_decode(in + 1, len - 1, &rem, &used);
    if (rc < 0)
        return rc;
    size_t need = 1 + used + (size_t)rem;
    if (max_packet && need > max_packet)
        return LC_ERR_TOOBIG;
    *hdr = in[0];
    *body_off = 1 + used;
    *total = need;
    return len < need ? LC_ERR_TIMEOUT : 0;
}

int lc_mqtt_utf8_valid(const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *)str;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            n = 2, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0)
            n = 3, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0)
            n = 4, cp = c & 0x07;
        else
            return 0;
        if (i + n > len)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n;
    }
    return 1;
}

/* ---- reading ---------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} s_r;

static int s_u8(s_r *r, uint8_t *v)
{
    if (r->len - r->pos < 1)
        return -1;
    *v = r->p[r->pos++];
    return 0;
}

static int s_u16(s_r *r, uint16_t *v)
{
    if (r->len - r->pos < 2)
        return -1;
    *v = (uint16_t)(r->p[r->pos] << 8 | r->p[r->pos + 1]);
    r->pos += 2;
    return 0;
}

static int s_u32(s_r *r, uint32_t *v)
{
    if (r->len - r->pos < 4)
        return -1;
    const uint8_t *b = r->p + r->pos;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    r->pos += 4;
    return 0;
}

static int s_vbi(s_r *r, uint32_t *v)
{
    size_t used;
    if (lc_mqtt_vbi_decode(r->p + r->pos, r->len - r->pos, v, &used) != 0)
        return -1;
    r->pos += used;
    return 0;
}

/* Binary Data: a two-byte length, then the bytes. */
static int s_bin(s_r *r, const uint8_t **b, size_t *n)
{
    uint16_t l;
    if (s_u16(r, &l) < 0 || r->len - r->pos < l)
        return -1;
    *b = r->p + r->pos;
    *n = l;
    r->pos += l;
    return 0;
}

/* UTF-8 Encoded String: Binary Data that must be well-formed UTF-8. */
static int s_str(s_r *r, const char **s, size_t *n)
{
    const uint8_t *b;
    if (s_bin(r, &b, n) < 0 || !lc_mqtt_utf8_valid((const char *)b, *n))
        return -1;
    *s = (const char *)b;
    return 0;
}

enum { T_BYTE, T_U16, T_U32, T_VBI, T_STR, T_BIN, T_PAIR };
#define B(t) (1u << LC_MQTT_##t)

/* The properties of spec 2.2.2.2 that the packets lcore receives may carry. */
static const struct {
    uint8_t id, type;
    unsigned packets;
} s_prop_table[] = {
    {0x01, T_BYTE, B(PUBLISH)},                /* Payload Format Indicator */
    {0x02, T_U32, B(PUBLISH)},                 /* Message Expiry Interval */
    {0x03, T_STR, B(PUBLISH)},                 /* Content Type */
    {0x08, T_STR, B(PUBLISH)},                 /* Response Topic */
    {0x09, T_BIN, B(PUBLISH)},                 /* Correlation Data */
    {0x0B, T_VBI, B(PUBLISH)},                 /* Subscription Identifier */
    {0x11, T_U32, B(CONNACK) | B(DISCONNECT)}, /* Session Expiry Interval */
    {0x12, T_STR, B(CONNACK)},                 /* Assigned Client Identifier */
    {0x13, T_U16, B(CONNACK)},                 /* Server Keep Alive */
    {0x15, T_STR, B(CONNACK)},                 /* Authentication Method */
    {0x16, T_BIN, B(CONNACK)},                 /* Authentication Data */
    {0x1A, T_STR, B(CONNACK)},                 /* Response Information */
    {0x1C, T_STR, B(CONNACK) | B(DISCONNECT)}, /* Server Reference */
    {0x1F, T_STR, B(CONNACK) | B(PUBACK) | B(SUBACK) | B(DISCONNECT)}, /* Reason String */
    {0x21, T_U16, B(CONNACK)},                                         /* Receive Maximum */
    {0x22, T_U16, B(CONNACK)},                                         /* Topic Alias Maximum */
    {0x23, T_U16, B(PUBLISH)},                                         /* Topic Alias */
    {0x24, T_BYTE, B(CONNACK)},                                        /* Maximum QoS */
    {0x25, T_BYTE, B(CONNACK)},                                        /* Retain Available */
    {0x26, T_PAIR, ~0u},                                               /* User Property */
    {0x27, T_U32, B(CONNACK)},                                         /* Maximum Packet Size */
    {0x28, T_BYTE, B(CONNACK)}, /* Wildcard Subscription Available */
    {0x29, T_BYTE, B(CONNACK)}, /* Subscription Identifier Available */
    {0x2A, T_BYTE, B(CONNACK)}, /* Shared Subscription Available */
};

typedef struct {
    uint32_t n;       /* integer values */
    const uint8_t *b; /* string and binary values */
    size_t len;
} s_val_t;

/* Called per property; returns 0 or a reason code. */
typedef int (*s_prop_fn)(void *arg, uint8_t id, const s_val_t *v);

static int s_prop_value(s_r *r, uint8_t type, s_val_t *v)
{
    uint8_t b8;
    uint16_t b16;
    const char *s;
    switch (type) {
    case T_BYTE:
        return s_u8(r, &b8) < 0 ? -1 : (v->n = b8, 0);
    case T_U16:
        return s_u16(r, &b16) < 0 ? -1 : (v->n = b16, 0);
    case T_U32:
        return s_u32(r, &v->n);
    case T_VBI:
        return s_vbi(r, &v->n);
    case T_STR:
        return s_str(r, &s, &v->len) < 0 ? -1 : (v->b = (const uint8_t *)s, 0);
    case T_BIN:
        return s_bin(r, &v->b, &v->len);
    default: /* T_PAIR: two strings, ignored */
        return s_str(r, &s, &v->len) < 0 || s_str(r, &s, &v->len) < 0 ? -1 : 0;
    }
}

/* Reads a property block (its length, then the properties) of a packet of type `packet`. */
static int s_props(s_r *r, unsigned packet, s_prop_fn fn, void *arg)
{
    uint32_t plen;
    if (s_vbi(r, &plen) < 0 || r->len - r->pos < plen)
        return LC_MQTT_RC_MALFORMED;
    s_r pr = {r->p + r->pos, plen, 0};
    r->pos += plen;
    uint64_t seen = 0;
    while (pr.pos < pr.len) {
        uint32_t id;
        if (s_vbi(&pr, &id) < 0)
            return LC_MQTT_RC_MALFORMED;
        size_t k = 0;
        while (k < LC_ARRAY_LEN(s_prop_table) && s_prop_table[k].id != id)
            k++;
        if (k == LC_ARRAY_LEN(s_prop_table) || !(s_prop_table[k].packets & (1u << packet)))
            return LC_MQTT_RC_PROTOCOL;
        if (id != 0x26 && id != 0x0B && (seen & (1ull << id)))
            return LC_MQTT_RC_PROTOCOL; /* only User Property (and Subscription Id) repeat */
        seen |= 1ull << id;
        s_val_t v = {0, NULL, 0};
        if (s_prop_value(&pr, s_prop_table[k].type, &v) < 0)
            return LC_MQTT_RC_MALFORMED;
        int rc = fn(arg, (uint8_t)id, &v);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_ignore(void *arg, uint8_t id, const s_val_t *v)
{
    (void)arg, (void)id, (void)v;
    return 0;
}

/* ---- decoders --------------------------------------------------------------------------- */

static int s_connack_prop(void *arg, uint8_t id, const s_val_t *v)
{
    lc_mqtt_connack_t *out = arg;
    switch (id) {
    case 0x11:
        out->session_expiry_s = v->n;
        break;
    case 0x13:
        out->server_keep_alive = (int32_t)v->n;
        break;
    case 0x21:
        if (v->n == 0)
            return LC_MQTT_RC_PROTOCOL;
        out->receive_max = (uint16_t)v->n;
        break;
    case 0x22:
        out->topic_alias_max = (int32_t)v->n;
        break;
    case 0x24:
        if (v->n > 1)
            return LC_MQTT_RC_PROTOCOL;
        out->max_qos = (uint8_t)v->n;
        break;
    case 0x27:
        if (v->n == 0)
            return LC_MQTT_RC_PROTOCOL;
        out->max_packet = v->n;
        break;
    }
    return 0;
}

int lc_mqtt_decode_connack(uint8_t flags, const uint8_t *body, size_t len, lc_mqtt_connack_t *out)
{
    *out = (lc_mqtt_connack_t){.receive_max = 65535,
                               .max_qos = 2,
                               .server_keep_alive = -1,
                               .topic_alias_max = 0,
                               .session_expiry_s = (uint32_t)-1};
    s_r r = {body, len, 0};
    uint8_t ack_flags;
    if (flags != 0 || s_u8(&r, &ack_flags) < 0 || (ack_flags & 0xfe) || s_u8(&r, &out->reason) < 0)
        return LC_MQTT_RC_MALFORMED;
    out->session_present = ack_flags & 1;
    int rc = s_props(&r, LC_MQTT_CONNACK, s_connack_prop, out);
    if (rc)
        return rc;
    return r.pos == r.len ? 0 : LC_MQTT_RC_MALFORMED;
}

/* A topic name (not a filter): no wildcard characters. */
static int s_topic_name_ok(const uint8_t *t, size_t n)
{
    return !memchr(t, '+', n) && !memchr(t, '#', n);
}

static int s_publish_prop(void *arg, uint8_t id, const s_val_t *v)
{
    lc_mqtt_publish_t *out = arg;
    switch (id) {
    case 0x01:
        if (v->n > 1)
            return LC_MQTT_RC_PROTOCOL;
        out->payload_format = (int)v->n;
        break;
    case 0x03:
        out->content_type = (const char *)v->b;
        out->content_type_len = v->len;
        break;
    case 0x08:
        if (!s_topic_name_ok(v->b, v->len) || v->len == 0)
            return LC_MQTT_RC_PROTOCOL;
        out->response_topic = (const char *)v->b;
        out->response_topic_len = v->len;
        break;
    case 0x09:
        out->correlation = v->b;
        out->correlation_len = v->len;
        break;
    case 0x23:
        if (v->n == 0)
            return LC_MQTT_RC_TOPIC_ALIAS;
        out->topic_alias = (uint16_t)v->n;
        break;
    }
    return 0;
}

int lc_mqtt_decode_publish(uint8_t flags, const uint8_t *body, size_t len, lc_mqtt_publish_t *out)
{
    memset(out, 0, sizeof *out);
    out->payload_format = -1;
    out->qos = (flags >> 1) & 3;
    out->dup = (flags >> 3) & 1;
    out->retain = flags & 1;
    if (out->qos == 3)
        return LC_MQTT_RC_MALFORMED;
    if (out->qos == 0 && out->dup)
        return LC_MQTT_RC_PROTOCOL;
    s_r r = {body, len, 0};
    if (s_str(&r, &out->topic, &out->topic_len) < 0)
        return LC_MQTT_RC_MALFORMED;
    if (!s_topic_name_ok((const uint8_t *)out->topic, out->topic_len))
        return LC_MQTT_RC_PROTOCOL;
    if (out->qos > 0 && (s_u16(&r, &out->pid) < 0 || out->pid == 0))
        return LC_MQTT_RC_MALFORMED;
    int rc = s_props(&r, LC_MQTT_PUBLISH, s_publish_prop, out);
    if (rc)
        return rc;
    if (out->topic_len == 0 && out->topic_alias == 0)
        return LC_MQTT_RC_PROTOCOL;
    out->payload = body + r.pos;
    out->payload_len = len - r.pos;
    return 0;
}

int lc_mqtt_decode_puback(uint8_t flags, const uint8_t *body, size_t len, uint16_t *pid,
                          uint8_t *reason)
{
    s_r r = {body, len, 0};
    *reason = 0;
    if (flags != 0 || s_u16(&r, pid) < 0 || *pid == 0)
        return LC_MQTT_RC_MALFORMED;
    if (r.pos < r.len && s_u8(&r, reason) < 0)
        return LC_MQTT_RC_MALFORMED;
    if (r.pos < r.len) {
        int rc = s_props(&r, LC_MQTT_PUBACK, s_ignore, NULL);
        if (rc)
            return rc;
    }
    return r.pos == r.len ? 0 : LC_MQTT_RC_MALFORMED;
}

int lc_mqtt_decode_suback(uint8_t flags, const uint8_t *body, size_t len, uint16_t *pid,
                          uint8_t *reasons, size_t max, size_t *n)
{
    s_r r = {body, len, 0};
    *n = 0;
    if (flags != 0 || s_u16(&r, pid) < 0 || *pid == 0)
        return LC_MQTT_RC_MALFORMED;
    int rc = s_props(&r, LC_MQTT_SUBACK, s_ignore, NULL);
    if (rc)
        return rc;
    if (r.pos == r.len || r.len - r.pos > max)
        return LC_MQTT_RC_PROTOCOL; /* one reason per filter sent */
    *n = r.len - r.pos;
    memcpy(reasons, body + r.pos, *n);
    return 0;
}

int lc_mqtt_decode_disconnect(uint8_t flags, const uint8_t *body, size_t len, uint8_t *reason)
{
    s_r r = {body, len, 0};
    *reason = 0;
    if (flags != 0)
        return LC_MQTT_RC_MALFORMED;
    if (r.pos < r.len && s_u8(&r, reason) < 0)
        return LC_MQTT_RC_MALFORMED;
    if (r.pos < r.len) {
        int rc = s_props(&r, LC_MQTT_DISCONNECT, s_ignore, NULL);
        if (rc)
            return rc;
    }
    return r.pos == r.len ? 0 : LC_MQTT_RC_MALFORMED;
}

/* ---- encoders --------------------------------------------------------------------------- */

/* Writes into p[0..cap) while it fits and counts every byte (p NULL: only counts). */
typedef struct {
    uint8_t *p;
    size_t cap, len;
    int bad; /* a string or block too long for its length field */
} s_w;

static void s_put(s_w *w, const void *d, size_t n)
{
    if (w->p && w->len + n <= w->cap && n)
        memcpy(w->p + w->len, d, n);
    w->len += n;
}

static void s_put_u8(s_w *w, uint8_t v)
{
    s_put(w, &v, 1);
}

static void s_put_u16(s_w *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    s_put(w, b, 2);
}

static void s_put_u32(s_w *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    s_put(w, b, 4);
}

static void s_put_vbi(s_w *w, size_t v)
{
    uint8_t b[4];
    size_t n = v <= LC_MQTT_MAX_REMAINING ? lc_mqtt_vbi_encode(b, (uint32_t)v) : 0;
    if (!n)
        w->bad = 1;
    s_put(w, b, n);
}

static void s_put_bin(s_w *w, const void *d, size_t n)
{
    if (n > 65535) {
        w->bad = 1;
        return;
    }
    s_put_u16(w, (uint16_t)n);
    s_put(w, d, n);
}

typedef void (*s_body_fn)(s_w *w, const void *arg);

/* A length-prefixed block (a property block, or a packet's body): counted first, then written. */
static void s_put_block(s_w *w, s_body_fn fn, const void *arg)
{
    s_w count = {NULL, 0, 0, 0};
    fn(&count, arg);
    w->bad |= count.bad;
    s_put_vbi(w, count.len);
    fn(w, arg);
}

static size_t s_packet(uint8_t *out, size_t cap, uint8_t hdr, s_body_fn fn, const void *arg)
{
    s_w w = {out, cap, 0, 0};
    s_put_u8(&w, hdr);
    s_put_block(&w, fn, arg);
    return w.bad ? 0 : w.len;
}

static void s_connect_props(s_w *w, const void *arg)
{
    const lc_mqtt_connect_t *c = arg;
    if (c->session_expiry_s) {
        s_put_u8(w, 0x11);
        s_put_u32(w, c->session_expiry_s);
    }
    if (c->receive_max && c->receive_max != 65535) {
        s_put_u8(w, 0x21);
        s_put_u16(w, c->receive_max);
    }
    if (c->max_packet) {
        s_put_u8(w, 0x27);
        s_put_u32(w, c->max_packet);
    }
}

static void s_connect_body(s_w *w, const void *arg)
{
    const lc_mqtt_connect_t *c = arg;
    s_put_bin(w, "MQTT", 4);
    s_put_u8(w, 5); /* protocol version */
    uint8_t flags = (uint8_t)((c->username ? 0x80 : 0) | (c->password ? 0x40 : 0) |
                              (c->clean_start ? 0x02 : 0));
    s_put_u8(w, flags);
    s_put_u16(w, c->keep_alive_s);
    s_put_block(w, s_connect_props, c);
    s_put_bin(w, c->client_id, strlen(c->client_id));
    if (c->username)
        s_put_bin(w, c->username, strlen(c->username));
    if (c->password)
        s_put_bin(w, c->password, c->password_len);
}

size_t lc_mqtt_encode_connect(uint8_t *out, size_t cap, const lc_mqtt_connect_t *c)
{
    return s_packet(out, cap, LC_MQTT_CONNECT << 4, s_connect_body, c);
}

static void s_publish_props(s_w *w, const void *arg)
{
    const lc_mqtt_publish_t *p = arg;
    if (p->payload_format >= 0) {
        s_put_u8(w, 0x01);
        s_put_u8(w, (uint8_t)p->payload_format);
    }
    if (p->content_type) {
        s_put_u8(w, 0x03);
        s_put_bin(w, p->content_type, p->content_type_len);
    }
    if (p->response_topic) {
        s_put_u8(w, 0x08);
        s_put_bin(w, p->response_topic, p->response_topic_len);
    }
    if (p->correlation) {
        s_put_u8(w, 0x09);
        s_put_bin(w, p->correlation, p->correlation_len);
    }
}

static void s_publish_body(s_w *w, const void *arg)
{
    const lc_mqtt_publish_t *p = arg;
    s_put_bin(w, p->topic, p->topic_len);
    if (p->qos)
        s_put_u16(w, p->pid);
    s_put_block(w, s_publish_props, p);
    s_put(w, p->payload, p->payload_len);
}

size_t lc_mqtt_encode_publish(uint8_t *out, size_t cap, const lc_mqtt_publish_t *p)
{
    uint8_t hdr = (uint8_t)(LC_MQTT_PUBLISH << 4 | (p->dup ? 0x08 : 0) | (p->qos & 3) << 1 |
                            (p->retain ? 1 : 0));
    return s_packet(out, cap, hdr, s_publish_body, p);
}

size_t lc_mqtt_encode_puback(uint8_t *out, size_t cap, uint16_t pid, uint8_t reason)
{
    uint8_t b[5] = {LC_MQTT_PUBACK << 4, reason ? 3 : 2, (uint8_t)(pid >> 8), (uint8_t)pid, reason};
    size_t n = reason ? 5 : 4;
    if (n <= cap)
        memcpy(out, b, n);
    return n;
}

typedef struct {
    uint16_t pid;
    const char *const *filters;
    size_t n;
    uint8_t qos;
} s_subscribe_t;

static void s_no_props(s_w *w, const void *arg)
{
    (void)w, (void)arg;
}

static void s_subscribe_body(s_w *w, const void *arg)
{
    const s_subscribe_t *s = arg;
    s_put_u16(w, s->pid);
    s_put_block(w, s_no_props, NULL);
    for (size_t i = 0; i < s->n; i++) {
        s_put_bin(w, s->filters[i], strlen(s->filters[i]));
        s_put_u8(w, s->qos & 3);
    }
}

size_t lc_mqtt_encode_subscribe(uint8_t *out, size_t cap, uint16_t pid, const char *const *filters,
                                size_t n, uint8_t qos)
{
    s_subscribe_t s = {pid, filters, n, qos};
    return s_packet(out, cap, LC_MQTT_SUBSCRIBE << 4 | 0x02, s_subscribe_body, &s);
}

size_t lc_mqtt_encode_pingreq(uint8_t *out, size_t cap)
{
    if (cap >= 2)
        out[0] = LC_MQTT_PINGREQ << 4, out[1] = 0;
    return 2;
}

size_t lc_mqtt_encode_disconnect(uint8_t *out, size_t cap, uint8_t reason)
{
    uint8_t b[3] = {LC_MQTT_DISCONNECT << 4, reason ? 1 : 0, reason};
    size_t n = reason ? 3 : 2;
    if (n <= cap)
        memcpy(out, b, n);
    return n;
}
