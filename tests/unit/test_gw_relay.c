/* test_gw_relay.c: what the relay puts on the readings socket. A reading appended to the log
 * reaches a PULL socket (a stand-in worker) in a ReadingBatch, as an entry that
 * lcore__v1__reading__unpack decodes to the logged reading with this delivery's attempt and
 * max_attempts; readings waiting together go out together, in order; a redelivery counts up, and
 * the delivery's values win over any the logged bytes carry. An overdue reading is not
 * redelivered while acks keep coming for readings sent before it, nor while no store is
 * connected (an XPUB stands in for the store's events socket). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_relay.h"
#include "gw_wal.h"
#include "lc_curve.h"
#include "lc_keyring.h"
#include "lc_metrics.h"
#include "lc_zmq.h"
#include "lcore.pb-c.h"

#define S_MAX_ATTEMPTS 5

typedef struct {
    char dir[64], wal[96], ring_path[96], readings[112], events[112];
    lc_keyring_t *ring;
    lc_metrics_t *metrics;
    lc_curve_t *curve;
    gw_relay_t *relay;
    gw_wal_t *log;
    zsock_t *worker;                /* PULL, as a crypto worker connects */
    zsock_t *store;                 /* XPUB on the events endpoint: the relay sees a store there */
    Lcore__V1__ReadingBatch *batch; /* the last message received, and its next entry */
    size_t next;
} s_fx_t;

/* *state: NULL, or the redelivery timeout in ms (cmocka's prestate). */
static int s_setup(void **state)
{
    uint64_t redeliver_ms = *state ? *(const uint64_t *)*state : 100;
    s_fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/lcore-test-relay-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->wal, sizeof f->wal, "%s/wal", f->dir);
    snprintf(f->ring_path, sizeof f->ring_path, "%s/ring", f->dir);
    snprintf(f->readings, sizeof f->readings, "ipc://%s/readings", f->dir);
    snprintf(f->events, sizeof f->events, "ipc://%s/events", f->dir);
    assert_int_equal(lc_keyring_create(f->ring_path, LC_KEYRING_GATEWAY), 0);
    assert_non_null(f->ring = lc_keyring_load(f->ring_path, LC_KEYRING_GATEWAY, NULL));
    assert_non_null(f->metrics = lc_metrics_new());
    lc_curve_cfg_t plain = {0};
    assert_non_null(f->curve = lc_curve_new(&plain, "gateway", f->metrics));
    /* Redelivery after 100 ms (or *state); no heartbeats (only readings on the socket); no drain
     * at stop. */
    gw_relay_opts_t ro = {.readings_bind = f->readings,
                          .events_connect = f->events,
                          .gateway_id = "gw-test",
                          .curve = f->curve,
                          .hwm = 1000,
                          .window = 1000,
                          .redeliver_ms = redeliver_ms,
                          .redeliver_max_ms = redeliver_ms,
                          .max_attempts = S_MAX_ATTEMPTS,
                          .metrics = f->metrics};
    gw_wal_opts_t wo = {.dir = f->wal,
                        .ring = f->ring,
                        .max_bytes = 1u << 24,
                        .max_entries = 1000,
                        .segment_bytes = 1u << 20,
                        .metrics = f->metrics};
    assert_non_null(f->relay = gw_relay_new(&ro));
    assert_non_null(f->log =
                        gw_wal_open(&wo, gw_relay_replay_reading, gw_relay_replay_ack, f->relay));
    assert_int_equal(gw_relay_start(f->relay, f->log), 0);
    gw_relay_set_store_ready(f->relay, 1); /* an overdue reading counts as lost: redelivered */
    assert_non_null(f->worker = zsock_new(ZMQ_PULL));
    assert_int_equal(zsock_connect(f->worker, "%s", f->readings), 0);
    zsock_set_rcvtimeo(f->worker, 5000);
    /* A store connected to the events socket (no store there: overdue readings only wait). */
    assert_non_null(f->store = zsock_new(ZMQ_XPUB));
    assert_int_equal(zsock_bind(f->store, "%s", f->events), 0);
    zsock_set_rcvtimeo(f->store, 5000);
    for (int subscribed = 0; !subscribed;) {
        zframe_t *sub = zframe_recv(f->store);
        assert_non_null(sub);
        subscribed = zframe_size(sub) > 4 && memcmp(zframe_data(sub), "\001ack/", 5) == 0;
        zframe_destroy(&sub);
    }
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *f = *state;
    if (f->batch)
        lcore__v1__reading_batch__free_unpacked(f->batch, NULL);
    zsock_destroy(&f->worker);
    gw_relay_destroy(&f->relay);
    zsock_destroy(&f->store);
    gw_wal_destroy(&f->log);
    lc_curve_destroy(&f->curve);
    lc_keyring_destroy(&f->ring);
    lc_metrics_destroy(&f->metrics);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A reading as the ingest logs it (every field but attempt and max_attempts set). */
