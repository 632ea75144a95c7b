/* cw_worker.c: see cw_worker.h. */
#include "cw_worker.h"

#include <czmq.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_record.h"
#include "lc_zmq.h"
#include "lcore.pb-c.h"

struct cw_worker {
    lc_sealer_t *sealer;
    size_t max_reading;
    uint8_t *ct;                  /* ciphertext buffer, reused */
    lc_zmq_batch_t out;           /* the next SealedBatch to the store */
    size_t out_sealed, out_beats; /* readings and heartbeats in it */
    lc_counter_t *received, *readings, *sealed, *bad, *failed, *heartbeats;
    lc_histogram_t *seal_seconds, *queue_seconds;
    void (*on_wait)(void *arg);
    void *on_wait_arg;
#ifdef LCORE_FAULT_HOOKS
    const char *crash_device;
#endif
};

cw_worker_t *cw_worker_new(lc_sealer_t *sealer, size_t max_reading, lc_metrics_t *m)
{
    cw_worker_t *self = calloc(1, sizeof *self);
    if (!self || !(self->ct = malloc(max_reading + LC_SEAL_OVERHEAD))) {
        free(self);
        return NULL;
    }
    self->sealer = sealer;
    self->max_reading = max_reading;
    self->received =
        lc_metrics_counter(m, "lcore_crypto_messages_received_total",
                           "Messages (reading batches) taken from the readings socket", NULL);
    self->readings = lc_metrics_counter(m, "lcore_crypto_readings_received_total",
                                        "Readings and heartbeats in those messages", NULL);
    self->heartbeats = lc_metrics_counter(m, "lcore_crypto_heartbeats_total",
                                          "Gateway heartbeats passed on to the store", NULL);
    self->sealed = lc_metrics_counter(m, "lcore_crypto_readings_sealed_total",
                                      "Readings sealed and passed to the store", NULL);
    self->bad = lc_metrics_counter(m, "lcore_crypto_bad_messages_total",
                                   "Messages dropped as undecodable or invalid, by socket",
                                   "socket=\"readings\"");
    self->failed = lc_metrics_counter(m, "lcore_crypto_seal_failures_total",
                                      "Readings that could not be sealed", NULL);
    self->seal_seconds = lc_metrics_histogram(m, "lcore_crypto_seal_duration_seconds",
                                              "Time to dual-encrypt one reading", NULL,
                                              lc_latency_buckets, lc_latency_buckets_len);
    self->queue_seconds = lc_metrics_histogram(m, "lcore_crypto_queue_wait_seconds",
                                               "Gateway receipt to the start of sealing", NULL,
                                               lc_latency_buckets, lc_latency_buckets_len);
    return self;
}

void cw_worker_on_wait(cw_worker_t *self, void (*fn)(void *arg), void *arg)
{
    self->on_wait = fn;
    self->on_wait_arg = arg;
}

#ifdef LCORE_FAULT_HOOKS
void cw_worker_crash_on(cw_worker_t *self, const char *device_id)
{
    self->crash_device = device_id && *device_id ? device_id : NULL;
}
#endif

void cw_worker_destroy(cw_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->ct);
    lc_zmq_batch_free(&(*self_p)->out);
    free(*self_p);
    *self_p = NULL;
}

static const char *s_invalid(const cw_worker_t *self, const Lcore__V1__Reading *r)
{
    if (r->version != 1)
        return "version";
    if (r->record_id.len != LC_RECORD_ID_LEN)
        return "record_id";
    if (!r->device_id || !lc_device_id_valid(r->device_id, strlen(r->device_id)))
        return "device_id";
    if (r->jws.len == 0 || r->jws.len > self->max_reading)
        return "jws_length";
    if (!r->gateway_id || !*r->gateway_id || strlen(r->gateway_id) > 64)
        return "gateway_id";
    uint8_t id[LC_RECORD_ID_LEN];
    lc_record_id(id, r->device_id, strlen(r->device_id), r->seq);
    if (memcmp(id, r->record_id.data, sizeof id) != 0)
        return "record_id_mismatch";
    /* The store tells a duplicate from a conflict by it: it must be the hash of what is sealed. */
    uint8_t h[LC_READING_HASH_LEN];
    lc_reading_hash(h, r->jws.data, r->jws.len);
    if (r->reading_hash.len != sizeof h || memcmp(h, r->reading_hash.data, sizeof h) != 0)
        return "reading_hash";
    return NULL;
}

/* Frees a batch, wiping every entry first: they carry plaintext JWS. */
static void s_wipe_batch(Lcore__V1__ReadingBatch *b)
{
    for (size_t i = 0; i < b->n_readings; i++)
        sodium_memzero(b->readings[i].data, b->readings[i].len);
    lcore__v1__reading_batch__free_unpacked(b, NULL);
}

int cw_worker_flush(cw_worker_t *self, void *out)
{
    int rc;
    /* The store may be briefly away: wait for it (the readings socket fills up meanwhile and
     * the gateway feels the backpressure) rather than drop readings. */
    while ((rc = lc_zmq_batch_send(&self->out, out, 0)) == LC_ERR_TIMEOUT && !zsys_interrupted)
        if (self->on_wait)
            self->on_wait(self->on_wait_arg);
    if (rc == 0) {
        lc_counter_add(self->sealed, self->out_sealed);
        lc_counter_add(self->heartbeats, self->out_beats);
    } else {
        lc_zmq_batch_clear(&self->out); /* given up: the gateway redelivers */
    }
    self->out_sealed = self->out_beats = 0;
    return rc;
}

