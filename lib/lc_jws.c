/* lc_jws.c: JWS compact serialization for device readings (RFC 7515, RFC 8037, RFC 8812).
 * Parse and verify run on the gateway's hot path for input straight from devices: they never
 * abort and never re-serialise; the signature is checked over the received "header.payload"
 * bytes. The only heap use is jansson's parse of the protected header (at most 1 KiB).
 * Sign, key parsing and key generation serve lcore-cli, lcore-sim and device registration. */
#include "lc_secp.h"
#include "lc_jws.h"

#include "lc_codec.h"
#include "lc_log.h"

#include <jansson.h>
#include <nettle/sha2.h>
#include <secp256k1.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define S_HEADER_MAX 1024 /* decoded protected header, bytes */
#define S_SIG_LEN 64      /* Ed25519 and ES256K (R || S) alike */
#define S_SECP_UNCOMPRESSED_LEN 65
#define S_SECP_COORD_LEN 32

/* The shared, read-only libsecp256k1 context (lc_secp: created once, libsodium initialised). */
static int s_crypto_ready(void)
{
    return lc_secp_context() ? 0 : LC_ERR_UNAVAILABLE;
}

static lc_alg_t s_alg_from_bytes(const char *name, size_t len)
{
    if (len == 5 && memcmp(name, "EdDSA", 5) == 0)
        return LC_ALG_EDDSA;
    if (len == 6 && memcmp(name, "ES256K", 6) == 0)
        return LC_ALG_ES256K;
    return LC_ALG_NONE;
}

const char *lc_alg_name(lc_alg_t alg)
{
    switch (alg) {
    case LC_ALG_EDDSA:
        return "EdDSA";
    case LC_ALG_ES256K:
        return "ES256K";
    default:
        return "none";
    }
}

lc_alg_t lc_alg_from_name(const char *name)
{
    if (name == NULL)
        return LC_ALG_NONE;
    return s_alg_from_bytes(name, strlen(name));
}

/* A kid is a device id: it ends up in logs and the database, so besides the length bound it
 * may not carry control characters (a newline would forge log lines). */
