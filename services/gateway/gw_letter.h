/* gw_letter.h: a reading's only copy, sealed by the gateway for the dead-letter table when the
 * crypto tier never sealed it (it was not acknowledged after its last delivery): the store
 * keeps it, and `lcore-cli dead-letters replay` sends it back to this gateway (events topic
 * "replay/<gateway_id>/"), which opens it and logs the reading again (DESIGN.md "Delivery
 * contract": nothing accepted is ever dropped).
 *
 * XChaCha20-Poly1305 under a key derived from the gateway key ring's master key of a version
 * (crypto_kdf, context "lcgwdlt1", id 1: apart from the log's key), associated data
 * "lcore/dead-letter/v1" || record_id || u32 key version (little-endian), so a sealed reading
 * moved to another record or version does not open. Sealed: nonce (24) || ciphertext || tag. */
#ifndef GW_LETTER_H
#define GW_LETTER_H

#include "lc_keyring.h"
#include "lc_record.h"
#include "lcore.pb-c.h"

#define GW_LETTER_OVERHEAD (24 + 16)

/* Seals len bytes (a packed Reading) under the ring's current key into *out (malloc'd,
 * len + GW_LETTER_OVERHEAD bytes), *version its key version. 0, LC_ERR_NOTFOUND (no key) or
 * LC_ERR_NOMEM. */
int gw_letter_seal(const lc_keyring_t *ring, const uint8_t record_id[LC_RECORD_ID_LEN],
                   const uint8_t *data, size_t len, uint8_t **out, size_t *out_len,
                   uint32_t *version) LC_WUR;

/* Opens what gw_letter_seal made into *out (sodium_malloc'd: free with sodium_free; it is a
 * plaintext reading). 0, LC_ERR_NOTFOUND (no such key version), LC_ERR_INVALID (too short, or
 * it does not authenticate) or LC_ERR_NOMEM. */
int gw_letter_open(const lc_keyring_t *ring, uint32_t version,
                   const uint8_t record_id[LC_RECORD_ID_LEN], const uint8_t *sealed, size_t len,
                   uint8_t **out, size_t *out_len) LC_WUR;

/* A replayed dead letter, as it comes back on the events topic (a packed DeadLetter): opened and
 * unpacked into the Reading it keeps, which must be the dead letter's record. 0 with *out (free
 * with gw_letter_reading_free: its JWS is plaintext), LC_ERR_INVALID (undecodable, does not open,
 * or another record), LC_ERR_NOTFOUND (no such key version) or LC_ERR_NOMEM. Pure: the relay's
 * replay path and the fuzz target call it. */
int gw_letter_reading(const lc_keyring_t *ring, const uint8_t *msg, size_t len,
                      Lcore__V1__Reading **out) LC_WUR;
void gw_letter_reading_free(Lcore__V1__Reading **r);

#endif
