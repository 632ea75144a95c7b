/* lc_merkle.h: the Merkle tree over the records of one anchor (DESIGN.md "Chain commitment"), built
 * exactly as OpenZeppelin's StandardMerkleTree builds it, so that roots, proofs and node arrays
 * are the ones @openzeppelin/merkle-tree would produce and MerkleProof.verify accepts:
 *   leaf = keccak256(keccak256(abi.encode(bytes32 record_id, bytes32 envelope_hash)))
 *          (abi.encode of two bytes32 is their 64-byte concatenation);
 *   node = keccak256(min(a, b) || max(a, b))      (commutative: proofs carry no left/right bits);
 *   layout: leaves sorted by hash ascending, a complete binary tree in one array of 2n - 1 nodes,
 *          node i's children at 2i + 1 and 2i + 2, the sorted leaves at the end in reverse order
 *          (the smallest last), the root at 0. A proof lists the siblings from the leaf up.
 * One leaf gives root = leaf and an empty proof. Built by the anchorer; proofs are served to
 * clients and checked by lcore-cli and the anchor contract's verify(root, proof, leaf). */
#ifndef LC_MERKLE_H
#define LC_MERKLE_H

#include "lc_common.h"

#define LC_MERKLE_HASH_LEN 32
#define LC_MERKLE_MAX_PROOF 64 /* siblings; no tree that fits in memory is deeper */

typedef struct lc_merkle lc_merkle_t;

void lc_merkle_leaf(uint8_t out[LC_MERKLE_HASH_LEN], const uint8_t record_id[32],
                    const uint8_t envelope_hash[32]);
/* keccak256 of the pair in ascending byte order (OpenZeppelin's Hashes.commutativeKeccak256).
 * out may be a or b. */
void lc_merkle_hash_pair(uint8_t out[LC_MERKLE_HASH_LEN], const uint8_t a[LC_MERKLE_HASH_LEN],
                         const uint8_t b[LC_MERKLE_HASH_LEN]);

/* Builds the tree over n >= 1 leaf hashes (n * 32 contiguous bytes, in the caller's order; the
 * leaf index used below is the position in this array). NULL on error with *err (if not NULL)
 * set: LC_ERR_INVALID (n == 0), LC_ERR_TOOBIG or LC_ERR_NOMEM. */
lc_merkle_t *lc_merkle_new(const uint8_t *leaves, size_t n, int *err);
void lc_merkle_destroy(lc_merkle_t **self_p);

void lc_merkle_root(const lc_merkle_t *self, uint8_t out[LC_MERKLE_HASH_LEN]);
size_t lc_merkle_leaf_count(const lc_merkle_t *self);

/* The proof of leaf `index`: *proof_len siblings of 32 bytes into proof (room for proof_cap
 * siblings; LC_MERKLE_MAX_PROOF always suffices). Returns 0, LC_ERR_NOTFOUND (index >= n) or
 * LC_ERR_TOOBIG (proof_cap too small). */
int lc_merkle_proof(const lc_merkle_t *self, uint8_t *proof, size_t proof_cap, size_t *proof_len,
                    size_t index) LC_WUR;

/* The node array as StandardMerkleTree.dump() lists it ("tree"), and where leaf `index` sits in
 * it ("treeIndex"). lc_merkle_node returns 32 borrowed bytes, or NULL past the end;
 * lc_merkle_tree_index returns SIZE_MAX for index >= n. */
size_t lc_merkle_node_count(const lc_merkle_t *self);
const uint8_t *lc_merkle_node(const lc_merkle_t *self, size_t i);
size_t lc_merkle_tree_index(const lc_merkle_t *self, size_t index);

/* OpenZeppelin's MerkleProof.verify: folds hash_pair(computed, proof[i]) over the n siblings
 * starting from leaf and compares with root. Returns 0, or LC_ERR_SIGNATURE if they differ. */
int lc_merkle_verify(const uint8_t root[LC_MERKLE_HASH_LEN], const uint8_t leaf[LC_MERKLE_HASH_LEN],
                     const uint8_t *proof, size_t n) LC_WUR;

#endif
