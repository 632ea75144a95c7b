/* lc_abi.h: the anchor contract's ABI (contracts/LcoreAnchor.sol; selectors and topics in
 * contracts/selectors.txt, pinned by tests/e2e/test_contract.py): the call data the relayer and
 * lcore-cli send, and strict decoding of what the contract's views return. Pure functions, no
 * state; used by the chain relayer and lcore-cli. */
#ifndef LC_ABI_H
#define LC_ABI_H

#include <stdbool.h>

#include "lc_common.h"

/* The contract's ABI calls an anchor's id batchId (its on-chain name, kept); the C code says
 * anchor_id. topic0 of the contract's event for an anchor is the Keccak-256 of this signature:
 * Anchored(uint64 indexed batchId, bytes32 indexed root, uint32 count). */
#define LC_ABI_ANCHORED_EVENT "Anchored(uint64,bytes32,uint32)"

#define LC_ABI_ANCHOR_LEN 100     /* anchor(uint64,bytes32,uint32) call data */
#define LC_ABI_ANCHORS_LEN 36     /* anchors(bytes32) call data */
#define LC_ABI_SET_RELAYER_LEN 36 /* setRelayer(address) call data */
#define LC_ABI_RELAYER_LEN 4      /* relayer() call data */

/* What anchors(root) returns: the facts the contract keeps about a root. count 0: the root was
 * never anchored (every field is 0 then); an anchored root has count >= 1 and block_number >= 1. */
typedef struct {
    uint64_t anchor_id; /* the ABI's batchId */
    uint32_t count;
    uint64_t block_number;
    uint64_t timestamp;
} lc_abi_anchor_t;

/* v as one ABI word: 32 bytes, big-endian (a uint argument, or an indexed uint event topic). */
void lc_abi_word(uint8_t word[32], uint64_t v);
/* anchor(uint64 batchId, bytes32 root, uint32 count): selector 0xa149a214, then the three
 * arguments as 32-byte words. */
void lc_abi_anchor(uint8_t out[LC_ABI_ANCHOR_LEN], uint64_t anchor_id, const uint8_t root[32],
                   uint32_t count);
/* anchors(bytes32 root): selector 0xb01b6d53, then the root. */
void lc_abi_anchors(uint8_t out[LC_ABI_ANCHORS_LEN], const uint8_t root[32]);
/* Decodes anchors()'s return data (four words). LC_ERR_INVALID when it is not 128 bytes, a value
 * does not fit its type, or the facts contradict themselves (count 0 with anything else set, or
 * an anchor without a block): what a contract other than LcoreAnchor would answer. */
int lc_abi_anchors_decode(lc_abi_anchor_t *out, const uint8_t *ret, size_t len) LC_WUR;
/* verify(bytes32 root, bytes32[] proof, bytes32 leaf) with the n 32-byte siblings of proof:
 * selector 0x0a02831c. Returns malloc'd call data (caller frees) of *len bytes, NULL when out of
 * memory. */
uint8_t *lc_abi_verify(const uint8_t root[32], const uint8_t *proof, size_t n,
                       const uint8_t leaf[32], size_t *len);
/* Decodes a bool return value (one word, 0 or 1). LC_ERR_INVALID otherwise. */
int lc_abi_bool_decode(bool *out, const uint8_t *ret, size_t len) LC_WUR;
/* setRelayer(address) (owner only): selector 0x6548e9bc, then the address as a word. */
void lc_abi_set_relayer(uint8_t out[LC_ABI_SET_RELAYER_LEN], const uint8_t relayer[20]);
/* relayer(): selector 0x8406c079. */
void lc_abi_relayer(uint8_t out[LC_ABI_RELAYER_LEN]);
/* Decodes an address return value (one word, 12 zero bytes). LC_ERR_INVALID otherwise. */
int lc_abi_address_decode(uint8_t out[20], const uint8_t *ret, size_t len) LC_WUR;
/* "NotOwner" or "NotRelayer" when revert data starts with that error's selector, else NULL. */
const char *lc_abi_error_name(const uint8_t *data, size_t len);

#endif