static int s_kid_ok(const char *kid, size_t len)
{
    if (len > LC_JWS_KID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

/* libsecp256k1 also accepts the "hybrid" 0x06/0x07 encoding, which no other implementation
 * produces; only compressed (0x02/0x03, 33 bytes) and uncompressed (0x04, 65 bytes) pass. */
static int s_secp_pubkey_load(secp256k1_pubkey *key, const uint8_t *raw, size_t len)
{
    int compressed = len == LC_SECP256K1_PK_LEN && (raw[0] == 0x02 || raw[0] == 0x03);
    int uncompressed = len == S_SECP_UNCOMPRESSED_LEN && raw[0] == 0x04;
    if (!compressed && !uncompressed)
        return 0;
    return secp256k1_ec_pubkey_parse(lc_secp_context(), key, raw, len);
}

/* Fills out->alg and out->kid from the decoded protected header. */
static int s_parse_header(lc_jws_t *out, const uint8_t *header, size_t header_len)
{
    int rc = LC_ERR_INVALID;
    json_error_t jerr;
    /* Duplicate members are refused: {"alg":"EdDSA","alg":"none"} must not mean either. */
    json_t *root = json_loadb((const char *)header, header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root))
        goto out;
    /* We understand no extension, so any "crit" list names one we would ignore (RFC 7515
     * §4.1.11 says reject). */
    if (json_object_get(root, "crit") != NULL)
        goto out;

    json_t *alg = json_object_get(root, "alg");
    if (!json_is_string(alg))
        goto out;
    out->alg = s_alg_from_bytes(json_string_value(alg), json_string_length(alg));
    if (out->alg == LC_ALG_NONE) {
        rc = LC_ERR_UNSUPPORTED;
        goto out;
    }

    json_t *kid = json_object_get(root, "kid");
    if (kid != NULL) {
        if (!json_is_string(kid))
            goto out;
        size_t kid_len = json_string_length(kid);
        if (!s_kid_ok(json_string_value(kid), kid_len))
            goto out;
        memcpy(out->kid, json_string_value(kid), kid_len);
        out->kid[kid_len] = '\0';
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int lc_jws_parse(lc_jws_t *out, const char *jws, size_t len, uint8_t *payload_buf,
                 size_t payload_cap)
{
    if (out == NULL)
        return LC_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (jws == NULL || len == 0)
        return LC_ERR_INVALID;

    int rc = LC_ERR_INVALID;
    /* Exactly three parts: header '.' payload '.' signature. */
    const char *dot1 = memchr(jws, '.', len);
    if (dot1 == NULL)
        goto out;
    const char *payload_b64 = dot1 + 1;
    const char *dot2 = memchr(payload_b64, '.', len - (size_t)(payload_b64 - jws));
    if (dot2 == NULL)
        goto out;
    const char *sig_b64 = dot2 + 1;
    size_t sig_b64_len = len - (size_t)(sig_b64 - jws);
    if (memchr(sig_b64, '.', sig_b64_len) != NULL)
        goto out;
    size_t header_b64_len = (size_t)(dot1 - jws);
    size_t payload_b64_len = (size_t)(dot2 - payload_b64);

    /* Cheap structural checks before the JSON parse. */
    if (sig_b64_len != LC_B64URL_LEN(S_SIG_LEN) || header_b64_len > LC_B64URL_LEN(S_HEADER_MAX))
        goto out;
    if (lc_b64url_decode(out->signature, sizeof out->signature, &out->signature_len, sig_b64,
                         sig_b64_len) != 0)
        goto out;

    uint8_t header[S_HEADER_MAX];
    size_t header_len;
    if (lc_b64url_decode(header, sizeof header, &header_len, jws, header_b64_len) != 0)
        goto out;
    rc = s_parse_header(out, header, header_len);
    if (rc != 0)
        goto out;

    rc =
        lc_b64url_decode(payload_buf, payload_cap, &out->payload_len, payload_b64, payload_b64_len);
    if (rc != 0)
        goto out;
    out->payload = payload_buf;
    out->signing_input = jws;
    out->signing_input_len = (size_t)(dot2 - jws);
out:
    if (rc != 0)
        memset(out, 0, sizeof *out); /* never leave a half-filled view to be trusted */
    return rc;
}

/* SHA-256 of an ES256K signing input (nettle: SHA-NI where the CPU has it, about 4x libsodium's
 * portable code on ~300-byte inputs). */
static void s_sha256(uint8_t out[SHA256_DIGEST_SIZE], const uint8_t *in, size_t len)
{
    struct sha256_ctx st;
    sha256_init(&st);
    sha256_update(&st, len, in);
    sha256_digest(&st, SHA256_DIGEST_SIZE, out);
}

static int s_es256k_verify(const lc_jws_t *jws, const uint8_t *public_key, size_t public_key_len)
{
    secp256k1_pubkey key;
    if (!s_secp_pubkey_load(&key, public_key, public_key_len))
        return LC_ERR_INVALID;

    secp256k1_ecdsa_signature sig;
    /* parse_compact fails when R or S is not below the group order. */
    if (!secp256k1_ecdsa_signature_parse_compact(lc_secp_context(), &sig, jws->signature))
        return LC_ERR_SIGNATURE;
    /* RFC 8812 / malleability: (R, n - S) is as valid as (R, S); we accept only the low-S
     * form, so a reading has exactly one valid signature encoding. normalize returns 1 when
     * the input was high-S. */
    if (secp256k1_ecdsa_signature_normalize(lc_secp_context(), NULL, &sig) != 0)
        return LC_ERR_SIGNATURE;

    uint8_t hash[SHA256_DIGEST_SIZE];
    s_sha256(hash, (const uint8_t *)jws->signing_input, jws->signing_input_len);
    return secp256k1_ecdsa_verify(lc_secp_context(), &sig, hash, &key) == 1 ? 0 : LC_ERR_SIGNATURE;
}

int lc_jws_verify(const lc_jws_t *jws, lc_alg_t alg, const uint8_t *public_key,
                  size_t public_key_len)
{
    if (jws == NULL || public_key == NULL || jws->signing_input == NULL ||
        jws->signature_len != S_SIG_LEN)
        return LC_ERR_INVALID;
    if (alg != LC_ALG_EDDSA && alg != LC_ALG_ES256K)
        return LC_ERR_INVALID;
    /* The device's registered algorithm decides, never the header (RFC 8725 §3.1): a reading
     * claiming another one does not authenticate. */
    if (jws->alg != alg)
        return LC_ERR_SIGNATURE;
    int rc = s_crypto_ready();
    if (rc != 0)
        return rc;

    if (alg == LC_ALG_EDDSA) {
        if (public_key_len != LC_ED25519_PK_LEN)
            return LC_ERR_INVALID;
        /* libsodium also refuses non-canonical S, small-order R and small-order keys. */
        return crypto_sign_verify_detached(jws->signature, (const uint8_t *)jws->signing_input,
                                           jws->signing_input_len, public_key) == 0
                   ? 0
                   : LC_ERR_SIGNATURE;
    }
    return s_es256k_verify(jws, public_key, public_key_len);
}

/* Writes the protected header {"alg":"<alg>"[,"kid":"<kid>"]} as compact JSON into buf. */
static int s_build_header(char *buf, size_t cap, size_t *len, lc_alg_t alg, const char *kid)
{
    int rc = LC_ERR_INVALID;
    json_t *header = json_object();
    if (header == NULL)
        return LC_ERR_NOMEM;
    if (json_object_set_new(header, "alg", json_string(lc_alg_name(alg))) != 0)
        goto out;
    if (kid != NULL && kid[0] != '\0') {
        /* Refuse what lc_jws_parse would refuse; json_string() also rejects invalid UTF-8. */
        if (!s_kid_ok(kid, strlen(kid)) ||
            json_object_set_new(header, "kid", json_string(kid)) != 0)
            goto out;
    }
    size_t n = json_dumpb(header, buf, cap, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (n == 0 || n > cap)
        goto out;
    *len = n;
    rc = 0;
out:
    json_decref(header);
    return rc;
}

/* An Ed25519 secret key in libsodium layout carries its public key; signing with a mismatched
 * one yields signatures that verify under neither key and can leak the scalar, so check it. */
static int s_ed25519_sk_consistent(const uint8_t *sk)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk2[crypto_sign_SECRETKEYBYTES];
    int ok = crypto_sign_seed_keypair(pk, sk2, sk) == 0 &&
             sodium_memcmp(pk, sk + crypto_sign_SEEDBYTES, sizeof pk) == 0;
    sodium_memzero(sk2, sizeof sk2);
    return ok;
}

static int s_sign_input(uint8_t sig[S_SIG_LEN], lc_alg_t alg, const uint8_t *input, size_t len,
                        const uint8_t *secret_key)
{
    if (alg == LC_ALG_EDDSA)
        return crypto_sign_detached(sig, NULL, input, len, secret_key) == 0 ? 0 : LC_ERR_INVALID;

    uint8_t hash[SHA256_DIGEST_SIZE];
    s_sha256(hash, input, len);
    secp256k1_ecdsa_signature s;
    /* NULL nonce function: RFC 6979 deterministic nonces; the result is always low-S. */
    if (!secp256k1_ecdsa_sign(lc_secp_context(), &s, hash, secret_key, NULL, NULL))
        return LC_ERR_INVALID;
    secp256k1_ecdsa_signature_serialize_compact(lc_secp_context(), sig, &s);
    return 0;
}

char *lc_jws_sign(lc_alg_t alg, const char *kid, const uint8_t *payload, size_t payload_len,
                  const uint8_t *secret_key, size_t secret_key_len)
{
    if (secret_key == NULL || (payload == NULL && payload_len > 0) || s_crypto_ready() != 0)
        return NULL;
    if (alg == LC_ALG_EDDSA) {
        if (secret_key_len != LC_ED25519_SK_LEN || !s_ed25519_sk_consistent(secret_key))
            return NULL;
    } else if (alg == LC_ALG_ES256K) {
        if (secret_key_len != LC_SECP256K1_SK_LEN ||
            !secp256k1_ec_seckey_verify(lc_secp_context(), secret_key))
            return NULL;
    } else {
        return NULL;
    }

    char header[S_HEADER_MAX];
    size_t header_len;
    if (s_build_header(header, sizeof header, &header_len, alg, kid) != 0)
        return NULL;
    if (payload_len > SIZE_MAX / 4 - 2 * S_HEADER_MAX)
        return NULL;

    size_t header_b64_len = LC_B64URL_LEN(header_len);
    size_t payload_b64_len = LC_B64URL_LEN(payload_len);
    size_t sig_b64_len = LC_B64URL_LEN(S_SIG_LEN);
    size_t input_len = header_b64_len + 1 + payload_b64_len;
    char *jws = malloc(input_len + 1 + sig_b64_len + 1);
    if (jws == NULL)
        return NULL;

    /* Encode straight into the result and sign those bytes: what we sign is what we send. */
    char *p = jws;
    if (lc_b64url_encode(p, header_b64_len + 1, (const uint8_t *)header, header_len) != 0)
        goto fail;
    p += header_b64_len;
    *p++ = '.';
    if (lc_b64url_encode(p, payload_b64_len + 1, payload, payload_len) != 0)
        goto fail;
    p += payload_b64_len;
    *p++ = '.';

    uint8_t sig[S_SIG_LEN];
    if (s_sign_input(sig, alg, (const uint8_t *)jws, input_len, secret_key) != 0 ||
        lc_b64url_encode(p, sig_b64_len + 1, sig, sizeof sig) != 0)
        goto fail;
    return jws;
fail:
    free(jws);
    return NULL;
}

/* Decodes a base64url JWK member that must be exactly len bytes. */
static int s_jwk_bytes(uint8_t *out, size_t len, const json_t *jwk, const char *name)
{
    json_t *v = json_object_get(jwk, name);
    size_t n;
    if (!json_is_string(v) ||
        lc_b64url_decode(out, len, &n, json_string_value(v), json_string_length(v)) != 0 ||
        n != len)
        return 0;
    return 1;
}

static int s_jwk_member_is(const json_t *jwk, const char *name, const char *want)
{
    json_t *v = json_object_get(jwk, name);
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

/* Reads a public JWK (RFC 7517/8037/8812) into the raw encoding: Ed25519 x (32 bytes) or
 * 0x04 || x || y for secp256k1 (RFC 7518 §6.2.1: coordinates are full length). */
static int s_jwk_to_raw(uint8_t *raw, size_t *raw_len, lc_alg_t alg, const char *text,
                        size_t text_len)
{
    int rc = LC_ERR_INVALID;
    json_error_t jerr;
    json_t *jwk = json_loadb(text, text_len, JSON_REJECT_DUPLICATES, &jerr);
    if (jwk == NULL || !json_is_object(jwk))
        goto out;
    /* A private JWK is refused rather than silently stripped: registration must never be a
     * path by which device secrets reach our database or logs. */
    if (json_object_get(jwk, "d") != NULL)
        goto out;
    json_t *jwk_alg = json_object_get(jwk, "alg");
    if (jwk_alg != NULL && !s_jwk_member_is(jwk, "alg", lc_alg_name(alg)))
        goto out;

    if (alg == LC_ALG_EDDSA) {
        if (!s_jwk_member_is(jwk, "kty", "OKP") || !s_jwk_member_is(jwk, "crv", "Ed25519") ||
            !s_jwk_bytes(raw, LC_ED25519_PK_LEN, jwk, "x"))
            goto out;
        *raw_len = LC_ED25519_PK_LEN;
    } else {
        raw[0] = 0x04;
        if (!s_jwk_member_is(jwk, "kty", "EC") || !s_jwk_member_is(jwk, "crv", "secp256k1") ||
            !s_jwk_bytes(raw + 1, S_SECP_COORD_LEN, jwk, "x") ||
            !s_jwk_bytes(raw + 1 + S_SECP_COORD_LEN, S_SECP_COORD_LEN, jwk, "y"))
            goto out;
        *raw_len = S_SECP_UNCOMPRESSED_LEN;
    }
    rc = 0;
out:
    json_decref(jwk);
    return rc;
}

/* The canonical raw form of a raw key (Ed25519: 32 bytes; secp256k1: 33 or 65) into out (room
 * for LC_SECP256K1_PK_LEN bytes): 0, or LC_ERR_INVALID if it is not a valid key for alg. */
static int s_pubkey_canonical(uint8_t *out, size_t *out_len, lc_alg_t alg, const uint8_t *raw,
                              size_t raw_len)
{
    if (alg == LC_ALG_EDDSA) {
        /* A real Ed25519 key is a canonical point of the prime-order subgroup; this refuses
         * small-order and mixed-order points, for which signatures prove nothing. */
        if (raw_len != LC_ED25519_PK_LEN || !crypto_core_ed25519_is_valid_point(raw))
            return LC_ERR_INVALID;
        memcpy(out, raw, LC_ED25519_PK_LEN);
        *out_len = LC_ED25519_PK_LEN;
        return 0;
    }
    if (alg != LC_ALG_ES256K)
        return LC_ERR_INVALID;
    secp256k1_pubkey key; /* parse checks the point is on the curve */
    size_t n = LC_SECP256K1_PK_LEN;
    if (!s_secp_pubkey_load(&key, raw, raw_len) ||
        !secp256k1_ec_pubkey_serialize(lc_secp_context(), out, &n, &key, SECP256K1_EC_COMPRESSED))
        return LC_ERR_INVALID;
    *out_len = n;
    return 0;
}

int lc_pubkey_parse(uint8_t *out, size_t out_cap, size_t *out_len, lc_alg_t alg, const char *text,
                    size_t text_len)
{
    if (out_len != NULL)
        *out_len = 0;
    if (out == NULL || out_len == NULL || text == NULL)
        return LC_ERR_INVALID;
    size_t need = alg == LC_ALG_EDDSA    ? LC_ED25519_PK_LEN
                  : alg == LC_ALG_ES256K ? LC_SECP256K1_PK_LEN
                                         : 0;
    if (need == 0)
        return LC_ERR_INVALID;
    if (out_cap < need)
        return LC_ERR_TOOBIG;
    int rc = s_crypto_ready();
    if (rc != 0)
        return rc;

    uint8_t raw[S_SECP_UNCOMPRESSED_LEN];
    size_t raw_len = 0;
    size_t i = 0;
    while (i < text_len &&
           (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i < text_len && text[i] == '{')
        rc = s_jwk_to_raw(raw, &raw_len, alg, text, text_len);
    else
        rc = lc_hex_decode(raw, sizeof raw, &raw_len, text, text_len) == 0 ? 0 : LC_ERR_INVALID;
    if (rc != 0)
        return rc;

    return s_pubkey_canonical(out, out_len, alg, raw, raw_len);
}

int lc_pubkey_valid(lc_alg_t alg, const uint8_t *raw, size_t raw_len)
{
    uint8_t canonical[LC_SECP256K1_PK_LEN];
    size_t n = 0;
    return raw && s_crypto_ready() == 0 &&
           s_pubkey_canonical(canonical, &n, alg, raw, raw_len) == 0 && n == raw_len &&
           memcmp(canonical, raw, n) == 0;
}

int lc_keypair_generate(lc_alg_t alg, uint8_t *sk, size_t *sk_len, uint8_t *pk, size_t *pk_len)
{
    if (sk == NULL || sk_len == NULL || pk == NULL || pk_len == NULL)
        return LC_ERR_INVALID;
    int rc = s_crypto_ready();
    if (rc != 0)
        return rc;

    if (alg == LC_ALG_EDDSA) {
        if (crypto_sign_keypair(pk, sk) != 0)
            return LC_ERR_INVALID;
        *sk_len = LC_ED25519_SK_LEN;
        *pk_len = LC_ED25519_PK_LEN;
        return 0;
    }
    if (alg != LC_ALG_ES256K)
        return LC_ERR_INVALID;

    uint8_t candidate[LC_SECP256K1_SK_LEN];
    secp256k1_pubkey key;
    size_t n = LC_SECP256K1_PK_LEN;
    rc = LC_ERR_UNAVAILABLE;
    /* A uniform 32-byte string is a valid key except with probability ~2^-128; the bound only
     * stops a broken RNG from spinning forever. */
    for (int tries = 0; tries < 64; tries++) {
        randombytes_buf(candidate, sizeof candidate);
        if (secp256k1_ec_seckey_verify(lc_secp_context(), candidate)) {
            rc = 0;
            break;
        }
    }
    if (rc == 0 &&
        (!secp256k1_ec_pubkey_create(lc_secp_context(), &key, candidate) ||
         !secp256k1_ec_pubkey_serialize(lc_secp_context(), pk, &n, &key, SECP256K1_EC_COMPRESSED)))
        rc = LC_ERR_INVALID;
    if (rc == 0) {
        memcpy(sk, candidate, sizeof candidate);
        *sk_len = LC_SECP256K1_SK_LEN;
        *pk_len = n;
    }
    sodium_memzero(candidate, sizeof candidate);
    return rc;
}
