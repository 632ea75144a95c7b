/* test_gw_token.c: the operator token — lc_token (known answer, 128-bit minimum, hash files) and
 * gw_config_admin_token (one source, the raw token hashed and wiped from config and environment).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "gw_config.h"
#include "lc_token.h"

/* printf 0123456789abcdef0123456789abcdef | sha256sum */
#define S_TOKEN "0123456789abcdef0123456789abcdef"
#define S_HASH "3eb1bd439947eb762998e566ccc2e099c791118b2f40579cc4f7da2b5061b7f9"

static void s_hash_of(uint8_t out[32], const char *hex)
{
    assert_int_equal(sodium_hex2bin(out, 32, hex, 64, NULL, NULL, NULL), 0);
}

static void test_token_hash(void **state)
{
    (void)state;
    uint8_t h[32], want[32];
    s_hash_of(want, S_HASH);
    assert_int_equal(lc_token_hash(h, S_TOKEN, strlen(S_TOKEN)), 0);
    assert_memory_equal(h, want, 32);
    assert_int_equal(lc_token_hash(h, S_TOKEN, 31), LC_ERR_INVALID); /* 124 bits */
    assert_int_equal(lc_token_hash(h, "0123456789abcdef 123456789abcdef", 32), LC_ERR_INVALID);
    assert_int_equal(lc_token_hash(h, "0123456789abcdef\t123456789abcdef", 32), LC_ERR_INVALID);
    assert_int_equal(lc_token_hash(h, NULL, 40), LC_ERR_INVALID);

    assert_int_equal(lc_token_hash_parse(h, " " S_HASH "\r\n", 67), 0);
    assert_memory_equal(h, want, 32);
    assert_int_equal(lc_token_hash_parse(h, S_HASH, 63), LC_ERR_INVALID);
    assert_int_equal(lc_token_hash_parse(h, S_HASH "0", 65), LC_ERR_INVALID);
    char bad[] = S_HASH;
    bad[7] = 'g';
    assert_int_equal(lc_token_hash_parse(h, bad, 64), LC_ERR_INVALID);
}

static char s_dir[64];

static const char *s_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/lc_test_gw_token.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    char p[128];
    snprintf(p, sizeof p, "%s/raw", s_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/hash", s_dir);
    unlink(p);
    return rmdir(s_dir);
}

static void test_admin_token_sources(void **state)
{
    (void)state;
    uint8_t h[32], want[32];
    char err[256];
    int set = 1;
    gw_config_t cfg;
    s_hash_of(want, S_HASH);

    /* The raw token from the environment: hashed, wiped from cfg and from the environment. */
    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.admin_token, S_TOKEN);
    assert_int_equal(setenv("LCORE_ADMIN_TOKEN", S_TOKEN, 1), 0);
    assert_int_equal(gw_config_admin_token(&cfg, h, &set, err, sizeof err), 0);
    assert_int_equal(set, 1);
    assert_memory_equal(h, want, 32);
    assert_true(sodium_is_zero((const uint8_t *)cfg.admin_token, sizeof cfg.admin_token));
    assert_null(getenv("LCORE_ADMIN_TOKEN"));

    /* From a file (first line). */
    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.admin_token_file, s_file("raw", S_TOKEN "\nsecond line\n"));
    assert_int_equal(gw_config_admin_token(&cfg, h, &set, err, sizeof err), 0);
    assert_memory_equal(h, want, 32);
    assert_true(sodium_is_zero((const uint8_t *)cfg.admin_token, sizeof cfg.admin_token));

    /* Only the hash. */
    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.admin_token_sha256_file, s_file("hash", S_HASH "\n"));
    assert_int_equal(gw_config_admin_token(&cfg, h, &set, err, sizeof err), 0);
    assert_int_equal(set, 1);
    assert_memory_equal(h, want, 32);

    /* None: registration refused, not an error. */
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(gw_config_admin_token(&cfg, h, &set, err, sizeof err), 0);
    assert_int_equal(set, 0);
}

static void test_admin_token_refused(void **state)
{
    (void)state;
    uint8_t h[32];
    char err[256];
    int set = 1;
    gw_config_t cfg;

    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.admin_token, "too-short-0123456789abcdef01234"); /* 31 characters */
    assert_int_equal(gw_config_admin_token(&cfg, h, &set, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least 32 characters"));
    assert_null(strstr(err, "too-short"));
    assert_true(sodium_is_zero((const uint8_t *)cfg.admin_token, sizeof cfg.admin_token));
    assert_int_equal(set, 0);

    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.admin_token, S_TOKEN);
    strcpy(cfg.admin_token_sha256_file, s_file("hash", S_HASH "\n"));
    assert_int_equal(gw_config_admin_token(&cfg, h, &set, err, sizeof err), -1);
    assert_non_null(strstr(err, "only one of"));
    assert_true(sodium_is_zero((const uint8_t *)cfg.admin_token, sizeof cfg.admin_token));

    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.admin_token_sha256_file, s_file("hash", S_TOKEN "\n")); /* a token, not a hash */
    assert_int_equal(gw_config_admin_token(&cfg, h, &set, err, sizeof err), -1);
    assert_non_null(strstr(err, "64 hex digits"));

    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.admin_token_file, sizeof cfg.admin_token_file, "%s/missing", s_dir);
    assert_int_equal(gw_config_admin_token(&cfg, h, &set, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_hash),
        cmocka_unit_test(test_admin_token_sources),
        cmocka_unit_test(test_admin_token_refused),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
