/* test_rlp.c: RLP known answers (Ethereum wiki "RLP" page / yellow paper appendix B), boundary
 * lengths, the fixed-buffer error path, and the strict decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc_codec.h"
#include "lc_rlp.h"

#include <stdlib.h>
#include <string.h>

static const char s_lorem[] = "Lorem ipsum dolor sit amet, consectetur adipisicing elit";
static const char s_lorem_rlp[] = "b8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f"
                                  "6e7365637465747572206164697069736963696e6720656c6974";

/* Asserts that the buffer holds exactly the bytes spelled by want_hex, then frees it. */
static void s_assert_buf(lc_rlp_buf_t *b, const char *want_hex)
{
    assert_int_equal(lc_rlp_buf_error(b), 0);
    char *got = malloc(LC_HEX_LEN(b->len) + 1);
    assert_non_null(got);
    assert_int_equal(lc_hex_encode(got, LC_HEX_LEN(b->len) + 1, b->data, b->len), 0);
    assert_string_equal(got, want_hex);
    free(got);
    lc_rlp_buf_free(b);
}

static size_t s_unhex(uint8_t *out, size_t cap, const char *hex)
{
    size_t n = 0;
    assert_int_equal(lc_hex_decode(out, cap, &n, hex, strlen(hex)), 0);
    return n;
}

static void s_put_str(lc_rlp_buf_t *b, const char *s)
{
    lc_rlp_put_bytes(b, (const uint8_t *)s, strlen(s));
}

