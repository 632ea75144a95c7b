/* test_st_admin.c: the store's side of the operator and reader APIs (st_admin) and the revocation
 * check at write time. Without a database: what st_db_query_invalid refuses of the new bodies
 * (actor, limits, keys, token ids, audit actions). Against a real PostgreSQL: list_devices pages;
 * revoke (idempotent: revoked_at kept) and reactivate, each audited and published as a Change;
 * key rotation (key_no, the previous key and its overlap; the same key again is a conflict;
 * registration compares with the current key); tokens created, looked up by hash, listed,
 * deleted once; the audit log appended ("open" only) and listed; list_records pages in seq
 * order; and a reading received after its device's revocation is not stored but dead-lettered
 * and acknowledged (lcore_store_records_revoked_total), while one received before still lands,
 * and after reactivation `dead-letters replay` stores it.
 *
 * Needs LCORE_TEST_PG_DSN as test_st_db does (the owner's DSN of a scratch database; rerunnable:
 * its rows carry ids of their own); without it the database tests are skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lc_log.h"
#include "lc_metrics.h"
#include "lc_pg.h"
#include "lc_zmq.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "st_admin.h"
#include "st_db.h"
#include "st_letters.h"
#include "st_writer.h"

typedef struct {
    char tag[40];       /* unique per run: device ids and token ids carry it */
    st_db_t *db, *qdb;  /* the writer (holds a store_id), the queries' connection */
    zsock_t *pub, *sub; /* the store's events socket, and a gateway listening to it */
    lc_metrics_t *metrics;
} s_fixture_t;

static uint8_t s_zero[64];

/* -- without a database ------------------------------------------------------------------ */

static const char *s_invalid(Lcore__V1__Query *q)
{
    return st_db_query_invalid(q);
}

static void test_checks_before_the_database(void **state)
{
    (void)state;
    uint8_t pk[32];
    crypto_sign_keypair(pk, (uint8_t[64]){0});
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    Lcore__V1__DeviceList dl = LCORE__V1__DEVICE_LIST__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_DEVICES;
    q.list_devices = &dl;
    assert_string_equal(s_invalid(&q), "limit must be 1..1000");
    dl.limit = 1000;
    assert_null(s_invalid(&q));
    dl.limit = 1001;
    assert_non_null(s_invalid(&q));
    dl.limit = 5;
    dl.after = (char *)"bad id";
    assert_non_null(s_invalid(&q));

    /* Audited bodies need an actor: a token id. */
    Lcore__V1__SetDeviceStatus ss = LCORE__V1__SET_DEVICE_STATUS__INIT;
    ss.device_id = (char *)"dev-1";
    q.body_case = LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS;
    q.set_device_status = &ss;
    assert_non_null(strstr(s_invalid(&q), "actor"));
    q.actor = (char *)"tok_0123456789abcdef";
    assert_null(s_invalid(&q));
    q.actor = (char *)"x y";
    assert_non_null(strstr(s_invalid(&q), "actor"));
    q.actor = (char *)"admin";

    Lcore__V1__RotateKey rk = LCORE__V1__ROTATE_KEY__INIT;
    rk.device_id = (char *)"dev-1";
    rk.alg = (char *)"EdDSA";
    rk.public_key = (ProtobufCBinaryData){32, pk};
    q.body_case = LCORE__V1__QUERY__BODY_ROTATE_KEY;
    q.rotate_key = &rk;
    assert_null(s_invalid(&q));
    rk.overlap_s = ST_ADMIN_OVERLAP_MAX + 1;
    assert_non_null(strstr(s_invalid(&q), "overlap_s"));
    rk.overlap_s = ST_ADMIN_OVERLAP_MAX;
    rk.alg = (char *)"ES256K"; /* an Ed25519 key is no secp256k1 key */
    assert_non_null(strstr(s_invalid(&q), "public_key"));
    rk.alg = (char *)"RS256";
    assert_non_null(strstr(s_invalid(&q), "alg"));

    Lcore__V1__Token t = LCORE__V1__TOKEN__INIT;
    char *devices[] = {(char *)"dev-1", (char *)"dev,2"};
    t.id = (char *)"tok_0123456789abcdef";
    t.hash = (ProtobufCBinaryData){32, pk};
    t.scope = (char *)"decrypt";
    t.devices = devices;
    t.n_devices = 1;
    q.body_case = LCORE__V1__QUERY__BODY_CREATE_TOKEN;
    q.create_token = &t;
    assert_null(s_invalid(&q));
    t.n_devices = 2; /* a device id with a comma */
    assert_non_null(strstr(s_invalid(&q), "devices"));
    t.n_devices = 0;
    t.scope = (char *)"write";
    assert_non_null(strstr(s_invalid(&q), "scope"));
    t.scope = (char *)"read";
    t.id = (char *)"tok_0123456789ABCDEF";
    assert_non_null(strstr(s_invalid(&q), "tok_"));
    t.id = (char *)"tok_0123456789abcdef";
    t.hash.len = 31;
    assert_non_null(strstr(s_invalid(&q), "hash"));

    q.body_case = LCORE__V1__QUERY__BODY_DELETE_TOKEN;
    q.delete_token = (char *)"tok_01";
    assert_non_null(s_invalid(&q));
    q.body_case = LCORE__V1__QUERY__BODY_GET_TOKEN;
    q.get_token = (ProtobufCBinaryData){32, pk};
    assert_null(s_invalid(&q));

    Lcore__V1__AuditEntry e = LCORE__V1__AUDIT_ENTRY__INIT;
    e.token_id = (char *)"tok_0123456789abcdef";
    e.action = (char *)"device.revoke"; /* only the store writes those, with the change */
    e.target = (char *)"ab01";
    q.body_case = LCORE__V1__QUERY__BODY_APPEND_AUDIT;
    q.append_audit = &e;
    assert_non_null(strstr(s_invalid(&q), "open"));
    e.action = (char *)"open";
    assert_null(s_invalid(&q));
    e.target = (char *)"";
    assert_non_null(strstr(s_invalid(&q), "target"));

    Lcore__V1__RecordList rl = LCORE__V1__RECORD_LIST__INIT;
    rl.device_id = (char *)"dev-1";
    q.body_case = LCORE__V1__QUERY__BODY_LIST_RECORDS;
    q.list_records = &rl;
    assert_string_equal(s_invalid(&q), "limit must be 1..1000");
    rl.limit = 1;
    assert_null(s_invalid(&q));

    /* A registration's actor may be empty (callers from before the audit log), not malformed. */
    Lcore__V1__Device d = LCORE__V1__DEVICE__INIT;
    d.device_id = (char *)"dev-1";
    d.alg = (char *)"EdDSA";
    d.public_key = (ProtobufCBinaryData){32, pk};
    q.body_case = LCORE__V1__QUERY__BODY_REGISTER_DEVICE;
    q.register_device = &d;
    q.actor = (char *)"";
    assert_null(s_invalid(&q));
    q.actor = (char *)"a\"b";
    assert_non_null(strstr(s_invalid(&q), "actor"));

    /* A body that is the relayer's, not the store's. */
    q.body_case = LCORE__V1__QUERY__BODY_GET_ANCHORS;
    assert_string_equal(s_invalid(&q), "unknown query");
}

