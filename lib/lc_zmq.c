/* lc_zmq.c: see lc_zmq.h. */
#include "lc_zmq.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"

int lc_zmq_send_pb(void *socket, const char *topic, const ProtobufCMessage *msg, int flags)
{
    void *handle = zsock_resolve(socket);
    if (topic && zmq_send(handle, topic, strlen(topic), ZMQ_SNDMORE | flags) < 0)
        return errno == EAGAIN ? LC_ERR_TIMEOUT : LC_ERR_IO;
    size_t len = protobuf_c_message_get_packed_size(msg);
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, len) != 0)
        return LC_ERR_NOMEM;
    protobuf_c_message_pack(msg, zmq_msg_data(&m));
    if (zmq_msg_send(&m, handle, flags) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        return e == EAGAIN ? LC_ERR_TIMEOUT : LC_ERR_IO;
    }
    return 0;
}

/* zmq_msg_init_data's free function: the length travels in the hint. */
static void s_wipe_free(void *data, void *hint)
{
    sodium_memzero(data, (size_t)(uintptr_t)hint);
    free(data);
}

int lc_zmq_send_pb_wiped(void *socket, const ProtobufCMessage *msg, int flags)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len ? len : 1);
    zmq_msg_t m;
    if (!buf)
        return LC_ERR_NOMEM;
    protobuf_c_message_pack(msg, buf);
    if (zmq_msg_init_data(&m, buf, len, s_wipe_free, (void *)(uintptr_t)len) != 0) {
        s_wipe_free(buf, (void *)(uintptr_t)len);
        return LC_ERR_NOMEM;
    }
    if (zmq_msg_send(&m, zsock_resolve(socket), flags) < 0) {
        int e = errno;
        zmq_msg_close(&m); /* wipes */
        return e == EAGAIN ? LC_ERR_TIMEOUT : LC_ERR_IO;
    }
    return 0;
}

/* -- batches ----------------------------------------------------------------------------- */

/* Protobuf wire format: field 1 (version) as a varint, field 2 (entries) length-delimited. */
#define S_TAG_VERSION 0x08
#define S_TAG_ENTRY 0x12

static size_t s_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

int lc_zmq_batch_fits(const lc_zmq_batch_t *b, size_t len)
{
    return b->n == 0 ||
           (b->n < LC_ZMQ_BATCH_MAX && b->len + LC_ZMQ_BATCH_FRAMING + len <= LC_ZMQ_BATCH_BYTES);
}

uint8_t *lc_zmq_batch_add(lc_zmq_batch_t *b, size_t len)
{
    size_t need = (b->n ? b->len : 0) + LC_ZMQ_BATCH_FRAMING + len;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *p = malloc(cap);
        if (!p)
            return NULL;
        if (b->buf) {
            memcpy(p, b->buf, b->len);
            sodium_memzero(b->buf, b->cap);
            free(b->buf);
        }
        b->buf = p;
        b->cap = cap;
    }
    if (b->n == 0) {
        b->buf[0] = S_TAG_VERSION;
        b->buf[1] = 1;
        b->len = 2;
    }
    b->buf[b->len++] = S_TAG_ENTRY;
    b->len += s_varint(b->buf + b->len, len);
    uint8_t *at = b->buf + b->len;
    b->len += len;
    b->n++;
    return at;
}

void lc_zmq_batch_clear(lc_zmq_batch_t *b)
{
    if (b->buf)
        sodium_memzero(b->buf, b->len);
    b->len = 0;
    b->n = 0;
}

int lc_zmq_batch_send(lc_zmq_batch_t *b, void *socket, int flags)
{
    if (b->n == 0)
        return 0;
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, b->len) != 0)
        return LC_ERR_NOMEM;
    memcpy(zmq_msg_data(&m), b->buf, b->len);
    if (zmq_msg_send(&m, zsock_resolve(socket), flags) < 0) {
        int e = errno;
        zmq_msg_close(&m);
        return e == EAGAIN ? LC_ERR_TIMEOUT : LC_ERR_IO;
    }
    lc_zmq_batch_clear(b);
    return 0;
}

void lc_zmq_batch_free(lc_zmq_batch_t *b)
{
    lc_zmq_batch_clear(b);
    free(b->buf);
    *b = (lc_zmq_batch_t){0};
}

int lc_zmq_batch_within(size_t n, size_t len)
{
    return n <= LC_ZMQ_BATCH_MAX && (n <= 1 || len <= LC_ZMQ_BATCH_BYTES);
}

int64_t lc_zmq_batch_max_msg(int64_t entry_max)
{
    return (entry_max > LC_ZMQ_BATCH_BYTES ? entry_max : LC_ZMQ_BATCH_BYTES) + LC_ZMQ_BATCH_FRAMING;
}

void lc_zmq_tune(zsock_t *sock, int hwm, int linger_ms)
{
    zsock_set_sndhwm(sock, hwm);
    zsock_set_rcvhwm(sock, hwm);
    zsock_set_linger(sock, linger_ms);
}

