/* fuzz_cw_worker.c: the crypto worker's handler (cw_worker_handle: a Reading from the gateway,
 * validated, sealed and sent on as a SealedRecord). The out socket is an inproc PUSH/PULL pair
 * made once; after each input it is drained. Whatever the worker sends must be a heartbeat or a
 * record that the store would take and that opens, with the same ring, to the reading's JWS. */
#include "cw_worker.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "fuzz_support.h"
#include "lc_log.h"
#include "lc_record.h"
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

/* A sealed record the worker sent for the reading `in`. */
static void s_check_sealed(const Lcore__V1__SealedRecord *s, const Lcore__V1__Reading *in)
{
    assert(in && in->version == 1 && !in->heartbeat && s->version == 1);
    assert(strcmp(s->device_id, in->device_id) == 0 && s->seq == in->seq);
    assert(s->record_id.len == LC_RECORD_ID_LEN &&
           memcmp(s->record_id.data, in->record_id.data, LC_RECORD_ID_LEN) == 0);
    assert(s->ciphertext.len == in->jws.len + LC_SEAL_OVERHEAD);
    uint8_t eh[LC_ENVELOPE_HASH_LEN], *plain = malloc(in->jws.len);
    lc_envelope_hash(eh, s->key_version, s->aes_nonce.data, s->xchacha_nonce.data,
                     s->ciphertext.data, s->ciphertext.len);
    assert(plain && s->envelope_hash.len == sizeof eh &&
           memcmp(eh, s->envelope_hash.data, 32) == 0);
    assert(lc_open(s_sealer, plain, s->record_id.data, s->device_id, strlen(s->device_id),
                   s->key_version, s->aes_nonce.data, s->xchacha_nonce.data, s->ciphertext.data,
                   s->ciphertext.len) == 0);
    assert(memcmp(plain, in->jws.data, in->jws.len) == 0);
    free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *in = fz_copy(data, size);
    if (!in)
        return 0;
    assert(cw_worker_handle(s_worker, in, size, s_push) == 0);
    Lcore__V1__Reading *r = lcore__v1__reading__unpack(NULL, size, in);
    zmq_msg_t m;
    zmq_msg_init(&m);
    int sent = 0;
    while (zmq_msg_recv(&m, s_pull, ZMQ_DONTWAIT) >= 0) {
        Lcore__V1__SealedRecord *s =
            lcore__v1__sealed_record__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        assert(s && ++sent == 1);
        if (s->heartbeat)
            assert(r && r->heartbeat && strcmp(s->gateway_id, r->gateway_id) == 0);
        else
            s_check_sealed(s, r);
        lcore__v1__sealed_record__free_unpacked(s, NULL);
    }
    zmq_msg_close(&m);
    if (r)
        lcore__v1__reading__free_unpacked(r, NULL);
    free(in);
    return 0;
}
