/* test_ch_db.c: the relayer's own tables against a real PostgreSQL: `lcore-chain migrate` on
 * a database with none of the store's tables, the feed (records taken in once, in order, the
 * feed position moved only from the expected one), anchors over arrival ranges, and the anchor
 * info a record lookup gets: pending, then, once its anchor is mined, the proof that leads to
 * the root (lc_merkle_verify) and the confirmations from chain_head; and the same for many
 * records at once (get_anchors), in the order asked; and the proof cache: a handle with it
 * answers exactly (byte for byte) what a handle without it answers, for many records across
 * anchors, a second time without reading a leaf, under a bound too small for all the trees (and
 * one too small for the largest), and after an anchor's leaves were changed under it (a database
 * restored under the relayer: a cached tree that no longer matches its anchor's root, or its
 * leaf order, is not used).
 *
 * Needs LCORE_TEST_PG_DSN as test_st_db does (the owner's DSN of a scratch database); rows are
 * written under a store_id and record ids of the test's own, so it can run again. Skipped
 * without it. */
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
#include "lc_codec.h"
#include "lc_merkle.h"
#include "lc_pg.h"
#include "lc_record.h"
#include "lcore.pb-c.h"

/* The group's connection and store_id (set up once; NULL: no database, every test skips), and
 * the relayer lease it holds (on a contract of this run's own) so the fenced tables take its
 * writes. */
static ch_db_t *s_db;
static char s_store_id[32];
static const char *s_dsn;
static lc_metrics_t *s_metrics;
static ch_lease_t *s_lease;

/* A contract address of this run's own (the lease's key), from tag. */
static void s_contract(uint8_t contract[20], const char *tag)
{
    uint8_t h[32];
    char seed[96];
    snprintf(seed, sizeof seed, "%s-%s", s_store_id, tag);
    lc_record_id(h, seed, strlen(seed), 0);
    memcpy(contract, h, 20);
}

static int s_setup(void **state)
{
    (void)state;
    const char *dsn = getenv("LCORE_TEST_PG_DSN");
    if (!dsn || !dsn[0])
        return 0;
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(ch_db_migrate(dsn, NULL, out, NULL, NULL), 0);
    fclose(out);
    snprintf(s_store_id, sizeof s_store_id, "c-%d-%lld", (int)getpid(), (long long)time(NULL));
    s_dsn = dsn;
    if (!(s_db = ch_db_new(dsn)) || !(s_metrics = lc_metrics_new()))
        return -1;
    uint8_t contract[20];
    s_contract(contract, "group");
    s_lease = ch_lease_new(ch_db_pg(s_db), "test-group", 31337, contract, 60000, s_metrics);
    return s_lease && ch_lease_step(s_lease) == 1 ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    ch_lease_destroy(&s_lease);
    lc_metrics_destroy(&s_metrics);
    ch_db_destroy(&s_db);
    return 0;
}

/* Records first .. first + n - 1 of the test's store (ids and envelope hashes derived from the
 * store_id and the position). */
static void s_feed_records(uint64_t first, size_t n, ch_feed_record_t *recs)
{
    for (size_t i = 0; i < n; i++) {
        ch_feed_record_t *r = &recs[i];
        memset(r, 0, sizeof *r);
        r->position = first + i;
        lc_record_id(r->record_id, s_store_id, strlen(s_store_id), r->position);
        lc_record_id(r->envelope_hash, "eh", 2, r->position);
        r->stored_at_us = 1700000000000000ull + r->position;
        r->received_at_us = 1700000000000000ull;
    }
}

static void test_feed(void **state)
{
    (void)state;
    if (!s_db)
        skip();
    ch_feed_record_t recs[4];
    s_feed_records(1, 4, recs);
    uint64_t pos = 99;
    size_t n = 99;
    assert_int_equal(ch_db_feed_position(s_db, s_store_id, &pos), 0);
    assert_int_equal(pos, 0);
    /* (0, 2], then a message that does not follow on: refused, nothing written. */
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 0, 2, recs, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 3, 4, recs + 3, 1, &n), LC_ERR_CONFLICT);
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 0, 2, recs, 2, &n), LC_ERR_CONFLICT);
    /* (2, 4] resent with record 2 again (taken once) and a hole at 3. */
    ch_feed_record_t again[2] = {recs[1], recs[3]};
    again[0].position = 3; /* the same record_id under another position: still one row */
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 2, 4, again, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ch_db_feed_position(s_db, s_store_id, &pos), 0);
    assert_int_equal(pos, 4);
    /* A position outside (after, upto]: the message is wrong. */
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 4, 5, recs, 1, &n), LC_ERR_INVALID);
    /* An empty step (upto moved past holes). */
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 4, 6, NULL, 0, &n), 0);
    assert_int_equal(n, 0);
}

