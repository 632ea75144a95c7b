/* fuzz_cw_worker.c: the crypto worker's handler (cw_worker_handle: a ReadingBatch from the
 * gateway, each reading validated, sealed and sent on as a SealedRecord in a SealedBatch). The
 * out socket is an inproc PUSH/PULL pair made once; after each input the worker flushes and it
 * is drained. Whatever the worker sends must be batches within the bounds of lc_zmq.h, each
 * record a heartbeat or a record that the store would take and that opens, with the same ring,
 * to the JWS of a reading of the input, in the input's order. */
#include "cw_worker.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "fuzz_support.h"
#include "lc_log.h"
#include "lc_record.h"
#include "lc_zmq.h"
#include "lcore.pb-c.h"

#define S_MAX_READING 4096

static lc_keyring_t *s_ring;
static lc_sealer_t *s_sealer;
static lc_metrics_t *s_metrics;
static cw_worker_t *s_worker;
static void *s_ctx, *s_push, *s_pull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    lc_log_init("fuzz_cw_worker", LC_LOG_ERROR); /* one warning per dropped reading otherwise */
    s_ring = fz_ring(FZ_SEAL_RING, LC_KEYRING_SEAL);
    s_sealer = lc_sealer_new(s_ring, LC_AES_AUTO);
    s_metrics = lc_metrics_new();
    s_worker = s_sealer && s_metrics ? cw_worker_new(s_sealer, S_MAX_READING, s_metrics) : NULL;
    s_ctx = zmq_ctx_new();
    s_pull = zmq_socket(s_ctx, ZMQ_PULL);
    s_push = zmq_socket(s_ctx, ZMQ_PUSH);
    if (!s_worker || !s_pull || !s_push || zmq_bind(s_pull, "inproc://fuzz-cw-worker") != 0 ||
        zmq_connect(s_push, "inproc://fuzz-cw-worker") != 0)
        abort();
    return 0;
}

/* Whether s is a sealed record of reading r: the same record, its envelope hash right, and it
 * opens, with the same ring, to r's JWS. */
static int s_sealed_from(const Lcore__V1__SealedRecord *s, const Lcore__V1__Reading *r)
{
    if (r->version != 1 || r->heartbeat || !r->device_id || strcmp(s->device_id, r->device_id) ||
        s->seq != r->seq || s->record_id.len != LC_RECORD_ID_LEN ||
        r->record_id.len != LC_RECORD_ID_LEN ||
        memcmp(s->record_id.data, r->record_id.data, LC_RECORD_ID_LEN) ||
        s->ciphertext.len != r->jws.len + LC_SEAL_OVERHEAD)
        return 0;
    uint8_t eh[LC_ENVELOPE_HASH_LEN], *plain = malloc(r->jws.len + 1);
    assert(plain);
    lc_envelope_hash(eh, s->key_version, s->aes_nonce.data, s->xchacha_nonce.data,
                     s->ciphertext.data, s->ciphertext.len);
    int ok = s->envelope_hash.len == sizeof eh && memcmp(eh, s->envelope_hash.data, 32) == 0 &&
             lc_open(s_sealer, plain, s->record_id.data, s->device_id, strlen(s->device_id),
                     s->key_version, s->aes_nonce.data, s->xchacha_nonce.data, s->ciphertext.data,
                     s->ciphertext.len) == 0 &&
             memcmp(plain, r->jws.data, r->jws.len) == 0;
    free(plain);
    return ok;
}

/* Whether sealed record s came from reading r: a heartbeat of its gateway, or its sealed JWS. */
static int s_from(const Lcore__V1__SealedRecord *s, const Lcore__V1__Reading *r)
{
    if (s->heartbeat)
        return r->version == 1 && r->heartbeat && r->gateway_id &&
               strcmp(s->gateway_id, r->gateway_id) == 0;
    return s_sealed_from(s, r);
}

/* Finds the reading of `in`, from *next on, that s came from: there must be one. */
static void s_match(const Lcore__V1__SealedRecord *s, const Lcore__V1__ReadingBatch *in,
                    size_t *next)
{
    assert(in);
    for (;; ++*next) {
        assert(*next < in->n_readings);
        const ProtobufCBinaryData *e = &in->readings[*next];
        Lcore__V1__Reading *r = lcore__v1__reading__unpack(NULL, e->len, e->data);
        int from = r && s_from(s, r);
        if (r)
            lcore__v1__reading__free_unpacked(r, NULL);
        if (from) {
            ++*next;
            return;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = fz_copy(data, size);
    if (!in)
        return 0;
    assert(cw_worker_handle(s_worker, in, size, s_push) == 0);
    assert(cw_worker_flush(s_worker, s_push) == 0);
    Lcore__V1__ReadingBatch *b = lcore__v1__reading_batch__unpack(NULL, size, in);
    size_t next = 0;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, s_pull, ZMQ_DONTWAIT) >= 0) {
        Lcore__V1__SealedBatch *out =
            lcore__v1__sealed_batch__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        assert(out && out->version == 1 && out->n_records >= 1 &&
               out->n_records <= LC_ZMQ_BATCH_MAX);
        assert(out->n_records == 1 || zmq_msg_size(&m) <= LC_ZMQ_BATCH_BYTES);
        for (size_t i = 0; i < out->n_records; i++) {
            Lcore__V1__SealedRecord *s =
                lcore__v1__sealed_record__unpack(NULL, out->records[i].len, out->records[i].data);
            assert(s && s->version == 1);
            s_match(s, b, &next);
            lcore__v1__sealed_record__free_unpacked(s, NULL);
        }
        lcore__v1__sealed_batch__free_unpacked(out, NULL);
    }
    zmq_msg_close(&m);
    if (b)
        lcore__v1__reading_batch__free_unpacked(b, NULL);
    free(in);
    return 0;
}