/* Attaches every endpoint of the comma-separated list: binds after making the socket a CURVE
 * server, or connects each endpoint after setting its server's key. */
static int s_attach(zsock_t *sock, const lc_zmq_opts_t *o, lc_curve_t *curve)
{
    if (o->bind && lc_curve_server(curve, sock, o->name, o->roles) < 0)
        return -1;
    char list[2048];
    if (snprintf(list, sizeof list, "%s", o->endpoints) >= (int)sizeof list)
        return -1;
    char *save = NULL;
    int n = 0;
    for (char *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ' || *ep == '@' || *ep == '>')
            ep++;
        char *name = strchr(ep, '#');
        if (name)
            *name++ = '\0';
        if (!*ep)
            continue;
        int rc;
        if (o->bind) {
            rc = zsock_bind(sock, "%s", ep) < 0 ? -1 : 0;
        } else {
            rc = lc_curve_client(curve, sock, o->roles, name);
            if (rc == 0)
                rc = zsock_connect(sock, "%s", ep);
        }
        if (rc != 0) {
            lc_error("zmq_attach_failed", "socket=%s endpoint=%s bind=%d err=\"%s\"", o->name, ep,
                     o->bind, zmq_strerror(zmq_errno()));
            return -1;
        }
        n++;
    }
    return n > 0 ? 0 : -1;
}

zsock_t *lc_zmq_open(const lc_zmq_opts_t *o, lc_curve_t *curve, lc_zmq_peers_t **peers)
{
    assert(!o->bind || peers);
    zsock_t *sock = zsock_new(o->type);
    if (!sock) {
        lc_error("zmq_socket_failed", "socket=%s type=%d", o->name, o->type);
        return NULL;
    }
    lc_zmq_tune(sock, o->hwm, o->linger_ms);
    zmq_setsockopt(zsock_resolve(sock), ZMQ_MAXMSGSIZE, &o->max_msg, sizeof o->max_msg);
    if (!o->bind)
        zsock_set_immediate(sock, 1);
    /* The monitor goes on before the first connection so that no event is missed. */
    if (peers && !(*peers = lc_zmq_peers_new(sock, curve, o->name))) {
        zsock_destroy(&sock);
        return NULL;
    }
    if (s_attach(sock, o, curve) != 0) {
        if (peers)
            lc_zmq_peers_destroy(peers);
        zsock_destroy(&sock);
        return NULL;
    }
    return sock;
}

struct lc_zmq_peers {
    void *watched;
    zsock_t *pair;
    lc_curve_t *curve;
    char name[32];
    int count;
    int failed; /* failed handshakes whose disconnect event is still to come */
};

lc_zmq_peers_t *lc_zmq_peers_new(zsock_t *sock, lc_curve_t *curve, const char *name)
{
    static atomic_uint next;
    lc_zmq_peers_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->curve = curve;
    snprintf(self->name, sizeof self->name, "%s", name);
    if (curve)
        lc_curve_socket(curve, name);
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://lc-peers-%u", atomic_fetch_add(&next, 1));
    self->watched = zsock_resolve(sock);
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(self->watched, ep, events) != 0 || !(self->pair = zsock_new(ZMQ_PAIR)) ||
        zsock_connect(self->pair, "%s", ep) != 0) {
        lc_error("zmq_monitor_failed", "err=\"%s\"", zmq_strerror(zmq_errno()));
        lc_zmq_peers_destroy(&self);
        return NULL;
    }
    return self;
}

void lc_zmq_peers_destroy(lc_zmq_peers_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_zmq_peers_t *self = *self_p;
    if (self->watched)
        zmq_socket_monitor(self->watched, NULL, 0);
    zsock_destroy(&self->pair);
    free(self);
    *self_p = NULL;
}

/* One monitor event's accounting. */
static void s_peer_event(lc_zmq_peers_t *self, uint16_t event)
{
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
    case ZMQ_EVENT_ACCEPTED:
        self->count++;
        break;
    case ZMQ_EVENT_DISCONNECTED:
        if (self->count > 0)
            self->count--;
        /* libzmq reports a failed handshake, then its disconnect. */
        if (self->failed > 0)
            self->failed--;
        else if (self->curve)
            lc_curve_count_drop(self->curve, self->name);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        self->failed++;
        if (self->curve)
            lc_curve_count_refusal(self->curve, self->name,
                                   event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "key_not_admitted"
                                   : event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol"
                                                                                  : "handshake");
        break;
    default:
        break;
    }
}

int lc_zmq_peers_update(lc_zmq_peers_t *self)
{
    void *h = zsock_resolve(self->pair);
    for (;;) {
        /* An event is two frames: u16 event + u32 value, then the endpoint. */
        zmq_msg_t ev;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, h, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&ev) >= 2)
            memcpy(&event, zmq_msg_data(&ev), sizeof event);
        int more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, h, 0) < 0) {
                zmq_msg_close(&part);
                break;
            }
            more = zmq_msg_more(&part);
            zmq_msg_close(&part);
        }
        s_peer_event(self, event);
    }
    return self->count;
}