/* An anchor mined at block 10 (head 12), as the relayer makes one. */
typedef struct {
    ch_record_t recs[256]; /* what it covers, in arrival order */
    size_t n;
    uint8_t root[32], tx_hash[32];
    int64_t anchor_id, tx_id;
} s_anchor_t;

static const uint8_t s_from[20] = {1};

/* One anchor over everything not yet in one (other tests' rows too), its transaction mined. */
static void s_mine_anchor(s_anchor_t *a)
{
    int64_t cursor = -1;
    assert_int_equal(ch_db_cursor(s_db, &cursor), 0);
    uint64_t age = 0;
    assert_int_equal(ch_db_records_after(s_db, cursor, 256, a->recs, &a->n, &age), 0);
    assert_true(a->n >= 1 && a->n < 256);
    uint8_t *leaves = malloc(a->n * 32);
    for (size_t i = 0; i < a->n; i++)
        lc_merkle_leaf(leaves + 32 * i, a->recs[i].record_id, a->recs[i].envelope_hash);
    int err = 0;
    lc_merkle_t *tree = lc_merkle_new(leaves, a->n, &err);
    lc_merkle_root(tree, a->root);
    lc_merkle_destroy(&tree);
    assert_int_equal(ch_db_create_anchor(s_db, a->recs, leaves, a->n, a->root, NULL, &a->anchor_id),
                     0);
    free(leaves);
    assert_int_equal(ch_db_cursor(s_db, &cursor), 0);
    assert_true(cursor == a->recs[a->n - 1].arrival);
    const uint8_t block_hash[32] = {3}, raw[4] = {4};
    memset(a->tx_hash, 2, sizeof a->tx_hash); /* unique per run: attempt hashes are */
    memcpy(a->tx_hash + 1, &a->anchor_id, sizeof a->anchor_id);
    assert_int_equal(ch_db_insert_tx(s_db, a->anchor_id, s_from, (uint64_t)a->anchor_id, 100000, 1,
                                     2, a->tx_hash, raw, sizeof raw, &a->tx_id),
                     0);
    assert_int_equal(ch_db_mark_broadcast(s_db, a->tx_id), 0);
    assert_int_equal(
        ch_db_mark_mined(s_db, a->tx_id, a->anchor_id, a->tx_hash, 10, block_hash, 21000, 7), 0);
    assert_int_equal(ch_db_set_head(s_db, 12), 0);
}

