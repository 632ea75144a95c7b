/* test_merkle.c: OpenZeppelin StandardMerkleTree compatibility and proofs.
 *
 * Where the vectors come from:
 *   - @openzeppelin/merkle-tree README: values [[0x1111..11, 5e18], [0x2222..22, 2.5e18]] with
 *     leaf encoding [address, uint256] dump to tree [0xd4de.., 0xeb02.., 0xb92c..]. abi.encode of
 *     (address, uint256) is two 32-byte words, the same bytes as (bytes32, bytes32), so our
 *     leaf function must give those leaves;
 *   - @openzeppelin/merkle-tree test/dumps/standard-v1.sorted.1_0_6.json: six leaves ("a".."f",
 *     leaf encoding [string]) with the full 11-node array and each value's treeIndex: checks the
 *     layout (sorting, reverse placement, pairing) on a tree that is not a power of two;
 *   - s_roots: an independent Python transcription of StandardMerkleTree (pycryptodome Keccak),
 *     which reproduces the README tree first, over the records made by s_record(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc_codec.h"
#include "lc_merkle.h"

#include <stdlib.h>
#include <string.h>

#define H LC_MERKLE_HASH_LEN

static void s_unhex32(uint8_t out[H], const char *hex)
{
    size_t n = 0;
    assert_int_equal(lc_hex_decode(out, H, &n, hex, strlen(hex)), 0);
    assert_int_equal(n, H);
}

static void s_assert_hex32(const uint8_t *got, const char *want_hex)
{
    assert_non_null(got);
    char hex[LC_HEX_LEN(H) + 1];
    assert_int_equal(lc_hex_encode(hex, sizeof hex, got, H), 0);
    assert_string_equal(hex, want_hex);
}

/* Record i of the synthetic anchors: record_id 0x5a 00.. i, envelope bytes i*7+1+j. */
static void s_record(uint8_t leaf[H], size_t i)
{
    uint8_t rid[32] = {0}, env[32];
    rid[0] = 0x5a;
    rid[31] = (uint8_t)i;
    for (size_t j = 0; j < sizeof env; j++)
        env[j] = (uint8_t)(i * 7 + 1 + j);
    lc_merkle_leaf(leaf, rid, env);
}

static lc_merkle_t *s_build(uint8_t *leaves, size_t n)
{
    int err = 99;
    lc_merkle_t *t = lc_merkle_new(leaves, n, &err);
    assert_non_null(t);
    assert_int_equal(err, 0);
    return t;
}

static void test_openzeppelin_readme(void **state)
{
    (void)state;
    uint8_t a_id[32] = {0}, a_amount[32] = {0}, b_id[32] = {0}, b_amount[32] = {0};
    memset(a_id + 12, 0x11, 20);
    memset(b_id + 12, 0x22, 20);
    const uint64_t a_wei = 5000000000000000000ull, b_wei = 2500000000000000000ull;
    for (int i = 0; i < 8; i++) {
        a_amount[31 - i] = (uint8_t)(a_wei >> (8 * i));
        b_amount[31 - i] = (uint8_t)(b_wei >> (8 * i));
    }
    uint8_t leaves[2 * H];
    lc_merkle_leaf(leaves, a_id, a_amount);
    lc_merkle_leaf(leaves + H, b_id, b_amount);
    s_assert_hex32(leaves, "eb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283");
    s_assert_hex32(leaves + H, "b92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc");

    lc_merkle_t *t = s_build(leaves, 2);
    uint8_t root[H];
    lc_merkle_root(t, root);
    s_assert_hex32(root, "d4dee0beab2d53f2cc83e567171bd2820e49898130a22622b10ead383e90bd77");
    assert_int_equal(lc_merkle_node_count(t), 3);
    s_assert_hex32(lc_merkle_node(t, 1),
                   "eb02c421cfa48976e66dfb29120745909ea3a0f843456c263cf8f1253483e283");
    s_assert_hex32(lc_merkle_node(t, 2),
                   "b92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc");
    assert_null(lc_merkle_node(t, 3));

    /* The README's proof for the first value is the second leaf. */
    uint8_t proof[LC_MERKLE_MAX_PROOF * H];
    size_t len = 0;
    assert_int_equal(lc_merkle_proof(t, proof, LC_MERKLE_MAX_PROOF, &len, 0), 0);
    assert_int_equal(len, 1);
    s_assert_hex32(proof, "b92c48e9d7abe27fd8dfd6b5dfdbfb1c9a463f80c712b66f3a5180a090cccafc");
    assert_int_equal(lc_merkle_verify(root, leaves, proof, len), 0);
    lc_merkle_destroy(&t);
    assert_null(t);
}