/* Appends m to the outgoing batch, sending the batch first when m does not fit. 0, or an error
 * of the send (m is not sent: the gateway redelivers). */
static int s_out(cw_worker_t *self, const Lcore__V1__SealedRecord *m, void *out)
{
    size_t len = lcore__v1__sealed_record__get_packed_size(m);
    int rc = 0;
    if (!lc_zmq_batch_fits(&self->out, len) && (rc = cw_worker_flush(self, out)) < 0)
        return rc;
    uint8_t *p = lc_zmq_batch_add(&self->out, len);
    if (!p)
        return LC_ERR_NOMEM;
    lcore__v1__sealed_record__pack(m, p);
    if (m->heartbeat)
        self->out_beats++;
    else
        self->out_sealed++;
    return 0;
}

/* A heartbeat goes on to the store as it came, unsealed (it carries no reading). */
static int s_heartbeat(cw_worker_t *self, const Lcore__V1__Reading *r, void *out)
{
    Lcore__V1__SealedRecord m = LCORE__V1__SEALED_RECORD__INIT;
    m.version = 1;
    m.heartbeat = 1;
    m.received_at_us = r->received_at_us;
    m.sealed_at_us = lc_now_us();
    m.gateway_id = r->gateway_id;
    return s_out(self, &m, out);
}

/* One reading of a batch: checked, sealed, and added to the outgoing batch. */
static int s_handle_one(cw_worker_t *self, const uint8_t *data, size_t len, void *out)
{
    lc_counter_inc(self->readings);
    Lcore__V1__Reading *r = lcore__v1__reading__unpack(NULL, len, data);
    int rc = 0;
    if (r && r->version == 1 && r->heartbeat && r->gateway_id && *r->gateway_id &&
        strlen(r->gateway_id) <= 64) {
        rc = s_heartbeat(self, r, out);
        lcore__v1__reading__free_unpacked(r, NULL);
        return rc;
    }
    const char *why = r ? s_invalid(self, r) : "decode";
    if (why) {
        lc_counter_inc(self->bad);
        lc_warn("reading_dropped", "reason=%s bytes=%zu", why, len);
        goto out;
    }
#ifdef LCORE_FAULT_HOOKS
    if (self->crash_device && strcmp(self->crash_device, r->device_id) == 0) {
        lc_error("fault_injected_crash", "device_id=%s seq=%llu attempt=%u", r->device_id,
                 (unsigned long long)r->seq, r->attempt);
        abort();
    }
#endif
    uint64_t now = lc_now_us();
    if (now > r->received_at_us)
        lc_histogram_observe(self->queue_seconds, (double)(now - r->received_at_us) / 1e6);
    uint64_t t0 = lc_mono_us();
    lc_sealed_t s;
    if (lc_seal(self->sealer, &s, self->ct, r->record_id.data, r->device_id, strlen(r->device_id),
                r->jws.data, r->jws.len) < 0) {
        lc_counter_inc(self->failed);
        lc_error("seal_failed", "device_id=%s seq=%llu", r->device_id, (unsigned long long)r->seq);
        goto out;
    }
    lc_histogram_observe(self->seal_seconds, (double)(lc_mono_us() - t0) / 1e6);
    Lcore__V1__SealedRecord m = LCORE__V1__SEALED_RECORD__INIT;
    m.version = 1;
    m.record_id = r->record_id;
    m.device_id = r->device_id;
    m.seq = r->seq;
    m.device_ts_ms = r->device_ts_ms;
    m.received_at_us = r->received_at_us;
    m.sealed_at_us = lc_now_us();
    m.key_version = s.key_version;
    m.aes_nonce.data = s.aes_nonce;
    m.aes_nonce.len = sizeof s.aes_nonce;
    m.xchacha_nonce.data = s.xchacha_nonce;
    m.xchacha_nonce.len = sizeof s.xchacha_nonce;
    m.ciphertext.data = self->ct;
    m.ciphertext.len = s.ciphertext_len;
    m.envelope_hash.data = s.envelope_hash;
    m.envelope_hash.len = sizeof s.envelope_hash;
    m.gateway_id = r->gateway_id;
    m.reading_hash = r->reading_hash; /* checked against the JWS in s_invalid */
    m.attempt = r->attempt;
    m.max_attempts = r->max_attempts;
    rc = s_out(self, &m, out);
out:
    /* The plaintext JWS was in this message: wipe it before the buffer is freed. */
    if (r) {
        sodium_memzero(r->jws.data, r->jws.len);
        lcore__v1__reading__free_unpacked(r, NULL);
    }
    return rc;
}

int cw_worker_handle(cw_worker_t *self, const uint8_t *data, size_t len, void *out)
{
    lc_counter_inc(self->received);
    Lcore__V1__ReadingBatch *b = lcore__v1__reading_batch__unpack(NULL, len, data);
    if (!b || b->version != 1 || !lc_zmq_batch_within(b->n_readings, len)) {
        lc_counter_inc(self->bad);
        lc_warn("batch_dropped", "reason=%s bytes=%zu", !b ? "decode" : "bounds", len);
        if (b)
            s_wipe_batch(b);
        return 0;
    }
    int rc = 0;
    for (size_t i = 0; i < b->n_readings; i++) {
        int one = s_handle_one(self, b->readings[i].data, b->readings[i].len, out);
        rc = rc < 0 ? rc : one;
    }
    s_wipe_batch(b);
    return rc;
}
