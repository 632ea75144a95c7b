/* lc_seal.h: the dual encryption of a reading (DESIGN.md "Encryption").
 *   stage 1: AES-256-GCM, key = per-device key derived from the version's aes master key:
 *            BLAKE2b-256(key = aes_master, msg = device_id, salt = 0, personal =
 * "lcore-dev-aes-v1") (libsodium's KDF construction, with the device id as input), 12-byte random
 * nonce. stage 2: XChaCha20-Poly1305-IETF, key = crypto_kdf_derive_from_key(id = key_version, ctx =
 * "lcseal02", xchacha_master), 24-byte random nonce, over (ct1 || tag1). associated data for both
 * stages: "lcore/v1" || record_id (32) || key_version (u32 BE). envelope (what envelope_hash
 * covers, SHA-256): 0x01 || key_version (u32 BE) || aes_nonce (12) || xchacha_nonce (24) ||
 * ciphertext Nonces come from a pool refilled by randombytes_buf in blocks, not a syscall per
 * record. AES-GCM uses libsodium's AES-NI code when the CPU has it, else BearSSL's constant-time
 * aes_ct64 + ghash_ctmul64. Used by lcore-crypto (seal) and lcore-cli (open).
 * A sealer is single-threaded (one per worker process); the ring must outlive it; plaintext and
 * ciphertext buffers must not overlap. lc_open may also return LC_ERR_INVALID (bad arguments) or
 * LC_ERR_NOMEM. */
#ifndef LC_SEAL_H
#define LC_SEAL_H

#include "lc_common.h"
#include "lc_keyring.h"

#define LC_AES_NONCE_LEN 12
#define LC_XCHACHA_NONCE_LEN 24
#define LC_SEAL_OVERHEAD 32 /* two 16-byte tags */
#define LC_ENVELOPE_HASH_LEN 32

typedef enum { LC_AES_AUTO = 0, LC_AES_AESNI = 1, LC_AES_PORTABLE = 2 } lc_aes_impl_t;

typedef struct lc_sealer lc_sealer_t;

typedef struct {
    uint32_t key_version;
    uint8_t aes_nonce[LC_AES_NONCE_LEN];
    uint8_t xchacha_nonce[LC_XCHACHA_NONCE_LEN];
    uint8_t envelope_hash[LC_ENVELOPE_HASH_LEN];
    size_t ciphertext_len; /* = plaintext_len + LC_SEAL_OVERHEAD */
} lc_sealed_t;

/* Borrowing view of the key ring. impl: AUTO picks AES-NI when available; AESNI fails
 * (NULL) when the CPU lacks it; PORTABLE forces the constant-time software path. */
lc_sealer_t *lc_sealer_new(const lc_keyring_t *ring, lc_aes_impl_t impl);
void lc_sealer_destroy(lc_sealer_t **self_p);
const char *lc_sealer_aes_impl(const lc_sealer_t *self); /* "aesni" | "bearssl-ct64" */

/* Seals plaintext with the newest key version. ciphertext must hold plaintext_len +
 * LC_SEAL_OVERHEAD bytes. Returns 0 or a negative error. */
int lc_seal(lc_sealer_t *self, lc_sealed_t *out, uint8_t *ciphertext, const uint8_t record_id[32],
            const char *device_id, size_t device_id_len, const uint8_t *plaintext,
            size_t plaintext_len) LC_WUR;

/* Opens a sealed record. plaintext must hold ciphertext_len - LC_SEAL_OVERHEAD bytes.
 * Returns 0, LC_ERR_NOTFOUND (key version not in ring) or LC_ERR_SIGNATURE (any tag fails,
 * e.g. the ciphertext was moved to another record). */
int lc_open(lc_sealer_t *self, uint8_t *plaintext, const uint8_t record_id[32],
            const char *device_id, size_t device_id_len, uint32_t key_version,
            const uint8_t aes_nonce[LC_AES_NONCE_LEN],
            const uint8_t xchacha_nonce[LC_XCHACHA_NONCE_LEN], const uint8_t *ciphertext,
            size_t ciphertext_len) LC_WUR;

/* SHA-256 (nettle) of the canonical envelope; used by the sealer, the store checks and lcore-cli.
 */
void lc_envelope_hash(uint8_t out[LC_ENVELOPE_HASH_LEN], uint32_t key_version,
                      const uint8_t aes_nonce[LC_AES_NONCE_LEN],
                      const uint8_t xchacha_nonce[LC_XCHACHA_NONCE_LEN], const uint8_t *ciphertext,
                      size_t ciphertext_len);

#endif
