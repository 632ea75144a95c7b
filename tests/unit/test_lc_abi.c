/* test_lc_abi.c: the anchor contract's ABI (lc_abi): call data against the selectors of the
 * signatures, decoding of the views' answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc_abi.h"
#include "lc_codec.h"
#include "lc_keccak.h"

#include <stdlib.h>
#include <string.h>

/* The selector the call data starts with is keccak256(signature)[0..4). */
static void s_assert_selector(const uint8_t *data, const char *signature)
{
    uint8_t h[32];
    lc_keccak256(h, (const uint8_t *)signature, strlen(signature));
    assert_memory_equal(data, h, 4);
}

/* n bytes of hex into out (a test vector). */
static void s_hex(uint8_t *out, size_t n, const char *hex)
{
    size_t got = 0;
    assert_int_equal(lc_hex_decode(out, n, &got, hex, strlen(hex)), 0);
    assert_int_equal(got, n);
}

static void test_abi_anchor(void **state)
{
    (void)state;
    uint8_t root[32], d[LC_ABI_ANCHOR_LEN], want[LC_ABI_ANCHOR_LEN];
    for (int i = 0; i < 32; i++)
        root[i] = (uint8_t)(0xa0 + i);
    lc_abi_anchor(d, 0x0102030405060708ull, root, 1000);
    s_assert_selector(d, "anchor(uint64,bytes32,uint32)");
    s_hex(want, sizeof want,
          "a149a214"
          "0000000000000000000000000000000000000000000000000102030405060708"
          "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
          "00000000000000000000000000000000000000000000000000000000000003e8");
    assert_memory_equal(d, want, sizeof want);

    uint8_t q[LC_ABI_ANCHORS_LEN];
    lc_abi_anchors(q, root);
    s_assert_selector(q, "anchors(bytes32)");
    assert_memory_equal(q + 4, root, 32);

    /* topic0 of the event the relayer looks up: the contract's (contracts/selectors.txt). */
    uint8_t topic[32], want_topic[32];
    lc_keccak256(topic, (const uint8_t *)LC_ABI_ANCHORED_EVENT, strlen(LC_ABI_ANCHORED_EVENT));
    s_hex(want_topic, 32, "1435ec9a26e23f62ab84d767929d3de26da5d513b160935557a4d8d2149af9fd");
    assert_memory_equal(topic, want_topic, 32);
}

static void test_abi_anchors_decode(void **state)
{
    (void)state;
    /* anvil's answer for a root anchored under anchor id 1 with 3 leaves in block 2. */
    uint8_t ret[128];
    s_hex(ret, sizeof ret,
          "0000000000000000000000000000000000000000000000000000000000000001"
          "0000000000000000000000000000000000000000000000000000000000000003"
          "0000000000000000000000000000000000000000000000000000000000000002"
          "000000000000000000000000000000000000000000000000000000006b017c53");
    lc_abi_anchor_t a;
    assert_int_equal(lc_abi_anchors_decode(&a, ret, sizeof ret), 0);
    assert_true(a.anchor_id == 1 && a.count == 3 && a.block_number == 2 &&
                a.timestamp == 0x6b017c53);

    /* The largest values each type holds. */
    uint8_t max[128] = {0};
    memset(max + 24, 0xff, 8);
    memset(max + 32 + 28, 0xff, 4);
    memset(max + 64 + 24, 0xff, 8);
    memset(max + 96 + 24, 0xff, 8);
    assert_int_equal(lc_abi_anchors_decode(&a, max, sizeof max), 0);
    assert_true(a.anchor_id == UINT64_MAX && a.count == UINT32_MAX &&
                a.block_number == UINT64_MAX && a.timestamp == UINT64_MAX);

    /* Never anchored: all zero. */
    uint8_t zero[128] = {0};
    assert_int_equal(lc_abi_anchors_decode(&a, zero, sizeof zero), 0);
    assert_true(a.count == 0 && a.anchor_id == 0 && a.block_number == 0 && a.timestamp == 0);

    /* Not what LcoreAnchor answers. */
    uint8_t bad[128];
    assert_int_equal(lc_abi_anchors_decode(&a, ret, 96), LC_ERR_INVALID);
    assert_int_equal(lc_abi_anchors_decode(&a, ret, 0), LC_ERR_INVALID);
    assert_int_equal(lc_abi_anchors_decode(&a, NULL, 128), LC_ERR_INVALID);
    /* A byte above each value's type: anchor id, count, block, time; and each word's first. */
    static const size_t too_big[] = {23, 32 + 27, 64 + 23, 96 + 23, 0, 32, 64, 96};
    for (size_t i = 0; i < LC_ARRAY_LEN(too_big); i++) {
        memcpy(bad, ret, sizeof bad);
        bad[too_big[i]] = 1;
        if (lc_abi_anchors_decode(&a, bad, sizeof bad) != LC_ERR_INVALID)
            fail_msg("accepted a value too big for its type at byte %zu", too_big[i]);
    }
    memcpy(bad, ret, sizeof bad);
    memset(bad + 32, 0, 32); /* count 0 with an anchor id, block and time */
    assert_int_equal(lc_abi_anchors_decode(&a, bad, sizeof bad), LC_ERR_INVALID);
    memcpy(bad, zero, sizeof bad);
    bad[31] = 5; /* count 0, anchor id 5 */
    assert_int_equal(lc_abi_anchors_decode(&a, bad, sizeof bad), LC_ERR_INVALID);
    memcpy(bad, ret, sizeof bad);
    memset(bad + 64, 0, 32); /* anchored in no block */
    assert_int_equal(lc_abi_anchors_decode(&a, bad, sizeof bad), LC_ERR_INVALID);
}

