/* test_gw_open.c: the open link end to end in one process, over loopback TCP with real CURVE
 * keys: the gateway's end (gw_open, bound as in lcore-gateway) and a worker's (a ROUTER
 * connected as in lcore-crypto, answered by its real handler, cw_open, with a real seal ring).
 * A sealed record opens to the reading's bytes; a tampered, relabelled or malformed one is
 * refused with the worker's reason; with no worker, or a silent one, a call times out within
 * its timeout; a late answer is not taken for the next call; calls from many threads each get
 * their own record; a peer with a key of another role never gets a request and is counted. */
#include <czmq.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "cw_open.h"
#include "gw_open.h"
#include "lc_curve.h"
#include "lc_keyring.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "lc_zmq.h"
#include "test_zmq.h"

#define S_TIMEOUT_MS 1000
#define S_MAX_READING 65536

typedef struct {
    char dir[64], trust[96], endpoint[64];
    lc_metrics_t *metrics, *worker_metrics;
    lc_curve_t *gw_curve;
    gw_open_t *open;
    lc_keyring_t *ring;
    lc_sealer_t *sealer; /* the test's own, to seal records (a sealer is single-threaded) */
    pthread_t worker;
    int worker_running;
    atomic_int stop, ready, paused, delay_ms;
} fx_t;

/* A sealed record as the store keeps it, with the buffers it points into. */
typedef struct {
    Lcore__V1__SealedRecord m;
    char device_id[32];
    uint8_t record_id[LC_RECORD_ID_LEN];
    lc_sealed_t s;
    uint8_t ct[256];
    char jws[128];
} s_record_t;

static lc_curve_t *s_curve(fx_t *fx, const char *name, lc_metrics_t *m)
{
    return test_curve(fx->dir, fx->trust, name, m);
}

/* A ROUTER connected where workers connect, keyed as `name`, as lcore-crypto opens it. */
static zsock_t *s_router(fx_t *fx, lc_curve_t *curve, lc_zmq_peers_t **peers)
{
    char ep[96];
    snprintf(ep, sizeof ep, "%s#gw", fx->endpoint);
    lc_zmq_opts_t o = {.name = "open",
                       .type = ZMQ_ROUTER,
                       .endpoints = ep,
                       .roles = LC_ROLE_GATEWAY,
                       .hwm = 100,
                       .max_msg = S_MAX_READING + LC_SEAL_OVERHEAD + LC_ZMQ_ENVELOPE_OVERHEAD};
    return lc_zmq_open(&o, curve, peers);
}

/* The gateway's end on a free loopback port (asked of the kernel, tried again if taken). */
static void s_bind_gateway(fx_t *fx)
{
    for (int attempt = 0; attempt < 20 && !fx->open; attempt++) {
        test_free_endpoint(fx->endpoint, sizeof fx->endpoint);
        gw_open_opts_t o = {.bind = fx->endpoint,
                            .curve = fx->gw_curve,
                            .timeout_ms = S_TIMEOUT_MS,
                            .max_reply_bytes = S_MAX_READING + LC_ZMQ_ENVELOPE_OVERHEAD,
                            .metrics = fx->metrics};
        fx->open = gw_open_new(&o);
    }
    assert_non_null(fx->open);
}

/* A worker as lcore-crypto runs one: its own key, sealer and handler, a ROUTER connected to
 * the gateway. paused: takes nothing; delay_ms: waits that long before its next answers. */
static void *s_worker(void *arg)
{
    fx_t *fx = arg;
    lc_curve_t *curve = s_curve(fx, "w1", fx->worker_metrics);
    lc_sealer_t *sealer = lc_sealer_new(fx->ring, LC_AES_AUTO);
    cw_open_t *handler = cw_open_new(sealer, S_MAX_READING, fx->worker_metrics);
    lc_zmq_peers_t *peers = NULL;
    zsock_t *router = curve && sealer && handler ? s_router(fx, curve, &peers) : NULL;
    atomic_store(&fx->ready, router ? 1 : -1);
    while (router && !atomic_load(&fx->stop)) {
        zmq_pollitem_t item = {zsock_resolve(router), 0, ZMQ_POLLIN, 0};
        /* paused is read again once something arrived: it may have been set meanwhile. */
        if (atomic_load(&fx->paused) || zmq_poll(&item, 1, 20) <= 0 || atomic_load(&fx->paused)) {
            zclock_sleep(5);
            continue;
        }
        int delay = atomic_exchange(&fx->delay_ms, 0);
        if (delay)
            zclock_sleep(delay);
        cw_open_serve(handler, router, 1); /* one at a time: paused is honoured between */
        lc_zmq_peers_update(peers);
    }
    lc_zmq_peers_destroy(&peers);
    zsock_destroy(&router);
    cw_open_destroy(&handler);
    lc_sealer_destroy(&sealer);
    lc_curve_destroy(&curve);
    return NULL;
}

