/* test_jws.c: JWS parse/verify/sign and public key handling.
 * Known answers: RFC 8037 Appendix A (Ed25519 JWK and the A.4 JWS), the secp256k1 generator
 * (private key 1), and an ES256K JWS computed independently (RFC 6979 nonce, low-S). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lc_codec.h"
#include "lc_jws.h"

#include <pthread.h>
#include <secp256k1.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8037 A.1 (private) and A.2 (public) Ed25519 JWK. */
#define RFC8037_D_HEX "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define RFC8037_X_HEX "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
#define RFC8037_JWK_PRIVATE                                                                        \
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\","                                                        \
    "\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\","                                       \
    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"
#define RFC8037_JWK_PUBLIC                                                                         \
    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}"
/* RFC 8037 A.4: {"alg":"EdDSA"} over "Example of Ed25519 signing". */
#define RFC8037_PAYLOAD "Example of Ed25519 signing"
#define RFC8037_HEADER_B64 "eyJhbGciOiJFZERTQSJ9"
#define RFC8037_JWS                                                                                \
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."                                    \
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

/* secp256k1: private key 1 -> the generator G. */
#define SECP_G_COMPRESSED "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"

/* ES256K known answer, computed outside this code base (Python: textbook ECDSA with an RFC 6979
 * HMAC-SHA256 nonce, S replaced by n - S when high; checked with pyca/cryptography).
 * Private key: 32 bytes of 0x01. */
#define ES_PK_COMPRESSED "031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"
#define ES_JWK_X "G4TFVnsSZECZXT7VqroFZdceGDRgSBn_nBf16dXdB48"
#define ES_JWK_Y "cL6vj1iLVBUH_tamQsWrQt_fgSCn9jneUSLUemmo6NE"
#define ES_KID "dev-1"
#define ES_PAYLOAD "{\"device_id\":\"dev-1\",\"seq\":1,\"ts\":1700000000000,\"data\":{\"t\":21.5}}"
#define ES_SIGNING_INPUT                                                                           \
    "eyJhbGciOiJFUzI1NksiLCJraWQiOiJkZXYtMSJ9."                                                    \
    "eyJkZXZpY2VfaWQiOiJkZXYtMSIsInNlcSI6MSwidHMiOjE3MDAwMDAwMDAwMDAsImRhdGEiOnsidCI6MjEuNX19"
#define ES_JWS                                                                                     \
    ES_SIGNING_INPUT ".loZfkBXxJEgA0jNbqcrvcXyQxq5SuWJkjsMdy7oNKdQB3iDV7w7zyY3y88XBUFRG7PUVbORYpI" \
                     "d2JQjatR7J9A"
/* The same signature with S replaced by n - S (the form the RFC 6979 signer produced first). */
#define ES_SIG_HIGH_S                                                                              \
    "loZfkBXxJEgA0jNbqcrvcXyQxq5SuWJkjsMdy7oNKdT-Id8qEPEMNnINDDo-r6u3zbnHecrv-7RJrVWyGxd3TQ"

/* secp256k1 group order n, big-endian. */
static const uint8_t s_order[32] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41,
};

static uint8_t s_buf[4096]; /* payload decode buffer */

static void s_hex(uint8_t *out, size_t want, const char *hex)
{
    size_t n = 0;
    assert_int_equal(lc_hex_decode(out, want, &n, hex, strlen(hex)), 0);
    assert_int_equal(n, want);
}

static void s_es_sk(uint8_t sk[32])
{
    memset(sk, 0x01, 32);
}

static void s_ed_sk(uint8_t sk[64])
{
    s_hex(sk, 32, RFC8037_D_HEX);
    s_hex(sk + 32, 32, RFC8037_X_HEX);
}

static int s_parse(lc_jws_t *jws, const char *text)
{
    return lc_jws_parse(jws, text, strlen(text), s_buf, sizeof s_buf);
}

/* Builds "<header_b64>.<b64url(payload)>.<b64url(sig)>" into out. */
static void s_assemble(char *out, size_t cap, const char *header_b64, const uint8_t *payload,
                       size_t payload_len, const uint8_t *sig, size_t sig_len)
{
    size_t h = strlen(header_b64);
    assert_true(h + 2 + LC_B64URL_LEN(payload_len) + LC_B64URL_LEN(sig_len) < cap);
    memcpy(out, header_b64, h);
    out[h] = '.';
    char *p = out + h + 1;
    assert_int_equal(lc_b64url_encode(p, cap - (size_t)(p - out), payload, payload_len), 0);
    p += strlen(p);
    *p++ = '.';
    assert_int_equal(lc_b64url_encode(p, cap - (size_t)(p - out), sig, sig_len), 0);
}

/* Same, from a header given as JSON text. */
static void s_assemble_json(char *out, size_t cap, const char *header_json, const char *payload,
                            size_t sig_len)
{
    char header_b64[2048];
    uint8_t sig[80] = {0};
    assert_true(sig_len <= sizeof sig);
    assert_int_equal(lc_b64url_encode(header_b64, sizeof header_b64, (const uint8_t *)header_json,
                                      strlen(header_json)),
                     0);
    s_assemble(out, cap, header_b64, (const uint8_t *)payload, strlen(payload), sig, sig_len);
}

static int s_parse_json(const char *header_json, size_t sig_len)
{
    char jws[4096];
    lc_jws_t parsed;
    s_assemble_json(jws, sizeof jws, header_json, "{}", sig_len);
    return s_parse(&parsed, jws);
}

/* ---- first use from many threads at once (exercises the pthread_once initialisation) ---- */

static void *s_thread_sign_verify(void *arg)
{
    (void)arg;
    uint8_t sk[32], pk[33];
    size_t pk_len = 0;
    s_es_sk(sk);
    int ok = lc_pubkey_parse(pk, sizeof pk, &pk_len, LC_ALG_ES256K, ES_PK_COMPRESSED,
                             strlen(ES_PK_COMPRESSED)) == 0;
    for (int i = 0; ok && i < 20; i++) {
        char *jws = lc_jws_sign(LC_ALG_ES256K, ES_KID, (const uint8_t *)ES_PAYLOAD,
                                strlen(ES_PAYLOAD), sk, sizeof sk);
        uint8_t buf[128];
        lc_jws_t parsed;
        ok = jws != NULL && strcmp(jws, ES_JWS) == 0 &&
             lc_jws_parse(&parsed, jws, strlen(jws), buf, sizeof buf) == 0 &&
             lc_jws_verify(&parsed, LC_ALG_ES256K, pk, pk_len) == 0;
        free(jws);
    }
    return ok ? (void *)1 : NULL;
}

