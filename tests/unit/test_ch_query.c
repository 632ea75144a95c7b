/* test_ch_query.c: the relayer's query link (ch_query) over loopback TCP, asked as a gateway
 * asks it (lc_query; CURVE off here: test_query and test_curve cover the keys): get_anchors
 * refuses anything but 1..1000 record ids of 32 bytes (BAD_REQUEST); with a database it answers
 * one AnchorInfo per record the relayer knows, in the order asked, unknown ones left out, each
 * with the chain id and the contract; get_anchor answers as before; the query thread's proof
 * cache (LCORE_CHAIN_PROOF_CACHE_LEAVES) is counted in lcore_chain_proof_cache_* as it is used.
 *
 * The answers need LCORE_TEST_PG_DSN as test_ch_db does (the owner's DSN of a scratch
 * database); without it those tests skip and the refusals are still checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ch_db.h"
#include "ch_lease.h"
#include "ch_query.h"
#include "lc_merkle.h"
#include "lc_query.h"
#include "lc_record.h"
#include "test_zmq.h"

static const uint8_t s_contract[20] = {0xaa, 0xbb};

typedef struct {
    ch_config_t cfg;
    lc_metrics_t *metrics;
    lc_curve_t *curve;
    ch_query_t *server;
    lc_query_client_t *client;
    int has_db;
} fx_t;

static int s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    const char *dsn = getenv("LCORE_TEST_PG_DSN");
    fx->has_db = dsn && dsn[0];
    if (fx->has_db) {
        FILE *out = fopen("/dev/null", "w");
        assert_int_equal(ch_db_migrate(dsn, NULL, out, NULL, NULL), 0);
        fclose(out);
    }
    /* Without a database: a DSN that fails at once (nothing listens on port 1). */
    snprintf(fx->cfg.pg_dsn, sizeof fx->cfg.pg_dsn, "%s",
             fx->has_db ? dsn : "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1");
    fx->cfg.chain_id = 31337;
    fx->cfg.proof_cache_leaves = CH_DB_PROOF_CACHE_LEAVES;
    fx->metrics = lc_metrics_new();
    lc_curve_cfg_t plain = {.enabled = 0};
    fx->curve = lc_curve_new(&plain, "test", fx->metrics);
    for (int attempt = 0; attempt < 20 && !fx->server; attempt++) {
        test_free_endpoint(fx->cfg.queries_bind, sizeof fx->cfg.queries_bind);
        fx->server = ch_query_new(&fx->cfg, fx->curve, fx->metrics, s_contract);
    }
    assert_non_null(fx->server);
    fx->client = lc_query_client_new(fx->cfg.queries_bind, LC_ROLE_CHAIN, 5000, fx->curve);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    fx_t *fx = *state;
    lc_query_client_destroy(&fx->client);
    ch_query_destroy(&fx->server);
    lc_curve_destroy(&fx->curve);
    lc_metrics_destroy(&fx->metrics);
    free(fx);
    return 0;
}

/* get_anchors for n ids of `len` bytes, id i filled from ids + 32 * i (zeros past 32). */
static Lcore__V1__QueryReply *s_ask_anchors(fx_t *fx, const uint8_t *ids, size_t n, size_t len)
{
    ProtobufCBinaryData *list = calloc(n ? n : 1, sizeof *list);
    uint8_t *bytes = calloc(n ? n : 1, len ? len : 1);
    for (size_t i = 0; i < n; i++) {
        memcpy(bytes + i * len, ids + 32 * i, len < 32 ? len : 32);
        list[i] = (ProtobufCBinaryData){len, bytes + i * len};
    }
    Lcore__V1__AnchorsQuery aq = LCORE__V1__ANCHORS_QUERY__INIT;
    aq.n_record_ids = n;
    aq.record_ids = list;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_ANCHORS;
    q.get_anchors = &aq;
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(fx->client, &q, &err);
    assert_non_null(r);
    free(bytes);
    free(list);
    return r;
}

static void s_expect_status(Lcore__V1__QueryReply *r, Lcore__V1__QueryReply__Status want)
{
    assert_int_equal(r->status, want);
    assert_int_equal(r->n_anchors, 0);
    lcore__v1__query_reply__free_unpacked(r, NULL);
}