/* -- against PostgreSQL ------------------------------------------------------------------ */

static int s_setup(void **state)
{
    const char *dsn = getenv("LCORE_TEST_PG_DSN");
    if (!dsn || !dsn[0])
        return 0;
    s_fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->tag, sizeof f->tag, "a%d-%lld", (int)getpid(), (long long)time(NULL));
    st_db_t *owner = st_db_new(dsn, NULL);
    assert_non_null(owner);
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(st_db_migrate(owner, NULL, NULL, out), 0);
    fclose(out);
    st_db_destroy(&owner);
    char store_id[48];
    snprintf(store_id, sizeof store_id, "s-%s", f->tag);
    assert_non_null(f->db = st_db_new(dsn, store_id));
    assert_non_null(f->qdb = st_db_new(dsn, NULL));
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "inproc://st-admin-%s", f->tag);
    assert_non_null(f->pub = zsock_new_pub(endpoint));
    assert_non_null(f->sub = zsock_new_sub(endpoint, ""));
    zsock_set_rcvtimeo(f->sub, 2000);
    st_db_publish_changes(f->qdb, f->pub);
    assert_non_null(f->metrics = lc_metrics_new());
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    s_fixture_t *f = *state;
    if (f) {
        st_db_destroy(&f->db);
        st_db_destroy(&f->qdb);
        zsock_destroy(&f->sub);
        zsock_destroy(&f->pub);
        lc_metrics_destroy(&f->metrics);
    }
    free(f);
    return 0;
}

#define S_NEED_DB(f)                                                                               \
    do {                                                                                           \
        if (!(f))                                                                                  \
            skip();                                                                                \
    } while (0)

/* Answers q (version set) into reply. */
static Lcore__V1__QueryReply__Status s_ask(s_fixture_t *f, Lcore__V1__Query *q,
                                           Lcore__V1__QueryReply *reply)
{
    q->version = 1;
    lcore__v1__query_reply__init(reply);
    st_db_answer(f->qdb, q, 1, reply);
    return reply->status;
}

/* The next message on the events socket under topic (others skipped): its body, or NULL. */
static zframe_t *s_next_event(s_fixture_t *f, const char *topic)
{
    for (;;) {
        zmsg_t *m = zmsg_recv(f->sub);
        if (!m)
            return NULL;
        zframe_t *t = zmsg_pop(m), *body = zmsg_pop(m);
        int match = t && zframe_streq(t, topic);
        zframe_destroy(&t);
        zmsg_destroy(&m);
        if (match)
            return body;
        zframe_destroy(&body);
    }
}