static void test_concurrent_first_use(void **state)
{
    (void)state;
    pthread_t threads[8];
    for (size_t i = 0; i < LC_ARRAY_LEN(threads); i++)
        assert_int_equal(pthread_create(&threads[i], NULL, s_thread_sign_verify, NULL), 0);
    for (size_t i = 0; i < LC_ARRAY_LEN(threads); i++) {
        void *ok = NULL;
        assert_int_equal(pthread_join(threads[i], &ok), 0);
        assert_non_null(ok);
    }
}

/* ---- names ---- */

static void test_alg_names(void **state)
{
    (void)state;
    assert_string_equal(lc_alg_name(LC_ALG_EDDSA), "EdDSA");
    assert_string_equal(lc_alg_name(LC_ALG_ES256K), "ES256K");
    assert_string_equal(lc_alg_name(LC_ALG_NONE), "none");
    assert_string_equal(lc_alg_name((lc_alg_t)42), "none");
    assert_int_equal(lc_alg_from_name("EdDSA"), LC_ALG_EDDSA);
    assert_int_equal(lc_alg_from_name("ES256K"), LC_ALG_ES256K);
    assert_int_equal(lc_alg_from_name("eddsa"), LC_ALG_NONE);
    assert_int_equal(lc_alg_from_name("ES256"), LC_ALG_NONE);
    assert_int_equal(lc_alg_from_name("ES256KX"), LC_ALG_NONE);
    assert_int_equal(lc_alg_from_name("none"), LC_ALG_NONE);
    assert_int_equal(lc_alg_from_name(""), LC_ALG_NONE);
    assert_int_equal(lc_alg_from_name(NULL), LC_ALG_NONE);
}

/* ---- RFC 8037 ---- */

static void test_rfc8037_jwk(void **state)
{
    (void)state;
    uint8_t x[32], pk[32];
    size_t n = 0;
    s_hex(x, 32, RFC8037_X_HEX);

    /* A.1: the secret key's public half is x. */
    uint8_t seed[32], derived_pk[32], derived_sk[64];
    s_hex(seed, 32, RFC8037_D_HEX);
    assert_int_equal(sodium_init() >= 0, 1);
    assert_int_equal(crypto_sign_seed_keypair(derived_pk, derived_sk, seed), 0);
    assert_memory_equal(derived_pk, x, 32);

    /* A.2: the public JWK, and the same key as hex. */
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_EDDSA, RFC8037_JWK_PUBLIC,
                                     strlen(RFC8037_JWK_PUBLIC)),
                     0);
    assert_int_equal(n, 32);
    assert_memory_equal(pk, x, 32);
    const char *spaced = "  {\n \"x\": \"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\n"
                         " \"crv\": \"Ed25519\", \"kty\": \"OKP\", \"use\": \"sig\" }\n";
    memset(pk, 0, sizeof pk);
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_EDDSA, spaced, strlen(spaced)), 0);
    assert_memory_equal(pk, x, 32);
    memset(pk, 0, sizeof pk);
    assert_int_equal(
        lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_EDDSA, RFC8037_X_HEX, strlen(RFC8037_X_HEX)), 0);
    assert_memory_equal(pk, x, 32);
    const char *prefixed = "0x" RFC8037_X_HEX;
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_EDDSA, prefixed, strlen(prefixed)),
                     0);
    assert_memory_equal(pk, x, 32);

    /* A.1 as a "public key": refused, a registration must not carry the secret. */
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_EDDSA, RFC8037_JWK_PRIVATE,
                                     strlen(RFC8037_JWK_PRIVATE)),
                     LC_ERR_INVALID);
    assert_int_equal(n, 0);
    /* The right key under the wrong algorithm. */
    uint8_t es_pk[LC_SECP256K1_PK_LEN];
    assert_int_equal(lc_pubkey_parse(es_pk, sizeof es_pk, &n, LC_ALG_ES256K, RFC8037_JWK_PUBLIC,
                                     strlen(RFC8037_JWK_PUBLIC)),
                     LC_ERR_INVALID);
    assert_int_equal(lc_pubkey_parse(es_pk, sizeof es_pk, &n, LC_ALG_ES256K, RFC8037_X_HEX,
                                     strlen(RFC8037_X_HEX)),
                     LC_ERR_INVALID);
}

static void test_rfc8037_verify(void **state)
{
    (void)state;
    uint8_t pk[32];
    s_hex(pk, 32, RFC8037_X_HEX);
    lc_jws_t jws;
    assert_int_equal(s_parse(&jws, RFC8037_JWS), 0);
    assert_int_equal(jws.alg, LC_ALG_EDDSA);
    assert_string_equal(jws.kid, "");
    assert_int_equal(jws.payload_len, strlen(RFC8037_PAYLOAD));
    assert_memory_equal(jws.payload, RFC8037_PAYLOAD, jws.payload_len);
    assert_ptr_equal(jws.payload, s_buf);
    /* The signing input is the received bytes themselves, not a copy. */
    assert_ptr_equal(jws.signing_input, RFC8037_JWS);
    assert_int_equal(jws.signing_input_len, strlen(RFC8037_HEADER_B64) + 1 + 35);
    assert_int_equal(jws.signature_len, 64);
    assert_int_equal(lc_jws_verify(&jws, LC_ALG_EDDSA, pk, sizeof pk), 0);

    /* The same key given as the RFC's JWK. */
    uint8_t jwk_pk[32];
    size_t n;
    assert_int_equal(lc_pubkey_parse(jwk_pk, sizeof jwk_pk, &n, LC_ALG_EDDSA, RFC8037_JWK_PUBLIC,
                                     strlen(RFC8037_JWK_PUBLIC)),
                     0);
    assert_int_equal(lc_jws_verify(&jws, LC_ALG_EDDSA, jwk_pk, n), 0);
}

static void test_rfc8037_sign(void **state)
{
    (void)state;
    uint8_t sk[64];
    s_ed_sk(sk);
    char *jws = lc_jws_sign(LC_ALG_EDDSA, NULL, (const uint8_t *)RFC8037_PAYLOAD,
                            strlen(RFC8037_PAYLOAD), sk, sizeof sk);
    assert_non_null(jws);
    assert_memory_equal(jws, RFC8037_HEADER_B64 ".", strlen(RFC8037_HEADER_B64) + 1);
    assert_string_equal(jws, RFC8037_JWS);
    free(jws);
    /* An empty kid is no kid. */
    jws = lc_jws_sign(LC_ALG_EDDSA, "", (const uint8_t *)RFC8037_PAYLOAD, strlen(RFC8037_PAYLOAD),
                      sk, sizeof sk);
    assert_non_null(jws);
    assert_string_equal(jws, RFC8037_JWS);
    free(jws);
}