static void test_refuses_what_is_not_1_to_1000_ids(void **state)
{
    fx_t *fx = *state;
    uint8_t *ids = calloc(1001, 32);
    const Lcore__V1__QueryReply__Status bad = LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST;
    s_expect_status(s_ask_anchors(fx, ids, 0, 32), bad);
    s_expect_status(s_ask_anchors(fx, ids, 1001, 32), bad);
    s_expect_status(s_ask_anchors(fx, ids, 3, 31), bad);
    s_expect_status(s_ask_anchors(fx, ids, 3, 33), bad);
    if (!fx->has_db) /* well formed, and no database: said so */
        s_expect_status(s_ask_anchors(fx, ids, 1000, 32), LCORE__V1__QUERY_REPLY__STATUS__ERROR);
    free(ids);
}

static void test_answers_known_records_in_the_order_asked(void **state)
{
    fx_t *fx = *state;
    if (!fx->has_db)
        skip();
    /* Three records of a store of this run's own, taken in as the feed does. */
    char store[32];
    snprintf(store, sizeof store, "q-%d-%lld", (int)getpid(), (long long)time(NULL));
    ch_feed_record_t recs[3];
    memset(recs, 0, sizeof recs);
    for (size_t i = 0; i < 3; i++) {
        recs[i].position = i + 1;
        lc_record_id(recs[i].record_id, store, strlen(store), i + 1);
        lc_record_id(recs[i].envelope_hash, "eh", 2, i + 1);
    }
    ch_db_t *db = ch_db_new(fx->cfg.pg_dsn);
    size_t n = 0;
    assert_non_null(db);
    assert_int_equal(ch_db_feed_add(db, store, 0, 3, recs, 3, &n), 0);
    ch_db_destroy(&db);
    uint8_t ids[3 * 32];
    memcpy(ids, recs[2].record_id, 32);
    memset(ids + 32, 0xee, 32); /* unknown */
    memcpy(ids + 64, recs[0].record_id, 32);
    Lcore__V1__QueryReply *r = s_ask_anchors(fx, ids, 3, 32);
    assert_int_equal(r->status, LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_int_equal(r->n_anchors, 2);
    const ch_feed_record_t *want[2] = {&recs[2], &recs[0]};
    for (size_t i = 0; i < 2; i++) {
        const Lcore__V1__AnchorInfo *a = r->anchors[i];
        assert_memory_equal(a->record_id.data, want[i]->record_id, 32);
        assert_string_equal(a->status, "pending");
        assert_int_equal(a->leaf.len, 32);
        assert_int_equal(a->chain_id, 31337);
        assert_int_equal(a->contract.len, 20);
        assert_memory_equal(a->contract.data, s_contract, 20);
    }
    lcore__v1__query_reply__free_unpacked(r, NULL);
    /* None known: OK, nothing. */
    s_expect_status(s_ask_anchors(fx, ids + 32, 1, 32), LCORE__V1__QUERY_REPLY__STATUS__OK);
    /* get_anchor still answers one. */
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_ANCHOR;
    q.get_anchor = (ProtobufCBinaryData){32, recs[1].record_id};
    int err = 0;
    r = lc_query_call(fx->client, &q, &err);
    assert_non_null(r);
    assert_int_equal(r->status, LCORE__V1__QUERY_REPLY__STATUS__OK);
    assert_memory_equal(r->anchor->record_id.data, recs[1].record_id, 32);
    lcore__v1__query_reply__free_unpacked(r, NULL);
}

/* The value of the unlabelled metric name in fx's registry (-1: not there). */
static double s_metric(fx_t *fx, const char *name)
{
    size_t len = 0, nlen = strlen(name);
    char *text = lc_metrics_render(fx->metrics, &len);
    assert_non_null(text);
    double v = -1;
    for (const char *line = text; line && *line;) {
        if (strncmp(line, name, nlen) == 0 && line[nlen] == ' ')
            v = strtod(line + nlen + 1, NULL);
        if ((line = strchr(line, '\n')))
            line++;
    }
    free(text);
    return v;
}

/* Records of a store of this run's own in one mined anchor (with whatever else waited); ids
 * gets the store's n record ids; *leaves: the anchor's leaf count. */
static void s_mined_records(fx_t *fx, const char *store, size_t n, uint8_t *ids, size_t *leaves)
{
    ch_feed_record_t recs[8];
    assert_true(n <= 8);
    memset(recs, 0, sizeof recs);
    for (size_t i = 0; i < n; i++) {
        recs[i].position = i + 1;
        lc_record_id(recs[i].record_id, store, strlen(store), i + 1);
        lc_record_id(recs[i].envelope_hash, "eh", 2, i + 1);
        memcpy(ids + 32 * i, recs[i].record_id, 32);
    }
    ch_db_t *db = ch_db_new(fx->cfg.pg_dsn);
    assert_non_null(db);
    /* The anchor tables take writes from the lease holder only: a lease on a contract of this
     * store's own. */
    uint8_t key[32];
    lc_record_id(key, store, strlen(store), 0);
    lc_metrics_t *m = lc_metrics_new();
    ch_lease_t *lease = m ? ch_lease_new(ch_db_pg(db), store, 31337, key, 60000, m) : NULL;
    assert_non_null(lease);
    assert_int_equal(ch_lease_step(lease), 1);
    size_t got = 0;
    assert_int_equal(ch_db_feed_add(db, store, 0, n, recs, n, &got), 0);
    int64_t cursor = 0, anchor_id = 0, tx_id = 0;
    uint64_t age = 0;
    static ch_record_t waiting[256];
    static uint8_t leaf_bytes[256 * 32];
    assert_int_equal(ch_db_cursor(db, &cursor), 0);
    assert_int_equal(ch_db_records_after(db, cursor, 256, waiting, leaves, &age), 0);
    assert_true(*leaves >= n && *leaves < 256);
    for (size_t i = 0; i < *leaves; i++)
        lc_merkle_leaf(leaf_bytes + 32 * i, waiting[i].record_id, waiting[i].envelope_hash);
    int err = 0;
    uint8_t root[32], hash[32], from[32], block_hash[32] = {1}, raw[1] = {0};
    lc_merkle_t *tree = lc_merkle_new(leaf_bytes, *leaves, &err);
    lc_merkle_root(tree, root);
    lc_merkle_destroy(&tree);
    lc_record_id(hash, store, strlen(store), 1000); /* this run's own */
    lc_record_id(from, store, strlen(store), 1001);
    assert_int_equal(ch_db_create_anchor(db, waiting, leaf_bytes, *leaves, root, NULL, &anchor_id),
                     0);
    assert_int_equal(ch_db_insert_tx(db, anchor_id, from, 0, 100000, 1, 2, hash, raw, 1, &tx_id),
                     0);
    assert_int_equal(ch_db_mark_mined(db, tx_id, anchor_id, hash, 10, block_hash, 21000, 7), 0);
    ch_lease_release(lease);
    ch_lease_destroy(&lease);
    lc_metrics_destroy(&m);
    ch_db_destroy(&db);
}

static void test_counts_the_proof_cache(void **state)
{
    fx_t *fx = *state;
    assert_true(s_metric(fx, "lcore_chain_proof_cache_hits_total") == 0);
    assert_true(s_metric(fx, "lcore_chain_proof_cache_misses_total") == 0);
    assert_true(s_metric(fx, "lcore_chain_proof_cache_leaves") == 0);
    if (!fx->has_db)
        skip();
    char store[32];
    snprintf(store, sizeof store, "p-%d-%lld", (int)getpid(), (long long)time(NULL));
    uint8_t ids[4 * 32];
    size_t leaves = 0;
    s_mined_records(fx, store, 4, ids, &leaves);
    /* The first page reads the anchor's leaves; the second finds its tree. */
    for (int page = 1; page <= 2; page++) {
        Lcore__V1__QueryReply *r = s_ask_anchors(fx, ids, 4, 32);
        assert_int_equal(r->status, LCORE__V1__QUERY_REPLY__STATUS__OK);
        assert_int_equal(r->n_anchors, 4);
        assert_string_equal(r->anchors[3]->status, "anchored");
        lcore__v1__query_reply__free_unpacked(r, NULL);
        assert_true(s_metric(fx, "lcore_chain_proof_cache_misses_total") == 1);
        assert_true(s_metric(fx, "lcore_chain_proof_cache_hits_total") == page - 1);
        assert_true(s_metric(fx, "lcore_chain_proof_cache_leaves") == (double)leaves);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refuses_what_is_not_1_to_1000_ids, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_answers_known_records_in_the_order_asked, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_counts_the_proof_cache, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