static void s_start_worker(fx_t *fx)
{
    assert_int_equal(pthread_create(&fx->worker, NULL, s_worker, fx), 0);
    fx->worker_running = 1;
    while (!atomic_load(&fx->ready))
        zclock_sleep(5);
    assert_int_equal(atomic_load(&fx->ready), 1);
}

static void s_stop_worker(fx_t *fx)
{
    if (!fx->worker_running)
        return;
    atomic_store(&fx->stop, 1);
    pthread_join(fx->worker, NULL);
    fx->worker_running = 0;
    atomic_store(&fx->stop, 0);
    atomic_store(&fx->ready, 0);
}

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/lc-gwopen-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->trust, sizeof fx->trust, "%s/trust", fx->dir);
    mkdir(fx->trust, 0755);
    fx->metrics = lc_metrics_new();
    fx->worker_metrics = lc_metrics_new();
    test_keygen(fx->dir, fx->trust, "gateway", "gw");
    test_keygen(fx->dir, fx->trust, "crypto", "w1");
    /* trusted, but a gateway's key: not admitted on open */
    test_keygen(fx->dir, fx->trust, "gateway", "gw2");
    char ring[128];
    snprintf(ring, sizeof ring, "%s/seal.keyring", fx->dir);
    assert_int_equal(lc_keyring_create(ring, LC_KEYRING_SEAL), 0);
    assert_non_null(fx->ring = lc_keyring_load(ring, LC_KEYRING_SEAL, NULL));
    assert_non_null(fx->sealer = lc_sealer_new(fx->ring, LC_AES_AUTO));
    assert_non_null(fx->gw_curve = s_curve(fx, "gw", fx->metrics));
    s_bind_gateway(fx);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    s_stop_worker(fx);
    gw_open_destroy(&fx->open);
    lc_curve_destroy(&fx->gw_curve);
    lc_sealer_destroy(&fx->sealer);
    lc_keyring_destroy(&fx->ring);
    lc_metrics_destroy(&fx->worker_metrics);
    lc_metrics_destroy(&fx->metrics);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Seals reading `seq` of device "dev-open" as a worker would, into r. */
static void s_seal(fx_t *fx, s_record_t *r, uint64_t seq)
{
    memset(r, 0, sizeof *r);
    snprintf(r->device_id, sizeof r->device_id, "dev-open");
    snprintf(r->jws, sizeof r->jws, "eyJhbGciOiJFZERTQSJ9.eyJzZXEiOiAlbHV9.sig-%llu",
             (unsigned long long)seq);
    size_t dlen = strlen(r->device_id), plen = strlen(r->jws);
    lc_record_id(r->record_id, r->device_id, dlen, seq);
    assert_int_equal(lc_seal(fx->sealer, &r->s, r->ct, r->record_id, r->device_id, dlen,
                             (const uint8_t *)r->jws, plen),
                     0);
    lcore__v1__sealed_record__init(&r->m);
    r->m.version = 1;
    r->m.record_id = (ProtobufCBinaryData){LC_RECORD_ID_LEN, r->record_id};
    r->m.device_id = r->device_id;
    r->m.seq = seq;
    r->m.key_version = r->s.key_version;
    r->m.aes_nonce = (ProtobufCBinaryData){LC_AES_NONCE_LEN, r->s.aes_nonce};
    r->m.xchacha_nonce = (ProtobufCBinaryData){LC_XCHACHA_NONCE_LEN, r->s.xchacha_nonce};
    r->m.ciphertext = (ProtobufCBinaryData){r->s.ciphertext_len, r->ct};
    r->m.envelope_hash = (ProtobufCBinaryData){LC_ENVELOPE_HASH_LEN, r->s.envelope_hash};
}

/* After a change to the envelope: the hash that goes with it (what a forger would send). */
static void s_rehash(s_record_t *r)
{
    lc_envelope_hash(r->s.envelope_hash, r->m.key_version, r->s.aes_nonce, r->s.xchacha_nonce,
                     r->ct, r->s.ciphertext_len);
}

/* One call; on success checks the bytes are r's reading, and wipes and frees them as the
 * caller must. */
