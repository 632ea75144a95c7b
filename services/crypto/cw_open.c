/* cw_open.c: see cw_open.h. */
#include "cw_open.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_record.h"
#include "lc_zmq.h"
#include "lcore.pb-c.h"

struct cw_open {
    lc_sealer_t *sealer;
    size_t max_reading;
    uint8_t *plain; /* sodium_malloc'd, max_reading bytes: the opened reading, wiped after use */
    lc_counter_t *ok, *unknown_key, *no_open, *malformed, *failed, *bad;
};

static void s_metrics(cw_open_t *self, lc_metrics_t *m)
{
    const char *name = "lcore_crypto_opens_total";
    const char *help = "Records the gateways asked this worker to open, by result";
    self->ok = lc_metrics_counter(m, name, help, "result=\"ok\"");
    self->unknown_key = lc_metrics_counter(m, name, help, "result=\"unknown_key_version\"");
    self->no_open = lc_metrics_counter(m, name, help, "result=\"does_not_open\"");
    self->malformed = lc_metrics_counter(m, name, help, "result=\"malformed\"");
    self->failed = lc_metrics_counter(m, name, help, "result=\"error\"");
    self->bad = lc_metrics_counter(m, "lcore_crypto_bad_messages_total",
                                   "Messages dropped as undecodable or invalid, by socket",
                                   "socket=\"open\"");
}

cw_open_t *cw_open_new(lc_sealer_t *sealer, size_t max_reading, lc_metrics_t *metrics)
{
    cw_open_t *self = calloc(1, sizeof *self);
    if (!self || !(self->plain = sodium_malloc(max_reading))) {
        free(self);
        return NULL;
    }
    self->sealer = sealer;
    self->max_reading = max_reading;
    s_metrics(self, metrics);
    return self;
}

void cw_open_destroy(cw_open_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sodium_free((*self_p)->plain); /* wipes */
    free(*self_p);
    *self_p = NULL;
}

/* What the worker relies on before opening, as the store checks a record it stores. NULL when
 * well formed, else the first fault (logged, never the payload). */
static const char *s_invalid(const cw_open_t *self, const Lcore__V1__OpenRequest *q)
{
    const Lcore__V1__SealedRecord *s = q->sealed;
    if (q->version != 1 || !s || s->version != 1)
        return "version";
    if (s->record_id.len != LC_RECORD_ID_LEN || s->aes_nonce.len != LC_AES_NONCE_LEN ||
        s->xchacha_nonce.len != LC_XCHACHA_NONCE_LEN ||
        s->envelope_hash.len != LC_ENVELOPE_HASH_LEN)
        return "field_length";
    if (!s->device_id || !lc_device_id_valid(s->device_id, strlen(s->device_id)))
        return "device_id";
    if (s->ciphertext.len <= LC_SEAL_OVERHEAD ||
        s->ciphertext.len - LC_SEAL_OVERHEAD > self->max_reading)
        return "ciphertext_length";
    uint8_t id[LC_RECORD_ID_LEN];
    lc_record_id(id, s->device_id, strlen(s->device_id), s->seq);
    if (memcmp(id, s->record_id.data, sizeof id) != 0)
        return "record_id";
    return NULL;
}

/* Opens a well-formed record into self->plain. Returns NULL (*plain_len set) or the reason
 * answered to the gateway. */
static const char *s_open(cw_open_t *self, const Lcore__V1__SealedRecord *s, size_t *plain_len)
{
    uint8_t eh[LC_ENVELOPE_HASH_LEN];
    lc_envelope_hash(eh, s->key_version, s->aes_nonce.data, s->xchacha_nonce.data,
                     s->ciphertext.data, s->ciphertext.len);
    if (memcmp(eh, s->envelope_hash.data, sizeof eh) != 0) {
        lc_counter_inc(self->no_open); /* not the envelope that was sealed and anchored */
        return "does not open";
    }
    int rc = lc_open(self->sealer, self->plain, s->record_id.data, s->device_id,
                     strlen(s->device_id), s->key_version, s->aes_nonce.data, s->xchacha_nonce.data,
                     s->ciphertext.data, s->ciphertext.len);
    if (rc == 0) {
        *plain_len = s->ciphertext.len - LC_SEAL_OVERHEAD;
        lc_counter_inc(self->ok);
        return NULL;
    }
    lc_counter_inc(rc == LC_ERR_NOTFOUND    ? self->unknown_key
                   : rc == LC_ERR_SIGNATURE ? self->no_open
                                            : self->failed);
    return rc == LC_ERR_NOTFOUND    ? "unknown key version"
           : rc == LC_ERR_SIGNATURE ? "does not open"
                                    : "cannot open now";
}

/* One request: checked, opened, answered to the routing id it came from. */
static void s_handle(cw_open_t *self, void *router, zmq_msg_t *routing_id, const uint8_t *data,
                     size_t len)
{
    Lcore__V1__OpenRequest *q = lcore__v1__open_request__unpack(NULL, len, data);
    if (!q) {
        lc_counter_inc(self->bad);
        lc_warn("open_dropped", "reason=decode bytes=%zu", len);
        return;
    }
    Lcore__V1__OpenReply reply = LCORE__V1__OPEN_REPLY__INIT;
    reply.version = 1;
    reply.request_id = q->request_id;
    size_t plain_len = 0;
    const char *fault = s_invalid(self, q);
    if (fault) {
        lc_counter_inc(self->bad);
        lc_counter_inc(self->malformed);
        reply.error = "malformed";
    } else if (!(reply.error = (char *)s_open(self, q->sealed, &plain_len))) {
        reply.ok = 1;
        reply.jws.data = self->plain;
        reply.jws.len = plain_len;
        reply.error = "";
    }
    char hex[2 * LC_RECORD_ID_LEN + 1] = "-";
    if (!fault)
        sodium_bin2hex(hex, sizeof hex, q->sealed->record_id.data, LC_RECORD_ID_LEN);
    lc_info("record_open", "record_id=%s key_version=%u result=\"%s\" fault=%s", hex,
            q->sealed ? q->sealed->key_version : 0, reply.ok ? "ok" : reply.error,
            fault ? fault : "-");
    if (zmq_msg_send(routing_id, router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        lc_zmq_send_pb_wiped(router, &reply.base, ZMQ_DONTWAIT) < 0)
        lc_warn("open_reply_dropped", "record_id=%s", hex);
    sodium_memzero(self->plain, plain_len);
    lcore__v1__open_request__free_unpacked(q, NULL);
}

/* Receives the rest of a message that has more frames than a request. */
static void s_skip(void *router, int more)
{
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        more = zmq_msg_recv(&m, router, 0) >= 0 && zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
}

int cw_open_serve(cw_open_t *self, zsock_t *router, int max)
{
    void *h = zsock_resolve(router);
    int taken = 0;
    for (; taken < max; taken++) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, h, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            break;
        }
        /* A ROUTER always gives the routing id first, then the gateway's one frame. */
        int whole = zmq_msg_more(&id) && zmq_msg_recv(&body, h, 0) >= 0;
        if (whole && !zmq_msg_more(&body)) {
            s_handle(self, h, &id, zmq_msg_data(&body), zmq_msg_size(&body));
        } else {
            lc_counter_inc(self->bad);
            s_skip(h, whole);
        }
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    return taken;
}