static void test_rlp_wiki_strings_and_ints(void **state)
{
    (void)state;
    lc_rlp_buf_t b;

    lc_rlp_buf_init(&b);
    s_put_str(&b, "dog");
    s_assert_buf(&b, "83646f67");

    lc_rlp_buf_init(&b);
    lc_rlp_put_bytes(&b, NULL, 0);
    s_assert_buf(&b, "80");

    lc_rlp_buf_init(&b);
    lc_rlp_put_uint(&b, 0);
    s_assert_buf(&b, "80");

    lc_rlp_buf_init(&b);
    lc_rlp_put_uint(&b, 15);
    s_assert_buf(&b, "0f");

    lc_rlp_buf_init(&b);
    lc_rlp_put_uint(&b, 1024);
    s_assert_buf(&b, "820400");

    lc_rlp_buf_init(&b);
    s_put_str(&b, s_lorem);
    s_assert_buf(&b, s_lorem_rlp);

    /* The byte 0x00 is itself; 0x7f is itself; 0x80 needs a header. */
    const uint8_t zero = 0x00, x7f = 0x7f, x80 = 0x80;
    lc_rlp_buf_init(&b);
    lc_rlp_put_bytes(&b, &zero, 1);
    lc_rlp_put_bytes(&b, &x7f, 1);
    lc_rlp_put_bytes(&b, &x80, 1);
    lc_rlp_put_uint(&b, 127);
    lc_rlp_put_uint(&b, 128);
    lc_rlp_put_uint(&b, UINT64_MAX);
    s_assert_buf(&b, "007f8180"
                     "7f8180"
                     "88ffffffffffffffff");

    /* Big-endian integers of any width lose their leading zeros; all zeros is 0. */
    uint8_t u256[32] = {0};
    lc_rlp_buf_init(&b);
    lc_rlp_put_uint_be(&b, u256, sizeof u256);
    u256[30] = 0x04;
    lc_rlp_put_uint_be(&b, u256, sizeof u256);
    memset(u256, 0xff, sizeof u256);
    lc_rlp_put_uint_be(&b, u256, sizeof u256);
    s_assert_buf(&b, "80820400a0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
}

static void test_rlp_wiki_lists(void **state)
{
    (void)state;
    lc_rlp_buf_t b;

    lc_rlp_buf_init(&b);
    size_t m = lc_rlp_list_begin(&b);
    s_put_str(&b, "cat");
    s_put_str(&b, "dog");
    lc_rlp_list_end(&b, m);
    s_assert_buf(&b, "c88363617483646f67");

    lc_rlp_buf_init(&b);
    lc_rlp_list_end(&b, lc_rlp_list_begin(&b));
    s_assert_buf(&b, "c0");

    /* The set-theoretic representation of three: [ [], [[]], [ [], [[]] ] ]. */
    lc_rlp_buf_init(&b);
    size_t top = lc_rlp_list_begin(&b);
    lc_rlp_list_end(&b, lc_rlp_list_begin(&b)); /* [] */
    size_t one = lc_rlp_list_begin(&b);         /* [[]] */
    lc_rlp_list_end(&b, lc_rlp_list_begin(&b));
    lc_rlp_list_end(&b, one);
    size_t two = lc_rlp_list_begin(&b); /* [ [], [[]] ] */
    lc_rlp_list_end(&b, lc_rlp_list_begin(&b));
    size_t inner = lc_rlp_list_begin(&b);
    lc_rlp_list_end(&b, lc_rlp_list_begin(&b));
    lc_rlp_list_end(&b, inner);
    lc_rlp_list_end(&b, two);
    lc_rlp_list_end(&b, top);
    s_assert_buf(&b, "c7c0c1c0c3c0c1c0");
}

/* 55 is the longest short payload, 56 the shortest long one, for strings and lists alike;
 * 256 needs two length bytes. Long lists also exercise the header insertion in front. */
static void test_rlp_length_boundaries(void **state)
{
    (void)state;
    uint8_t s[300];
    memset(s, 0x61, sizeof s);
    const size_t lens[] = {55, 56, 255, 256};
    const char *str_hdr[] = {"b7", "b838", "b8ff", "b90100"};
    const char *list_hdr[] = {"f7", "f838", "f8ff", "f90100"};

    for (size_t i = 0; i < LC_ARRAY_LEN(lens); i++) {
        lc_rlp_buf_t b;
        lc_rlp_buf_init(&b);
        lc_rlp_put_bytes(&b, s, lens[i]);
        assert_int_equal(lc_rlp_buf_error(&b), 0);
        size_t hl = strlen(str_hdr[i]) / 2;
        uint8_t hdr[4];
        assert_int_equal(s_unhex(hdr, sizeof hdr, str_hdr[i]), hl);
        assert_int_equal(b.len, hl + lens[i]);
        assert_memory_equal(b.data, hdr, hl);
        assert_memory_equal(b.data + hl, s, lens[i]);
        lc_rlp_buf_free(&b);

        /* A list whose payload is lens[i] single-byte items. */
        lc_rlp_buf_init(&b);
        size_t m = lc_rlp_list_begin(&b);
        for (size_t k = 0; k < lens[i]; k++)
            lc_rlp_put_uint(&b, 0x61);
        lc_rlp_list_end(&b, m);
        assert_int_equal(lc_rlp_buf_error(&b), 0);
        assert_int_equal(s_unhex(hdr, sizeof hdr, list_hdr[i]), hl);
        assert_int_equal(b.len, hl + lens[i]);
        assert_memory_equal(b.data, hdr, hl);
        assert_memory_equal(b.data + hl, s, lens[i]);

        lc_rlp_item_t item;
        assert_int_equal(lc_rlp_decode(&item, b.data, b.len), 0);
        assert_true(item.is_list);
        assert_int_equal(item.len, lens[i]);
        lc_rlp_buf_free(&b);
    }
}

static void test_rlp_fixed_buffer(void **state)
{
    (void)state;
    uint8_t mem[9];
    lc_rlp_buf_t b;
    lc_rlp_buf_init_fixed(&b, mem, sizeof mem);
    size_t m = lc_rlp_list_begin(&b);
    s_put_str(&b, "cat");
    s_put_str(&b, "dog");
    assert_int_equal(lc_rlp_buf_error(&b), 0);
    lc_rlp_list_end(&b, m);
    assert_int_equal(lc_rlp_buf_error(&b), 0);
    assert_int_equal(b.len, 9);
    uint8_t want[9];
    s_unhex(want, sizeof want, "c88363617483646f67");
    assert_memory_equal(mem, want, sizeof want);

    /* One more byte does not fit: the error sticks and later puts change nothing. */
    lc_rlp_put_uint(&b, 1);
    assert_int_equal(lc_rlp_buf_error(&b), LC_ERR_TOOBIG);
    lc_rlp_put_bytes(&b, NULL, 0);
    assert_int_equal(b.len, 9);
    assert_int_equal(lc_rlp_buf_error(&b), LC_ERR_TOOBIG);
    size_t n = 77;
    assert_null(lc_rlp_buf_take(&b, &n));
    assert_int_equal(n, 0);
    lc_rlp_buf_free(&b); /* caller storage: not freed, only forgotten */

    /* A list header that no longer fits is refused the same way. */
    lc_rlp_buf_init_fixed(&b, mem, 4);
    m = lc_rlp_list_begin(&b);
    s_put_str(&b, "dog");
    lc_rlp_list_end(&b, m);
    assert_int_equal(lc_rlp_buf_error(&b), LC_ERR_TOOBIG);
}

static void test_rlp_take(void **state)
{
    (void)state;
    lc_rlp_buf_t b;
    lc_rlp_buf_init(&b);
    s_put_str(&b, "dog");
    size_t n = 0;
    uint8_t *p = lc_rlp_buf_take(&b, &n);
    assert_non_null(p);
    assert_int_equal(n, 4);
    assert_memory_equal(p,
                        "\x83"
                        "dog",
                        4);
    assert_int_equal(b.len, 0);
    assert_null(b.data);
    free(p);
}

static void test_rlp_decode_walk(void **state)
{
    (void)state;
    uint8_t in[64];
    size_t n = s_unhex(in, sizeof in, "c88363617483646f67");
    lc_rlp_item_t list, it;
    assert_int_equal(lc_rlp_decode(&list, in, n), 0);
    assert_true(list.is_list);
    assert_int_equal(list.len, 8);

    lc_rlp_iter_t iter;
    lc_rlp_iter_init(&iter, &list);
    assert_int_equal(lc_rlp_iter_next(&iter, &it), 0);
    assert_false(it.is_list);
    assert_int_equal(it.len, 3);
    assert_memory_equal(it.payload, "cat", 3);
    assert_int_equal(it.raw_len, 4);
    assert_ptr_equal(it.raw, in + 1);
    assert_int_equal(lc_rlp_iter_next(&iter, &it), 0);
    assert_memory_equal(it.payload, "dog", 3);
    assert_int_equal(lc_rlp_iter_next(&iter, &it), LC_ERR_NOTFOUND);

    /* Nested: [ [], [[]], [ [], [[]] ] ] has three items, the last with two. */
    n = s_unhex(in, sizeof in, "c7c0c1c0c3c0c1c0");
    assert_int_equal(lc_rlp_decode(&list, in, n), 0);
    lc_rlp_iter_init(&iter, &list);
    size_t counts[3];
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(lc_rlp_iter_next(&iter, &it), 0);
        assert_true(it.is_list);
        lc_rlp_iter_t sub;
        lc_rlp_item_t x;
        lc_rlp_iter_init(&sub, &it);
        counts[i] = 0;
        while (lc_rlp_iter_next(&sub, &x) == 0)
            counts[i]++;
    }
    assert_int_equal(lc_rlp_iter_next(&iter, &it), LC_ERR_NOTFOUND);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 2);

    /* A long string. */
    uint8_t lorem[128];
    n = s_unhex(lorem, sizeof lorem, s_lorem_rlp);
    assert_int_equal(lc_rlp_decode(&it, lorem, n), 0);
    assert_false(it.is_list);
    assert_int_equal(it.len, strlen(s_lorem));
    assert_memory_equal(it.payload, s_lorem, it.len);

    /* Iterating a string yields nothing. */
    lc_rlp_iter_init(&iter, &it);
    assert_int_equal(lc_rlp_iter_next(&iter, &list), LC_ERR_NOTFOUND);
}