/* The next Change: "device_id|token_id". */
static void s_expect_change(s_fixture_t *f, const char *device_id, const char *token_id)
{
    zframe_t *body = s_next_event(f, "changes/");
    assert_non_null(body);
    Lcore__V1__Change *c = lcore__v1__change__unpack(NULL, zframe_size(body), zframe_data(body));
    assert_non_null(c);
    assert_int_equal(c->version, 1);
    assert_string_equal(c->device_id, device_id);
    assert_string_equal(c->token_id, token_id);
    lcore__v1__change__free_unpacked(c, NULL);
    zframe_destroy(&body);
}

/* Registers device_id with a new Ed25519 key (into pk) as actor. */
static void s_register(s_fixture_t *f, const char *device_id, const char *actor, uint8_t pk[32])
{
    uint8_t sk[64];
    crypto_sign_keypair(pk, sk);
    Lcore__V1__Device d = LCORE__V1__DEVICE__INIT;
    d.device_id = (char *)device_id;
    d.alg = (char *)"EdDSA";
    d.public_key = (ProtobufCBinaryData){32, pk};
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_REGISTER_DEVICE;
    q.register_device = &d;
    q.actor = (char *)actor;
    Lcore__V1__QueryReply reply;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__CREATED);
    st_db_reply_clear(&reply);
}

/* A one-value SQL answer as text ("" for NULL), on the queries' connection. */
static void s_sql(s_fixture_t *f, const char *sql, const char *arg, char *out, size_t cap)
{
    lc_pg_params_t *p = lc_pg_params(st_db_pg(f->qdb));
    lc_pg_add_text(p, arg);
    PGresult *r = NULL;
    assert_int_equal(lc_pg_query_row(st_db_pg(f->qdb), &r, sql, p), 0);
    char *v = lc_pg_text_dup(r, 0, 0);
    snprintf(out, cap, "%s", v ? v : "");
    free(v);
    PQclear(r);
}

/* The audit log's entries for target, oldest first: "token_id action;...". */
static void s_audit_of(s_fixture_t *f, const char *target, char *out, size_t cap)
{
    s_sql(f,
          "SELECT coalesce(string_agg(token_id || ' ' || action, ';' ORDER BY id), '')"
          " FROM audit_log WHERE target = $1",
          target, out, cap);
}

static void test_list_and_get_devices(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    char ids[3][64], audit[256];
    uint8_t pk[32];
    for (int i = 0; i < 3; i++) {
        snprintf(ids[i], sizeof ids[i], "%s-dev-%c", f->tag, 'a' + i);
        s_register(f, ids[i], i == 0 ? "" : "tok_00000000000000aa", pk);
    }
    s_audit_of(f, ids[0], audit, sizeof audit);
    assert_string_equal(audit, "admin device.register");
    s_audit_of(f, ids[1], audit, sizeof audit);
    assert_string_equal(audit, "tok_00000000000000aa device.register");

    Lcore__V1__DeviceList dl = LCORE__V1__DEVICE_LIST__INIT;
    char after[64];
    snprintf(after, sizeof after, "%s-dev-", f->tag);
    dl.after = after;
    dl.limit = 2;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_DEVICES;
    q.list_devices = &dl;
    Lcore__V1__QueryReply reply;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.n_devices, 2);
    assert_true(reply.more);
    assert_string_equal(reply.devices[0]->device_id, ids[0]);
    assert_string_equal(reply.devices[1]->device_id, ids[1]);
    const Lcore__V1__Device *d = reply.devices[1];
    assert_string_equal(d->status, "active");
    assert_string_equal(d->alg, "EdDSA");
    assert_int_equal(d->key_no, 1);
    assert_true(d->registered_at_us > 1700000000000000ull);
    assert_true(d->key_since_us == d->registered_at_us);
    assert_int_equal(d->revoked_at_us, 0);
    assert_int_equal(d->prev_public_key.len, 0);
    assert_string_equal(d->prev_alg, "");
    st_db_reply_clear(&reply);
    dl.after = ids[1];
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_true(reply.n_devices >= 1);
    assert_string_equal(reply.devices[0]->device_id, ids[2]);
    assert_memory_equal(reply.devices[0]->public_key.data, pk, 32);
    st_db_reply_clear(&reply);

    /* get_device: the same fields, and next_seq. */
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = ids[2];
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.device->key_no, 1);
    assert_true(reply.device->registered_at_us > 0);
    assert_int_equal(reply.device->next_seq, 0);
    st_db_reply_clear(&reply);
}

/* 40 devices with 16 KiB DID documents: a page of them stops short of 1 MiB (about 512 KiB of
 * devices), with more set, and the next page goes on from its last device. */
