/* test_codec.c: hex and base64url known answers (RFC 4648 §10) and strictness. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc_codec.h"
#include "lc_record.h"

#include <string.h>

/* RFC 4648 §10 test vectors; base64 adapted to base64url without padding. */
static const struct {
    const char *raw;
    const char *b16;
    const char *b64url;
} s_rfc4648[] = {
    {"", "", ""},
    {"f", "66", "Zg"},
    {"fo", "666f", "Zm8"},
    {"foo", "666f6f", "Zm9v"},
    {"foob", "666f6f62", "Zm9vYg"},
    {"fooba", "666f6f6261", "Zm9vYmE"},
    {"foobar", "666f6f626172", "Zm9vYmFy"},
};

static void test_hex_rfc4648(void **state)
{
    (void)state;
    for (size_t i = 0; i < LC_ARRAY_LEN(s_rfc4648); i++) {
        const char *raw = s_rfc4648[i].raw;
        size_t len = strlen(raw);
        char enc[32];
        assert_int_equal(lc_hex_encode(enc, sizeof enc, (const uint8_t *)raw, len), 0);
        assert_string_equal(enc, s_rfc4648[i].b16);

        uint8_t dec[16];
        size_t dec_len = 99;
        assert_int_equal(lc_hex_decode(dec, sizeof dec, &dec_len, enc, strlen(enc)), 0);
        assert_int_equal(dec_len, len);
        assert_memory_equal(dec, raw, len);
    }
}

static void test_hex_decode_forms(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t n = 0;
    const uint8_t want[] = {0x00, 0xab, 0xcd, 0xef, 0xff};

    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "00ABcdEFff", 10), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, want, 5);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "0x00abcdefff", 12), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, want, 5);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "0x", 2), 0);
    assert_int_equal(n, 0);
    /* Only the first len bytes are read: the trailing junk is outside the input. */
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "abcdZZ", 4), 0);
    assert_int_equal(n, 2);
}

static void test_hex_decode_rejects(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t n = 77;
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "abc", 3), LC_ERR_INVALID);
    assert_int_equal(n, 0);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "0xabc", 5), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "0g", 2), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "g0", 2), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, " 00", 3), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "00 ", 3), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "0 00", 4), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "x0", 2), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "00x0", 4), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "0\0", 2), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, sizeof out, &n, "+1", 2), LC_ERR_INVALID);
    assert_int_equal(lc_hex_decode(out, 2, &n, "000000", 6), LC_ERR_TOOBIG);
    assert_int_equal(lc_hex_decode(out, 3, &n, "000000", 6), 0);
    assert_int_equal(n, 3);
    /* Every byte value: exactly 22 of 256 characters are hex digits. */
    int digits = 0;
    for (int c = 0; c < 256; c++) {
        char in[2] = {(char)c, '0'};
        if (lc_hex_decode(out, sizeof out, &n, in, 2) == 0)
            digits++;
    }
    assert_int_equal(digits, 22);
}

static void test_hex_encode_bounds(void **state)
{
    (void)state;
    const uint8_t in[] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    char out[17];
    assert_int_equal(lc_hex_encode(out, 16, in, sizeof in), -1);
    assert_int_equal(lc_hex_encode(out, sizeof out, in, sizeof in), 0);
    assert_string_equal(out, "0123456789abcdef");
    assert_int_equal(lc_hex_encode(out, 1, NULL, 0), 0);
    assert_string_equal(out, "");
}

static void test_b64url_rfc4648(void **state)
{
    (void)state;
    for (size_t i = 0; i < LC_ARRAY_LEN(s_rfc4648); i++) {
        const char *raw = s_rfc4648[i].raw;
        size_t len = strlen(raw);
        char enc[32];
        assert_int_equal(LC_B64URL_LEN(len), strlen(s_rfc4648[i].b64url));
        assert_int_equal(lc_b64url_encode(enc, sizeof enc, (const uint8_t *)raw, len), 0);
        assert_string_equal(enc, s_rfc4648[i].b64url);

        uint8_t dec[16];
        size_t dec_len = 99;
        assert_int_equal(lc_b64url_decode(dec, sizeof dec, &dec_len, enc, strlen(enc)), 0);
        assert_int_equal(dec_len, len);
        assert_memory_equal(dec, raw, len);
    }
}

