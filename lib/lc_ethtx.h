/* lc_ethtx.h: EIP-1559 (type 0x02) transactions, signed with libsecp256k1, for the chain relayer
 * that anchors Merkle roots (DESIGN.md "Chain commitment"). Owns:
 *   - lc_ethtx_t, a transaction with an empty access list, and its encodings:
 *       signing hash = keccak256(0x02 || rlp([chain_id, nonce, max_priority_fee_per_gas,
 *                                  max_fee_per_gas, gas_limit, to, value, data, access_list]))
 *       raw          = 0x02 || rlp([... the same nine ..., y_parity, r, s])
 *       tx hash      = keccak256(raw)
 *     with every integer minimal big-endian (0 is the empty string) and `to` empty for a
 *     contract creation;
 *   - lc_ethtx_signer_t, the opaque signer: the secret key in sodium_malloc'd read-only memory,
 *     wiped on destroy; RFC 6979 nonces and low-S signatures as libsecp256k1 makes them;
 *   - decoding a raw transaction back and recovering its sender;
 *   - addresses (keccak256(X || Y)[12..32]) and their EIP-55 mixed-case spelling;
 *   - lc_u256_t, a 256-bit unsigned integer (fees and value may exceed 64 bits on some chains).
 * Nothing here logs or aborts on input from outside (RPC answers, stored transactions). */
#ifndef LC_ETHTX_H
#define LC_ETHTX_H

#include "lc_common.h"

#include <stdbool.h>

#define LC_ETH_ADDR_LEN 20
#define LC_ETH_ADDR_HEX_LEN 42 /* "0x" + 40 hex digits, without the NUL */
#define LC_ETH_HASH_LEN 32
#define LC_ETH_SECRET_LEN 32
#define LC_ETHTX_TYPE_EIP1559 0x02
#define LC_U256_LEN 32
#define LC_U256_HEX_MAX 66 /* "0x" + 64 hex digits, without the NUL */

/* 256-bit unsigned integer, big-endian. */
typedef struct {
    uint8_t be[LC_U256_LEN];
} lc_u256_t;

void lc_u256_from_u64(lc_u256_t *out, uint64_t v);
/* LC_ERR_TOOBIG if v does not fit in 64 bits. */
int lc_u256_to_u64(uint64_t *out, const lc_u256_t *v) LC_WUR;
/* Decimal digits ("20000000000"), or "0x" (or "0X") and hex digits of either case. No sign, no
 * spaces. LC_ERR_INVALID on a bad spelling, LC_ERR_TOOBIG above 2^256 - 1 (leading zeros are
 * allowed and do not count). */
int lc_u256_parse(lc_u256_t *out, const char *text, size_t len) LC_WUR;
/* As a JSON-RPC quantity: "0x" and minimal lowercase hex ("0x0" for zero), NUL-terminated.
 * out_cap >= LC_U256_HEX_MAX + 1 always suffices. Returns 0 or LC_ERR_TOOBIG. */
int lc_u256_format_hex(char *out, size_t out_cap, const lc_u256_t *v);
/* <0, 0, >0 like memcmp. */
int lc_u256_cmp(const lc_u256_t *a, const lc_u256_t *b);

typedef struct {
    uint64_t chain_id;
    uint64_t nonce;
    lc_u256_t max_priority_fee_per_gas;
    lc_u256_t max_fee_per_gas;
    uint64_t gas_limit;
    bool has_to; /* false: contract creation (to is encoded as the empty string) */
    uint8_t to[LC_ETH_ADDR_LEN];
    lc_u256_t value;
    const uint8_t *data; /* borrowed call data; may be NULL when data_len is 0 */
    size_t data_len;
} lc_ethtx_t;

typedef struct {
    uint8_t y_parity; /* 0 or 1: the parity of R's y coordinate */
    uint8_t r[32];
    uint8_t s[32];
} lc_ethtx_sig_t;

/* The hash the sender signs. Returns 0, LC_ERR_INVALID (data NULL with data_len > 0) or
 * LC_ERR_NOMEM. */