/* The anchor over the records after the cursor, mined at block 10 with the head at 12. */
static void test_anchor_and_info(void **state)
{
    (void)state;
    if (!s_db)
        skip();
    ch_feed_record_t feed[3];
    s_feed_records(7, 3, feed);
    size_t n = 0;
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 6, 9, feed, 3, &n), 0);
    assert_int_equal(n, 3);
    Lcore__V1__AnchorInfo info = LCORE__V1__ANCHOR_INFO__INIT;
    assert_int_equal(ch_db_anchor_info(s_db, feed[1].record_id, &info), 0);
    assert_string_equal(info.status, "pending");
    uint8_t leaf[32];
    lc_merkle_leaf(leaf, feed[1].record_id, feed[1].envelope_hash);
    assert_memory_equal(info.leaf.data, leaf, 32);
    ch_db_anchor_info_clear(&info);
    static s_anchor_t a;
    s_mine_anchor(&a);
    ch_record_t *recs = a.recs;
    n = a.n;
    assert_true(n >= 3);
    size_t mine = n;
    for (size_t i = 0; i < n; i++)
        if (memcmp(recs[i].record_id, feed[1].record_id, 32) == 0)
            mine = i;
    assert_true(mine < n);
    assert_true(recs[n - 1].arrival > recs[0].arrival);
    int64_t anchor_id = a.anchor_id, tx_id = a.tx_id;
    const uint8_t *root = a.root, *hash = a.tx_hash, *from = s_from;
    assert_int_equal(ch_db_anchor_info(s_db, feed[1].record_id, &info), 0);
    assert_string_equal(info.status, "anchored");
    assert_true(info.anchor_id == (uint64_t)anchor_id);
    assert_memory_equal(info.root.data, root, 32);
    assert_memory_equal(info.tx_hash.data, hash, 32);
    assert_int_equal(info.block_number, 10);
    assert_int_equal(info.confirmations, 3);
    uint8_t proof[LC_MERKLE_MAX_PROOF * 32];
    for (size_t i = 0; i < info.n_proof; i++)
        memcpy(proof + 32 * i, info.proof[i].data, 32);
    assert_int_equal(lc_merkle_verify(root, leaf, proof, info.n_proof), 0);
    ch_db_anchor_info_clear(&info);
    uint8_t unknown[32] = {0xee};
    assert_int_equal(ch_db_anchor_info(s_db, unknown, &info), LC_ERR_NOTFOUND);
    /* Its transaction is live and mined, its anchor's arrivals are the range. */
    ch_tx_t txs[64];
    size_t ntx = 0;
    assert_int_equal(ch_db_live_txs(s_db, from, 1, txs, 64, &ntx), 0);
    int seen = 0;
    for (size_t i = 0; i < ntx; i++)
        if (txs[i].id == tx_id) {
            seen = 1;
            assert_int_equal(txs[i].block_number, 10);
            assert_true(txs[i].first_arrival == recs[0].arrival &&
                        txs[i].last_arrival == recs[n - 1].arrival);
            assert_int_equal(txs[i].last_fee_cap, 2);
        }
    assert_true(seen);
    assert_int_equal(ch_db_mark_fatal(s_db, tx_id, "test done", 1), 0);
}

/* Two equal answers: one from ch_db_anchor_infos, one from ch_db_anchor_info. */
static void s_same_info(const Lcore__V1__AnchorInfo *x, const Lcore__V1__AnchorInfo *y)
{
    assert_memory_equal(x->record_id.data, y->record_id.data, 32);
    assert_string_equal(x->status, y->status);
    assert_memory_equal(x->leaf.data, y->leaf.data, 32);
    assert_int_equal(x->anchor_id, y->anchor_id);
    assert_int_equal(x->root.len, y->root.len);
    assert_int_equal(x->tx_hash.len, y->tx_hash.len);
    if (x->root.len)
        assert_memory_equal(x->root.data, y->root.data, x->root.len);
    if (x->tx_hash.len)
        assert_memory_equal(x->tx_hash.data, y->tx_hash.data, x->tx_hash.len);
    assert_int_equal(x->block_number, y->block_number);
    assert_int_equal(x->confirmations, y->confirmations);
    assert_int_equal(x->n_proof, y->n_proof);
    for (size_t i = 0; i < x->n_proof; i++)
        assert_memory_equal(x->proof[i].data, y->proof[i].data, 32);
}

/* get_anchors: records of two mined anchors and a pending one, an unknown id and a repeated
 * one, asked at once: one answer per known record, in the order asked, each equal to its
 * get_anchor answer, each proof leading to its anchor's root. */
