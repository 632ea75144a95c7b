/* test_st_db.c: the store's positions against a real PostgreSQL: a write batch numbers its records
 * densely after the store's position, a redelivered duplicate leaves a hole, the `stores` row
 * moves with the records, st_db_last_written says what a write batch committed, records_after and
 * store_positions answer from one snapshot (upto moves past holes), one process per store_id
 * (the advisory lock), and a reconnection takes the lock and re-reads the position.
 *
 * Needs LCORE_TEST_PG_DSN: the owner role's DSN of a scratch database (the test migrates it
 * and writes rows under a store_id and device of its own; rerunnable). Without it every test is
 * skipped, e.g. `LCORE_TEST_PG_DSN=postgresql://lcore@127.0.0.1:15432/scratch
 * ctest --test-dir build -R 'test_(st|ch)_db'`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lc_pg.h"
#include "lc_record.h"
#include "st_db.h"
#include "st_seq_ranges.h"

typedef struct {
    const char *dsn;
    char store_id[32], device_id[40];
    st_db_t *db; /* the writer */
} s_fixture_t;

static uint8_t s_zero[64];

/* A sealed record of the fixture's device at seq (only the database's checks apply here). */
static Lcore__V1__SealedRecord *s_record(const s_fixture_t *f, uint64_t seq, uint8_t id[32])
{
    Lcore__V1__SealedRecord *r = calloc(1, sizeof *r);
    lcore__v1__sealed_record__init(r);
    lc_record_id(id, f->device_id, strlen(f->device_id), seq);
    r->version = 1;
    r->record_id = (ProtobufCBinaryData){32, id};
    r->device_id = (char *)f->device_id;
    r->seq = seq;
    r->device_ts_ms = 1700000000000ull + seq;
    r->received_at_us = 1700000000000000ull + seq;
    r->key_version = 1;
    r->aes_nonce = (ProtobufCBinaryData){12, s_zero};
    r->xchacha_nonce = (ProtobufCBinaryData){24, s_zero};
    r->ciphertext = (ProtobufCBinaryData){40, s_zero};
    r->envelope_hash = (ProtobufCBinaryData){32, id};    /* any 32 bytes */
    r->reading_hash = (ProtobufCBinaryData){32, s_zero}; /* the same reading, unless a test
                                                            changes it */
    return r;
}

/* Writes the records of seqs[0 .. n - 1]; returns how many were new. */
static size_t s_insert(s_fixture_t *f, st_db_t *db, const uint64_t *seqs, size_t n, int want_rc)
{
    Lcore__V1__SealedRecord *recs[8];
    uint8_t ids[8][32];
    for (size_t i = 0; i < n; i++)
        recs[i] = s_record(f, seqs[i], ids[i]);
    size_t inserted = 99;
    assert_int_equal(st_db_insert_records(db, recs, n, &inserted), want_rc);
    for (size_t i = 0; i < n; i++)
        free(recs[i]);
    return inserted;
}

static void s_answer(st_db_t *db, Lcore__V1__Query *q, Lcore__V1__QueryReply *reply)
{
    q->version = 1;
    lcore__v1__query_reply__init(reply);
    st_db_answer(db, q, 1, reply);
}

/* Registers the device `device_id` (an Ed25519 key of its own) through the writer's connection. */
static void s_register(st_db_t *db, const char *device_id)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    Lcore__V1__Device d = LCORE__V1__DEVICE__INIT;
    d.device_id = (char *)device_id;
    d.alg = (char *)"EdDSA";
    d.public_key = (ProtobufCBinaryData){sizeof pk, pk};
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_REGISTER_DEVICE;
    q.register_device = &d;
    Lcore__V1__QueryReply reply;
    s_answer(db, &q, &reply);
    assert_int_equal(reply.status, LCORE__V1__QUERY_REPLY__STATUS__CREATED);
    st_db_reply_clear(&reply);
}

