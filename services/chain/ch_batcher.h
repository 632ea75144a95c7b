/* ch_batcher.h: forms the relayer's batches. Reads the stored records that no live batch holds,
 * in insertion order (ch_db), decides when a batch is due (LCORE_CHAIN_BATCH_MAX records, or its
 * oldest record waited LCORE_CHAIN_BATCH_WINDOW_MS), computes the leaves and the Merkle root
 * (lc_merkle, OpenZeppelin StandardMerkleTree layout) and saves the batch with its leaves. The
 * open batch's records are kept between calls, so that each reads only the records stored since
 * the last one (the store's single writer commits records in id order, which this relies on).
 * Owned by the relayer, single-threaded; called by ch_submit. */
#ifndef CH_BATCHER_H
#define CH_BATCHER_H

#include "ch_db.h"
#include "lc_metrics.h"

typedef struct ch_batcher ch_batcher_t;

/* A batch built and not saved yet: its records stay in the batcher until the next build. */
typedef struct {
    size_t n;                          /* records; 0: no batch is due */
    int64_t first_record, last_record; /* records.id of its first and last record */
    uint8_t root[32];
} ch_batch_t;

/* metrics: registers lcore_chain_batches_total. NULL when out of memory. */
ch_batcher_t *ch_batcher_new(ch_db_t *db, size_t batch_max, uint64_t window_ms,
                             lc_metrics_t *metrics);
void ch_batcher_destroy(ch_batcher_t **self_p);

/* The next batch: the records after record id `after`, all of those there are (up to the
 * maximum) when force, else only once the batch is full or its oldest record waited the window.
 * Without force the records read stay for the next call with the same `after`, which reads only
 * newer ones. */
int ch_batcher_build(ch_batcher_t *self, int64_t after, int force, ch_batch_t *batch) LC_WUR;
/* Saves the batch the last build made, with its leaves (ch_db_create_batch): with repl under
 * the reserved id *batch_id, together with the replacement that anchors it; without, under a
 * new id returned in *batch_id. */
int ch_batcher_save(ch_batcher_t *self, const ch_batch_t *batch, const ch_replacement_t *repl,
                    int64_t *batch_id) LC_WUR;
/* Forgets the open batch: the next build reads its records again (after a failed tick). */
void ch_batcher_drop_open(ch_batcher_t *self);

#endif
