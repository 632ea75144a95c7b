/* test_keccak.c: Keccak-256 known answers (Ethereum's, not FIPS 202) and the incremental API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc_codec.h"
#include "lc_keccak.h"

#include <string.h>

static void s_assert_digest(const uint8_t digest[LC_KECCAK256_LEN], const char *want_hex)
{
    char got[LC_HEX_LEN(LC_KECCAK256_LEN) + 1];
    assert_int_equal(lc_hex_encode(got, sizeof got, digest, LC_KECCAK256_LEN), 0);
    assert_string_equal(got, want_hex);
}

/* "" and "abc" are the published Keccak-256 answers (the empty one is Ethereum's well-known
 * empty-code hash); the runs of 'a' were computed with pycryptodome's Cryptodome.Hash.keccak
 * (digest_bits=256) and straddle the 136-byte rate: one byte short (padding 0x81 in a single
 * byte), exactly one block (a whole padding block), one over, and two blocks. */
static const struct {
    size_t n_a; /* SIZE_MAX: use text */
    const char *text;
    const char *digest;
} s_vectors[] = {
    {SIZE_MAX, "", "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"},
    {SIZE_MAX, "abc", "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"},
    {135, NULL, "34367dc248bbd832f4e3e69dfaac2f92638bd0bbd18f2912ba4ef454919cf446"},
    {136, NULL, "a6c4d403279fe3e0af03729caada8374b5ca54d8065329a3ebcaeb4b60aa386e"},
    {137, NULL, "d869f639c7046b4929fc92a4d988a8b22c55fbadb802c0c66ebcd484f1915f39"},
    {200, NULL, "96ea54061def936c4be90b518992fdc6f12f535068a256229aca54267b4d084d"},
    {272, NULL, "cf7fcd4f705ee749930d19ca84561a9bf62516bd90a471545fa2f49fdc7e63c8"},
};

static void test_keccak_known_answers(void **state)
{
    (void)state;
    uint8_t buf[300];
    memset(buf, 'a', sizeof buf);
    for (size_t i = 0; i < LC_ARRAY_LEN(s_vectors); i++) {
        const uint8_t *in = s_vectors[i].text ? (const uint8_t *)s_vectors[i].text : buf;
        size_t len = s_vectors[i].text ? strlen(s_vectors[i].text) : s_vectors[i].n_a;
        uint8_t digest[LC_KECCAK256_LEN];
        lc_keccak256(digest, in, len);
        s_assert_digest(digest, s_vectors[i].digest);
    }
}

static void test_keccak_empty_null(void **state)
{
    (void)state;
    uint8_t digest[LC_KECCAK256_LEN];
    lc_keccak256(digest, NULL, 0);
    s_assert_digest(digest, s_vectors[0].digest);
}

/* The first four bytes of keccak256 of a Solidity signature select the function: ERC-20's
 * transfer is the canonical 0xa9059cbb. */
static void test_keccak_function_selector(void **state)
{
    (void)state;
    const char *sig = "transfer(address,uint256)";
    uint8_t digest[LC_KECCAK256_LEN];
    lc_keccak256(digest, (const uint8_t *)sig, strlen(sig));
    const uint8_t want[4] = {0xa9, 0x05, 0x9c, 0xbb};
    assert_memory_equal(digest, want, sizeof want);
}

/* Every split of a 300-byte message into two updates, and byte-at-a-time feeding, give the
 * one-shot digest: the block buffering has no off-by-one at any offset. */
static void test_keccak_incremental_splits(void **state)
{
    (void)state;
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    uint8_t want[LC_KECCAK256_LEN];
    lc_keccak256(want, msg, sizeof msg);

    for (size_t cut = 0; cut <= sizeof msg; cut++) {
        lc_keccak256_t ctx;
        uint8_t got[LC_KECCAK256_LEN];
        lc_keccak256_init(&ctx);
        lc_keccak256_update(&ctx, msg, cut);
        lc_keccak256_update(&ctx, msg + cut, sizeof msg - cut);
        lc_keccak256_final(&ctx, got);
        assert_memory_equal(got, want, sizeof want);
    }

    lc_keccak256_t ctx;
    uint8_t got[LC_KECCAK256_LEN];
    lc_keccak256_init(&ctx);
    for (size_t i = 0; i < sizeof msg; i++)
        lc_keccak256_update(&ctx, msg + i, 1);
    lc_keccak256_final(&ctx, got);
    assert_memory_equal(got, want, sizeof want);

    /* final leaves nothing of the state behind, and a re-init starts afresh. */
    const uint8_t zero[sizeof ctx] = {0};
    assert_memory_equal(&ctx, zero, sizeof ctx);
    lc_keccak256_init(&ctx);
    lc_keccak256_update(&ctx, (const uint8_t *)"abc", 3);
    lc_keccak256_final(&ctx, got);
    s_assert_digest(got, s_vectors[1].digest);
}

/* The 200-byte vector in uneven chunks that cross block boundaries mid-chunk. */
static void test_keccak_incremental_chunks(void **state)
{
    (void)state;
    uint8_t msg[200];
    memset(msg, 'a', sizeof msg);
    const size_t chunks[] = {1, 134, 2, 50, 13};
    lc_keccak256_t ctx;
    lc_keccak256_init(&ctx);
    size_t off = 0;
    for (size_t i = 0; i < LC_ARRAY_LEN(chunks); i++) {
        lc_keccak256_update(&ctx, msg + off, chunks[i]);
        off += chunks[i];
    }
    assert_int_equal(off, sizeof msg);
    uint8_t got[LC_KECCAK256_LEN];
    lc_keccak256_final(&ctx, got);
    s_assert_digest(got, s_vectors[5].digest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keccak_known_answers),
        cmocka_unit_test(test_keccak_empty_null),
        cmocka_unit_test(test_keccak_function_selector),
        cmocka_unit_test(test_keccak_incremental_splits),
        cmocka_unit_test(test_keccak_incremental_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