static void test_openzeppelin_dump_six(void **state)
{
    (void)state;
    static const char *tree[] = {
        "6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8",
        "52426e0f1f65ff7e209a13b8c29cffe82e3acaf3dad0a9b9088f3b9a61a929c3",
        "fd3cf45654e88d1cc5d663578c82c76f4b5e3826bacaa1216441443504538f51",
        "8076923e76cf01a7c048400a2304c9a9c23bbbdac3a98ea3946340fdafbba34f",
        "965b92c6cf08303cc4feb7f3e0819c436c2cec17c6f0688a6af139c9a368707c",
        "eba909cf4bb90c6922771d7f126ad0fd11dfde93f3937a196274e1ac20fd2f5b",
        "c62a8cfa41edc0ef6f6ae27a2985b7d39c7fea770787d7e104696c6e81f64848",
        "9cf5a63718145ba968a01c1d557020181c5b252f665cf7386d370eddb176517b",
        "9c15a6a0eaeed500fd9eed4cbeab71f797cefcc67bfd46683e4d2e6ff7f06d1c",
        "9a4f64e953595df82d1b4f570d34c4f4f0cfaf729a61e9d60e83e579e1aa283e",
        "19ba6c6333e0e9a15bf67523e0676e2f23eb8e574092552d5e888c64a4bb3681",
    };
    static const size_t tree_index[] = {8, 10, 7, 5, 9, 6}; /* values "a".."f" */
    uint8_t leaves[6 * H];
    for (size_t i = 0; i < 6; i++)
        s_unhex32(leaves + i * H, tree[tree_index[i]]);

    lc_merkle_t *t = s_build(leaves, 6);
    assert_int_equal(lc_merkle_leaf_count(t), 6);
    assert_int_equal(lc_merkle_node_count(t), LC_ARRAY_LEN(tree));
    for (size_t i = 0; i < LC_ARRAY_LEN(tree); i++)
        s_assert_hex32(lc_merkle_node(t, i), tree[i]);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(lc_merkle_tree_index(t, i), tree_index[i]);
    assert_true(lc_merkle_tree_index(t, 6) == SIZE_MAX);

    /* "a" sits at 8: siblings 7 ("c"), then 4, then 2. */
    uint8_t proof[LC_MERKLE_MAX_PROOF * H], root[H];
    size_t len = 0;
    assert_int_equal(lc_merkle_proof(t, proof, LC_MERKLE_MAX_PROOF, &len, 0), 0);
    assert_int_equal(len, 3);
    s_assert_hex32(proof, tree[7]);
    s_assert_hex32(proof + H, tree[4]);
    s_assert_hex32(proof + 2 * H, tree[2]);
    lc_merkle_root(t, root);
    assert_int_equal(lc_merkle_verify(root, leaves, proof, len), 0);
    /* "d" sits at 5, a leaf one level higher: siblings 6, then 1. */
    assert_int_equal(lc_merkle_proof(t, proof, LC_MERKLE_MAX_PROOF, &len, 3), 0);
    assert_int_equal(len, 2);
    s_assert_hex32(proof, tree[6]);
    s_assert_hex32(proof + H, tree[1]);
    lc_merkle_destroy(&t);
}

