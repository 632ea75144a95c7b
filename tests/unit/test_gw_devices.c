/* test_gw_devices.c: the gateway's device cache against a stand-in store (a query ROUTER that
 * counts what it is asked). A known device's key (and next_seq) comes from the store once; an
 * unknown id is asked once and then answered from the cache; a flood of unknown ids neither
 * grows the table of known devices nor resets their rate buckets; an address over its lookup
 * allowance is refused without asking the store while another address is not; while the store
 * is away an unknown id is answered at once and a known device keeps its key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_devices.h"
#include "lc_curve.h"
#include "lc_query.h"
#include "lc_zmq.h"

typedef struct {
    char endpoint[128];
    lc_metrics_t *metrics;
    lc_curve_t *curve; /* CURVE off: any peer may ask */
    lc_query_server_t srv;
    pthread_t thread;
    atomic_int stop, ready, silent, asked;
    lc_query_client_t *client;
    gw_devices_t *devices;
} s_fx_t;

static uint8_t s_pub[32] = {7};

static unsigned s_roles(Lcore__V1__Query__BodyCase body)
{
    (void)body;
    return LC_ROLE_GATEWAY;
}

static void s_answer(void *ctx, const Lcore__V1__Query *q, Lcore__V1__QueryReply *reply)
{
    s_fx_t *fx = ctx;
    atomic_fetch_add(&fx->asked, 1);
    reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
    if (q->body_case == LCORE__V1__QUERY__BODY_REGISTER_DEVICE) {
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__CREATED;
    } else if (q->body_case == LCORE__V1__QUERY__BODY_GET_DEVICE &&
               strncmp(q->get_device, "dev-", 4) == 0) {
        Lcore__V1__Device *d = malloc(sizeof *d);
        lcore__v1__device__init(d);
        d->device_id = q->get_device;
        d->alg = "EdDSA";
        d->public_key.data = s_pub;
        d->public_key.len = sizeof s_pub;
        d->status = strcmp(q->get_device, "dev-revoked") == 0 ? "revoked" : "active";
        d->next_seq = 42;
        reply->device = d;
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    }
}

static void s_clear(void *ctx, Lcore__V1__QueryReply *reply)
{
    (void)ctx;
    free(reply->device);
    reply->device = NULL;
}

static void *s_serve(void *arg)
{
    s_fx_t *fx = arg;
    lc_zmq_peers_t *peers = NULL;
    lc_zmq_opts_t o = {.name = "queries",
                       .type = ZMQ_ROUTER,
                       .endpoints = "tcp://127.0.0.1:*",
                       .bind = 1,
                       .roles = LC_ROLE_GATEWAY,
                       .hwm = 10000,
                       .max_msg = LC_ZMQ_QUERY_MAX};
    zsock_t *router = lc_zmq_open(&o, fx->curve, &peers);
    char *ep = zsock_last_endpoint(router);
    snprintf(fx->endpoint, sizeof fx->endpoint, "%s", ep);
    zstr_free(&ep);
    atomic_store(&fx->ready, 1);
    while (!atomic_load(&fx->stop)) {
        zmq_pollitem_t item = {zsock_resolve(router), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 20) > 0) {
            if (atomic_load(&fx->silent)) {
                zmsg_t *m = zmsg_recv(router); /* the store is away: nothing comes back */
                zmsg_destroy(&m);
            } else {
                lc_query_serve(router, &fx->srv, 100);
            }
        }
    }
    lc_zmq_peers_destroy(&peers);
    zsock_destroy(&router);
    return NULL;
}

/* Devices with: a reading per 1000 s, burst 3; 1 unknown-id lookup/s per address, burst 5. */
static int s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->metrics = lc_metrics_new();
    lc_curve_cfg_t plain = {0};
    assert_non_null(fx->curve = lc_curve_new(&plain, "gateway", fx->metrics));
    fx->srv = (lc_query_server_t){
        .roles = s_roles, .answer = s_answer, .clear = s_clear, .ctx = fx, .curve = fx->curve};
    lc_query_server_count(&fx->srv, fx->metrics, "lcore_test");
    assert_int_equal(pthread_create(&fx->thread, NULL, s_serve, fx), 0);
    while (!atomic_load(&fx->ready))
        zclock_sleep(5);
    assert_non_null(fx->client = lc_query_client_new(fx->endpoint, LC_ROLE_STORE, 300, fx->curve));
    gw_devices_opts_t o = {.store = fx->client,
                           .ttl_ms = 60000,
                           .rate = 0.001,
                           .burst = 3,
                           .lookups_per_ip = 1,
                           .lookups_burst = 5,
                           .metrics = fx->metrics};
    assert_non_null(fx->devices = gw_devices_new(&o));
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *fx = *state;
    gw_devices_destroy(&fx->devices);
    lc_query_client_destroy(&fx->client);
    atomic_store(&fx->stop, 1);
    pthread_join(fx->thread, NULL);
    lc_curve_destroy(&fx->curve);
    lc_metrics_destroy(&fx->metrics);
    free(fx);
    return 0;
}

static gw_peer_t s_peer(uint8_t last)
{
    gw_peer_t p = {{0}};
    p.addr[10] = p.addr[11] = 0xff;
    p.addr[12] = 10;
    p.addr[15] = last;
    return p;
}

