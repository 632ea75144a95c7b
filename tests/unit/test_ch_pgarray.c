/* test_ch_pgarray.c: the binary arrays ch_db sends a batch's leaves in (PostgreSQL's array_recv
 * format), byte for byte against hand-assembled known answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ch_pgarray.h"

#include <string.h>

static void test_int8_big_endian(void **state)
{
    (void)state;
    uint8_t b[8];
    const uint8_t one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t big[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    const uint8_t minus1[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    ch_pgarray_int8(b, 1);
    assert_memory_equal(b, one, 8);
    ch_pgarray_int8(b, 0x0123456789abcdefLL);
    assert_memory_equal(b, big, 8);
    ch_pgarray_int8(b, -1);
    assert_memory_equal(b, minus1, 8);
}

static void test_int8_array(void **state)
{
    (void)state;
    uint8_t vals[16], out[64];
    ch_pgarray_int8(vals, 7);
    ch_pgarray_int8(vals + 8, 300);
    const uint8_t want[] = {
        0, 0, 0, 1,  /* one dimension */
        0, 0, 0, 0,  /* no NULLs */
        0, 0, 0, 20, /* int8 */
        0, 0, 0, 2,  /* two elements */
        0, 0, 0, 1,  /* lower bound 1 */
        0, 0, 0, 8,  0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 44,
    };
    size_t len = ch_pgarray_encode(out, CH_PGARRAY_OID_INT8, vals, 8, 8, 2);
    assert_int_equal(len, sizeof want);
    assert_int_equal(len, ch_pgarray_size(8, 2));
    assert_memory_equal(out, want, sizeof want);
}

static void test_bytea_array_with_stride(void **state)
{
    (void)state;
    /* Elements taken every 3 bytes, 2 bytes each: the stride skips the third. */
    const uint8_t src[] = {0xaa, 0xbb, 0x00, 0xcc, 0xdd, 0x00, 0xee, 0xff, 0x00};
    const uint8_t want[] = {0, 0, 0, 1, 0,    0,    0, 0, 0, 0, 0,    17,   0,
                            0, 0, 3, 0, 0,    0,    1, 0, 0, 0, 2,    0xaa, 0xbb,
                            0, 0, 0, 2, 0xcc, 0xdd, 0, 0, 0, 2, 0xee, 0xff};
    uint8_t out[64];
    size_t len = ch_pgarray_encode(out, CH_PGARRAY_OID_BYTEA, src, 3, 2, 3);
    assert_int_equal(len, sizeof want);
    assert_int_equal(len, ch_pgarray_size(2, 3));
    assert_memory_equal(out, want, sizeof want);
}

static void test_empty_and_size(void **state)
{
    (void)state;
    uint8_t out[32];
    const uint8_t want[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(ch_pgarray_encode(out, CH_PGARRAY_OID_BYTEA, NULL, 32, 32, 0), sizeof want);
    assert_memory_equal(out, want, sizeof want);
    /* A full batch of leaves: header + 1000 x (length word + 32 bytes). */
    assert_int_equal(ch_pgarray_size(32, 1000), 20 + 1000 * 36);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int8_big_endian),
        cmocka_unit_test(test_int8_array),
        cmocka_unit_test(test_bytea_array_with_stride),
        cmocka_unit_test(test_empty_and_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