static int s_call(fx_t *fx, const s_record_t *r, char *err, size_t errcap)
{
    uint8_t *jws = (uint8_t *)"not set";
    size_t len = 99;
    int rc = gw_open_call(fx->open, &r->m, &jws, &len, err, errcap);
    if (rc == 0) {
        assert_int_equal(len, strlen(r->jws));
        assert_memory_equal(jws, r->jws, len);
        sodium_memzero(jws, len);
        free(jws);
    } else {
        assert_null(jws);
        assert_int_equal(len, 0);
    }
    return rc;
}

/* Waits (5 s at most) until the worker's handshake is through and it answers. */
static void s_until_answered(fx_t *fx)
{
    s_record_t r;
    s_seal(fx, &r, 1);
    char err[128];
    int rc = LC_ERR_TIMEOUT;
    for (int i = 0; i < 100 && rc == LC_ERR_TIMEOUT; i++)
        if ((rc = s_call(fx, &r, err, sizeof err)) == LC_ERR_TIMEOUT)
            zclock_sleep(50);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
}

/* The value of one exported series, or -1 when it is not there. */
static double s_metric(lc_metrics_t *m, const char *series)
{
    char *text = lc_metrics_render(m, NULL), line[160];
    snprintf(line, sizeof line, "\n%s", series); /* a sample, not the # HELP line */
    char *at = strstr(text, line);
    double v = at ? strtod(at + strlen(line), NULL) : -1;
    free(text);
    return v;
}

static void test_opens_to_the_original_bytes(void **state)
{
    fx_t *fx = *state;
    s_start_worker(fx);
    s_until_answered(fx);
    s_record_t r;
    s_seal(fx, &r, 42);
    char err[128];
    assert_int_equal(s_call(fx, &r, err, sizeof err), 0);
    assert_true(s_metric(fx->metrics, "lcore_gateway_opens_total{result=\"ok\"} ") >= 2);
    assert_true(s_metric(fx->worker_metrics, "lcore_crypto_opens_total{result=\"ok\"} ") >= 2);
}

static void test_refuses_what_does_not_open(void **state)
{
    fx_t *fx = *state;
    s_start_worker(fx);
    s_until_answered(fx);
    char err[128];
    s_record_t r;
    s_seal(fx, &r, 7);
    r.ct[3] ^= 1; /* tampered, with a matching envelope hash: the tag fails */
    s_rehash(&r);
    assert_int_equal(s_call(fx, &r, err, sizeof err), LC_ERR_INVALID);
    assert_string_equal(err, "does not open");
    s_seal(fx, &r, 7);
    r.ct[0] ^= 1; /* tampered under the hash it was sealed with */
    assert_int_equal(s_call(fx, &r, err, sizeof err), LC_ERR_INVALID);
    assert_string_equal(err, "does not open");
    s_seal(fx, &r, 7);
    r.m.key_version = 99; /* relabelled to a version the ring does not hold */
    s_rehash(&r);
    assert_int_equal(s_call(fx, &r, err, sizeof err), LC_ERR_INVALID);
    assert_string_equal(err, "unknown key version");
    s_seal(fx, &r, 7);
    r.m.seq = 8; /* the record_id no longer says which reading it is */
    assert_int_equal(s_call(fx, &r, err, sizeof err), LC_ERR_INVALID);
    assert_string_equal(err, "malformed");
    s_seal(fx, &r, 7);
    r.m.aes_nonce.len = 11;
    assert_int_equal(s_call(fx, &r, err, sizeof err), LC_ERR_INVALID);
    assert_string_equal(err, "malformed");
    assert_int_equal(s_metric(fx->metrics, "lcore_gateway_opens_total{result=\"refused\"} "), 5);
    assert_int_equal(
        s_metric(fx->worker_metrics, "lcore_crypto_opens_total{result=\"does_not_open\"} "), 2);
    assert_int_equal(
        s_metric(fx->worker_metrics, "lcore_crypto_bad_messages_total{socket=\"open\"} "), 2);
    /* The worker still answers after all that. */
    s_seal(fx, &r, 9);
    assert_int_equal(s_call(fx, &r, err, sizeof err), 0);
}