static void test_known_and_unknown_are_asked_once(void **state)
{
    s_fx_t *fx = *state;
    gw_peer_t a = s_peer(1);
    gw_device_key_t key;
    assert_int_equal(gw_devices_lookup(fx->devices, "dev-1", &a, &key), 0);
    assert_int_equal(key.alg, LC_ALG_EDDSA);
    assert_int_equal(key.public_key_len, 32);
    assert_int_equal(key.next_seq, 42);
    assert_int_equal(gw_devices_lookup(fx->devices, "dev-1", &a, &key), 0);
    assert_int_equal(gw_devices_lookup(fx->devices, "nobody", &a, &key), LC_ERR_NOTFOUND);
    assert_int_equal(gw_devices_lookup(fx->devices, "nobody", &a, &key), LC_ERR_NOTFOUND);
    assert_int_equal(gw_devices_lookup(fx->devices, "dev-revoked", &a, &key), LC_ERR_NOTFOUND);
    assert_int_equal(atomic_load(&fx->asked), 3);
}

static void test_unknown_flood_leaves_known_devices_alone(void **state)
{
    s_fx_t *fx = *state;
    gw_device_key_t key;
    int created = 0;
    assert_int_equal(gw_devices_register(fx->devices, "dev-rl", LC_ALG_EDDSA, s_pub, 32, NULL,
                                         "admin", &created),
                     0);
    for (int i = 0; i < 3; i++) /* its burst, spent */
        assert_int_equal(gw_devices_take(fx->devices, "dev-rl"), 0);
    assert_int_equal(gw_devices_take(fx->devices, "dev-rl"), LC_ERR_TIMEOUT);
    char id[32];
    for (int i = 0; i < 3000; i++) { /* unlimited (no peer): each one asks the store */
        snprintf(id, sizeof id, "flood-%d", i);
        assert_int_equal(gw_devices_lookup(fx->devices, id, NULL, &key), LC_ERR_NOTFOUND);
    }
    size_t known = 0, unknown = 0;
    gw_devices_count(fx->devices, &known, &unknown);
    assert_int_equal(known, 1);
    assert_int_equal(unknown, 3000);
    /* Its bucket was not reset: still over its rate. */
    assert_int_equal(gw_devices_take(fx->devices, "dev-rl"), LC_ERR_TIMEOUT);
    assert_int_equal(gw_devices_lookup(fx->devices, "dev-rl", NULL, &key), 0); /* no ask */
    assert_int_equal(atomic_load(&fx->asked), 1 + 3000);
}

static void test_lookups_limited_per_address(void **state)
{
    s_fx_t *fx = *state;
    gw_peer_t a = s_peer(1), b = s_peer(2);
    gw_device_key_t key;
    char id[32];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "a-%d", i);
        assert_int_equal(gw_devices_lookup(fx->devices, id, &a, &key), LC_ERR_NOTFOUND);
    }
    assert_int_equal(gw_devices_lookup(fx->devices, "a-over", &a, &key), LC_ERR_FULL);
    assert_int_equal(atomic_load(&fx->asked), 5);
    /* Cached answers cost no allowance; another address has its own. */
    assert_int_equal(gw_devices_lookup(fx->devices, "a-0", &a, &key), LC_ERR_NOTFOUND);
    assert_int_equal(gw_devices_lookup(fx->devices, "b-0", &b, &key), LC_ERR_NOTFOUND);
    assert_int_equal(atomic_load(&fx->asked), 6);
    /* A registered device is not an unknown id: its first lookup is not limited. */
    assert_int_equal(gw_devices_lookup(fx->devices, "dev-2", NULL, &key), 0);
}

static void test_store_away_answers_at_once(void **state)
{
    s_fx_t *fx = *state;
    gw_device_key_t key;
    assert_int_equal(gw_devices_lookup(fx->devices, "dev-1", NULL, &key), 0);
    /* A store that stops answering: one lookup waits its timeout (300 ms)... */
    atomic_store(&fx->silent, 1);
    uint64_t t0 = lc_mono_us();
    assert_int_equal(gw_devices_lookup(fx->devices, "who-1", NULL, &key), LC_ERR_UNAVAILABLE);
    assert_true(lc_mono_us() - t0 >= 250000);
    /* ... and the next unknown ids do not: the store is known to be away, so it is not
     * asked at all (counted by the stand-in store, not timed). */
    int asked = atomic_load(&fx->asked);
    for (int i = 0; i < 20; i++)
        assert_int_equal(gw_devices_lookup(fx->devices, "who-2", NULL, &key), LC_ERR_UNAVAILABLE);
    assert_int_equal(atomic_load(&fx->asked), asked);
    assert_int_equal(gw_devices_lookup(fx->devices, "dev-1", NULL, &key), 0); /* cached */
    /* The readiness ping says it is back: unknown ids are asked again. */
    atomic_store(&fx->silent, 0);
    gw_devices_set_store_ready(fx->devices, 1);
    assert_int_equal(gw_devices_lookup(fx->devices, "who-2", NULL, &key), LC_ERR_NOTFOUND);
    assert_int_equal(atomic_load(&fx->asked), asked + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_known_and_unknown_are_asked_once, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_flood_leaves_known_devices_alone, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_lookups_limited_per_address, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_away_answers_at_once, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