static void test_rlp_decode_uints(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        int rc;
        uint64_t v;
    } cases[] = {
        {"80", 0, 0},
        {"0f", 0, 15},
        {"820400", 0, 1024},
        {"88ffffffffffffffff", 0, UINT64_MAX},
        {"00", LC_ERR_INVALID, 0},                  /* leading zero: 0 is the empty string */
        {"820004", LC_ERR_INVALID, 0},              /* leading zero */
        {"89010000000000000000", LC_ERR_TOOBIG, 0}, /* 2^64 */
        {"c0", LC_ERR_INVALID, 0},                  /* a list is not an integer */
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(cases); i++) {
        uint8_t in[16];
        size_t n = s_unhex(in, sizeof in, cases[i].hex);
        lc_rlp_item_t it;
        assert_int_equal(lc_rlp_decode(&it, in, n), 0);
        uint64_t v = 12345;
        assert_int_equal(lc_rlp_item_uint(&v, &it), cases[i].rc);
        if (cases[i].rc == 0)
            assert_true(v == cases[i].v);
    }

    /* Right-aligned into a wider big-endian field. */
    uint8_t in[4], out[8];
    size_t n = s_unhex(in, sizeof in, "820400");
    lc_rlp_item_t it;
    assert_int_equal(lc_rlp_decode(&it, in, n), 0);
    memset(out, 0xee, sizeof out);
    assert_int_equal(lc_rlp_item_uint_be(out, sizeof out, &it), 0);
    const uint8_t want[8] = {0, 0, 0, 0, 0, 0, 0x04, 0x00};
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(lc_rlp_item_uint_be(out, 1, &it), LC_ERR_TOOBIG);
}