static void s_reading_seq(Lcore__V1__Reading *r, uint8_t id[LC_RECORD_ID_LEN], uint64_t seq)
{
    static const char jws[] = "eyJhbGciOiJFZERTQSJ9.eyJzZXEiOjQyfQ.c2ln";
    lc_record_id(id, "dev-1", 5, seq);
    *r = (Lcore__V1__Reading)LCORE__V1__READING__INIT;
    r->version = 1;
    r->record_id.data = id;
    r->record_id.len = LC_RECORD_ID_LEN;
    r->device_id = "dev-1";
    r->seq = seq;
    r->device_ts_ms = 1700000000123ull;
    r->received_at_us = 1700000000456789ull;
    r->jws.data = (uint8_t *)jws;
    r->jws.len = sizeof jws - 1;
    static uint8_t reading_hash[LC_READING_HASH_LEN];
    lc_reading_hash(reading_hash, r->jws.data, r->jws.len);
    r->reading_hash = (ProtobufCBinaryData){sizeof reading_hash, reading_hash};
    r->gateway_id = "gw-test";
}

static void s_reading(Lcore__V1__Reading *r, uint8_t id[LC_RECORD_ID_LEN])
{
    s_reading_seq(r, id, 42);
}

/* Receives a message from the relay: a ReadingBatch of 1 to LC_ZMQ_BATCH_MAX readings. */
static void s_receive(s_fx_t *f)
{
    zframe_t *frame = zframe_recv(f->worker);
    assert_non_null(frame);
    if (f->batch)
        lcore__v1__reading_batch__free_unpacked(f->batch, NULL);
    f->batch = lcore__v1__reading_batch__unpack(NULL, zframe_size(frame), zframe_data(frame));
    assert_non_null(f->batch);
    assert_int_equal(f->batch->version, 1);
    assert_in_range(f->batch->n_readings, 1, LC_ZMQ_BATCH_MAX);
    f->next = 0;
    zframe_destroy(&frame);
}

/* Takes the next delivery (from the last message, or a new one) and checks it decodes to `want`
 * with the given attempt (0: any). */
static void s_expect_delivery(s_fx_t *f, const Lcore__V1__Reading *want, uint32_t attempt)
{
    if (!f->batch || f->next == f->batch->n_readings)
        s_receive(f);
    const ProtobufCBinaryData *entry = &f->batch->readings[f->next++];
    Lcore__V1__Reading *got = lcore__v1__reading__unpack(NULL, entry->len, entry->data);
    assert_non_null(got);
    if (attempt)
        assert_int_equal(got->attempt, attempt);
    assert_int_equal(got->max_attempts, S_MAX_ATTEMPTS);
    assert_int_equal(got->version, want->version);
    assert_int_equal(got->record_id.len, want->record_id.len);
    assert_memory_equal(got->record_id.data, want->record_id.data, want->record_id.len);
    assert_string_equal(got->device_id, want->device_id);
    assert_int_equal(got->seq, want->seq);
    assert_int_equal(got->device_ts_ms, want->device_ts_ms);
    assert_int_equal(got->received_at_us, want->received_at_us);
    assert_int_equal(got->jws.len, want->jws.len);
    assert_memory_equal(got->jws.data, want->jws.data, want->jws.len);
    assert_string_equal(got->gateway_id, want->gateway_id);
    assert_false(got->heartbeat);
    lcore__v1__reading__free_unpacked(got, NULL);
}

/* Logs reading r (seq 42) and takes its first delivery. */
static void s_log_delivered(s_fx_t *f, Lcore__V1__Reading *r, uint8_t id[LC_RECORD_ID_LEN])
{
    s_reading(r, id);
    uint64_t lsn = 0;
    assert_int_equal(gw_wal_append_pb(f->log, id, &r->base, &lsn), 0);
    s_expect_delivery(f, r, 1);
}

static void test_delivery_decodes_with_attempt(void **state)
{
    s_fx_t *f = *state;
    Lcore__V1__Reading r;
    uint8_t id[LC_RECORD_ID_LEN];
    s_log_delivered(f, &r, id);
    /* Not acknowledged: after the redelivery timeout it goes out again, as attempt 2. */
    s_expect_delivery(f, &r, 2);
}

static void test_delivery_overrides_logged_attempt(void **state)
{
    s_fx_t *f = *state;
    Lcore__V1__Reading r;
    uint8_t id[LC_RECORD_ID_LEN];
    s_reading(&r, id);
    r.attempt = 9;
    r.max_attempts = 1000;
    uint64_t lsn = 0;
    assert_int_equal(gw_wal_append_pb(f->log, id, &r.base, &lsn), 0);
    s_expect_delivery(f, &r, 1);
}

/* The store's ack for one reading, on the events socket. */
static void s_ack(zsock_t *pub, const uint8_t id[LC_RECORD_ID_LEN])
{
    Lcore__V1__Ack ack = LCORE__V1__ACK__INIT;
    ProtobufCBinaryData one = {LC_RECORD_ID_LEN, (uint8_t *)id};
    ack.version = 1;
    ack.n_record_ids = 1;
    ack.record_ids = &one;
    uint8_t buf[64];
    size_t n = lcore__v1__ack__pack(&ack, buf);
    zmsg_t *m = zmsg_new();
    zmsg_addstr(m, "ack/gw-test/");
    zmsg_addmem(m, buf, n);
    assert_int_equal(zmsg_send(&m, pub), 0);
}