/* The two characters where base64url differs from base64: 62 is '-', 63 is '_'. */
static void test_b64url_alphabet(void **state)
{
    (void)state;
    const uint8_t raw[] = {0xfb, 0xff, 0xbf};
    char enc[8];
    assert_int_equal(lc_b64url_encode(enc, sizeof enc, raw, 3), 0);
    assert_string_equal(enc, "-_-_");
    assert_int_equal(lc_b64url_encode(enc, sizeof enc, raw, 2), 0);
    assert_string_equal(enc, "-_8");

    char full[65];
    uint8_t all[48];
    /* Bytes whose six-bit groups are 0, 1, ..., 63 encode the whole alphabet in order. */
    uint8_t seq[48];
    for (int i = 0; i < 64; i += 4) {
        uint32_t w = ((uint32_t)i << 18) | ((uint32_t)(i + 1) << 12) | ((uint32_t)(i + 2) << 6) |
                     (uint32_t)(i + 3);
        seq[i / 4 * 3] = (uint8_t)(w >> 16);
        seq[i / 4 * 3 + 1] = (uint8_t)(w >> 8);
        seq[i / 4 * 3 + 2] = (uint8_t)w;
    }
    assert_int_equal(lc_b64url_encode(full, sizeof full, seq, sizeof seq), 0);
    assert_string_equal(full, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    size_t n;
    assert_int_equal(lc_b64url_decode(all, sizeof all, &n, full, 64), 0);
    assert_int_equal(n, 48);
    assert_memory_equal(all, seq, 48);
}

static void test_b64url_rejects(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t n = 55;
    static const char *bad[] = {
        "Zg==",  "Zm8=",   "Zg=",    "Zm9v=", /* padding */
        "+_8",   "-/8",                       /* standard base64 alphabet */
        "Zm9 v", "Zm9v\n", " Zm9v",  "Zm\t9v",  "Zm9\r", "Z", "Zm9vY", /* length 1 mod 4 */
        "Zh",    "Zm9",    "Zm9vYh", "Zm9vYmF", /* non-canonical trailing bits */
        "Zm.v",  "Zm9v*",
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
        n = 55;
        assert_int_equal(lc_b64url_decode(out, sizeof out, &n, bad[i], strlen(bad[i])),
                         LC_ERR_INVALID);
        assert_int_equal(n, 0);
    }
    assert_int_equal(lc_b64url_decode(out, sizeof out, &n, "Zm\0v", 4), LC_ERR_INVALID);
    /* Capacity: "Zm9vYmFy" is 6 bytes. */
    assert_int_equal(lc_b64url_decode(out, 5, &n, "Zm9vYmFy", 8), LC_ERR_TOOBIG);
    assert_int_equal(lc_b64url_decode(out, 6, &n, "Zm9vYmFy", 8), 0);
    assert_int_equal(n, 6);
    assert_int_equal(lc_b64url_decode(NULL, 0, &n, "", 0), 0);
    assert_int_equal(n, 0);

    char enc[8];
    const uint8_t raw[] = {1, 2, 3, 4};
    assert_int_equal(lc_b64url_encode(enc, 6, raw, 4), -1); /* needs 6 + NUL */
    assert_int_equal(lc_b64url_encode(enc, 7, raw, 4), 0);
}

/* Exhaustive over the alphabet: a 2- or 3-character string decodes exactly when it is the
 * encoding of its decoding, and there are exactly 2^8 and 2^16 such strings. */
static void test_b64url_canonical_exhaustive(void **state)
{
    (void)state;
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t ok2 = 0, ok3 = 0;
    char in[4], re[5];
    uint8_t out[3];
    size_t n;
    for (int a = 0; a < 64; a++) {
        for (int b = 0; b < 64; b++) {
            in[0] = alpha[a];
            in[1] = alpha[b];
            if (lc_b64url_decode(out, sizeof out, &n, in, 2) == 0) {
                ok2++;
                assert_int_equal(n, 1);
                assert_int_equal(lc_b64url_encode(re, sizeof re, out, n), 0);
                assert_memory_equal(re, in, 2);
            }
            for (int c = 0; c < 64; c++) {
                in[2] = alpha[c];
                if (lc_b64url_decode(out, sizeof out, &n, in, 3) == 0) {
                    ok3++;
                    assert_int_equal(n, 2);
                    assert_int_equal(lc_b64url_encode(re, sizeof re, out, n), 0);
                    assert_memory_equal(re, in, 3);
                }
            }
        }
    }
    assert_int_equal(ok2, 256);
    assert_int_equal(ok3, 65536);
}

/* Round trip of every length 0..200 over pseudo-random bytes, both codecs. */
static void test_roundtrip(void **state)
{
    (void)state;
    uint8_t raw[200], dec[200];
    char enc[401];
    uint32_t x = 0x12345678u;
    for (size_t i = 0; i < sizeof raw; i++) {
        x = x * 1103515245u + 12345u;
        raw[i] = (uint8_t)(x >> 24);
    }
    for (size_t len = 0; len <= sizeof raw; len++) {
        size_t n;
        assert_int_equal(lc_b64url_encode(enc, sizeof enc, raw, len), 0);
        assert_int_equal(strlen(enc), LC_B64URL_LEN(len));
        assert_int_equal(lc_b64url_decode(dec, sizeof dec, &n, enc, strlen(enc)), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, raw, len);

        assert_int_equal(lc_hex_encode(enc, sizeof enc, raw, len), 0);
        assert_int_equal(strlen(enc), LC_HEX_LEN(len));
        assert_int_equal(lc_hex_decode(dec, sizeof dec, &n, enc, strlen(enc)), 0);
        assert_int_equal(n, len);
        assert_memory_equal(dec, raw, len);
    }
}

/* A record_id is exactly 32 bytes wherever it is parsed: "0x" + 62 digits (31 bytes) is not one. */
static void test_record_id_parse(void **state)
{
    (void)state;
    uint8_t id[LC_RECORD_ID_LEN];
    char hex[2 + 64 + 3];
    memset(hex, 'a', sizeof hex);
    hex[64] = '\0';
    assert_int_equal(lc_record_id_parse(id, hex, 64), 0);
    assert_int_equal(id[0], 0xaa);
    assert_int_equal(id[31], 0xaa);
    memcpy(hex, "0x", 2);
    hex[64] = '\0';
    assert_int_equal(lc_record_id_parse(id, hex, 64), LC_ERR_INVALID); /* 0x + 62: 31 bytes */
    memset(hex + 2, 'B', 64);
    hex[66] = '\0';
    assert_int_equal(lc_record_id_parse(id, hex, 66), 0); /* 0x + 64, upper case */
    assert_int_equal(id[5], 0xbb);
    assert_int_equal(lc_record_id_parse(id, hex + 2, 63), LC_ERR_INVALID);
    assert_int_equal(lc_record_id_parse(id, hex + 2, 65), LC_ERR_INVALID);
    hex[10] = 'g';
    assert_int_equal(lc_record_id_parse(id, hex, 66), LC_ERR_INVALID);
    assert_int_equal(lc_record_id_parse(id, "", 0), LC_ERR_INVALID);
}

/* What may be logged of a URL: scheme://host[:port]; never credentials, path or query. */
static void test_url_redact(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } v[] = {
        {"http://127.0.0.1:8545", "http://127.0.0.1:8545"},
        {"https://mainnet.infura.io/v3/0123456789abcdef", "https://mainnet.infura.io/…"},
        {"https://user:s3cret@rpc.example.com:8443/x?key=abc", "https://rpc.example.com:8443/…"},
        {"https://rpc.example.com?apikey=abc", "https://rpc.example.com/…"},
        {"https://rpc.example.com#frag", "https://rpc.example.com/…"},
        {"rpc.example.com/path", "rpc.example.com/…"},
        {"", ""},
    };
    char out[64];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        lc_url_redact(out, sizeof out, v[i].in, strlen(v[i].in));
        assert_string_equal(out, v[i].out);
    }
    /* Only len bytes are read: one URL of a comma-separated list. */
    const char *list = "https://a.example/k1,https://b.example/k2";
    lc_url_redact(out, sizeof out, list, strcspn(list, ","));
    assert_string_equal(out, "https://a.example/…");
    lc_url_redact(out, 8, "https://user:pw@host.example", 28); /* truncated, still no secret */
    assert_string_equal(out, "https:/");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_rfc4648),
        cmocka_unit_test(test_hex_decode_forms),
        cmocka_unit_test(test_hex_decode_rejects),
        cmocka_unit_test(test_hex_encode_bounds),
        cmocka_unit_test(test_b64url_rfc4648),
        cmocka_unit_test(test_b64url_alphabet),
        cmocka_unit_test(test_b64url_rejects),
        cmocka_unit_test(test_b64url_canonical_exhaustive),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_record_id_parse),
        cmocka_unit_test(test_url_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