static int s_setup(void **state)
{
    const char *dsn = getenv("LCORE_TEST_PG_DSN");
    if (!dsn || !dsn[0])
        return 0;
    s_fixture_t *f = calloc(1, sizeof *f);
    f->dsn = dsn;
    snprintf(f->store_id, sizeof f->store_id, "t-%d-%lld", (int)getpid(), (long long)time(NULL));
    snprintf(f->device_id, sizeof f->device_id, "dev-%s", f->store_id);
    st_db_t *owner = st_db_new(dsn, NULL);
    assert_non_null(owner);
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(st_db_migrate(owner, NULL, NULL, out), 0);
    fclose(out);
    /* The device the records refer to. */
    assert_int_equal(sodium_init() >= 0, 1);
    s_register(owner, f->device_id);
    st_db_destroy(&owner);
    assert_non_null(f->db = st_db_new(dsn, f->store_id));
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture_t *f = *state;
    if (f)
        st_db_destroy(&f->db);
    free(f);
    return 0;
}

#define S_NEED_DB(f)                                                                               \
    do {                                                                                           \
        if (!(f))                                                                                  \
            skip();                                                                                \
    } while (0)

/* Positions 1..3, then a write batch with a duplicate: 4 is a hole, 5 the new record. */
static void test_positions_dense_with_holes(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    char why[192];
    assert_int_equal(st_db_schema_check(f->db, why, sizeof why), 0);
    const uint64_t first[] = {0, 1, 2}, second[] = {1, 3};
    assert_int_equal(s_insert(f, f->db, first, 3, 0), 3);
    const Lcore__V1__StoredRecords *w = st_db_last_written(f->db);
    assert_string_equal(w->store_id, f->store_id);
    assert_int_equal(w->after, 0);
    assert_int_equal(w->upto, 3);
    assert_int_equal(w->n_records, 3);
    for (size_t i = 0; i < 3; i++) {
        uint8_t id[32];
        lc_record_id(id, f->device_id, strlen(f->device_id), first[i]);
        assert_int_equal(w->records[i]->position, i + 1);
        assert_memory_equal(w->records[i]->record_id.data, id, 32);
        assert_memory_equal(w->records[i]->envelope_hash.data, id, 32);
        assert_true(w->records[i]->received_at_us == 1700000000000000ull + first[i]);
        assert_true(w->records[i]->stored_at_us > 1700000000000000ull);
    }
    assert_int_equal(s_insert(f, f->db, second, 2, 0), 1);
    w = st_db_last_written(f->db);
    assert_int_equal(w->after, 3);
    assert_int_equal(w->upto, 5);
    assert_int_equal(w->n_records, 1);
    assert_int_equal(w->records[0]->position, 5);
    assert_int_equal(w->records[0]->received_at_us, 1700000000000003ull);
}

/* Seqs 0..2 are stored with reading_hash 0 (test_positions_dense_with_holes). Sent again: seq 1
 * with the same bytes is a duplicate, seq 2 with other bytes a conflict kept in seq_conflicts,
 * seq 1000 is new; get_record gives the stored reading's hash, get_device next_seq. */
static void test_seq_conflicts(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    static uint8_t other[32] = {1, 2, 3};
    Lcore__V1__SealedRecord *recs[3];
    uint8_t ids[3][32];
    const uint64_t seqs[] = {1, 2, 1000};
    for (size_t i = 0; i < 3; i++)
        recs[i] = s_record(f, seqs[i], ids[i]);
    recs[1]->reading_hash = (ProtobufCBinaryData){32, other};
    recs[1]->gateway_id = (char *)"gw-x";
    size_t inserted = 0, found = 9;
    unsigned char conflict[3];
    assert_int_equal(st_db_insert_records(f->db, recs, 3, &inserted), 0);
    assert_int_equal(inserted, 1);
    assert_int_equal(st_db_find_conflicts(f->db, recs, 3, conflict, &found), 0);
    assert_int_equal(found, 1);
    assert_int_equal(conflict[0], 0);
    assert_int_equal(conflict[1], 1);
    assert_int_equal(conflict[2], 0);
    /* The same conflicting reading again: still a conflict, one row kept. */
    assert_int_equal(st_db_insert_records(f->db, &recs[1], 1, &inserted), 0);
    assert_int_equal(inserted, 0);
    assert_int_equal(st_db_find_conflicts(f->db, &recs[1], 1, conflict, &found), 0);
    assert_int_equal(found, 1);
    for (size_t i = 0; i < 3; i++)
        free(recs[i]);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_RECORD;
    q.get_record = (ProtobufCBinaryData){32, ids[1]};
    Lcore__V1__QueryReply reply;
    s_answer(f->db, &q, &reply);
    assert_int_equal(reply.status, LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.record->reading_hash.len, 32);
    assert_memory_equal(reply.record->reading_hash.data, s_zero, 32); /* the first one stays */
    st_db_reply_clear(&reply);
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = f->device_id;
    s_answer(f->db, &q, &reply);
    assert_int_equal(reply.status, LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.device->next_seq, 1001);
    st_db_reply_clear(&reply);
}