static void test_anchor_infos(void **state)
{
    (void)state;
    if (!s_db)
        skip();
    ch_feed_record_t feed[5];
    s_feed_records(10, 5, feed);
    size_t n = 0;
    static s_anchor_t first, second;
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 9, 11, feed, 2, &n), 0);
    s_mine_anchor(&first);
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 11, 13, feed + 2, 2, &n), 0);
    s_mine_anchor(&second);
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, 13, 14, feed + 4, 1, &n), 0);
    /* Asked: 14 (pending), unknown, 10 (first), 13 (second), 11, 12, 10 again. */
    const int order[] = {4, -1, 0, 3, 1, 2, 0};
    uint8_t ids[7 * 32];
    for (size_t i = 0; i < 7; i++)
        if (order[i] < 0)
            memset(ids + 32 * i, 0xee, 32);
        else
            memcpy(ids + 32 * i, feed[order[i]].record_id, 32);
    Lcore__V1__AnchorInfo out[7];
    size_t found = 0;
    assert_int_equal(ch_db_anchor_infos(s_db, ids, 7, out, &found), 0);
    assert_int_equal(found, 5);
    const int want[] = {4, 0, 3, 1, 2};
    for (size_t i = 0; i < found; i++) {
        const ch_feed_record_t *f = &feed[want[i]];
        assert_memory_equal(out[i].record_id.data, f->record_id, 32);
        Lcore__V1__AnchorInfo one = LCORE__V1__ANCHOR_INFO__INIT;
        assert_int_equal(ch_db_anchor_info(s_db, f->record_id, &one), 0);
        s_same_info(&out[i], &one);
        ch_db_anchor_info_clear(&one);
        if (want[i] == 4) {
            assert_string_equal(out[i].status, "pending");
        } else {
            const s_anchor_t *a = want[i] < 2 ? &first : &second;
            assert_string_equal(out[i].status, "anchored");
            assert_true(out[i].anchor_id == (uint64_t)a->anchor_id);
            uint8_t proof[LC_MERKLE_MAX_PROOF * 32];
            for (size_t k = 0; k < out[i].n_proof; k++)
                memcpy(proof + 32 * k, out[i].proof[k].data, 32);
            assert_int_equal(lc_merkle_verify(a->root, out[i].leaf.data, proof, out[i].n_proof), 0);
        }
        ch_db_anchor_info_clear(&out[i]);
    }
    /* None known: nothing, and no error. */
    assert_int_equal(ch_db_anchor_infos(s_db, ids + 32, 1, out, &found), 0);
    assert_int_equal(found, 0);
    assert_int_equal(ch_db_mark_fatal(s_db, first.tx_id, "test done", 1), 0);
    assert_int_equal(ch_db_mark_fatal(s_db, second.tx_id, "test done", 1), 0);
}

/* -- the proof cache ----------------------------------------------------------------------- */

/* x and y pack to the same bytes (the chain's part, stamped by ch_query, is not in either). */
static void s_same_bytes(const Lcore__V1__AnchorInfo *x, const Lcore__V1__AnchorInfo *y)
{
    size_t len = lcore__v1__anchor_info__get_packed_size(x);
    assert_int_equal(len, lcore__v1__anchor_info__get_packed_size(y));
    uint8_t *a = malloc(len + 1), *b = malloc(len + 1);
    lcore__v1__anchor_info__pack(x, a);
    lcore__v1__anchor_info__pack(y, b);
    assert_memory_equal(a, b, len);
    free(a);
    free(b);
}

/* ids[0 .. n) asked of db and of cold (no proof cache): want answers from each, the same ones
 * byte for byte, every proof leading to its root. */
static void s_same_as_cold(ch_db_t *db, ch_db_t *cold, const uint8_t *ids, size_t n, size_t want)
{
    Lcore__V1__AnchorInfo *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    size_t found_a = 0, found_b = 0;
    assert_int_equal(ch_db_anchor_infos(db, ids, n, a, &found_a), 0);
    assert_int_equal(ch_db_anchor_infos(cold, ids, n, b, &found_b), 0);
    assert_int_equal(found_a, want);
    assert_int_equal(found_b, want);
    for (size_t i = 0; i < want; i++) {
        s_same_info(&a[i], &b[i]);
        s_same_bytes(&a[i], &b[i]);
        if (a[i].anchor_id) {
            uint8_t proof[LC_MERKLE_MAX_PROOF * 32];
            for (size_t k = 0; k < a[i].n_proof; k++)
                memcpy(proof + 32 * k, a[i].proof[k].data, 32);
            assert_int_equal(lc_merkle_verify(a[i].root.data, a[i].leaf.data, proof, a[i].n_proof),
                             0);
        }
        ch_db_anchor_info_clear(&a[i]);
        ch_db_anchor_info_clear(&b[i]);
    }
    free(a);
    free(b);
}

/* The proof cache's counts moved by exactly these since *before (then *before = now). */
static void s_moved(ch_db_t *db, ch_db_proof_stats_t *before, uint64_t hits, uint64_t misses,
                    uint64_t leaves_read)
{
    ch_db_proof_stats_t now;
    ch_db_proof_stats(db, &now);
    assert_int_equal(now.hits - before->hits, hits);
    assert_int_equal(now.misses - before->misses, misses);
    assert_int_equal(now.leaves_read - before->leaves_read, leaves_read);
    *before = now;
}

/* A statement as the owner, behind the relayer's back ($1 = anchor id, $2 = 32 bytes or none),
 * in the name of the group's lease (the anchor tables take writes from its holder only). */
