/* test_ch_proof_cache.c: the relayer's cache of anchor trees (ch_proof_cache) on its own: a tree
 * put is found under its anchor id and no other; the bound counts leaves, and the least recently
 * used trees (a get counts as a use) go first to make room; a tree larger than the bound is not
 * kept; a new bound evicts down to it; a tree put again under its id replaces the old one; drop
 * forgets one; thousands of trees (the table grows) are all found. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ch_proof_cache.h"

/* A tree of n leaves whose first leaf says which (seed). */
static lc_merkle_t *s_tree(size_t n, uint8_t seed)
{
    uint8_t leaves[64 * 32];
    assert_true(n >= 1 && n <= 64);
    for (size_t i = 0; i < n; i++) {
        memset(leaves + 32 * i, (int)i, 32);
        leaves[32 * i] = seed;
    }
    int err = 0;
    lc_merkle_t *t = lc_merkle_new(leaves, n, &err);
    assert_non_null(t);
    return t;
}

/* The seed of the tree held for id (0: none). */
static uint8_t s_seed(ch_proof_cache_t *c, int64_t id)
{
    const lc_merkle_t *t = ch_proof_cache_get(c, id);
    return t ? lc_merkle_node(t, lc_merkle_tree_index(t, 0))[0] : 0;
}

static void s_put(ch_proof_cache_t *c, int64_t id, size_t n, uint8_t seed)
{
    lc_merkle_t *t = s_tree(n, seed);
    ch_proof_cache_put(c, id, &t);
    assert_null(t); /* taken, kept or not */
}

static void test_lru_by_leaves(void **state)
{
    (void)state;
    ch_proof_cache_t *c = ch_proof_cache_new(10);
    assert_non_null(c);
    s_put(c, 1, 4, 0xa1);
    s_put(c, 2, 4, 0xa2);
    assert_int_equal(ch_proof_cache_leaves(c), 8);
    assert_int_equal(s_seed(c, 1), 0xa1); /* 1 used: 2 is now the least recent */
    assert_int_equal(s_seed(c, 3), 0);
    s_put(c, 3, 2, 0xa3); /* 10 leaves: fits */
    assert_int_equal(ch_proof_cache_trees(c), 3);
    s_put(c, 4, 3, 0xa4); /* 13 > 10: 2 goes (the least recent); 6 + 3 fit */
    assert_int_equal(s_seed(c, 2), 0);
    assert_int_equal(s_seed(c, 1), 0xa1);
    assert_int_equal(s_seed(c, 3), 0xa3);
    assert_int_equal(s_seed(c, 4), 0xa4); /* least recent first: 1, 3, 4 */
    assert_int_equal(ch_proof_cache_leaves(c), 9);
    /* Larger than the bound: not kept, nothing evicted for it. */
    s_put(c, 5, 11, 0xa5);
    assert_int_equal(s_seed(c, 5), 0);
    assert_int_equal(ch_proof_cache_trees(c), 3);
    /* Put again under its id: replaced, counted once (1 goes to make room: 3 + 4 + 4 > 10). */
    s_put(c, 3, 4, 0xb3);
    assert_int_equal(s_seed(c, 3), 0xb3);
    assert_int_equal(s_seed(c, 1), 0);
    assert_int_equal(ch_proof_cache_leaves(c), 7);
    ch_proof_cache_drop(c, 3);
    ch_proof_cache_drop(c, 99); /* not held: nothing */
    assert_int_equal(s_seed(c, 3), 0);
    assert_int_equal(ch_proof_cache_leaves(c), 3);
    /* A smaller bound evicts down to it; 0 keeps nothing. */
    s_put(c, 6, 5, 0xa6);
    ch_proof_cache_set_max(c, 5);
    assert_int_equal(s_seed(c, 4), 0);
    assert_int_equal(s_seed(c, 6), 0xa6);
    ch_proof_cache_set_max(c, 0);
    assert_int_equal(ch_proof_cache_trees(c), 0);
    assert_int_equal(ch_proof_cache_leaves(c), 0);
    s_put(c, 7, 1, 0xa7);
    assert_int_equal(s_seed(c, 7), 0);
    ch_proof_cache_destroy(&c);
    assert_null(c);
    ch_proof_cache_destroy(&c); /* NULL-safe */
}

static void test_many(void **state)
{
    (void)state;
    enum { N = 5000 };
    ch_proof_cache_t *c = ch_proof_cache_new(N);
    for (int64_t id = 1; id <= N; id++)
        s_put(c, id * 7919, 1, (uint8_t)(id % 250 + 1));
    assert_int_equal(ch_proof_cache_trees(c), N);
    for (int64_t id = 1; id <= N; id++)
        assert_int_equal(s_seed(c, id * 7919), id % 250 + 1);
    assert_int_equal(s_seed(c, 7919 * (N + 1)), 0);
    /* One more: the least recently used (the first, read first above) goes. */
    s_put(c, -1, 1, 0xee);
    assert_int_equal(s_seed(c, 7919), 0);
    assert_int_equal(s_seed(c, 7919 * 2), 2 % 250 + 1);
    assert_int_equal(s_seed(c, -1), 0xee);
    ch_proof_cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_by_leaves),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