static void test_abi_verify(void **state)
{
    (void)state;
    uint8_t root[32], leaf[32], proof[64];
    memset(root, 0x11, 32);
    memset(leaf, 0x22, 32);
    memset(proof, 0x33, 32);
    memset(proof + 32, 0x44, 32);
    size_t len = 0;
    uint8_t *d = lc_abi_verify(root, proof, 2, leaf, &len);
    assert_non_null(d);
    s_assert_selector(d, "verify(bytes32,bytes32[],bytes32)");
    uint8_t want[4 + 32 * 6];
    s_hex(want, sizeof want,
          "0a02831c"
          "1111111111111111111111111111111111111111111111111111111111111111"
          "0000000000000000000000000000000000000000000000000000000000000060"
          "2222222222222222222222222222222222222222222222222222222222222222"
          "0000000000000000000000000000000000000000000000000000000000000002"
          "3333333333333333333333333333333333333333333333333333333333333333"
          "4444444444444444444444444444444444444444444444444444444444444444");
    assert_int_equal(len, sizeof want);
    assert_memory_equal(d, want, sizeof want);
    free(d);

    /* A one-leaf anchor: root = leaf, empty proof (an array of length 0, no tail words). */
    d = lc_abi_verify(leaf, NULL, 0, leaf, &len);
    assert_non_null(d);
    assert_int_equal(len, 4 + 32 * 4);
    assert_memory_equal(d, want, 4);
    assert_memory_equal(d + 4, leaf, 32);
    assert_memory_equal(d + 36, want + 36, 32);
    assert_memory_equal(d + 68, leaf, 32);
    for (size_t i = 100; i < len; i++)
        assert_int_equal(d[i], 0);
    free(d);
}

static void test_abi_bool_decode(void **state)
{
    (void)state;
    uint8_t w[32] = {0};
    bool v = true;
    assert_int_equal(lc_abi_bool_decode(&v, w, 32), 0);
    assert_false(v);
    w[31] = 1;
    assert_int_equal(lc_abi_bool_decode(&v, w, 32), 0);
    assert_true(v);
    assert_int_equal(lc_abi_bool_decode(&v, w, 31), LC_ERR_INVALID);
    assert_int_equal(lc_abi_bool_decode(&v, NULL, 0), LC_ERR_INVALID);
    w[31] = 2;
    assert_int_equal(lc_abi_bool_decode(&v, w, 32), LC_ERR_INVALID);
    w[31] = 1;
    w[0] = 1;
    assert_int_equal(lc_abi_bool_decode(&v, w, 32), LC_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abi_anchor),
        cmocka_unit_test(test_abi_anchors_decode),
        cmocka_unit_test(test_abi_verify),
        cmocka_unit_test(test_abi_bool_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