static void s_owner_sql(const char *sql, int64_t anchor_id, const uint8_t *bytes)
{
    PGconn *conn = lc_pg_connect(s_dsn, "test_ch_db");
    assert_non_null(conn);
    char set[128];
    snprintf(set, sizeof set,
             "SET lcore.lease_holder = 'test-group'; SET lcore.lease_epoch = '%llu'",
             (unsigned long long)ch_lease_epoch(s_lease));
    PQclear(PQexec(conn, set));
    char id[24], hex[2 + 64 + 1] = "\\x";
    snprintf(id, sizeof id, "%lld", (long long)anchor_id);
    if (bytes)
        assert_int_equal(lc_hex_encode(hex + 2, sizeof hex - 2, bytes, 32), 0);
    const char *v[2] = {id, hex};
    PGresult *r = PQexecParams(conn, sql, bytes ? 2 : 1, NULL, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_int_equal(atoi(PQcmdTuples(r)), 1);
    PQclear(r);
    PQfinish(conn);
}

#define S_CACHE_ANCHORS 8

/* Anchors of 1, 2, 3, 5, 8, 13, 21 and 34 records (the first also takes what earlier tests left
 * waiting), each mined; then one record left pending. ids: every record of them, taken from
 * each anchor in turn (the order asked is not the anchors'), the pending one and an unknown id
 * among them; *n ids, *want known. */
static void s_cache_anchors(s_anchor_t *a, uint8_t *ids, size_t *n, size_t *want)
{
    static const size_t sizes[S_CACHE_ANCHORS] = {1, 2, 3, 5, 8, 13, 21, 34};
    ch_feed_record_t feed[34];
    uint64_t pos = 0;
    size_t got = 0;
    assert_int_equal(ch_db_feed_position(s_db, s_store_id, &pos), 0);
    for (size_t k = 0; k < S_CACHE_ANCHORS; k++) {
        s_feed_records(pos + 1, sizes[k], feed);
        assert_int_equal(
            ch_db_feed_add(s_db, s_store_id, pos, pos + sizes[k], feed, sizes[k], &got), 0);
        s_mine_anchor(&a[k]);
        pos += sizes[k];
    }
    s_feed_records(pos + 1, 1, feed);
    assert_int_equal(ch_db_feed_add(s_db, s_store_id, pos, pos + 1, feed, 1, &got), 0);
    *n = 0;
    for (size_t r = 0; r < 256; r++)
        for (size_t k = 0; k < S_CACHE_ANCHORS; k++)
            if (r < a[k].n)
                memcpy(ids + 32 * (*n)++, a[k].recs[r].record_id, 32);
    *want = *n + 1;
    memcpy(ids + 32 * (*n)++, feed[0].record_id, 32);
    memset(ids + 32 * (*n)++, 0xee, 32);
}

/* What the proof cache's tests share: a handle without a cache (its answers are the relayer's
 * before the cache), the anchors of s_cache_anchors, the ids asked and how many leaves. */
typedef struct {
    ch_db_t *cold;
    s_anchor_t a[S_CACHE_ANCHORS];
    uint8_t ids[S_CACHE_ANCHORS * 256 * 32];
    size_t n, want, leaves;
} s_cache_fx_t;

static s_cache_fx_t *s_cache_fx_new(void)
{
    s_cache_fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    assert_non_null(fx->cold = ch_db_new(s_dsn));
    ch_db_set_proof_cache(fx->cold, 0);
    s_cache_anchors(fx->a, fx->ids, &fx->n, &fx->want);
    for (size_t k = 0; k < S_CACHE_ANCHORS; k++)
        fx->leaves += fx->a[k].n;
    return fx;
}

static void s_cache_fx_destroy(s_cache_fx_t **fx_p)
{
    s_cache_fx_t *fx = *fx_p;
    ch_db_destroy(&fx->cold);
    for (size_t k = 0; k < S_CACHE_ANCHORS; k++)
        assert_int_equal(ch_db_mark_fatal(s_db, fx->a[k].tx_id, "test done", 1), 0);
    free(fx);
    *fx_p = NULL;
}

/* The answers with the cache equal a cold handle's, for many records across anchors: the
 * first time every anchor's leaves are read, the second time none are. */
static void test_proof_cache(void **state)
{
    (void)state;
    if (!s_db)
        skip();
    s_cache_fx_t *fx = s_cache_fx_new();
    ch_db_t *cold = fx->cold;
    const uint8_t *ids = fx->ids;
    size_t n = fx->n, want = fx->want, leaves = fx->leaves;
    ch_db_proof_stats_t st, st_cold;
    ch_db_proof_stats(s_db, &st);
    ch_db_proof_stats(cold, &st_cold);
    s_same_as_cold(s_db, cold, ids, n, want);
    s_moved(s_db, &st, 0, S_CACHE_ANCHORS, leaves);
    s_same_as_cold(s_db, cold, ids, n, want);
    s_moved(s_db, &st, S_CACHE_ANCHORS, 0, 0); /* no leaf read */
    s_moved(cold, &st_cold, 0, 2 * S_CACHE_ANCHORS, 2 * leaves);
    assert_true(st.leaves >= leaves && st_cold.leaves == 0 && st_cold.trees == 0);
    /* One record (get_anchor): the same. */
    Lcore__V1__AnchorInfo one = LCORE__V1__ANCHOR_INFO__INIT, other = LCORE__V1__ANCHOR_INFO__INIT;
    const uint8_t *last = fx->a[S_CACHE_ANCHORS - 1].recs[33].record_id;
    assert_int_equal(ch_db_anchor_info(s_db, last, &one), 0);
    assert_int_equal(ch_db_anchor_info(cold, last, &other), 0);
    s_same_bytes(&one, &other);
    ch_db_anchor_info_clear(&one);
    ch_db_anchor_info_clear(&other);
    s_moved(s_db, &st, 1, 0, 0);
    /* Room for 34 leaves: a few trees at a time, the least recently used out; then room for
     * fewer leaves than the largest anchor has: that one is never kept. */
    const size_t bounds[] = {34, 34, 20, 20, 0};
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        uint64_t read_before = st.leaves_read;
        ch_db_set_proof_cache(s_db, bounds[i]);
        s_same_as_cold(s_db, cold, ids, n, want);
        ch_db_proof_stats(s_db, &st);
        assert_true(st.leaves <= bounds[i] && st.leaves_read > read_before);
    }
    ch_db_set_proof_cache(s_db, CH_DB_PROOF_CACHE_LEAVES);
    s_cache_fx_destroy(&fx);
}