static void test_eddsa_tamper(void **state)
{
    (void)state;
    uint8_t pk[32];
    s_hex(pk, 32, RFC8037_X_HEX);
    lc_jws_t jws;
    assert_int_equal(s_parse(&jws, RFC8037_JWS), 0);

    char text[512];
    uint8_t payload[64], sig[64];
    memcpy(payload, jws.payload, jws.payload_len);
    size_t payload_len = jws.payload_len;
    memcpy(sig, jws.signature, 64);

    lc_jws_t t;
    payload[3] ^= 0x01;
    s_assemble(text, sizeof text, RFC8037_HEADER_B64, payload, payload_len, sig, 64);
    assert_int_equal(s_parse(&t, text), 0);
    assert_int_equal(lc_jws_verify(&t, LC_ALG_EDDSA, pk, sizeof pk), LC_ERR_SIGNATURE);
    payload[3] ^= 0x01;

    for (size_t byte = 0; byte < 64; byte += 21) {
        sig[byte] ^= 0x80;
        s_assemble(text, sizeof text, RFC8037_HEADER_B64, payload, payload_len, sig, 64);
        assert_int_equal(s_parse(&t, text), 0);
        assert_int_equal(lc_jws_verify(&t, LC_ALG_EDDSA, pk, sizeof pk), LC_ERR_SIGNATURE);
        sig[byte] ^= 0x80;
    }

    uint8_t other_pk[32], other_sk[64];
    size_t sk_len, pk_len;
    assert_int_equal(lc_keypair_generate(LC_ALG_EDDSA, other_sk, &sk_len, other_pk, &pk_len), 0);
    assert_int_equal(lc_jws_verify(&jws, LC_ALG_EDDSA, other_pk, pk_len), LC_ERR_SIGNATURE);
    /* A small-order key (the identity) must not verify anything. */
    uint8_t identity[32] = {1};
    assert_int_equal(lc_jws_verify(&jws, LC_ALG_EDDSA, identity, 32), LC_ERR_SIGNATURE);
    assert_int_equal(lc_jws_verify(&jws, LC_ALG_EDDSA, pk, sizeof pk), 0);
}

static void test_ed25519_pubkey_rejects(void **state)
{
    (void)state;
    uint8_t pk[64];
    size_t n = 9;
    static const char *bad[] = {
        /* 31 and 33 bytes */
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f70751",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a00",
        /* odd length, bad digit */
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511",
        "z75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        /* small order: identity, (0, -1) and the all-zero encoding (order 4) */
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        /* non-canonical: y = p + 1 */
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "",
        " d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        /* JWKs: wrong kty, wrong crv, short x, padded x, x not a string, not an object */
        "{\"kty\":\"EC\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHUQ\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="
        "\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":42}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"ES256K\","
        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"OKP\",\"kty\":\"OKP\",\"crv\":\"Ed25519\","
        "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"",
        "{}",
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(bad); i++) {
        n = 9;
        assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_EDDSA, bad[i], strlen(bad[i])),
                         LC_ERR_INVALID);
        assert_int_equal(n, 0);
    }
    assert_int_equal(
        lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_NONE, RFC8037_X_HEX, strlen(RFC8037_X_HEX)),
        LC_ERR_INVALID);
    assert_int_equal(
        lc_pubkey_parse(pk, 31, &n, LC_ALG_EDDSA, RFC8037_X_HEX, strlen(RFC8037_X_HEX)),
        LC_ERR_TOOBIG);
    /* A JWK with "alg" that matches is fine. */
    const char *with_alg = "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"EdDSA\","
                           "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}";
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_EDDSA, with_alg, strlen(with_alg)),
                     0);
    assert_int_equal(n, 32);
}

/* ---- ES256K ---- */

static void test_es256k_private_key_one(void **state)
{
    (void)state;
    uint8_t g[33], sk[32] = {0};
    s_hex(g, 33, SECP_G_COMPRESSED);
    sk[31] = 1;

    /* The vector itself, through libsecp256k1 directly. */
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_pubkey key;
    uint8_t ser[33];
    size_t ser_len = sizeof ser;
    assert_int_equal(secp256k1_ec_pubkey_create(ctx, &key, sk), 1);
    assert_int_equal(
        secp256k1_ec_pubkey_serialize(ctx, ser, &ser_len, &key, SECP256K1_EC_COMPRESSED), 1);
    secp256k1_context_destroy(ctx);
    assert_memory_equal(ser, g, 33);

    /* Our parse of the vector, and a sign/verify round trip with key 1. */
    uint8_t pk[33];
    size_t n = 0;
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_ES256K, SECP_G_COMPRESSED,
                                     strlen(SECP_G_COMPRESSED)),
                     0);
    assert_int_equal(n, 33);
    assert_memory_equal(pk, g, 33);

    char *jws = lc_jws_sign(LC_ALG_ES256K, "key-one", (const uint8_t *)"{}", 2, sk, sizeof sk);
    assert_non_null(jws);
    lc_jws_t parsed;
    assert_int_equal(s_parse(&parsed, jws), 0);
    assert_string_equal(parsed.kid, "key-one");
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, pk, n), 0);
    free(jws);
}

static void test_es256k_known_answer(void **state)
{
    (void)state;
    uint8_t sk[32];
    s_es_sk(sk);
    char *jws = lc_jws_sign(LC_ALG_ES256K, ES_KID, (const uint8_t *)ES_PAYLOAD, strlen(ES_PAYLOAD),
                            sk, sizeof sk);
    assert_non_null(jws);
    assert_string_equal(jws, ES_JWS);
    /* Deterministic: signing again gives the same bytes. */
    char *again = lc_jws_sign(LC_ALG_ES256K, ES_KID, (const uint8_t *)ES_PAYLOAD,
                              strlen(ES_PAYLOAD), sk, sizeof sk);
    assert_non_null(again);
    assert_string_equal(again, jws);
    free(again);
    free(jws);

    lc_jws_t parsed;
    assert_int_equal(s_parse(&parsed, ES_JWS), 0);
    assert_int_equal(parsed.alg, LC_ALG_ES256K);
    assert_string_equal(parsed.kid, ES_KID);
    assert_int_equal(parsed.signing_input_len, strlen(ES_SIGNING_INPUT));
    assert_memory_equal(parsed.signing_input, ES_SIGNING_INPUT, parsed.signing_input_len);
    assert_int_equal(parsed.payload_len, strlen(ES_PAYLOAD));
    assert_memory_equal(parsed.payload, ES_PAYLOAD, parsed.payload_len);

    uint8_t pk[33];
    size_t n;
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_ES256K, ES_PK_COMPRESSED,
                                     strlen(ES_PK_COMPRESSED)),
                     0);
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, pk, n), 0);
}

