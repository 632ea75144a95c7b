/* ch_proof_cache.h: the Merkle trees of the anchors whose proofs were asked for lately, so that
 * a reader polling a device's records does not make the relayer read and hash every leaf of
 * every anchor those records are in, for every page. Anchor id -> lc_merkle_t, least recently
 * used first out, bounded by the number of leaves held (a tree holds about 72 bytes a leaf).
 * It trusts nothing about the id: ch_db checks a tree against the anchor's row before each use.
 * Owned by one ch_db_t, used by the thread that owns that (no locking). */
#ifndef CH_PROOF_CACHE_H
#define CH_PROOF_CACHE_H

#include "lc_common.h"
#include "lc_merkle.h"

typedef struct ch_proof_cache ch_proof_cache_t;

/* A cache of at most max_leaves leaves (0: keeps nothing). NULL when out of memory. */
ch_proof_cache_t *ch_proof_cache_new(size_t max_leaves);
void ch_proof_cache_destroy(ch_proof_cache_t **self_p);

/* A new bound; the least recently used trees go until the cache is within it. */
void ch_proof_cache_set_max(ch_proof_cache_t *self, size_t max_leaves);
/* The tree held for anchor_id (now the most recently used), or NULL. Borrowed: valid until the
 * next ch_proof_cache_put, _drop or _set_max. */
const lc_merkle_t *ch_proof_cache_get(ch_proof_cache_t *self, int64_t anchor_id);
/* Takes *tree (and nulls it) as anchor_id's, replacing any held for that id; the least recently
 * used trees go to make room. A tree larger than the bound alone is not kept. */
void ch_proof_cache_put(ch_proof_cache_t *self, int64_t anchor_id, lc_merkle_t **tree);
/* Forgets anchor_id's tree, if held. */
void ch_proof_cache_drop(ch_proof_cache_t *self, int64_t anchor_id);
/* Leaves held now, and trees. */
size_t ch_proof_cache_leaves(const ch_proof_cache_t *self);
size_t ch_proof_cache_trees(const ch_proof_cache_t *self);

#endif