static const struct {
    size_t n;
    const char *root;
} s_roots[] = {
    {1, "014c53be89da9587d2488c108de3c46a3369895c8a36c02ad25e761c1a581def"},
    {2, "081f14dc593dfb40c1a891fc72e9dc6ab7d401b9fadf0b5a46728f352f13696f"},
    {3, "2d0e7bc49b5a9b200f98ea37c37bcc0d8ee63f22a8270a923dbab0a0bc8b1b46"},
    {4, "1a70160e62bb1bfc4cf6cb20be22aa85fab7bf1d092cfc9039b1d0359388602d"},
    {5, "95a1ffcf89ce579912ca3a92c6f7cdca3653e1bf12d4e804c9144fedcb637f85"},
    {6, "f994f534d29930f198e004b983c8b7e5016466478a2df4d54d1cde06d2104210"},
    {7, "311ba99b41d7fd2329e00c1eb7d38c67baecf2a25e89b4fb3f2df8d27ce68b80"},
    {8, "edae5ccad5d4d261966fb8e5573b12e115c8dcd18c5b4c093a2a7683d8794502"},
    {9, "da783bc606af2190e960ce5417132dd52c8b388f1672165b365b54cd9bbb18d0"},
    {16, "ce0fa9f2987d1a45297579d90de1e65e3f78004a53c95139ed76791b3210fdf6"},
    {17, "0174c128d14a905e6fd485cf30c73f5cf7ef29c32e91555e6e19ef88458f0bb6"},
    {32, "adf3d0e5012213aa296a5a0388c22a9b8212d0c698b204f1e388e7ac33842f4a"},
    {33, "33755b6ab2107936f697a1c01c1291994adf672320539c54279ca9214cb7ed6d"},
};

static void test_roots_cross_checked(void **state)
{
    (void)state;
    uint8_t leaves[33 * H];
    for (size_t i = 0; i < 33; i++)
        s_record(leaves + i * H, i);
    for (size_t k = 0; k < LC_ARRAY_LEN(s_roots); k++) {
        lc_merkle_t *t = s_build(leaves, s_roots[k].n);
        uint8_t root[H];
        lc_merkle_root(t, root);
        s_assert_hex32(root, s_roots[k].root);
        lc_merkle_destroy(&t);
    }
}

/* For every anchor size 1..33: every leaf's proof verifies, has the depth of its node, and
 * fails once the leaf, any sibling or the root is altered, or a sibling is dropped or added. */
static void test_all_proofs(void **state)
{
    (void)state;
    uint8_t leaves[33 * H];
    for (size_t i = 0; i < 33; i++)
        s_record(leaves + i * H, i);

    for (size_t n = 1; n <= 33; n++) {
        lc_merkle_t *t = s_build(leaves, n);
        uint8_t root[H];
        lc_merkle_root(t, root);
        if (n == 1) /* an anchor of one: the root is the leaf and the proof is empty */
            assert_memory_equal(root, leaves, H);

        for (size_t i = 0; i < n; i++) {
            const uint8_t *leaf = leaves + i * H;
            uint8_t proof[(LC_MERKLE_MAX_PROOF + 1) * H];
            size_t len = 99;
            assert_int_equal(lc_merkle_proof(t, proof, LC_MERKLE_MAX_PROOF, &len, i), 0);
            assert_memory_equal(lc_merkle_node(t, lc_merkle_tree_index(t, i)), leaf, H);
            size_t depth = 0;
            for (size_t ti = lc_merkle_tree_index(t, i); ti > 0; ti = (ti - 1) / 2)
                depth++;
            assert_int_equal(len, depth);
            assert_true(n == 1 ? len == 0 : len >= 1);
            assert_int_equal(lc_merkle_verify(root, leaf, proof, len), 0);

            uint8_t bad[H];
            memcpy(bad, leaf, H);
            bad[i % H] ^= 0x01;
            assert_int_equal(lc_merkle_verify(root, bad, proof, len), LC_ERR_SIGNATURE);
            memcpy(bad, root, H);
            bad[31] ^= 0x80;
            assert_int_equal(lc_merkle_verify(bad, leaf, proof, len), LC_ERR_SIGNATURE);
            for (size_t k = 0; k < len; k++) {
                proof[k * H + (k % H)] ^= 0x40;
                assert_int_equal(lc_merkle_verify(root, leaf, proof, len), LC_ERR_SIGNATURE);
                proof[k * H + (k % H)] ^= 0x40;
            }
            if (len > 0)
                assert_int_equal(lc_merkle_verify(root, leaf, proof, len - 1), LC_ERR_SIGNATURE);
            memcpy(proof + len * H, leaf, H);
            assert_int_equal(lc_merkle_verify(root, leaf, proof, len + 1), LC_ERR_SIGNATURE);
            /* Another leaf of the anchor does not verify with this leaf's proof. */
            if (n > 1)
                assert_int_equal(lc_merkle_verify(root, leaves + ((i + 1) % n) * H, proof, len),
                                 LC_ERR_SIGNATURE);
        }
        lc_merkle_destroy(&t);
    }
}

