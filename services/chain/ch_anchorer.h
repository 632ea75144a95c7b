/* ch_anchorer.h: forms the relayer's anchors (sending them is ch_submit's). Reads the records
 * that no live anchor holds, in arrival order (ch_db), decides when an anchor is due
 * (LCORE_CHAIN_ANCHOR_MAX records, or its oldest record waited LCORE_CHAIN_ANCHOR_WINDOW_MS),
 * computes the leaves and the Merkle root (lc_merkle, OpenZeppelin StandardMerkleTree layout) and
 * saves the anchor with its leaves. The open anchor's records are kept between calls, so that each
 * reads only the records that arrived since the last one. That relies on arrival order being
 * commit order: chain_records is written only by the relayer's own feed (ch_feed.c), in the
 * relayer's single thread, so no record can commit behind one already read.
 * Owned by the relayer, single-threaded; called by ch_submit. */
#ifndef CH_ANCHORER_H
#define CH_ANCHORER_H

#include "ch_db.h"
#include "lc_metrics.h"

typedef struct ch_anchorer ch_anchorer_t;

/* An anchor built and not saved yet: its records stay in the anchorer until the next build. */
typedef struct {
    size_t n;                            /* records; 0: no anchor is due */
    int64_t first_arrival, last_arrival; /* of its first and last record */
    uint8_t root[32];
} ch_anchor_t;

/* metrics: registers lcore_chain_anchors_total. NULL when out of memory. */
ch_anchorer_t *ch_anchorer_new(ch_db_t *db, size_t anchor_max, uint64_t window_ms,
                               lc_metrics_t *metrics);
void ch_anchorer_destroy(ch_anchorer_t **self_p);

/* The next anchor: the records after arrival `after`, all of those there are (up to the
 * maximum) when force, else only once the anchor is full or its oldest record waited the window.
 * Without force the records read stay for the next call with the same `after`, which reads only
 * newer ones. */
int ch_anchorer_build(ch_anchorer_t *self, int64_t after, int force, ch_anchor_t *anchor) LC_WUR;
/* Saves the anchor the last build made, with its leaves (ch_db_create_anchor): with repl under
 * the reserved id *anchor_id, together with the replacement that anchors it; without, under a
 * new id returned in *anchor_id. */
int ch_anchorer_save(ch_anchorer_t *self, const ch_anchor_t *anchor, const ch_replacement_t *repl,
                     int64_t *anchor_id) LC_WUR;
/* Forgets the open anchor: the next build reads its records again (after a failed tick). */
void ch_anchorer_drop_open(ch_anchorer_t *self);

#endif