int lc_ethtx_signing_hash(uint8_t out[LC_ETH_HASH_LEN], const lc_ethtx_t *tx) LC_WUR;
/* The raw signed transaction, as eth_sendRawTransaction takes it. *raw is malloc'd and belongs
 * to the caller (free()). Returns 0, LC_ERR_INVALID or LC_ERR_NOMEM. */
int lc_ethtx_encode_signed(uint8_t **raw, size_t *raw_len, const lc_ethtx_t *tx,
                           const lc_ethtx_sig_t *sig) LC_WUR;
/* keccak256(raw): the transaction hash nodes and explorers know it by. */
void lc_ethtx_hash(uint8_t out[LC_ETH_HASH_LEN], const uint8_t *raw, size_t raw_len);

/* Parses a raw signed type-2 transaction. tx->data points into raw (borrowed). Returns 0,
 * LC_ERR_INVALID (not type 2, malformed or non-canonical RLP, wrong field count or size) or
 * LC_ERR_UNSUPPORTED (a non-empty access list). */
int lc_ethtx_decode(lc_ethtx_t *tx, lc_ethtx_sig_t *sig, const uint8_t *raw, size_t raw_len) LC_WUR;
/* The address whose key made sig over hash. Returns 0 or LC_ERR_SIGNATURE (r or s out of range,
 * s above n/2 as EIP-2 forbids, y_parity not 0/1, or no key recovers). */
int lc_ethtx_recover(uint8_t from[LC_ETH_ADDR_LEN], const uint8_t hash[LC_ETH_HASH_LEN],
                     const lc_ethtx_sig_t *sig) LC_WUR;
/* Decode, signing hash and recover in one: the sender of a raw transaction. */
int lc_ethtx_sender(uint8_t from[LC_ETH_ADDR_LEN], const uint8_t *raw, size_t raw_len) LC_WUR;

typedef struct lc_ethtx_signer lc_ethtx_signer_t;

/* Copies the 32-byte secret key into guarded memory (the caller wipes its own copy). NULL on
 * error with *err (if not NULL) set: LC_ERR_INVALID (zero or not below the curve order),
 * LC_ERR_NOMEM or LC_ERR_UNAVAILABLE (crypto libraries failed to initialise). */
lc_ethtx_signer_t *lc_ethtx_signer_new(const uint8_t secret[LC_ETH_SECRET_LEN], int *err);
void lc_ethtx_signer_destroy(lc_ethtx_signer_t **self_p);
/* The signer's address (20 bytes, borrowed, lives as long as the signer). */
const uint8_t *lc_ethtx_signer_address(const lc_ethtx_signer_t *self);
/* Signs a 32-byte hash. Returns 0 or LC_ERR_INVALID. */
int lc_ethtx_signer_sign_hash(const lc_ethtx_signer_t *self, lc_ethtx_sig_t *sig,
                              const uint8_t hash[LC_ETH_HASH_LEN]) LC_WUR;
/* Signs tx: *raw (malloc'd, the caller's) is ready for eth_sendRawTransaction and tx_hash
 * (may be NULL) receives its hash. Returns 0, LC_ERR_INVALID or LC_ERR_NOMEM. */
int lc_ethtx_signer_sign(const lc_ethtx_signer_t *self, uint8_t **raw, size_t *raw_len,
                         uint8_t tx_hash[LC_ETH_HASH_LEN], const lc_ethtx_t *tx) LC_WUR;

/* The address of a secret key. Returns 0, LC_ERR_INVALID or LC_ERR_UNAVAILABLE. */
int lc_eth_address_from_secret(uint8_t out[LC_ETH_ADDR_LEN],
                               const uint8_t secret[LC_ETH_SECRET_LEN]) LC_WUR;
/* "0x" + the EIP-55 checksummed spelling, NUL-terminated. */
void lc_eth_address_format(char out[LC_ETH_ADDR_HEX_LEN + 1], const uint8_t addr[LC_ETH_ADDR_LEN]);
/* 40 hex digits with an optional "0x". All-lowercase or all-uppercase is taken as it is; mixed
 * case must be the EIP-55 checksum, else LC_ERR_INVALID (a mistyped address is refused). */
int lc_eth_address_parse(uint8_t out[LC_ETH_ADDR_LEN], const char *text, size_t len) LC_WUR;

#endif