static void test_list_devices_cut_by_size(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    static char did[16001];
    memset(did, 'a', sizeof did - 1);
    memcpy(did, "{\"x\":\"", 6);
    memcpy(did + sizeof did - 3, "\"}", 2);
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    Lcore__V1__QueryReply reply;
    for (int i = 0; i < 40; i++) {
        uint8_t pk[32], sk[64];
        char id[64];
        crypto_sign_keypair(pk, sk);
        snprintf(id, sizeof id, "%s-big-%02d", f->tag, i);
        Lcore__V1__Device d = LCORE__V1__DEVICE__INIT;
        d.device_id = id;
        d.alg = (char *)"EdDSA";
        d.public_key = (ProtobufCBinaryData){32, pk};
        d.did_document = did;
        q.body_case = LCORE__V1__QUERY__BODY_REGISTER_DEVICE;
        q.register_device = &d;
        assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__CREATED);
        st_db_reply_clear(&reply);
    }
    Lcore__V1__DeviceList dl = LCORE__V1__DEVICE_LIST__INIT;
    char after[64], last[64];
    snprintf(after, sizeof after, "%s-big-", f->tag);
    dl.after = after;
    dl.limit = 1000;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_DEVICES;
    q.list_devices = &dl;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    size_t first = reply.n_devices;
    assert_true(first >= 20 && first < 40);
    assert_true(reply.more);
    assert_true(strlen(reply.devices[0]->did_document) >= 16000); /* as jsonb prints it */
    assert_true(protobuf_c_message_get_packed_size(&reply.base) < 600000);
    snprintf(last, sizeof last, "%s", reply.devices[first - 1]->device_id);
    st_db_reply_clear(&reply);
    dl.after = last;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    char want[64];
    snprintf(want, sizeof want, "%s-big-%02zu", f->tag, first);
    assert_string_equal(reply.devices[0]->device_id, want);
    st_db_reply_clear(&reply);
}

/* set_device_status as actor: the reply's status. */
static Lcore__V1__QueryReply__Status s_set_status(s_fixture_t *f, const char *device_id,
                                                  int revoked, Lcore__V1__QueryReply *reply)
{
    Lcore__V1__SetDeviceStatus ss = LCORE__V1__SET_DEVICE_STATUS__INIT;
    ss.device_id = (char *)device_id;
    ss.revoked = revoked;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS;
    q.set_device_status = &ss;
    q.actor = (char *)"tok_00000000000000bb";
    return s_ask(f, &q, reply);
}

