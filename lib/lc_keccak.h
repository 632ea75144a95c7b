/* lc_keccak.h: Ethereum's Keccak-256 (the original Keccak submission: padding 0x01 ... 0x80, rate
 * 136 bytes), which is not FIPS 202 SHA3-256 (padding 0x06). The permutation is nettle's
 * nettle_sha3_permute; this module only does the sponge. Used by lc_ethtx (signing hash,
 * addresses, EIP-55), lc_merkle (leaves and nodes) and the chain relayer (function selectors).
 * Pure functions, no allocation; a context is plain memory the caller owns. */
#ifndef LC_KECCAK_H
#define LC_KECCAK_H

#include "lc_common.h"

#include <nettle/sha3.h>

#define LC_KECCAK256_LEN 32
#define LC_KECCAK256_RATE 136 /* (1600 - 2 * 256) / 8 */

typedef struct {
    struct sha3_state state;
    uint8_t block[LC_KECCAK256_RATE];
    size_t index; /* bytes buffered in block, < LC_KECCAK256_RATE */
} lc_keccak256_t;

/* One-shot: out = keccak256(in[0..len)). in may be NULL when len is 0. */
void lc_keccak256(uint8_t out[LC_KECCAK256_LEN], const uint8_t *in, size_t len);

/* Incremental: init, any number of updates, final. final wipes the context; init again to reuse. */
void lc_keccak256_init(lc_keccak256_t *ctx);
void lc_keccak256_update(lc_keccak256_t *ctx, const uint8_t *in, size_t len);
void lc_keccak256_final(lc_keccak256_t *ctx, uint8_t out[LC_KECCAK256_LEN]);

#endif
