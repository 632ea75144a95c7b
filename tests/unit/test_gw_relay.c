/* test_gw_relay.c: what the relay puts on the readings socket. A reading appended to the log
 * reaches a PULL socket (a stand-in worker) as bytes that lcore__v1__reading__unpack decodes to
 * the logged reading with this delivery's attempt and max_attempts; a redelivery counts up, and
 * the delivery's values win over any the logged bytes carry. */
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
#include "lcore.pb-c.h"

#define S_MAX_ATTEMPTS 5

typedef struct {
    char dir[64], wal[96], ring_path[96], readings[112], events[112];
    lc_keyring_t *ring;
    lc_metrics_t *metrics;
    lc_curve_t *curve;
    gw_relay_t *relay;
    gw_wal_t *log;
    zsock_t *worker; /* PULL, as a crypto worker connects */
} s_fx_t;

static int s_setup(void **state)
{
    s_fx_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->dir, "/tmp/lcore-test-relay-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->wal, sizeof f->wal, "%s/wal", f->dir);
    snprintf(f->ring_path, sizeof f->ring_path, "%s/ring", f->dir);
    snprintf(f->readings, sizeof f->readings, "ipc://%s/readings", f->dir);
    snprintf(f->events, sizeof f->events, "ipc://%s/events", f->dir); /* nobody publishes */
    assert_int_equal(lc_keyring_create(f->ring_path, LC_KEYRING_GATEWAY), 0);
    assert_non_null(f->ring = lc_keyring_load(f->ring_path, LC_KEYRING_GATEWAY, NULL));
    assert_non_null(f->metrics = lc_metrics_new());
    lc_curve_cfg_t plain = {0};
    assert_non_null(f->curve = lc_curve_new(&plain, "gateway", f->metrics));
    /* Redelivery after 100 ms; no heartbeats (only readings on the socket); no drain at stop. */
    gw_relay_opts_t ro = {.readings_bind = f->readings,
                          .events_connect = f->events,
                          .gateway_id = "gw-test",
                          .curve = f->curve,
                          .hwm = 1000,
                          .window = 100,
                          .redeliver_ms = 100,
                          .redeliver_max_ms = 100,
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
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *f = *state;
    zsock_destroy(&f->worker);
    gw_relay_destroy(&f->relay);
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
static void s_reading(Lcore__V1__Reading *r, uint8_t id[LC_RECORD_ID_LEN])
{
    static const char jws[] = "eyJhbGciOiJFZERTQSJ9.eyJzZXEiOjQyfQ.c2ln";
    lc_record_id(id, "dev-1", 5, 42);
    *r = (Lcore__V1__Reading)LCORE__V1__READING__INIT;
    r->version = 1;
    r->record_id.data = id;
    r->record_id.len = LC_RECORD_ID_LEN;
    r->device_id = "dev-1";
    r->seq = 42;
    r->device_ts_ms = 1700000000123ull;
    r->received_at_us = 1700000000456789ull;
    r->jws.data = (uint8_t *)jws;
    r->jws.len = sizeof jws - 1;
    static uint8_t reading_hash[LC_READING_HASH_LEN];
    lc_reading_hash(reading_hash, r->jws.data, r->jws.len);
    r->reading_hash = (ProtobufCBinaryData){sizeof reading_hash, reading_hash};
    r->gateway_id = "gw-test";
}

/* Receives one delivery and checks it decodes to `want` with the given attempt. */
static void s_expect_delivery(s_fx_t *f, const Lcore__V1__Reading *want, uint32_t attempt)
{
    zframe_t *frame = zframe_recv(f->worker);
    assert_non_null(frame);
    Lcore__V1__Reading *got =
        lcore__v1__reading__unpack(NULL, zframe_size(frame), zframe_data(frame));
    assert_non_null(got);
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
    zframe_destroy(&frame);
}

static void test_delivery_decodes_with_attempt(void **state)
{
    s_fx_t *f = *state;
    Lcore__V1__Reading r;
    uint8_t id[LC_RECORD_ID_LEN];
    s_reading(&r, id);
    uint64_t lsn = 0;
    assert_int_equal(gw_wal_append_pb(f->log, id, &r.base, &lsn), 0);
    s_expect_delivery(f, &r, 1);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivery_decodes_with_attempt, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_delivery_overrides_logged_attempt, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