static void test_revoke_and_reactivate(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    char id[64], audit[512];
    uint8_t pk[32];
    snprintf(id, sizeof id, "%s-rev", f->tag);
    s_register(f, id, "", pk);
    Lcore__V1__QueryReply reply;
    assert_int_equal(s_set_status(f, id, 1, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(reply.device->status, "revoked");
    uint64_t revoked_at = reply.device->revoked_at_us;
    assert_true(revoked_at > 1700000000000000ull);
    assert_memory_equal(reply.device->public_key.data, pk, 32);
    st_db_reply_clear(&reply);
    s_expect_change(f, id, "");
    /* Revoking again changes nothing but is audited; get_device answers it, revoked. */
    assert_int_equal(s_set_status(f, id, 1, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.device->revoked_at_us, revoked_at);
    st_db_reply_clear(&reply);
    s_expect_change(f, id, "");
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = id;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(reply.device->status, "revoked");
    assert_int_equal(reply.device->revoked_at_us, revoked_at);
    st_db_reply_clear(&reply);
    assert_int_equal(s_set_status(f, id, 0, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(reply.device->status, "active");
    assert_int_equal(reply.device->revoked_at_us, 0);
    st_db_reply_clear(&reply);
    s_expect_change(f, id, "");
    s_audit_of(f, id, audit, sizeof audit);
    assert_string_equal(audit, "admin device.register;tok_00000000000000bb device.revoke;"
                               "tok_00000000000000bb device.revoke;"
                               "tok_00000000000000bb device.reactivate");
    /* Unknown: NOT_FOUND, nothing audited, nothing published. */
    char ghost[64];
    snprintf(ghost, sizeof ghost, "%s-ghost", f->tag);
    assert_int_equal(s_set_status(f, ghost, 1, &reply), LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND);
    st_db_reply_clear(&reply);
    s_audit_of(f, ghost, audit, sizeof audit);
    assert_string_equal(audit, "");
}

static Lcore__V1__QueryReply__Status s_rotate(s_fixture_t *f, const char *device_id,
                                              const char *alg, const uint8_t *pk, size_t len,
                                              uint32_t overlap_s, Lcore__V1__QueryReply *reply)
{
    Lcore__V1__RotateKey rk = LCORE__V1__ROTATE_KEY__INIT;
    rk.device_id = (char *)device_id;
    rk.alg = (char *)alg;
    rk.public_key = (ProtobufCBinaryData){len, (uint8_t *)pk};
    rk.overlap_s = overlap_s;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_ROTATE_KEY;
    q.rotate_key = &rk;
    q.actor = (char *)"tok_00000000000000cc";
    return s_ask(f, &q, reply);
}

static void test_rotate_key(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    char id[64], audit[512];
    uint8_t pk1[32], pk2[32], pk3[32], sk[64];
    snprintf(id, sizeof id, "%s-rot", f->tag);
    s_register(f, id, "", pk1);
    crypto_sign_keypair(pk2, sk);
    crypto_sign_keypair(pk3, sk);
    Lcore__V1__QueryReply reply;
    assert_int_equal(s_rotate(f, id, "EdDSA", pk2, 32, 3600, &reply),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    const Lcore__V1__Device *d = reply.device;
    assert_int_equal(d->key_no, 2);
    assert_memory_equal(d->public_key.data, pk2, 32);
    assert_string_equal(d->prev_alg, "EdDSA");
    assert_int_equal(d->prev_public_key.len, 32);
    assert_memory_equal(d->prev_public_key.data, pk1, 32);
    assert_int_equal(d->prev_until_us, d->key_since_us + 3600000000ull);
    assert_true(d->key_since_us > d->registered_at_us);
    assert_string_equal(d->status, "active");
    st_db_reply_clear(&reply);
    s_expect_change(f, id, "");
    /* The same key again: a conflict, nothing changed or audited. */
    assert_int_equal(s_rotate(f, id, "EdDSA", pk2, 32, 0, &reply),
                     LCORE__V1__QUERY_REPLY__STATUS__CONFLICT);
    assert_non_null(strstr(reply.message, "same key"));
    st_db_reply_clear(&reply);
    /* No overlap: the previous key's time is over at once. */
    assert_int_equal(s_rotate(f, id, "EdDSA", pk3, 32, 0, &reply),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.device->key_no, 3);
    assert_memory_equal(reply.device->prev_public_key.data, pk2, 32);
    assert_int_equal(reply.device->prev_until_us, reply.device->key_since_us);
    st_db_reply_clear(&reply);
    s_expect_change(f, id, "");
    /* get_device sees the same; a registration with the first key now conflicts, with the
     * current one is identical (OK). */
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = id;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.device->key_no, 3);
    assert_memory_equal(reply.device->public_key.data, pk3, 32);
    st_db_reply_clear(&reply);
    Lcore__V1__Device dev = LCORE__V1__DEVICE__INIT;
    dev.device_id = id;
    dev.alg = (char *)"EdDSA";
    dev.public_key = (ProtobufCBinaryData){32, pk1};
    q.body_case = LCORE__V1__QUERY__BODY_REGISTER_DEVICE;
    q.register_device = &dev;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__CONFLICT);
    st_db_reply_clear(&reply);
    dev.public_key.data = pk3;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    st_db_reply_clear(&reply);
    char ghost[64];
    snprintf(ghost, sizeof ghost, "%s-ghost", f->tag);
    assert_int_equal(s_rotate(f, ghost, "EdDSA", pk2, 32, 0, &reply),
                     LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND);
    st_db_reply_clear(&reply);
    s_audit_of(f, id, audit, sizeof audit);
    assert_string_equal(audit, "admin device.register;tok_00000000000000cc device.rotate;"
                               "tok_00000000000000cc device.rotate");
    /* The keys' history is kept whole. */
    char keys[16];
    s_sql(f, "SELECT count(*)::text FROM device_keys WHERE device_id = $1", id, keys, sizeof keys);
    assert_string_equal(keys, "3");
}

static Lcore__V1__QueryReply__Status
s_create_token(s_fixture_t *f, const char *id, const uint8_t hash[32], Lcore__V1__QueryReply *reply)
{
    char *devices[] = {(char *)"dev-x", (char *)"dev-y"};
    Lcore__V1__Token t = LCORE__V1__TOKEN__INIT;
    t.id = (char *)id;
    t.hash = (ProtobufCBinaryData){32, (uint8_t *)hash};
    t.scope = (char *)"decrypt";
    t.devices = devices;
    t.n_devices = 2;
    t.expires_at_us = 4102444800000000ull; /* 2100 */
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_CREATE_TOKEN;
    q.create_token = &t;
    q.actor = (char *)"admin";
    return s_ask(f, &q, reply);
}

/* The token's id made from the tag: tok_ + 16 hex digits of a hash of it and n. */
static void s_token_id(const s_fixture_t *f, int n, char out[21], uint8_t hash[32])
{
    char seed[64];
    snprintf(seed, sizeof seed, "%s/%d", f->tag, n);
    crypto_hash_sha256(hash, (const uint8_t *)seed, strlen(seed));
    memcpy(out, "tok_", 4);
    sodium_bin2hex(out + 4, 17, hash, 8);
}

static void test_tokens(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    char id[21], id2[21], audit[256];
    uint8_t hash[32], hash2[32];
    s_token_id(f, 1, id, hash);
    s_token_id(f, 2, id2, hash2);
    Lcore__V1__QueryReply reply;
    assert_int_equal(s_create_token(f, id, hash, &reply), LCORE__V1__QUERY_REPLY__STATUS__CREATED);
    assert_int_equal(reply.n_tokens, 1);
    const Lcore__V1__Token *t = reply.tokens[0];
    assert_string_equal(t->id, id);
    assert_int_equal(t->hash.len, 0); /* never sent back */
    assert_string_equal(t->scope, "decrypt");
    assert_int_equal(t->n_devices, 2);
    assert_string_equal(t->devices[1], "dev-y");
    assert_int_equal(t->expires_at_us, 4102444800000000ull);
    assert_string_equal(t->created_by, "admin");
    assert_true(t->created_at_us > 1700000000000000ull);
    st_db_reply_clear(&reply);
    /* The same id, or the same hash under another id: conflicts. */
    assert_int_equal(s_create_token(f, id, hash2, &reply),
                     LCORE__V1__QUERY_REPLY__STATUS__CONFLICT);
    st_db_reply_clear(&reply);
    assert_int_equal(s_create_token(f, id2, hash, &reply),
                     LCORE__V1__QUERY_REPLY__STATUS__CONFLICT);
    st_db_reply_clear(&reply);

    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_TOKEN;
    q.get_token = (ProtobufCBinaryData){32, hash};
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(reply.tokens[0]->id, id);
    assert_int_equal(reply.tokens[0]->expires_at_us, 4102444800000000ull);
    st_db_reply_clear(&reply);
    q.body_case = LCORE__V1__QUERY__BODY_LIST_TOKENS;
    q.list_tokens = 1;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    int listed = 0;
    for (size_t i = 0; i < reply.n_tokens; i++)
        listed += strcmp(reply.tokens[i]->id, id) == 0;
    assert_int_equal(listed, 1);
    st_db_reply_clear(&reply);

    q.body_case = LCORE__V1__QUERY__BODY_DELETE_TOKEN;
    q.delete_token = id;
    q.actor = (char *)"tok_00000000000000dd";
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    st_db_reply_clear(&reply);
    s_expect_change(f, "", id);
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND);
    st_db_reply_clear(&reply);
    q.body_case = LCORE__V1__QUERY__BODY_GET_TOKEN;
    q.get_token = (ProtobufCBinaryData){32, hash};
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND);
    st_db_reply_clear(&reply);
    s_audit_of(f, id, audit, sizeof audit);
    assert_string_equal(audit, "admin token.create;tok_00000000000000dd token.delete");
}

static void test_audit_log(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    Lcore__V1__AuditEntry e = LCORE__V1__AUDIT_ENTRY__INIT;
    char target[80];
    snprintf(target, sizeof target, "%s-record", f->tag);
    e.token_id = (char *)"tok_00000000000000ee";
    e.action = (char *)"open";
    e.target = target;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_APPEND_AUDIT;
    q.append_audit = &e;
    Lcore__V1__QueryReply reply;
    uint64_t ids[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
        assert_int_equal(reply.n_audit, 1);
        ids[i] = reply.audit[0]->id;
        assert_true(reply.audit[0]->at_us > 1700000000000000ull);
        assert_string_equal(reply.audit[0]->target, target);
        st_db_reply_clear(&reply);
    }
    assert_true(ids[1] > ids[0]);
    Lcore__V1__AuditList al = LCORE__V1__AUDIT_LIST__INIT;
    al.after = ids[0] - 1;
    al.limit = 1;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_AUDIT;
    q.list_audit = &al;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.n_audit, 1);
    assert_int_equal(reply.audit[0]->id, ids[0]);
    assert_string_equal(reply.audit[0]->action, "open");
    assert_string_equal(reply.audit[0]->token_id, "tok_00000000000000ee");
    assert_true(reply.more);
    st_db_reply_clear(&reply);
    al.after = ids[1];
    al.limit = 1000;
    assert_int_equal(s_ask(f, &q, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_false(reply.more);
    st_db_reply_clear(&reply);
}

/* A sealed record of device_id at seq, received at received_at_us, that the writer accepts
 * (record_id and envelope_hash recomputed; the ciphertext is not opened here). */
static Lcore__V1__SealedRecord *s_sealed(const char *device_id, uint64_t seq,
                                         uint64_t received_at_us, uint8_t bytes[96])
{
    Lcore__V1__SealedRecord *r = calloc(1, sizeof *r);
    lcore__v1__sealed_record__init(r);
    lc_record_id(bytes, device_id, strlen(device_id), seq);
    r->version = 1;
    r->record_id = (ProtobufCBinaryData){32, bytes};
    r->device_id = (char *)device_id;
    r->seq = seq;
    r->device_ts_ms = 1700000000000ull;
    r->received_at_us = received_at_us;
    r->key_version = 1;
    r->aes_nonce = (ProtobufCBinaryData){LC_AES_NONCE_LEN, s_zero};
    r->xchacha_nonce = (ProtobufCBinaryData){LC_XCHACHA_NONCE_LEN, s_zero};
    r->ciphertext = (ProtobufCBinaryData){40, s_zero};
    lc_envelope_hash(bytes + 32, 1, s_zero, s_zero, s_zero, 40);
    r->envelope_hash = (ProtobufCBinaryData){32, bytes + 32};
    r->reading_hash = (ProtobufCBinaryData){32, bytes + 64};
    memset(bytes + 64, (int)seq, 32);
    r->gateway_id = (char *)"gw-admin";
    r->attempt = 1;
    r->max_attempts = 5;
    return r;
}

/* Stores seqs 0..4 of device_id through the writer's connection. */
static void s_store(s_fixture_t *f, const char *device_id, int n)
{
    Lcore__V1__SealedRecord *recs[8];
    uint8_t bytes[8][96];
    for (int i = 0; i < n; i++)
        recs[i] = s_sealed(device_id, (uint64_t)i, 1700000000000000ull + (uint64_t)i, bytes[i]);
    size_t inserted = 0;
    assert_int_equal(st_db_insert_records(f->db, recs, (size_t)n, &inserted), 0);
    assert_int_equal(inserted, n);
    for (int i = 0; i < n; i++)
        free(recs[i]);
}

/* list_records of device_id from from_seq (after, if has_after) at most limit: "seq,seq more". */
static Lcore__V1__QueryReply__Status s_list_records(s_fixture_t *f, const char *device_id,
                                                    uint64_t from_seq, uint64_t to_seq,
                                                    int has_after, uint64_t after, uint32_t limit,
                                                    char *out, size_t cap)
{
    Lcore__V1__RecordList rl = LCORE__V1__RECORD_LIST__INIT;
    rl.device_id = (char *)device_id;
    rl.from_seq = from_seq;
    rl.to_seq = to_seq;
    rl.has_after = has_after;
    rl.after_seq = after;
    rl.limit = limit;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_RECORDS;
    q.list_records = &rl;
    Lcore__V1__QueryReply reply;
    Lcore__V1__QueryReply__Status st = s_ask(f, &q, &reply);
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < reply.n_records && off < cap; i++) {
        const Lcore__V1__RecordInfo *ri = reply.records[i];
        assert_string_equal(ri->status, "stored");
        assert_string_equal(ri->device_id, device_id);
        assert_int_equal(ri->record_id.len, 32);
        assert_int_equal(ri->envelope_hash.len, 32);
        assert_int_equal(ri->reading_hash.len, 32);
        assert_true(ri->stored_at_us > 1700000000000000ull);
        off += (size_t)snprintf(out + off, cap - off, "%s%llu", i ? "," : "",
                                (unsigned long long)ri->seq);
    }
    if (reply.more && off < cap)
        snprintf(out + off, cap - off, " more");
    st_db_reply_clear(&reply);
    return st;
}

static void test_list_records(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    char id[64], empty[64], got[128];
    uint8_t pk[32];
    snprintf(id, sizeof id, "%s-recs", f->tag);
    snprintf(empty, sizeof empty, "%s-norecs", f->tag);
    s_register(f, id, "", pk);
    s_register(f, empty, "", pk);
    s_store(f, id, 5);
    const uint64_t all = UINT64_MAX;
    assert_int_equal(s_list_records(f, id, 0, all, 0, 0, 2, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "0,1 more");
    assert_int_equal(s_list_records(f, id, 0, all, 1, 1, 2, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "2,3 more");
    assert_int_equal(s_list_records(f, id, 0, all, 1, 3, 2, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "4");
    assert_int_equal(s_list_records(f, id, 1, 3, 0, 0, 1000, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "1,2,3");
    /* after below from_seq: from_seq holds; past the end, or past 2^63-1: empty. */
    assert_int_equal(s_list_records(f, id, 3, all, 1, 0, 1000, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "3,4");
    assert_int_equal(s_list_records(f, id, 0, all, 1, UINT64_MAX, 10, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "");
    assert_int_equal(s_list_records(f, id, UINT64_MAX, all, 0, 0, 10, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "");
    assert_int_equal(s_list_records(f, empty, 0, all, 0, 0, 10, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "");
    char ghost[64];
    snprintf(ghost, sizeof ghost, "%s-ghost", f->tag);
    assert_int_equal(s_list_records(f, ghost, 0, all, 0, 0, 10, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND);
}

/* The writer takes recs (packed in one SealedBatch, as from a worker) and writes them. */
static void s_write(st_writer_t *w, Lcore__V1__SealedRecord **recs, size_t n)
{
    lc_zmq_batch_t b = {0};
    for (size_t i = 0; i < n; i++) {
        size_t len = protobuf_c_message_get_packed_size(&recs[i]->base);
        assert_true(lc_zmq_batch_fits(&b, len));
        uint8_t *p = lc_zmq_batch_add(&b, len);
        assert_non_null(p);
        protobuf_c_message_pack(&recs[i]->base, p);
    }
    st_writer_take(w, b.buf, b.len);
    lc_zmq_batch_free(&b);
    assert_int_equal(st_writer_pending(w), n);
    assert_int_equal(st_writer_flush(w), 0);
}

/* The next Ack on ack/gw-admin/: how many record ids it carries. */
static size_t s_acked(s_fixture_t *f)
{
    zframe_t *body = s_next_event(f, "ack/gw-admin/");
    assert_non_null(body);
    Lcore__V1__Ack *ack = lcore__v1__ack__unpack(NULL, zframe_size(body), zframe_data(body));
    assert_non_null(ack);
    size_t n = ack->n_record_ids;
    lcore__v1__ack__free_unpacked(ack, NULL);
    zframe_destroy(&body);
    return n;
}

/* A reading received before its device's revocation is stored; one received at or after it is
 * dead-lettered ("device revoked", sealed) and acknowledged, and counted; reactivated, a replay
 * of the dead letter stores it. */
static void test_revoked_at_write_time(void **state)
{
    s_fixture_t *f = *state;
    S_NEED_DB(f);
    char id[64], got[128];
    uint8_t pk[32], bytes[3][96];
    snprintf(id, sizeof id, "%s-late", f->tag);
    s_register(f, id, "", pk);
    Lcore__V1__QueryReply reply;
    assert_int_equal(s_set_status(f, id, 1, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    uint64_t revoked_at = reply.device->revoked_at_us;
    st_db_reply_clear(&reply);
    s_expect_change(f, id, "");
    st_writer_t *w = st_writer_new(f->db, f->pub, 8, 5, 65536, f->metrics);
    assert_non_null(w);
    Lcore__V1__SealedRecord *recs[3] = {s_sealed(id, 0, revoked_at - 1, bytes[0]),
                                        s_sealed(id, 1, revoked_at, bytes[1]),
                                        s_sealed(id, 2, revoked_at + 5000000, bytes[2])};
    s_write(w, recs, 3);
    assert_int_equal(s_acked(f), 3); /* stored, and the two dead letters */
    assert_int_equal(s_list_records(f, id, 0, UINT64_MAX, 0, 0, 10, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "0");
    s_sql(f,
          "SELECT string_agg(seq || ' ' || stage || ' ' || reason, ';' ORDER BY seq)"
          " FROM dead_letters WHERE device_id = $1 AND ciphertext IS NOT NULL",
          id, got, sizeof got);
    assert_string_equal(got, "1 store device revoked;2 store device revoked");
    size_t len = 0;
    char *text = lc_metrics_render(f->metrics, &len);
    assert_non_null(strstr(text, "lcore_store_records_revoked_total 2"));
    free(text);
    /* Sent again while revoked: refused again, acknowledged (already dead-lettered). */
    s_write(w, &recs[1], 1);
    assert_int_equal(s_acked(f), 1);
    /* Reactivated, the operator replays the dead letters: they are stored now. */
    assert_int_equal(s_set_status(f, id, 0, &reply), LCORE__V1__QUERY_REPLY__STATUS__OK);
    st_db_reply_clear(&reply);
    st_letters_t letters = {.pg = st_db_pg(f->qdb), .writer = w, .events = f->pub};
    Lcore__V1__DeadLetterReplay rp = LCORE__V1__DEAD_LETTER_REPLAY__INIT;
    ProtobufCBinaryData ids[2] = {recs[1]->record_id, recs[2]->record_id};
    rp.record_ids = ids;
    rp.n_record_ids = 2;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.version = 1;
    q.body_case = LCORE__V1__QUERY__BODY_REPLAY_DEAD_LETTERS;
    q.replay_dead_letters = &rp;
    lcore__v1__query_reply__init(&reply);
    st_letters_answer(&letters, &q, &reply);
    assert_int_equal(reply.status, LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(reply.replayed_store, 2);
    st_db_reply_clear(&reply);
    assert_int_equal(s_list_records(f, id, 0, UINT64_MAX, 0, 0, 10, got, sizeof got),
                     LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_string_equal(got, "0,1,2");
    for (int i = 0; i < 3; i++)
        free(recs[i]);
    st_writer_destroy(&w);
}

int main(void)
{
    lc_log_init("test_st_admin", LC_LOG_WARN);
    assert_int_equal(sodium_init() >= 0, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks_before_the_database),
        cmocka_unit_test(test_list_and_get_devices),
        cmocka_unit_test(test_list_devices_cut_by_size),
        cmocka_unit_test(test_revoke_and_reactivate),
        cmocka_unit_test(test_rotate_key),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_audit_log),
        cmocka_unit_test(test_list_records),
        cmocka_unit_test(test_revoked_at_write_time),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