/* The caller's order does not change the tree (leaves are sorted), only the index mapping. */
static void test_order_independent(void **state)
{
    (void)state;
    uint8_t fwd[9 * H], rev[9 * H];
    for (size_t i = 0; i < 9; i++) {
        s_record(fwd + i * H, i);
        s_record(rev + (8 - i) * H, i);
    }
    lc_merkle_t *a = s_build(fwd, 9), *b = s_build(rev, 9);
    for (size_t i = 0; i < lc_merkle_node_count(a); i++)
        assert_memory_equal(lc_merkle_node(a, i), lc_merkle_node(b, i), H);
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(lc_merkle_tree_index(a, i), lc_merkle_tree_index(b, 8 - i));
    lc_merkle_destroy(&a);
    lc_merkle_destroy(&b);
}

static void test_duplicates_and_pairs(void **state)
{
    (void)state;
    uint8_t leaves[3 * H];
    s_record(leaves, 1);
    s_record(leaves + H, 2);
    memcpy(leaves + 2 * H, leaves, H); /* the same leaf twice */
    lc_merkle_t *t = s_build(leaves, 3);
    uint8_t root[H], proof[LC_MERKLE_MAX_PROOF * H];
    lc_merkle_root(t, root);
    assert_true(lc_merkle_tree_index(t, 0) != lc_merkle_tree_index(t, 2));
    for (size_t i = 0; i < 3; i++) {
        size_t len = 0;
        assert_int_equal(lc_merkle_proof(t, proof, LC_MERKLE_MAX_PROOF, &len, i), 0);
        assert_int_equal(lc_merkle_verify(root, leaves + i * H, proof, len), 0);
    }
    lc_merkle_destroy(&t);

    /* Commutative, and out may alias an input. */
    uint8_t ab[H], ba[H], x[H];
    lc_merkle_hash_pair(ab, leaves, leaves + H);
    lc_merkle_hash_pair(ba, leaves + H, leaves);
    assert_memory_equal(ab, ba, H);
    memcpy(x, leaves + H, H);
    lc_merkle_hash_pair(x, x, leaves);
    assert_memory_equal(x, ab, H);
}

static void test_refusals(void **state)
{
    (void)state;
    int err = 0;
    uint8_t leaves[5 * H];
    for (size_t i = 0; i < 5; i++)
        s_record(leaves + i * H, i);
    assert_null(lc_merkle_new(leaves, 0, &err));
    assert_int_equal(err, LC_ERR_INVALID);
    assert_null(lc_merkle_new(NULL, 3, NULL));
    assert_null(lc_merkle_new(leaves, SIZE_MAX / 2, &err));
    assert_int_equal(err, LC_ERR_TOOBIG);

    lc_merkle_t *t = s_build(leaves, 5);
    uint8_t proof[LC_MERKLE_MAX_PROOF * H];
    size_t len = 7;
    assert_int_equal(lc_merkle_proof(t, proof, LC_MERKLE_MAX_PROOF, &len, 5), LC_ERR_NOTFOUND);
    assert_int_equal(len, 0);
    /* 5 leaves: depths 2 and 3; a cap of 1 is too small for any of them. */
    assert_int_equal(lc_merkle_proof(t, proof, 1, &len, 0), LC_ERR_TOOBIG);
    lc_merkle_destroy(&t);
    lc_merkle_destroy(&t);
    lc_merkle_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openzeppelin_readme),
        cmocka_unit_test(test_openzeppelin_dump_six),
        cmocka_unit_test(test_roots_cross_checked),
        cmocka_unit_test(test_all_proofs),
        cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_duplicates_and_pairs),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