/* Everything but the one canonical spelling is refused, and nothing reads past the input. */
static void test_rlp_decode_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",           /* nothing */
        "8100",       /* 0x00 must be itself */
        "817f",       /* so must 0x7f */
        "83646f",     /* truncated string */
        "83646f6767", /* trailing byte */
        "b80100",     /* long form for a 1-byte string */
        "b837"
        "61616161616161616161616161616161616161616161616161616161616161616161616161"
        "616161616161616161616161616161616161", /* long form for 55 bytes */
        "b90038",                               /* leading zero in the length */
        "b8",                                   /* missing length byte */
        "b9ffff",                               /* length beyond the input */
        "bfffffffffffffffff",                   /* 2^64-1 bytes announced */
        "c3c0c0",                               /* list payload truncated */
        "c1c0c0",                               /* trailing byte after the list */
        "f800",                                 /* long list form, leading zero */
        "f80180",                               /* long list form for 1 byte */
        "c28100",                               /* a non-canonical item inside a list */
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
        uint8_t in[128];
        size_t n = s_unhex(in, sizeof in, bad[i]);
        /* Copy to an exact-size heap block so ASan catches any over-read. */
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        if (n)
            memcpy(p, in, n);
        lc_rlp_item_t it;
        int rc = lc_rlp_decode(&it, p, n);
        if (rc == 0) {
            /* Only the list with a bad item inside decodes at the top; walking it fails. */
            assert_string_equal(bad[i], "c28100");
            lc_rlp_iter_t iter;
            lc_rlp_item_t x;
            lc_rlp_iter_init(&iter, &it);
            assert_int_equal(lc_rlp_iter_next(&iter, &x), LC_ERR_INVALID);
        } else {
            assert_int_equal(rc, LC_ERR_INVALID);
        }
        free(p);
    }
}

/* Round trip: every prefix of a valid encoding but the whole fails to decode. */
static void test_rlp_decode_truncations(void **state)
{
    (void)state;
    uint8_t in[128];
    size_t n = s_unhex(in, sizeof in, s_lorem_rlp);
    for (size_t k = 0; k < n; k++) {
        uint8_t *p = malloc(k ? k : 1);
        assert_non_null(p);
        memcpy(p, in, k);
        lc_rlp_item_t it;
        assert_int_equal(lc_rlp_decode(&it, p, k), LC_ERR_INVALID);
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rlp_wiki_strings_and_ints),
        cmocka_unit_test(test_rlp_wiki_lists),
        cmocka_unit_test(test_rlp_length_boundaries),
        cmocka_unit_test(test_rlp_fixed_buffer),
        cmocka_unit_test(test_rlp_take),
        cmocka_unit_test(test_rlp_decode_walk),
        cmocka_unit_test(test_rlp_decode_uints),
        cmocka_unit_test(test_rlp_decode_rejects),
        cmocka_unit_test(test_rlp_decode_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