/* The root of the tree over leaves[0 .. n). */
static void s_root(const uint8_t *leaves, size_t n, uint8_t root[32])
{
    int err = 0;
    lc_merkle_t *tree = lc_merkle_new(leaves, n, &err);
    assert_non_null(tree);
    lc_merkle_root(tree, root);
    lc_merkle_destroy(&tree);
}

/* Leaves changed under a relayer that cached their trees (as a database restored from another
 * history could): two leaves of one anchor swapped (its root stays: the same leaves), then a
 * leaf of another anchor replaced, with the root to match, while only its other records are
 * asked for. Each time the cached tree is not used (the answers are a cold handle's, the
 * anchor's leaves are read again), and the new one is. */
static void test_proof_cache_stale(void **state)
{
    (void)state;
    if (!s_db)
        skip();
    s_cache_fx_t *fx = s_cache_fx_new();
    ch_db_t *cold = fx->cold;
    uint8_t *ids = fx->ids;
    size_t n = fx->n, want = fx->want;
    s_same_as_cold(s_db, cold, ids, n, want);
    ch_db_proof_stats_t st;
    ch_db_proof_stats(s_db, &st);
    const s_anchor_t *big = &fx->a[S_CACHE_ANCHORS - 1], *other = &fx->a[S_CACHE_ANCHORS - 2];
    s_owner_sql("UPDATE anchor_leaves SET leaf_index = -1 WHERE anchor_id = $1 AND leaf_index = 0",
                big->anchor_id, NULL);
    s_owner_sql("UPDATE anchor_leaves SET leaf_index = 0 WHERE anchor_id = $1 AND leaf_index = 1",
                big->anchor_id, NULL);
    s_owner_sql("UPDATE anchor_leaves SET leaf_index = 1 WHERE anchor_id = $1 AND leaf_index = -1",
                big->anchor_id, NULL);
    s_same_as_cold(s_db, cold, ids, n, want);
    s_moved(s_db, &st, S_CACHE_ANCHORS - 1, 1, big->n);
    s_same_as_cold(s_db, cold, ids, n, want);
    s_moved(s_db, &st, S_CACHE_ANCHORS, 0, 0);
    /* Leaf 5 of the other anchor replaced; its records but that one asked. */
    uint8_t leaves[256 * 32], root[32];
    for (size_t i = 0; i < other->n; i++)
        lc_merkle_leaf(leaves + 32 * i, other->recs[i].record_id, other->recs[i].envelope_hash);
    memset(leaves + 32 * 5, 0x5a, 32);
    s_root(leaves, other->n, root);
    s_owner_sql("UPDATE anchor_leaves SET leaf = $2 WHERE anchor_id = $1 AND leaf_index = 5",
                other->anchor_id, leaves + 32 * 5);
    s_owner_sql("UPDATE anchors SET root = $2 WHERE id = $1", other->anchor_id, root);
    size_t m = 0;
    for (size_t i = 0; i < other->n; i++)
        if (i != 5)
            memcpy(ids + 32 * m++, other->recs[i].record_id, 32);
    s_same_as_cold(s_db, cold, ids, m, m);
    s_moved(s_db, &st, 0, 1, other->n);
    s_same_as_cold(s_db, cold, ids, m, m);
    s_moved(s_db, &st, 1, 0, 0);
    s_cache_fx_destroy(&fx);
}

