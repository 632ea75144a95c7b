/* test_pg.c: lc_pg's parts that need no server: how parameters are bound (binary integers,
 * timestamps and arrays byte for byte, array_recv's format against hand-assembled known
 * answers; text and bytes borrowed), how rows are read (binary values of each type, NULLs,
 * length and type checks, on results built with libpq's PQsetvalue), how SQLSTATEs are
 * classified, and the reconnect backoff. Statements are exercised by the e2e tests and by
 * test_st_db / test_ch_db against a real server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc_pg.h"

#include <stdlib.h>
#include <string.h>

/* Parameter i's bytes, which must be len long, of the given format and type. */
static const uint8_t *s_param(const lc_pg_params_t *p, int i, int len, int format, Oid type)
{
    int l = -1, f = -1;
    Oid t = 99999;
    const char *v = lc_pg_params_value(p, i, &l, &f, &t);
    assert_int_equal(f, format);
    assert_int_equal(t, type);
    if (format == 1)
        assert_int_equal(l, len);
    return (const uint8_t *)v;
}

static void test_scalars(void **state)
{
    (void)state;
    lc_pg_params_t *p = lc_pg_params_new();
    const uint8_t minus2[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    const uint8_t big[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    /* 2001-01-01 00:00:00 UTC is 366 days after PostgreSQL's epoch (2000 was a leap year). */
    const uint64_t t2001 = 978307200000000ull, pg2001 = 366ull * 86400 * 1000000;
    uint8_t want_t[8];
    for (int i = 0; i < 8; i++)
        want_t[i] = (uint8_t)(pg2001 >> (56 - 8 * i));
    const char *text = "hello";
    const uint8_t bytes[3] = {0, 1, 2};
    lc_pg_add_i64(p, -2);
    lc_pg_add_u64(p, 0x0123456789abcdefull);
    lc_pg_add_u64(p, UINT64_MAX); /* past int8: numeric, as text */
    lc_pg_add_bool(p, 7);
    lc_pg_add_time_us(p, t2001);
    lc_pg_add_text(p, text);
    lc_pg_add_bytes(p, bytes, sizeof bytes);
    lc_pg_add_null(p);
    lc_pg_add_text(p, NULL);
    assert_int_equal(lc_pg_params_count(p), 9);
    assert_memory_equal(s_param(p, 0, 8, 1, 20), minus2, 8);
    assert_memory_equal(s_param(p, 1, 8, 1, 20), big, 8);
    assert_string_equal((const char *)s_param(p, 2, 0, 0, 1700), "18446744073709551615");
    assert_int_equal(s_param(p, 3, 1, 1, 16)[0], 1);
    assert_memory_equal(s_param(p, 4, 8, 1, 1184), want_t, 8);
    assert_ptr_equal(s_param(p, 5, 0, 0, 0), text); /* borrowed, not copied */
    assert_ptr_equal(s_param(p, 6, 3, 1, 17), bytes);
    assert_null(s_param(p, 7, 0, 0, 0));
    assert_null(s_param(p, 8, 0, 0, 0));
    lc_pg_params_clear(p);
    assert_int_equal(lc_pg_params_count(p), 0);
    lc_pg_params_destroy(&p);
    assert_null(p);
}

typedef struct {
    uint8_t id[2];
    uint8_t pad;
    int64_t n;
    uint64_t at_us;
} s_row_t;

static void test_arrays(void **state)
{
    (void)state;
    /* The elements are fields of an array of structs: the stride skips the rest. */
    const s_row_t rows[3] = {{{0xaa, 0xbb}, 0, 7, 946684800000001ull},
                             {{0xcc, 0xdd}, 0, 300, 946684800000002ull},
                             {{0xee, 0xff}, 0, -1, 946684800000003ull}};
    const uint8_t want_bytea[] = {0, 0, 0, 1, 0,    0,    0, 0, 0, 0, 0,    17,   0,
                                  0, 0, 3, 0, 0,    0,    1, 0, 0, 0, 2,    0xaa, 0xbb,
                                  0, 0, 0, 2, 0xcc, 0xdd, 0, 0, 0, 2, 0xee, 0xff};
    const uint8_t want_int8[] = {
        0, 0, 0, 1,  /* one dimension */
        0, 0, 0, 0,  /* no NULLs */
        0, 0, 0, 20, /* int8 */
        0, 0, 0, 3,  /* three elements */
        0, 0, 0, 1,  /* lower bound 1 */
        0, 0, 0, 8,  0, 0,  0, 0, 0, 0, 0,    7,    0,    0,    0,    8,    0,    0,
        0, 0, 0, 0,  1, 44, 0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    /* timestamptz[]: microseconds since 2000-01-01, here 1, 2 and 3. */
    const uint8_t want_time[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 0xa0, 0, 0, 0, 3, 0, 0, 0,
                                 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0,    1, 0, 0, 0, 8, 0, 0,
                                 0, 0, 0, 0, 0, 2, 0, 0, 0, 8, 0, 0,    0, 0, 0, 0, 0, 3};
    const uint8_t want_empty[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 1};
    lc_pg_params_t *p = lc_pg_params_new();
    lc_pg_add_bytes_array(p, rows[0].id, sizeof rows[0], 2, 3);
    lc_pg_add_i64_array(p, &rows[0].n, sizeof rows[0], 3);
    lc_pg_add_time_array(p, &rows[0].at_us, sizeof rows[0], 3);
    lc_pg_add_bytes_array(p, NULL, 32, 32, 0);
    assert_memory_equal(s_param(p, 0, sizeof want_bytea, 1, 1001), want_bytea, sizeof want_bytea);
    assert_memory_equal(s_param(p, 1, sizeof want_int8, 1, 1016), want_int8, sizeof want_int8);
    assert_memory_equal(s_param(p, 2, sizeof want_time, 1, 1185), want_time, sizeof want_time);
    assert_memory_equal(s_param(p, 3, sizeof want_empty, 1, 1001), want_empty, sizeof want_empty);
    lc_pg_params_destroy(&p);
}

/* Arrays of elements of varying length, read through pointers in an array of structs:
 * bytea[] with lengths, text[] of NUL-terminated strings. */
static void test_var_arrays(void **state)
{
    (void)state;
    typedef struct {
        const uint8_t *data;
        size_t len;
        const char *name;
    } s_var_t;
    static const uint8_t a[] = {0xaa}, b[] = {0xbb, 0xcc, 0xdd};
    const s_var_t rows[3] = {{a, 1, "x"}, {b, 3, ""}, {b, 0, "yz"}};
    const uint8_t want_bytea[] = {0,    0, 0, 1, 0, 0,    0,    0,    0, 0, 0, 17, /* bytea */
                                  0,    0, 0, 3, 0, 0,    0,    1,    0, 0, 0, 1,
                                  0xaa, 0, 0, 0, 3, 0xbb, 0xcc, 0xdd, 0, 0, 0, 0};
    const uint8_t want_text[] = {0,   0, 0, 1, 0, 0, 0, 0, 0, 0,   0,  25, /* text */
                                 0,   0, 0, 3, 0, 0, 0, 1, 0, 0,   0,  1,
                                 'x', 0, 0, 0, 0, 0, 0, 0, 2, 'y', 'z'};
    lc_pg_params_t *p = lc_pg_params_new();
    lc_pg_add_var_array(p, 0, &rows[0].data, &rows[0].len, sizeof rows[0], 3);
    lc_pg_add_var_array(p, 1, &rows[0].name, NULL, sizeof rows[0], 3);
    assert_memory_equal(s_param(p, 0, sizeof want_bytea, 1, 1001), want_bytea, sizeof want_bytea);
    assert_memory_equal(s_param(p, 1, sizeof want_text, 1, 1009), want_text, sizeof want_text);
    lc_pg_params_destroy(&p);
}

static void test_many_params_survive_growth(void **state)
{
    (void)state;
    /* A full write batch: 5000 rows of 11 parameters; encoded values move as the arena grows. */
    lc_pg_params_t *p = lc_pg_params_new();
    for (int64_t i = 0; i < 55000; i++)
        lc_pg_add_i64(p, i);
    assert_int_equal(lc_pg_params_count(p), 55000);
    for (int i = 0; i < 55000; i += 997) {
        const uint8_t *v = s_param(p, i, 8, 1, 20);
        assert_int_equal((v[6] << 8) | v[7], i & 0xffff);
        assert_int_equal(v[5], (i >> 16) & 0xff);
    }
    lc_pg_params_destroy(&p);
}

/* A binary-format result with one row: columns of the given types and values. */
static PGresult *s_result(int n, const Oid *types, const char *const *vals, const int *lens)
{
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc attrs[8];
    memset(attrs, 0, sizeof attrs);
    for (int i = 0; i < n; i++) {
        attrs[i].name = (char *)"c";
        attrs[i].format = 1;
        attrs[i].typid = types[i];
        attrs[i].typlen = -1;
    }
    assert_true(PQsetResultAttrs(r, n, attrs));
    for (int i = 0; i < n; i++)
        assert_true(PQsetvalue(r, 0, i, (char *)vals[i], vals[i] ? lens[i] : -1));
    return r;
}

static void test_reads(void **state)
{
    (void)state;
    const char i2[] = {(char)0xff, (char)0xfe}, i4[] = {0, 0, 1, 0},
               i8[] = {0x7f, -1, -1, -1, -1, -1, -1, -1}, b[] = {1},
               f8[] = {0x3f, (char)0xf8, 0, 0, 0, 0, 0, 0}, ts[] = {0, 0, 0, 0, 0, 0, 0, 5},
               by[] = {9, 8, 7}, tx[] = {'a', 'b'};
    const Oid types[] = {21, 23, 20, 16, 701, 1184, 17, 25};
    const char *vals[] = {i2, i4, i8, b, f8, ts, by, tx};
    const int lens[] = {2, 4, 8, 1, 8, 8, 3, 2};
    PGresult *r = s_result(8, types, vals, lens);
    assert_int_equal(lc_pg_i64(r, 0, 0), -2); /* int2, sign-extended */
    assert_int_equal(lc_pg_u64(r, 0, 0), 0);  /* negative: 0 */
    assert_int_equal(lc_pg_i64(r, 0, 1), 256);
    assert_true(lc_pg_i64(r, 0, 2) == INT64_MAX);
    assert_int_equal(lc_pg_bool(r, 0, 3), 1);
    assert_true(lc_pg_double(r, 0, 4) == 1.5);
    assert_true(lc_pg_double(r, 0, 1) == 256.0);
    assert_true(lc_pg_time_us(r, 0, 5) == 946684800000005ull);
    uint8_t out3[3], out4[4], *dup = NULL;
    size_t len = 0;
    assert_int_equal(lc_pg_bytes(r, 0, 6, out3, 3), 0);
    assert_memory_equal(out3, by, 3);
    assert_int_equal(lc_pg_bytes(r, 0, 6, out4, 4), LC_ERR_INVALID); /* wrong length */
    assert_int_equal(lc_pg_bytes(r, 0, 7, out3, 2), LC_ERR_INVALID); /* text, not bytea */
    assert_int_equal(lc_pg_bytes_dup(r, 0, 6, &dup, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(dup, by, 3);
    free(dup);
    char *s = lc_pg_text_dup(r, 0, 7);
    assert_string_equal(s, "ab");
    free(s);
    assert_null(lc_pg_text_dup(r, 0, 6)); /* bytea is not text: logged, read as NULL */
    assert_int_equal(lc_pg_i64(r, 0, 7), 0);
    PQclear(r);
}

static void test_reads_null(void **state)
{
    (void)state;
    const Oid types[] = {20, 16, 1184, 17, 25};
    const char *vals[] = {NULL, NULL, NULL, NULL, NULL};
    const int lens[] = {0, 0, 0, 0, 0};
    PGresult *r = s_result(5, types, vals, lens);
    uint8_t out[4], *dup = (uint8_t *)"x";
    size_t len = 1;
    assert_true(lc_pg_null(r, 0, 0));
    assert_int_equal(lc_pg_i64(r, 0, 0), 0);
    assert_int_equal(lc_pg_bool(r, 0, 1), 0);
    assert_true(lc_pg_time_us(r, 0, 2) == 0);
    assert_int_equal(lc_pg_bytes(r, 0, 3, out, 4), LC_ERR_NOTFOUND);
    assert_int_equal(lc_pg_bytes_dup(r, 0, 3, &dup, &len), LC_ERR_NOTFOUND);
    assert_null(dup);
    assert_int_equal(len, 0);
    assert_null(lc_pg_text_dup(r, 0, 4));
    PQclear(r);
}

static void test_sqlstate_classes(void **state)
{
    (void)state;
    assert_int_equal(lc_pg_sqlstate_error("23505"), LC_ERR_INVALID); /* unique violation */
    assert_int_equal(lc_pg_sqlstate_error("22003"), LC_ERR_INVALID); /* out of range */
    assert_int_equal(lc_pg_sqlstate_error("08006"), LC_ERR_UNAVAILABLE);
    assert_int_equal(lc_pg_sqlstate_error("57P01"), LC_ERR_UNAVAILABLE); /* admin shutdown */
    assert_int_equal(lc_pg_sqlstate_error("42501"), LC_ERR_UNAVAILABLE); /* not granted (yet) */
    assert_int_equal(lc_pg_sqlstate_error("40001"), LC_ERR_UNAVAILABLE);
    assert_int_equal(lc_pg_sqlstate_error(NULL), LC_ERR_UNAVAILABLE);
}

static void test_backoff(void **state)
{
    (void)state;
    unsigned d = 0;
    const unsigned want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_int_equal(d = lc_pg_backoff_next(d, 5000), want[i]);
    assert_int_equal(lc_pg_backoff_next(0, 50), 50); /* a cap below the first step */
    assert_int_equal(lc_pg_backoff_next(3000000000u, 4000000000u), 4000000000u); /* no overflow */
}

static int s_tries;
static void *s_third_time(void *arg)
{
    return ++s_tries == 3 ? arg : NULL;
}
static int s_stop_after(void *arg, unsigned waited_ms)
{
    return waited_ms >= *(unsigned *)arg;
}

static void test_retry(void **state)
{
    (void)state;
    int token;
    unsigned forever = 100000, at_once = 0;
    s_tries = 0;
    assert_ptr_equal(lc_pg_retry(s_third_time, &token, 1, s_stop_after, &forever), &token);
    assert_int_equal(s_tries, 3);
    s_tries = 10; /* never 3 again */
    assert_null(lc_pg_retry(s_third_time, &token, 1, s_stop_after, &at_once));
    assert_int_equal(s_tries, 11); /* one try, then stop() said so */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_var_arrays),
        cmocka_unit_test(test_many_params_survive_growth),
        cmocka_unit_test(test_reads),
        cmocka_unit_test(test_reads_null),
        cmocka_unit_test(test_sqlstate_classes),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