static const uint64_t s_300ms = 300;

/* The store back from a restart works through a backlog: acks come, in order, for readings sent
 * before the last one, for longer than its timeout. It waits (not an attempt, no redelivery);
 * once the acks stop for a timeout it counts as lost and goes out again, as attempt 2. */
static void test_overdue_waits_while_earlier_readings_are_acked(void **state)
{
    s_fx_t *f = *state;
    enum { N = 30 };
    static Lcore__V1__Reading r[N + 1];
    static uint8_t ids[N + 1][LC_RECORD_ID_LEN];
    uint64_t lsn = 0;
    for (int i = 0; i <= N; i++) {
        s_reading_seq(&r[i], ids[i], (uint64_t)i + 1);
        assert_int_equal(gw_wal_append_pb(f->log, ids[i], &r[i].base, &lsn), 0);
    }
    for (int i = 0; i <= N; i++)
        s_expect_delivery(f, &r[i], 1);
    /* 30 acks 20 ms apart: 600 ms, twice the timeout; the last reading is never acked. */
    zpoller_t *poller = zpoller_new(f->worker, NULL);
    for (int i = 0; i < N; i++) {
        s_ack(f->store, ids[i]);
        assert_null(zpoller_wait(poller, 20)); /* nothing redelivered */
    }
    zpoller_destroy(&poller);
    s_expect_delivery(f, &r[N], 2);
}

/* The store's connection ends (killed): an overdue reading waits, not an attempt, however long;
 * once a store is back it counts as lost a timeout later and goes out as attempt 2. */
static void test_overdue_waits_while_no_store_is_connected(void **state)
{
    s_fx_t *f = *state;
    zsock_destroy(&f->store);
    Lcore__V1__Reading r;
    uint8_t id[LC_RECORD_ID_LEN];
    s_log_delivered(f, &r, id);
    zpoller_t *poller = zpoller_new(f->worker, NULL);
    assert_null(zpoller_wait(poller, 500)); /* five timeouts: nothing redelivered */
    zpoller_destroy(&poller);
    assert_non_null(f->store = zsock_new(ZMQ_XPUB));
    assert_int_equal(zsock_bind(f->store, "%s", f->events), 0);
    s_expect_delivery(f, &r, 2);
}

/* No worker connected: readings wait in the log. Once one connects, the 200 waiting go out in
 * order as two messages (a batch holds LC_ZMQ_BATCH_MAX): 128, then 72. */
static void test_waiting_readings_go_out_together(void **state)
{
    s_fx_t *f = *state;
    zsock_destroy(&f->worker);
    enum { N = 200 };
    static Lcore__V1__Reading r[N];
    static uint8_t ids[N][LC_RECORD_ID_LEN];
    uint64_t lsn = 0;
    for (int i = 0; i < N; i++) {
        s_reading_seq(&r[i], ids[i], (uint64_t)i + 1);
        assert_int_equal(gw_wal_append_pb(f->log, ids[i], &r[i].base, &lsn), 0);
    }
    /* The relay makes them durable and finds no worker: all of them wait, unsent (its gauge
     * is set at each 100 ms scan). */
    for (int waited = 0;; waited += 10) {
        assert_true(waited < 5000);
        size_t len = 0;
        char *text = lc_metrics_render(f->metrics, &len);
        assert_non_null(text);
        int all = strstr(text, "\nlcore_gateway_readings_unsent 200\n") != NULL;
        free(text);
        if (all)
            break;
        zclock_sleep(10);
    }
    assert_non_null(f->worker = zsock_new(ZMQ_PULL));
    assert_int_equal(zsock_connect(f->worker, "%s", f->readings), 0);
    zsock_set_rcvtimeo(f->worker, 5000);
    /* Attempt 1, or 2: the first worker's connection may still have looked open to the relay
     * for a moment, and a batch sent into it was lost and came back overdue (still in order). */
    for (int i = 0; i < N; i++) {
        s_expect_delivery(f, &r[i], 0);
        if (i == 0)
            assert_int_equal(f->batch->n_readings, LC_ZMQ_BATCH_MAX);
        if (i == LC_ZMQ_BATCH_MAX)
            assert_int_equal(f->batch->n_readings, N - LC_ZMQ_BATCH_MAX);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivery_decodes_with_attempt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_overrides_logged_attempt, s_setup,
                                        s_teardown),
        cmocka_unit_test_prestate_setup_teardown(
            test_overdue_waits_while_earlier_readings_are_acked, s_setup, s_teardown,
            (void *)&s_300ms),
        cmocka_unit_test_setup_teardown(test_overdue_waits_while_no_store_is_connected, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_waiting_readings_go_out_together, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