/* A statement on the fenced tables (no row changes): 0 when the fence let it through. */
static int s_fenced_write(ch_db_t *db)
{
    return lc_pg_exec(ch_db_pg(db), "UPDATE anchors SET status = status WHERE false", NULL);
}

/* Two relayers of one chain and contract: one holds the lease, the other stands by and cannot
 * write what decides transactions; once the first stops renewing, the second takes it over at
 * the next epoch, and the first is fenced out and told it lost the lease; released, it is free
 * to take at once. */
static void test_lease(void **state)
{
    (void)state;
    if (!s_db)
        skip();
    uint8_t contract[20];
    s_contract(contract, "lease");
    ch_db_t *da = ch_db_new(s_dsn), *dbb = ch_db_new(s_dsn), *none = ch_db_new(s_dsn);
    assert_non_null(da);
    assert_non_null(dbb);
    assert_non_null(none);
    ch_lease_t *a = ch_lease_new(ch_db_pg(da), "relayer-a", 31337, contract, 1000, s_metrics);
    ch_lease_t *b = ch_lease_new(ch_db_pg(dbb), "relayer-b", 31337, contract, 1000, s_metrics);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(ch_lease_step(a), 1);
    uint64_t epoch = ch_lease_epoch(a);
    assert_true(epoch >= 1);
    assert_int_equal(ch_lease_step(b), 0);
    assert_string_equal(ch_lease_holder(b), "relayer-a");
    assert_int_equal(s_fenced_write(da), 0);
    assert_int_equal(s_fenced_write(dbb), LC_ERR_UNAVAILABLE);  /* the standby */
    assert_int_equal(s_fenced_write(none), LC_ERR_UNAVAILABLE); /* no lease at all */
    /* a renews within its ttl: still a's. */
    usleep(600 * 1000);
    assert_int_equal(ch_lease_step(a), 1);
    assert_int_equal(ch_lease_step(b), 0);
    /* a stops renewing (a pause, a crash): b takes over after the ttl, at the next epoch. */
    usleep(1100 * 1000);
    assert_int_equal(ch_lease_step(b), 1);
    assert_int_equal(ch_lease_epoch(b), epoch + 1);
    assert_int_equal(s_fenced_write(dbb), 0);
    assert_int_equal(s_fenced_write(da), LC_ERR_UNAVAILABLE); /* a woke up late: fenced */
    assert_int_equal(ch_lease_step(a), CH_LEASE_LOST);
    assert_string_equal(ch_lease_holder(a), "relayer-b");
    assert_int_equal(ch_lease_step(a), 0);
    /* b releases it (SIGTERM): a takes it at once. */
    ch_lease_release(b);
    assert_int_equal(s_fenced_write(dbb), LC_ERR_UNAVAILABLE);
    assert_int_equal(ch_lease_step(a), 1);
    assert_int_equal(ch_lease_epoch(a), epoch + 2);
    assert_int_equal(s_fenced_write(da), 0);
    ch_lease_destroy(&a);
    ch_lease_destroy(&b);
    ch_db_destroy(&da);
    ch_db_destroy(&dbb);
    ch_db_destroy(&none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feed),
        cmocka_unit_test(test_lease),
        cmocka_unit_test(test_anchor_and_info),
        cmocka_unit_test(test_anchor_infos),
        cmocka_unit_test(test_proof_cache),
        cmocka_unit_test(test_proof_cache_stale),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