/* lc_pubkey_valid: what the store accepts over ZeroMQ is exactly what lc_pubkey_parse writes. */
static void test_pubkey_valid_canonical_only(void **state)
{
    (void)state;
    uint8_t ed[32], es[65];
    size_t n = 0;
    assert_int_equal(
        lc_pubkey_parse(ed, sizeof ed, &n, LC_ALG_EDDSA, RFC8037_X_HEX, strlen(RFC8037_X_HEX)), 0);
    assert_true(lc_pubkey_valid(LC_ALG_EDDSA, ed, 32));
    assert_false(lc_pubkey_valid(LC_ALG_ES256K, ed, 32));
    assert_false(lc_pubkey_valid(LC_ALG_EDDSA, ed, 31));
    assert_false(lc_pubkey_valid(LC_ALG_NONE, ed, 32));
    assert_false(lc_pubkey_valid(LC_ALG_EDDSA, NULL, 32));
    uint8_t small_order[32] = {1}; /* the identity point: refused */
    assert_false(lc_pubkey_valid(LC_ALG_EDDSA, small_order, 32));
    assert_int_equal(lc_pubkey_parse(es, sizeof es, &n, LC_ALG_ES256K, ES_PK_COMPRESSED,
                                     strlen(ES_PK_COMPRESSED)),
                     0);
    assert_true(lc_pubkey_valid(LC_ALG_ES256K, es, 33));
    es[0] ^= 1; /* 02 <-> 03: the other y, still a canonical compressed key */
    assert_true(lc_pubkey_valid(LC_ALG_ES256K, es, 33));
    es[0] = 0x05; /* no such prefix */
    assert_false(lc_pubkey_valid(LC_ALG_ES256K, es, 33));
}

static void test_es256k_pubkey_forms(void **state)
{
    (void)state;
    uint8_t want[33];
    s_hex(want, 33, ES_PK_COMPRESSED);

    /* Uncompressed form from libsecp256k1 for the same private key. */
    uint8_t sk[32], uncompressed[65];
    size_t ulen = sizeof uncompressed;
    s_es_sk(sk);
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_pubkey key;
    assert_int_equal(secp256k1_ec_pubkey_create(ctx, &key, sk), 1);
    assert_int_equal(
        secp256k1_ec_pubkey_serialize(ctx, uncompressed, &ulen, &key, SECP256K1_EC_UNCOMPRESSED),
        1);
    secp256k1_context_destroy(ctx);
    assert_int_equal(ulen, 65);
    /* The JWK coordinates are the uncompressed point's halves. */
    uint8_t x[32], y[32];
    size_t n;
    assert_int_equal(lc_b64url_decode(x, sizeof x, &n, ES_JWK_X, strlen(ES_JWK_X)), 0);
    assert_int_equal(lc_b64url_decode(y, sizeof y, &n, ES_JWK_Y, strlen(ES_JWK_Y)), 0);
    assert_memory_equal(uncompressed + 1, x, 32);
    assert_memory_equal(uncompressed + 33, y, 32);

    char hex[2 + 130 + 1] = "0x";
    assert_int_equal(lc_hex_encode(hex + 2, sizeof hex - 2, uncompressed, 65), 0);
    char jwk[256];
    snprintf(jwk, sizeof jwk, "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"%s\",\"y\":\"%s\"}",
             ES_JWK_X, ES_JWK_Y);
    const char *forms[] = {ES_PK_COMPRESSED, hex, hex + 2, jwk};
    for (size_t i = 0; i < LC_ARRAY_LEN(forms); i++) {
        uint8_t pk[40];
        n = 0;
        assert_int_equal(
            lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_ES256K, forms[i], strlen(forms[i])), 0);
        assert_int_equal(n, 33);
        assert_memory_equal(pk, want, 33);
    }

    /* Verify accepts the raw uncompressed key too. */
    lc_jws_t parsed;
    assert_int_equal(s_parse(&parsed, ES_JWS), 0);
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, uncompressed, 65), 0);

    /* Rejects: hybrid encodings (libsecp256k1 alone accepts them), off-curve, bad prefixes. */
    uint8_t bad[65];
    char bad_hex[131];
    uint8_t pk[33];
    memcpy(bad, uncompressed, 65);
    bad[0] = (uncompressed[64] & 1) ? 0x07 : 0x06;
    assert_int_equal(lc_hex_encode(bad_hex, sizeof bad_hex, bad, 65), 0);
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_ES256K, bad_hex, strlen(bad_hex)),
                     LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, bad, 65), LC_ERR_INVALID);
    memcpy(bad, uncompressed, 65);
    bad[64] ^= 0x01; /* y + 1 or y - 1: off the curve */
    assert_int_equal(lc_hex_encode(bad_hex, sizeof bad_hex, bad, 65), 0);
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_ES256K, bad_hex, strlen(bad_hex)),
                     LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, bad, 65), LC_ERR_INVALID);
    memcpy(bad, want, 33);
    bad[0] = 0x04;
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, bad, 33), LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, want, 32), LC_ERR_INVALID);

    static const char *bad_text[] = {
        /* x = p (not a field element), compressed */
        "02fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f",
        /* 32 and 34 bytes */
        "1b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f",
        "031b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f00",
        "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" ES_JWK_X "\",\"y\":\"" ES_JWK_Y "\"}",
        "{\"kty\":\"OKP\",\"crv\":\"secp256k1\",\"x\":\"" ES_JWK_X "\",\"y\":\"" ES_JWK_Y "\"}",
        "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"" ES_JWK_X "\"}",
        "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"" ES_JWK_X "\",\"y\":\"" ES_JWK_X "\"}",
        "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"" ES_JWK_X "\",\"y\":\"" ES_JWK_Y "\","
        "\"d\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE\"}",
        "{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AA" ES_JWK_X "\",\"y\":\"" ES_JWK_Y "\"}",
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(bad_text); i++) {
        n = 7;
        assert_int_equal(
            lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_ES256K, bad_text[i], strlen(bad_text[i])),
            LC_ERR_INVALID);
        assert_int_equal(n, 0);
    }
}

