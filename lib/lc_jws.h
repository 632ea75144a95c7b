/* lc_jws.h: JWS compact serialization (RFC 7515) for device readings: parse, verify, sign.
 * Algorithms: EdDSA (Ed25519, RFC 8037, libsodium) and ES256K (RFC 8812, libsecp256k1: ECDSA
 * over SHA-256 of the signing input, 64-byte R||S, high-S refused).
 * The signature is checked over the exact received bytes "header.payload": nothing is
 * re-serialised. Called by the gateway (verify), lcore-cli and lcore-sim (sign). */
#ifndef LC_JWS_H
#define LC_JWS_H

#include "lc_common.h"

typedef enum { LC_ALG_NONE = 0, LC_ALG_EDDSA = 1, LC_ALG_ES256K = 2 } lc_alg_t;

#define LC_ED25519_PK_LEN 32
#define LC_ED25519_SK_LEN 64   /* libsodium layout: seed || public key */
#define LC_SECP256K1_PK_LEN 33 /* compressed */
#define LC_SECP256K1_SK_LEN 32
#define LC_JWS_KID_MAX 128

/* Parsed view of a compact JWS. Pointers borrow from the input buffer, except `payload`, which
 * points into the caller-supplied decode buffer. */
typedef struct {
    lc_alg_t alg;
    char kid[LC_JWS_KID_MAX + 1]; /* NUL-terminated; empty if the header has none */
    const char *signing_input;    /* "header.payload" as received */
    size_t signing_input_len;
    const uint8_t *payload; /* base64url-decoded payload bytes */
    size_t payload_len;
    uint8_t signature[64];
    size_t signature_len;
} lc_jws_t;

/* Parses `jws` (len bytes, need not be NUL-terminated). The decoded payload is written into
 * payload_buf (payload_cap bytes). Rejects: not three parts, bad base64url, header not a JSON
 * object, alg missing/unknown/"none", crit present, signature not 64 bytes.
 * Returns 0, LC_ERR_INVALID, LC_ERR_UNSUPPORTED (alg) or LC_ERR_TOOBIG (payload_cap). */
int lc_jws_parse(lc_jws_t *out, const char *jws, size_t len, uint8_t *payload_buf,
                 size_t payload_cap) LC_WUR;

/* Verifies a parsed JWS against a raw public key (Ed25519: 32 bytes; secp256k1: 33 compressed
 * or 65 uncompressed). alg must match. Returns 0 or LC_ERR_SIGNATURE / LC_ERR_INVALID. */
int lc_jws_verify(const lc_jws_t *jws, lc_alg_t alg, const uint8_t *public_key,
                  size_t public_key_len) LC_WUR;

/* Signs: builds the compact JWS for header {"alg":...,"kid":kid} and the given payload bytes.
 * Ed25519 secret key: 64 bytes (libsodium layout); secp256k1: 32 bytes (RFC 6979 nonces,
 * low-S). Returns a malloc'd NUL-terminated string (caller frees) or NULL. */
char *lc_jws_sign(lc_alg_t alg, const char *kid, const uint8_t *payload, size_t payload_len,
                  const uint8_t *secret_key, size_t secret_key_len);

/* Public key handling. Parses a device public key given as hex (Ed25519 32 bytes; secp256k1 33
 * or 65 bytes) or as a JWK JSON object text (OKP/Ed25519 "x"; EC/secp256k1 "x","y"). Writes the
 * canonical raw form (Ed25519: 32 bytes; secp256k1: 33 bytes compressed) and returns 0, or
 * LC_ERR_INVALID if the key is malformed or not on the curve. */
int lc_pubkey_parse(uint8_t *out, size_t out_cap, size_t *out_len, lc_alg_t alg, const char *text,
                    size_t text_len) LC_WUR;

/* 1 when raw (raw_len bytes) is a device public key in its canonical raw form for alg (what
 * lc_pubkey_parse writes): the store checks registrations that arrive over ZeroMQ with it. */
int lc_pubkey_valid(lc_alg_t alg, const uint8_t *raw, size_t raw_len);

/* Key generation for tools: writes the secret and public key (canonical raw forms). */
int lc_keypair_generate(lc_alg_t alg, uint8_t *sk, size_t *sk_len, uint8_t *pk,
                        size_t *pk_len) LC_WUR;

const char *lc_alg_name(lc_alg_t alg); /* "EdDSA", "ES256K" or "none" */
lc_alg_t lc_alg_from_name(const char *name);

#endif
