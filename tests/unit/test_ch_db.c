/* test_ch_db.c: the relayer's own tables against a real PostgreSQL: `lcore-chain migrate` on
 * a database with none of the store's tables, the feed (records taken in once, in order, the
 * feed position moved only from the expected one), anchors over arrival ranges, and the anchor
 * info a record lookup gets: pending, then, once its anchor is mined, the proof that leads to
 * the root (lc_merkle_verify) and the confirmations from chain_head; and the same for many
 * records at once (get_anchors), in the order asked.
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
#include "lc_merkle.h"
#include "lc_record.h"
#include "lcore.pb-c.h"

/* The group's connection and store_id (set up once; NULL: no database, every test skips). */
static ch_db_t *s_db;
static char s_store_id[32];

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
    return (s_db = ch_db_new(dsn)) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_feed),
        cmocka_unit_test(test_anchor_and_info),
        cmocka_unit_test(test_anchor_infos),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