static void test_es256k_tamper(void **state)
{
    (void)state;
    uint8_t pk[33];
    size_t n;
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_ES256K, ES_PK_COMPRESSED,
                                     strlen(ES_PK_COMPRESSED)),
                     0);
    lc_jws_t jws;
    assert_int_equal(s_parse(&jws, ES_JWS), 0);
    const char *header_b64 = "eyJhbGciOiJFUzI1NksiLCJraWQiOiJkZXYtMSJ9";
    uint8_t payload[128], sig[64];
    size_t payload_len = jws.payload_len;
    memcpy(payload, jws.payload, payload_len);
    memcpy(sig, jws.signature, 64);
    char text[512];
    lc_jws_t t;

    /* Sanity: reassembling unchanged parts gives the original and verifies. */
    s_assemble(text, sizeof text, header_b64, payload, payload_len, sig, 64);
    assert_string_equal(text, ES_JWS);

    payload[payload_len - 3] ^= 0x01; /* 21.5 -> 21.4 */
    s_assemble(text, sizeof text, header_b64, payload, payload_len, sig, 64);
    assert_int_equal(s_parse(&t, text), 0);
    assert_int_equal(lc_jws_verify(&t, LC_ALG_ES256K, pk, n), LC_ERR_SIGNATURE);
    payload[payload_len - 3] ^= 0x01;

    /* One bit in R, one in S (a low bit, so S stays low). */
    const size_t bytes[] = {0, 17, 40, 63};
    for (size_t i = 0; i < LC_ARRAY_LEN(bytes); i++) {
        sig[bytes[i]] ^= 0x01;
        s_assemble(text, sizeof text, header_b64, payload, payload_len, sig, 64);
        assert_int_equal(s_parse(&t, text), 0);
        assert_int_equal(lc_jws_verify(&t, LC_ALG_ES256K, pk, n), LC_ERR_SIGNATURE);
        sig[bytes[i]] ^= 0x01;
    }

    uint8_t other_sk[32], other_pk[33];
    size_t sk_len, pk_len;
    assert_int_equal(lc_keypair_generate(LC_ALG_ES256K, other_sk, &sk_len, other_pk, &pk_len), 0);
    assert_int_equal(lc_jws_verify(&jws, LC_ALG_ES256K, other_pk, pk_len), LC_ERR_SIGNATURE);
    uint8_t g[33];
    s_hex(g, 33, SECP_G_COMPRESSED);
    assert_int_equal(lc_jws_verify(&jws, LC_ALG_ES256K, g, 33), LC_ERR_SIGNATURE);

    /* R = 0, S = 0, S = n: out of range. */
    uint8_t zero[64];
    memcpy(zero, sig, 64);
    memset(zero, 0, 32);
    s_assemble(text, sizeof text, header_b64, payload, payload_len, zero, 64);
    assert_int_equal(s_parse(&t, text), 0);
    assert_int_equal(lc_jws_verify(&t, LC_ALG_ES256K, pk, n), LC_ERR_SIGNATURE);
    memcpy(zero, sig, 64);
    memset(zero + 32, 0, 32);
    s_assemble(text, sizeof text, header_b64, payload, payload_len, zero, 64);
    assert_int_equal(s_parse(&t, text), 0);
    assert_int_equal(lc_jws_verify(&t, LC_ALG_ES256K, pk, n), LC_ERR_SIGNATURE);
    memcpy(zero + 32, s_order, 32);
    s_assemble(text, sizeof text, header_b64, payload, payload_len, zero, 64);
    assert_int_equal(s_parse(&t, text), 0);
    assert_int_equal(lc_jws_verify(&t, LC_ALG_ES256K, pk, n), LC_ERR_SIGNATURE);

    assert_int_equal(lc_jws_verify(&jws, LC_ALG_ES256K, pk, n), 0);
}