static void s_records_after(s_fixture_t *f, uint64_t after, uint32_t limit,
                            Lcore__V1__QueryReply *reply)
{
    Lcore__V1__RecordsAfter ra = LCORE__V1__RECORDS_AFTER__INIT;
    ra.store_id = f->store_id;
    ra.after = after;
    ra.limit = limit;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_RECORDS_AFTER;
    q.records_after = &ra;
    s_answer(f->db, &q, reply);
    assert_int_equal(reply->status, LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_non_null(reply->stored);
    assert_string_equal(reply->stored->store_id, f->store_id);
    assert_int_equal(reply->stored->after, after);
}

static void test_records_after(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    Lcore__V1__QueryReply reply;
    s_records_after(f, 0, 0, &reply); /* everything: 1, 2, 3, 5 */
    assert_int_equal(reply.stored->n_records, 4);
    assert_int_equal(reply.stored->records[3]->position, 5);
    assert_int_equal(reply.stored->upto, 5);
    assert_false(reply.stored->more);
    st_db_reply_clear(&reply);
    s_records_after(f, 0, 2, &reply); /* a page: upto is its last one's */
    assert_int_equal(reply.stored->n_records, 2);
    assert_int_equal(reply.stored->records[1]->position, 2);
    assert_int_equal(reply.stored->upto, 2);
    assert_true(reply.stored->more);
    st_db_reply_clear(&reply);
    s_records_after(f, 2, 2, &reply); /* the rest, across the hole at 4 */
    assert_int_equal(reply.stored->n_records, 2);
    assert_int_equal(reply.stored->records[0]->position, 3);
    assert_int_equal(reply.stored->records[1]->position, 5);
    assert_int_equal(reply.stored->upto, 5);
    assert_false(reply.stored->more);
    st_db_reply_clear(&reply);
    s_records_after(f, 5, 10, &reply); /* nothing new */
    assert_int_equal(reply.stored->n_records, 0);
    assert_int_equal(reply.stored->upto, 5);
    st_db_reply_clear(&reply);
}

static void test_store_positions_and_sealed(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_STORE_POSITIONS;
    q.store_positions = 1;
    Lcore__V1__QueryReply reply;
    s_answer(f->db, &q, &reply);
    assert_int_equal(reply.status, LCORE__V1__QUERY_REPLY__STATUS__OK);
    int found = 0;
    for (size_t i = 0; i < reply.n_positions; i++)
        if (strcmp(reply.positions[i]->store_id, f->store_id) == 0) {
            assert_int_equal(reply.positions[i]->position, 5);
            found = 1;
        }
    assert_true(found);
    st_db_reply_clear(&reply);
    uint8_t id[32];
    lc_record_id(id, f->device_id, strlen(f->device_id), 2);
    q.body_case = LCORE__V1__QUERY__BODY_GET_SEALED;
    q.get_sealed = (ProtobufCBinaryData){32, id};
    s_answer(f->db, &q, &reply);
    assert_int_equal(reply.status, LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(reply.sealed->device_id, f->device_id);
    assert_int_equal(reply.sealed->seq, 2);
    assert_int_equal(reply.sealed->ciphertext.len, 40);
    assert_int_equal(reply.sealed->xchacha_nonce.len, 24);
    assert_true(reply.sealed->received_at_us == 1700000000000002ull);
    st_db_reply_clear(&reply);
}

/* A second process with the same store_id writes nothing; a reconnection re-reads. */
static void test_one_writer_per_store_id_and_reconnect(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    char why[192];
    st_db_t *other = st_db_new(f->dsn, f->store_id);
    assert_non_null(other);
    assert_int_not_equal(st_db_schema_check(other, why, sizeof why), 0);
    assert_non_null(strstr(why, "held by another"));
    const uint64_t seq9[] = {9};
    assert_int_equal(s_insert(f, other, seq9, 1, LC_ERR_UNAVAILABLE), 0);
    st_db_destroy(&other);
    /* The writer's session (the holder of the store_id's lock) is killed: the next insert
     * reconnects, takes the lock again and goes on from the position in `stores`. */
    lc_pg_t *owner = lc_pg_new(f->dsn, "test_st_db");
    lc_pg_params_t *p = lc_pg_params(owner);
    lc_pg_add_text(p, f->store_id);
    assert_int_equal(lc_pg_exec(owner,
                                "SELECT pg_terminate_backend(pid) FROM pg_locks"
                                " WHERE locktype = 'advisory' AND classid = x'6c637374'::int"
                                " AND objid = (hashtext($1)::bigint & 4294967295)::oid"
                                " AND objsubid = 2 AND granted",
                                p),
                     1);
    usleep(100000);
    assert_int_equal(s_insert(f, f->db, seq9, 1, LC_ERR_UNAVAILABLE), 0); /* finds it dead */
    assert_int_equal(s_insert(f, f->db, seq9, 1, 0), 1);
    assert_int_equal(st_db_last_written(f->db)->records[0]->position, 6);
    p = lc_pg_params(owner);
    lc_pg_add_text(p, f->store_id);
    PGresult *r = NULL;
    assert_int_equal(lc_pg_query_row(owner, &r,
                                     "SELECT (SELECT position FROM stores WHERE store_id = $1),"
                                     " count(*), min(position), max(position) FROM records"
                                     " WHERE store_id = $1",
                                     p),
                     0);
    assert_int_equal(lc_pg_i64(r, 0, 0), 6);
    assert_int_equal(lc_pg_i64(r, 0, 1), 5); /* 1, 2, 3, 5, 6 */
    assert_int_equal(lc_pg_i64(r, 0, 2), 1);
    assert_int_equal(lc_pg_i64(r, 0, 3), 6);
    PQclear(r);
    lc_pg_destroy(&owner);
}

/* A record of an unknown device spoils its write batch (nothing written, the position unmoved); its
 * dead letter is recorded once, and a stored record's is absorbed. */
static void test_refused_write_batch_and_dead_letters(void **state)
{
    s_fixture_t *f = *state;
    if (!f)
        skip();
    uint64_t before = st_db_last_written(f->db)->upto;
    s_fixture_t ghost = *f;
    snprintf(ghost.device_id, sizeof ghost.device_id, "ghost-%s", f->store_id);
    Lcore__V1__SealedRecord *recs[2];
    uint8_t ids[2][32];
    recs[0] = s_record(f, 20, ids[0]);
    recs[1] = s_record(&ghost, 1, ids[1]);
    size_t inserted = 99;
    assert_int_equal(st_db_insert_records(f->db, recs, 2, &inserted), LC_ERR_INVALID);
    assert_int_equal(inserted, 0);
    assert_non_null(strstr(st_db_last_error(f->db), "23503")); /* foreign key: no such device */
    assert_int_equal(st_db_insert_records(f->db, recs, 1, &inserted), 0); /* the good one alone */
    assert_int_equal(st_db_last_written(f->db)->after, before);
    assert_int_equal(st_db_last_written(f->db)->records[0]->position, before + 1);
    Lcore__V1__DeadLetter dl = LCORE__V1__DEAD_LETTER__INIT;
    dl.record_id = recs[1]->record_id;
    dl.device_id = ghost.device_id;
    dl.seq = 1;
    dl.gateway_id = (char *)"gw-test";
    dl.stage = (char *)"store";
    dl.reason = (char *)"refused by PostgreSQL: 23503";
    dl.attempts = 3;
    st_dead_letter_outcome_t outcome;
    /* Without its reading a dead letter is refused: it would be the reading's end. */
    assert_int_equal(st_db_dead_letter(f->db, &dl, &outcome), LC_ERR_INVALID);
    assert_non_null(strstr(st_db_last_error(f->db), "sealed"));
    dl.sealed = recs[1];
    assert_int_equal(st_db_dead_letter(f->db, &dl, &outcome), 0);
    assert_int_equal(outcome, ST_DEAD_LETTERED);
    assert_int_equal(st_db_dead_letter(f->db, &dl, &outcome), 0);
    assert_int_equal(outcome, ST_ALREADY_DEAD_LETTERED);
    dl.record_id = recs[0]->record_id;
    dl.device_id = (char *)f->device_id;
    dl.seq = 20;
    dl.sealed = recs[0];
    assert_int_equal(st_db_dead_letter(f->db, &dl, &outcome), 0);
    assert_int_equal(outcome, ST_ALREADY_STORED);
    dl.seq = 21; /* record_id no longer matches: refused before the database */
    assert_int_equal(st_db_dead_letter(f->db, &dl, &outcome), LC_ERR_INVALID);
    assert_non_null(strstr(st_db_last_error(f->db), "record_id"));
    free(recs[0]);
    free(recs[1]);
}

/* device_status's answer for device_id: its status, and the report as "last/contiguous gaps". */
static Lcore__V1__QueryReply__Status s_status(st_db_t *db, const char *device_id, char *out,
                                              size_t cap)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_DEVICE_STATUS;
    q.device_status = (char *)device_id;
    Lcore__V1__QueryReply reply;
    s_answer(db, &q, &reply);
    Lcore__V1__QueryReply__Status st = reply.status;
    const Lcore__V1__DeviceStatus *ds = reply.device_status;
    out[0] = '\0';
    if (ds) {
        assert_string_equal(ds->device_id, device_id);
        assert_string_equal(ds->status, "active");
        size_t off = (size_t)snprintf(out, cap, "%s%llu/%llu",
                                      ds->has_seqs ? "" : "none:", (unsigned long long)ds->last_seq,
                                      (unsigned long long)ds->contiguous_through);
        for (size_t i = 0; i < ds->n_gaps && off < cap; i++)
            off += (size_t)snprintf(out + off, cap - off, " %llu-%llu",
                                    (unsigned long long)ds->gaps[i]->from,
                                    (unsigned long long)ds->gaps[i]->to);
        if (ds->gaps_capped && off < cap)
            snprintf(out + off, cap - off, " ...");
        assert_true(!ds->has_seqs || ds->last_seen_us >= 1700000000000000ull);
    }
    st_db_reply_clear(&reply);
    return st;
}

/* Rows of device_seq_ranges for the device (merged after each write batch). */
static long s_range_rows(st_db_t *db, const char *device_id)
{
    lc_pg_params_t *p = lc_pg_params(st_db_pg(db));
    lc_pg_add_text(p, device_id);
    PGresult *r = NULL;
    assert_int_equal(lc_pg_query(st_db_pg(db), &r,
                                 "SELECT count(*) FROM device_seq_ranges WHERE device_id = $1", p),
                     0);
    long n = (long)lc_pg_i64(r, 0, 0);
    PQclear(r);
    return n;
}

/* Completeness: seqs 1,2,3,5 then 6,9 leave the gaps 4 and 7-8; 4 arriving late closes its gap
 * (and the runs merge); a redelivered duplicate changes nothing; 7 and 8 close the rest. The
 * gauge counts this device while it has gaps. Unknown and malformed device ids are refused. */
static void test_device_status_gaps(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    s_fixture_t g = *f;
    snprintf(g.device_id, sizeof g.device_id, "gaps-%s", f->store_id);
    char got[256];
    assert_int_equal(s_status(f->db, g.device_id, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND);
    assert_int_equal(s_status(f->db, "bad id", got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST);
    s_register(f->db, g.device_id);
    assert_int_equal(s_status(f->db, g.device_id, got, sizeof got), 0);
    assert_string_equal(got, "none:0/0");
    uint64_t before = 0, during = 0, after = 0;
    assert_int_equal(st_seq_ranges_devices_with_gaps(st_db_pg(f->db), &before), 0);
    const uint64_t a[] = {1, 2, 3, 5}, b[] = {9, 6}, late[] = {4}, again[] = {4, 9},
                   rest[] = {8, 7};
    assert_int_equal(s_insert(&g, f->db, a, 4, 0), 4);
    assert_int_equal(s_insert(&g, f->db, b, 2, 0), 2);
    assert_int_equal(s_status(f->db, g.device_id, got, sizeof got), 0);
    assert_string_equal(got, "9/3 4-4 7-8");
    assert_int_equal(st_seq_ranges_devices_with_gaps(st_db_pg(f->db), &during), 0);
    assert_int_equal(during, before + 1);
    assert_int_equal(s_insert(&g, f->db, late, 1, 0), 1);
    assert_int_equal(s_status(f->db, g.device_id, got, sizeof got), 0);
    assert_string_equal(got, "9/6 7-8");
    assert_int_equal(s_range_rows(f->db, g.device_id), 2);
    assert_int_equal(s_insert(&g, f->db, again, 2, 0), 0);
    assert_int_equal(s_status(f->db, g.device_id, got, sizeof got), 0);
    assert_string_equal(got, "9/6 7-8");
    assert_int_equal(s_insert(&g, f->db, rest, 2, 0), 2);
    assert_int_equal(s_status(f->db, g.device_id, got, sizeof got), 0);
    assert_string_equal(got, "9/9");
    assert_int_equal(s_range_rows(f->db, g.device_id), 1);
    assert_int_equal(st_seq_ranges_devices_with_gaps(st_db_pg(f->db), &after), 0);
    assert_int_equal(after, before);
}

/* More gaps than an answer holds: the lowest ST_STATUS_GAPS_MAX, and gaps_capped. */
static void test_device_status_capped(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    s_fixture_t g = *f;
    snprintf(g.device_id, sizeof g.device_id, "capped-%s", f->store_id);
    s_register(f->db, g.device_id);
    for (uint64_t base = 0; base < 208; base += 8) { /* 0, 2, ..., 206: 103 gaps */
        const uint64_t even[] = {base, base + 2, base + 4, base + 6};
        assert_int_equal(s_insert(&g, f->db, even, 4, 0), 4);
    }
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_DEVICE_STATUS;
    q.device_status = g.device_id;
    Lcore__V1__QueryReply reply;
    s_answer(f->db, &q, &reply);
    assert_int_equal(reply.status, 0);
    const Lcore__V1__DeviceStatus *ds = reply.device_status;
    assert_int_equal(ds->n_gaps, ST_STATUS_GAPS_MAX);
    assert_true(ds->gaps_capped);
    assert_int_equal(ds->contiguous_through, 0);
    assert_int_equal(ds->last_seq, 206);
    assert_int_equal(ds->gaps[0]->from, 1);
    assert_int_equal(ds->gaps[ST_STATUS_GAPS_MAX - 1]->to, 2 * ST_STATUS_GAPS_MAX - 1);
    st_db_reply_clear(&reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_positions_dense_with_holes),
        cmocka_unit_test(test_records_after),
        cmocka_unit_test(test_store_positions_and_sealed),
        cmocka_unit_test(test_one_writer_per_store_id_and_reconnect),
        cmocka_unit_test(test_refused_write_batch_and_dead_letters),
        cmocka_unit_test(test_seq_conflicts),
        cmocka_unit_test(test_device_status_gaps),
        cmocka_unit_test(test_device_status_capped),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