static void test_times_out_without_a_worker(void **state)
{
    fx_t *fx = *state;
    s_record_t r;
    s_seal(fx, &r, 3);
    char err[128];
    uint64_t t0 = lc_mono_us();
    assert_int_equal(s_call(fx, &r, err, sizeof err), LC_ERR_TIMEOUT);
    assert_true(lc_mono_us() - t0 < S_TIMEOUT_MS * 1000u); /* none connected: at once */
    assert_string_equal(err, "no crypto worker connected");
    /* A worker that is connected but does not answer: the whole timeout, not more. */
    s_start_worker(fx);
    s_until_answered(fx);
    double timeouts = s_metric(fx->metrics, "lcore_gateway_opens_total{result=\"timeout\"} ");
    atomic_store(&fx->paused, 1);
    t0 = lc_mono_us();
    assert_int_equal(s_call(fx, &r, err, sizeof err), LC_ERR_TIMEOUT);
    uint64_t waited = lc_mono_us() - t0;
    assert_true(waited >= S_TIMEOUT_MS * 1000u && waited < (S_TIMEOUT_MS + 500) * 1000u);
    assert_non_null(strstr(err, "no crypto worker answered"));
    assert_true(s_metric(fx->metrics, "lcore_gateway_opens_total{result=\"timeout\"} ") ==
                timeouts + 1);
    atomic_store(&fx->paused, 0);
}

static void test_late_answer_is_not_taken_for_the_next(void **state)
{
    fx_t *fx = *state;
    s_start_worker(fx);
    s_until_answered(fx);
    s_record_t first, second;
    s_seal(fx, &first, 100);
    s_seal(fx, &second, 101);
    char err[128];
    /* The worker answers the first after its call gave up, while the second call waits: the
     * second gets its own reading, the first's answer is dropped. */
    atomic_store(&fx->delay_ms, S_TIMEOUT_MS * 3 / 2);
    assert_int_equal(s_call(fx, &first, err, sizeof err), LC_ERR_TIMEOUT);
    assert_int_equal(s_call(fx, &second, err, sizeof err), 0);
    assert_int_equal(s_metric(fx->metrics, "lcore_gateway_open_late_replies_total "), 1);
}

/* A caller thread's share: its records, and how many calls did not give back their bytes
 * (cmocka's asserts belong to the main thread). */
typedef struct {
    fx_t *fx;
    const s_record_t *recs;
    int n, failures;
} s_caller_t;

static void *s_caller(void *arg)
{
    s_caller_t *c = arg;
    for (int i = 0; i < c->n; i++) {
        const s_record_t *r = &c->recs[i];
        uint8_t *jws = NULL;
        size_t len = 0;
        char err[128];
        int rc = gw_open_call(c->fx->open, &r->m, &jws, &len, err, sizeof err);
        if (rc != 0 || len != strlen(r->jws) || memcmp(jws, r->jws, len) != 0)
            c->failures++;
        if (jws) {
            sodium_memzero(jws, len);
            free(jws);
        }
    }
    return NULL;
}

static void test_many_threads_each_get_their_own(void **state)
{
    fx_t *fx = *state;
    s_start_worker(fx);
    s_until_answered(fx);
    enum { THREADS = 4, EACH = 10 };
    s_record_t *recs = calloc(THREADS * EACH, sizeof *recs);
    for (int i = 0; i < THREADS * EACH; i++)
        s_seal(fx, &recs[i], 5000u + (uint64_t)i); /* here: a sealer is single-threaded */
    s_caller_t callers[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        callers[i] = (s_caller_t){.fx = fx, .recs = recs + i * EACH, .n = EACH};
        assert_int_equal(pthread_create(&threads[i], NULL, s_caller, &callers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(callers[i].failures, 0);
    }
    free(recs);
}

/* A peer with a trusted key of another role (a gateway's) connected where workers connect:
 * no handshake, so no request reaches it, and the refusal is counted. */
static void test_other_role_gets_nothing(void **state)
{
    fx_t *fx = *state;
    lc_metrics_t *m = lc_metrics_new();
    lc_curve_t *curve = s_curve(fx, "gw2", m);
    assert_non_null(curve);
    zsock_t *rogue = s_router(fx, curve, NULL);
    assert_non_null(rogue);
    s_record_t r;
    s_seal(fx, &r, 11);
    char err[128];
    double refused = 0;
    for (int i = 0; i < 40 && refused < 1; i++) {
        assert_int_equal(s_call(fx, &r, err, sizeof err), LC_ERR_TIMEOUT);
        zclock_sleep(50);
        gw_open_tick(fx->open);
        refused = s_metric(fx->metrics, "lcore_test_auth_refused_total{socket=\"open\"} ");
    }
    assert_true(refused >= 1);
    zsock_set_rcvtimeo(rogue, 300);
    zmsg_t *got = zmsg_recv(rogue);
    assert_null(got);
    zsock_destroy(&rogue);
    lc_curve_destroy(&curve);
    lc_metrics_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_opens_to_the_original_bytes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_what_does_not_open, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_times_out_without_a_worker, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_late_answer_is_not_taken_for_the_next, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_many_threads_each_get_their_own, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_other_role_gets_nothing, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