/* out = n - s, big-endian 256-bit. */
static void s_order_minus(uint8_t out[32], const uint8_t s[32])
{
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int d = (int)s_order[i] - (int)s[i] - borrow;
        borrow = d < 0;
        out[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
    assert_int_equal(borrow, 0);
}

static void test_es256k_high_s_refused(void **state)
{
    (void)state;
    uint8_t pk[33];
    size_t n;
    assert_int_equal(lc_pubkey_parse(pk, sizeof pk, &n, LC_ALG_ES256K, ES_PK_COMPRESSED,
                                     strlen(ES_PK_COMPRESSED)),
                     0);
    lc_jws_t jws;
    assert_int_equal(s_parse(&jws, ES_JWS), 0);

    uint8_t high[64];
    memcpy(high, jws.signature, 32);
    s_order_minus(high + 32, jws.signature + 32);
    char high_b64[LC_B64URL_LEN(64) + 1];
    assert_int_equal(lc_b64url_encode(high_b64, sizeof high_b64, high, 64), 0);
    assert_string_equal(high_b64, ES_SIG_HIGH_S); /* matches the independent computation */

    /* Mathematically valid: its low-S normalisation is our signature and verifies. */
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_ecdsa_signature sig, low;
    secp256k1_pubkey key;
    uint8_t hash[32], low_bytes[64];
    assert_int_equal(secp256k1_ecdsa_signature_parse_compact(ctx, &sig, high), 1);
    assert_int_equal(secp256k1_ecdsa_signature_normalize(ctx, &low, &sig), 1);
    assert_int_equal(secp256k1_ecdsa_signature_serialize_compact(ctx, low_bytes, &low), 1);
    assert_memory_equal(low_bytes, jws.signature, 64);
    assert_int_equal(secp256k1_ec_pubkey_parse(ctx, &key, pk, 33), 1);
    crypto_hash_sha256(hash, (const uint8_t *)ES_SIGNING_INPUT, strlen(ES_SIGNING_INPUT));
    assert_int_equal(secp256k1_ecdsa_verify(ctx, &low, hash, &key), 1);
    secp256k1_context_destroy(ctx);

    /* ...but we refuse it: one reading, one signature encoding. */
    char text[512];
    snprintf(text, sizeof text, "%s.%s", ES_SIGNING_INPUT, ES_SIG_HIGH_S);
    lc_jws_t t;
    assert_int_equal(s_parse(&t, text), 0);
    assert_int_equal(lc_jws_verify(&t, LC_ALG_ES256K, pk, n), LC_ERR_SIGNATURE);
}

/* ---- parse rejects ---- */

static void test_parse_structure_rejects(void **state)
{
    (void)state;
    lc_jws_t jws;
    const char *rfc_header = RFC8037_HEADER_B64;
    const char *rfc_payload = "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    const char *rfc_sig =
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    char text[1024];

    /* Two parts, four parts, no dot, empty. */
    snprintf(text, sizeof text, "%s.%s", rfc_header, rfc_payload);
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    snprintf(text, sizeof text, "%s.%s.%s.%s", rfc_header, rfc_payload, rfc_sig, rfc_sig);
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    snprintf(text, sizeof text, "%s.%s.%s.", rfc_header, rfc_payload, rfc_sig);
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    assert_int_equal(s_parse(&jws, rfc_header), LC_ERR_INVALID);
    assert_int_equal(s_parse(&jws, ""), LC_ERR_INVALID);
    assert_int_equal(s_parse(&jws, ".."), LC_ERR_INVALID);
    snprintf(text, sizeof text, "%s.%s.", rfc_header, rfc_payload);
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    assert_int_equal(lc_jws_parse(NULL, RFC8037_JWS, strlen(RFC8037_JWS), s_buf, sizeof s_buf),
                     LC_ERR_INVALID);
    assert_int_equal(lc_jws_parse(&jws, NULL, 10, s_buf, sizeof s_buf), LC_ERR_INVALID);

    /* Bad base64url in each part: padding, '+', '/', whitespace. */
    snprintf(text, sizeof text, "%s.%s=.%s", rfc_header, rfc_payload, rfc_sig);
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    snprintf(text, sizeof text, "%s.%s+.%s", rfc_header, "RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbm",
             rfc_sig);
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    snprintf(text, sizeof text, "%s.%s.%s", rfc_header, rfc_payload, rfc_sig);
    text[strlen(text) - 5] = '/';
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    snprintf(text, sizeof text, "%s.%s.%s\n", rfc_header, rfc_payload, rfc_sig);
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    snprintf(text, sizeof text, " %s.%s.%s", rfc_header, rfc_payload, rfc_sig);
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    /* Non-canonical last character of the signature (its low 4 bits must be zero). */
    snprintf(text, sizeof text, "%s.%s.%s", rfc_header, rfc_payload, rfc_sig);
    text[strlen(text) - 1] = 'h';
    assert_int_equal(s_parse(&jws, text), LC_ERR_INVALID);
    /* An embedded NUL is not a terminator: the length says where the input ends. */
    snprintf(text, sizeof text, "%s.%s.%s", rfc_header, rfc_payload, rfc_sig);
    size_t len = strlen(text);
    text[len - 10] = '\0';
    assert_int_equal(lc_jws_parse(&jws, text, len, s_buf, sizeof s_buf), LC_ERR_INVALID);

    /* Signature of 63 and 65 bytes. */
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\"}", 63), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\"}", 65), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\"}", 0), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\"}", 64), 0);

    /* Payload too big for the buffer: 26 bytes into 25. Fits exactly: 26 into 26. */
    uint8_t small[26];
    assert_int_equal(lc_jws_parse(&jws, RFC8037_JWS, strlen(RFC8037_JWS), small, 25),
                     LC_ERR_TOOBIG);
    assert_int_equal(jws.alg, LC_ALG_NONE); /* nothing half-filled is left to trust */
    assert_null(jws.signing_input);
    assert_int_equal(lc_jws_parse(&jws, RFC8037_JWS, strlen(RFC8037_JWS), small, 26), 0);
    assert_int_equal(jws.payload_len, 26);
    assert_int_equal(lc_jws_parse(&jws, RFC8037_JWS, strlen(RFC8037_JWS), NULL, 0), LC_ERR_TOOBIG);
}

static void test_parse_header_rejects(void **state)
{
    (void)state;
    /* Not JSON, not an object, trailing data. */
    assert_int_equal(s_parse_json("not json", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("[\"EdDSA\"]", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("\"EdDSA\"", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\"} x", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\"", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\",}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"Ed\xff\"}", 64), LC_ERR_INVALID);

    /* alg: none and others are unsupported; missing or not a string is malformed. */
    assert_int_equal(s_parse_json("{\"alg\":\"none\"}", 64), LC_ERR_UNSUPPORTED);
    assert_int_equal(s_parse_json("{\"alg\":\"HS256\"}", 64), LC_ERR_UNSUPPORTED);
    assert_int_equal(s_parse_json("{\"alg\":\"RS256\"}", 64), LC_ERR_UNSUPPORTED);
    assert_int_equal(s_parse_json("{\"alg\":\"ES256\"}", 64), LC_ERR_UNSUPPORTED);
    assert_int_equal(s_parse_json("{\"alg\":\"eddsa\"}", 64), LC_ERR_UNSUPPORTED);
    assert_int_equal(s_parse_json("{\"alg\":\"\"}", 64), LC_ERR_UNSUPPORTED);
    assert_int_equal(s_parse_json("{\"kid\":\"dev-1\"}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":null}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":[\"EdDSA\"]}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\\u0000\"}", 64), LC_ERR_INVALID);
    /* A duplicate alg must not be resolved either way. */
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\",\"alg\":\"none\"}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"none\",\"alg\":\"EdDSA\"}", 64), LC_ERR_INVALID);

    /* crit, in any form. */
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\",\"crit\":[\"exp\"],\"exp\":1}", 64),
                     LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"ES256K\",\"crit\":[]}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"crit\":[\"b64\"],\"b64\":false,\"alg\":\"EdDSA\"}", 64),
                     LC_ERR_INVALID);

    /* Other registered members are ignored. */
    assert_int_equal(s_parse_json("{\"typ\":\"JWT\",\"alg\":\"ES256K\",\"cty\":\"json\"}", 64), 0);
}

static void test_parse_kid(void **state)
{
    (void)state;
    char header[2048], text[4096];
    lc_jws_t jws;

    char kid[LC_JWS_KID_MAX + 2];
    memset(kid, 'k', sizeof kid - 1);
    kid[LC_JWS_KID_MAX] = '\0';
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
    s_assemble_json(text, sizeof text, header, "{}", 64);
    assert_int_equal(s_parse(&jws, text), 0);
    assert_string_equal(jws.kid, kid);
    kid[LC_JWS_KID_MAX] = 'k';
    kid[LC_JWS_KID_MAX + 1] = '\0';
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
    assert_int_equal(s_parse_json(header, 64), LC_ERR_INVALID);

    /* 128 bytes after unescaping: 64 escaped two-byte characters (é = \u00e9). */
    char *p = header + sprintf(header, "{\"alg\":\"EdDSA\",\"kid\":\"");
    for (int i = 0; i < 64; i++)
        p += sprintf(p, "\\u00e9");
    sprintf(p, "\"}");
    s_assemble_json(text, sizeof text, header, "{}", 64);
    assert_int_equal(s_parse(&jws, text), 0);
    assert_int_equal(strlen(jws.kid), 128);
    assert_memory_equal(jws.kid, "\xc3\xa9", 2);

    s_assemble_json(text, sizeof text, "{\"alg\":\"EdDSA\",\"kid\":\"a\\\"b\\\\c/d\"}", "{}", 64);
    assert_int_equal(s_parse(&jws, text), 0);
    assert_string_equal(jws.kid, "a\"b\\c/d");

    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\",\"kid\":42}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\",\"kid\":null}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\",\"kid\":\"a\\nb\"}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\",\"kid\":\"a\\u007fb\"}", 64), LC_ERR_INVALID);
    assert_int_equal(s_parse_json("{\"alg\":\"EdDSA\",\"kid\":\"a\\u0000b\"}", 64), LC_ERR_INVALID);
    s_assemble_json(text, sizeof text, "{\"alg\":\"EdDSA\",\"kid\":\"\"}", "{}", 64);
    assert_int_equal(s_parse(&jws, text), 0);
    assert_string_equal(jws.kid, "");
}

static void test_parse_header_size(void **state)
{
    (void)state;
    char header[1100];
    const char *prefix = "{\"alg\":\"EdDSA\",\"pad\":\"";
    /* Exactly 1024 bytes is accepted, 1025 refused. */
    for (size_t total = 1023; total <= 1026; total++) {
        size_t pad = total - strlen(prefix) - 2;
        memcpy(header, prefix, strlen(prefix));
        memset(header + strlen(prefix), 'x', pad);
        memcpy(header + strlen(prefix) + pad, "\"}", 3);
        assert_int_equal(strlen(header), total);
        assert_int_equal(s_parse_json(header, 64), total <= 1024 ? 0 : LC_ERR_INVALID);
    }
}

static void test_verify_misuse(void **state)
{
    (void)state;
    uint8_t ed_pk[32], es_pk[33];
    s_hex(ed_pk, 32, RFC8037_X_HEX);
    s_hex(es_pk, 33, ES_PK_COMPRESSED);
    lc_jws_t ed, es;
    assert_int_equal(s_parse(&ed, RFC8037_JWS), 0);
    uint8_t es_buf[128];
    assert_int_equal(lc_jws_parse(&es, ES_JWS, strlen(ES_JWS), es_buf, sizeof es_buf), 0);

    /* The registered algorithm decides, not the header. */
    assert_int_equal(lc_jws_verify(&ed, LC_ALG_ES256K, es_pk, 33), LC_ERR_SIGNATURE);
    assert_int_equal(lc_jws_verify(&es, LC_ALG_EDDSA, ed_pk, 32), LC_ERR_SIGNATURE);
    /* A genuine Ed25519 signature under a header that claims ES256K is still refused. */
    uint8_t ed_sk[64], sig[64];
    char text[512];
    const char *claims_es = "eyJhbGciOiJFUzI1NksifQ"; /* {"alg":"ES256K"} */
    s_ed_sk(ed_sk);
    s_assemble(text, sizeof text, claims_es, (const uint8_t *)"{}", 2, sig, 0);
    assert_int_equal(
        crypto_sign_detached(sig, NULL, (const uint8_t *)text, strlen(text) - 1, ed_sk), 0);
    s_assemble(text, sizeof text, claims_es, (const uint8_t *)"{}", 2, sig, 64);
    lc_jws_t mixed;
    assert_int_equal(s_parse(&mixed, text), 0);
    assert_int_equal(mixed.alg, LC_ALG_ES256K);
    assert_int_equal(lc_jws_verify(&mixed, LC_ALG_EDDSA, ed_pk, 32), LC_ERR_SIGNATURE);
    mixed.alg = LC_ALG_EDDSA; /* proof that only the alg check stands in the way */
    assert_int_equal(lc_jws_verify(&mixed, LC_ALG_EDDSA, ed_pk, 32), 0);
    assert_int_equal(lc_jws_verify(&ed, LC_ALG_NONE, ed_pk, 32), LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&ed, LC_ALG_EDDSA, ed_pk, 31), LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&ed, LC_ALG_EDDSA, es_pk, 33), LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&es, LC_ALG_ES256K, es_pk, 32), LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&ed, LC_ALG_EDDSA, NULL, 32), LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(NULL, LC_ALG_EDDSA, ed_pk, 32), LC_ERR_INVALID);
    lc_jws_t failed;
    assert_int_equal(s_parse(&failed, "a.b"), LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&failed, LC_ALG_EDDSA, ed_pk, 32), LC_ERR_INVALID);
    assert_int_equal(lc_jws_verify(&ed, LC_ALG_EDDSA, ed_pk, 32), 0);
    assert_int_equal(lc_jws_verify(&es, LC_ALG_ES256K, es_pk, 33), 0);
}

/* ---- sign ---- */

static void test_sign_header_and_kid(void **state)
{
    (void)state;
    uint8_t sk[32], pk[33];
    s_es_sk(sk);
    s_hex(pk, 33, ES_PK_COMPRESSED);
    const char *kid = "dev\"1\\x/\xc3\xa9";
    const char *payload = "{\"seq\":7}";
    char *jws =
        lc_jws_sign(LC_ALG_ES256K, kid, (const uint8_t *)payload, strlen(payload), sk, sizeof sk);
    assert_non_null(jws);

    uint8_t header[256];
    size_t n;
    const char *dot = strchr(jws, '.');
    assert_non_null(dot);
    assert_int_equal(lc_b64url_decode(header, sizeof header, &n, jws, (size_t)(dot - jws)), 0);
    const char *want = "{\"alg\":\"ES256K\",\"kid\":\"dev\\\"1\\\\x/\xc3\xa9\"}";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(header, want, n);

    lc_jws_t parsed;
    assert_int_equal(s_parse(&parsed, jws), 0);
    assert_string_equal(parsed.kid, kid);
    assert_int_equal(parsed.payload_len, strlen(payload));
    assert_memory_equal(parsed.payload, payload, parsed.payload_len);
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, pk, 33), 0);
    free(jws);

    /* Empty payload is a valid JWS. */
    jws = lc_jws_sign(LC_ALG_ES256K, "k", NULL, 0, sk, sizeof sk);
    assert_non_null(jws);
    assert_int_equal(s_parse(&parsed, jws), 0);
    assert_int_equal(parsed.payload_len, 0);
    assert_int_equal(lc_jws_verify(&parsed, LC_ALG_ES256K, pk, 33), 0);
    free(jws);

    /* Header bytes for EdDSA with a kid. */
    uint8_t ed_sk[64];
    s_ed_sk(ed_sk);
    jws = lc_jws_sign(LC_ALG_EDDSA, "dev-1", (const uint8_t *)"{}", 2, ed_sk, sizeof ed_sk);
    assert_non_null(jws);
    dot = strchr(jws, '.');
    assert_int_equal(lc_b64url_decode(header, sizeof header, &n, jws, (size_t)(dot - jws)), 0);
    assert_int_equal(n, strlen("{\"alg\":\"EdDSA\",\"kid\":\"dev-1\"}"));
    assert_memory_equal(header, "{\"alg\":\"EdDSA\",\"kid\":\"dev-1\"}", n);
    free(jws);
}

static void test_sign_rejects(void **state)
{
    (void)state;
    uint8_t es_sk[32], ed_sk[64];
    s_es_sk(es_sk);
    s_ed_sk(ed_sk);
    const uint8_t *p = (const uint8_t *)"{}";

    char kid[LC_JWS_KID_MAX + 2];
    memset(kid, 'k', sizeof kid - 1);
    kid[LC_JWS_KID_MAX + 1] = '\0';
    assert_null(lc_jws_sign(LC_ALG_ES256K, kid, p, 2, es_sk, 32)); /* 129 bytes */
    kid[LC_JWS_KID_MAX] = '\0';
    char *jws = lc_jws_sign(LC_ALG_ES256K, kid, p, 2, es_sk, 32); /* 128 bytes */
    assert_non_null(jws);
    free(jws);
    assert_null(lc_jws_sign(LC_ALG_ES256K, "a\nb", p, 2, es_sk, 32));
    assert_null(lc_jws_sign(LC_ALG_ES256K, "bad\xff", p, 2, es_sk, 32)); /* not UTF-8 */

    assert_null(lc_jws_sign(LC_ALG_NONE, NULL, p, 2, es_sk, 32));
    assert_null(lc_jws_sign(LC_ALG_ES256K, NULL, p, 2, es_sk, 31));
    assert_null(lc_jws_sign(LC_ALG_ES256K, NULL, p, 2, ed_sk, 64));
    assert_null(lc_jws_sign(LC_ALG_EDDSA, NULL, p, 2, ed_sk, 32));
    assert_null(lc_jws_sign(LC_ALG_ES256K, NULL, p, 2, NULL, 32));
    assert_null(lc_jws_sign(LC_ALG_ES256K, NULL, NULL, 2, es_sk, 32));
    /* secp256k1 secret keys 0 and n are invalid. */
    uint8_t zero[32] = {0};
    assert_null(lc_jws_sign(LC_ALG_ES256K, NULL, p, 2, zero, 32));
    assert_null(lc_jws_sign(LC_ALG_ES256K, NULL, p, 2, s_order, 32));
    /* An Ed25519 secret key whose public half does not match its seed. */
    ed_sk[40] ^= 0x01;
    assert_null(lc_jws_sign(LC_ALG_EDDSA, NULL, p, 2, ed_sk, 64));
}

static void test_keypair_generate(void **state)
{
    (void)state;
    const lc_alg_t algs[] = {LC_ALG_EDDSA, LC_ALG_ES256K};
    for (size_t i = 0; i < LC_ARRAY_LEN(algs); i++) {
        uint8_t sk[64], pk[33], sk2[64], pk2[33];
        size_t sk_len = 0, pk_len = 0, sk2_len = 0, pk2_len = 0;
        assert_int_equal(lc_keypair_generate(algs[i], sk, &sk_len, pk, &pk_len), 0);
        assert_int_equal(lc_keypair_generate(algs[i], sk2, &sk2_len, pk2, &pk2_len), 0);
        if (algs[i] == LC_ALG_EDDSA) {
            assert_int_equal(sk_len, LC_ED25519_SK_LEN);
            assert_int_equal(pk_len, LC_ED25519_PK_LEN);
        } else {
            assert_int_equal(sk_len, LC_SECP256K1_SK_LEN);
            assert_int_equal(pk_len, LC_SECP256K1_PK_LEN);
            assert_true(pk[0] == 0x02 || pk[0] == 0x03);
        }
        assert_memory_not_equal(sk, sk2, sk_len);
        assert_memory_not_equal(pk, pk2, pk_len);

        /* The public key survives its own canonical parse unchanged. */
        char hex[2 * 33 + 1];
        uint8_t parsed_pk[33];
        size_t parsed_len;
        assert_int_equal(lc_hex_encode(hex, sizeof hex, pk, pk_len), 0);
        assert_int_equal(
            lc_pubkey_parse(parsed_pk, sizeof parsed_pk, &parsed_len, algs[i], hex, strlen(hex)),
            0);
        assert_int_equal(parsed_len, pk_len);
        assert_memory_equal(parsed_pk, pk, pk_len);

        char *jws = lc_jws_sign(algs[i], "gen", (const uint8_t *)"{\"seq\":1}", 9, sk, sk_len);
        assert_non_null(jws);
        lc_jws_t t;
        assert_int_equal(s_parse(&t, jws), 0);
        assert_int_equal(lc_jws_verify(&t, algs[i], pk, pk_len), 0);
        assert_int_equal(lc_jws_verify(&t, algs[i], pk2, pk2_len), LC_ERR_SIGNATURE);
        free(jws);
    }
    uint8_t sk[64], pk[33];
    size_t a, b;
    assert_int_equal(lc_keypair_generate(LC_ALG_NONE, sk, &a, pk, &b), LC_ERR_INVALID);
    assert_int_equal(lc_keypair_generate(LC_ALG_EDDSA, NULL, &a, pk, &b), LC_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, so that the lazy initialisation really is raced. */
        cmocka_unit_test(test_concurrent_first_use),
        cmocka_unit_test(test_alg_names),
        cmocka_unit_test(test_pubkey_valid_canonical_only),
        cmocka_unit_test(test_rfc8037_jwk),
        cmocka_unit_test(test_rfc8037_verify),
        cmocka_unit_test(test_rfc8037_sign),
        cmocka_unit_test(test_eddsa_tamper),
        cmocka_unit_test(test_ed25519_pubkey_rejects),
        cmocka_unit_test(test_es256k_private_key_one),
        cmocka_unit_test(test_es256k_known_answer),
        cmocka_unit_test(test_es256k_pubkey_forms),
        cmocka_unit_test(test_es256k_tamper),
        cmocka_unit_test(test_es256k_high_s_refused),
        cmocka_unit_test(test_parse_structure_rejects),
        cmocka_unit_test(test_parse_header_rejects),
        cmocka_unit_test(test_parse_kid),
        cmocka_unit_test(test_parse_header_size),
        cmocka_unit_test(test_verify_misuse),
        cmocka_unit_test(test_sign_header_and_kid),
        cmocka_unit_test(test_sign_rejects),
        cmocka_unit_test(test_keypair_generate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
