/* ch_batcher.c: see ch_batcher.h. */
#include "ch_batcher.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>

#include "lc_log.h"
#include "lc_merkle.h"

struct ch_batcher {
    ch_db_t *db;
    size_t batch_max;
    uint64_t window_ms;
    ch_record_t *recs; /* batch_max records, reused */
    uint8_t *leaves;
    size_t built; /* recs[0..built) are the batch the last build made */
    /* The open batch: recs[0..open_n) are the records after open_after read so far. Dropped
     * (open_n = 0) when a batch is built and after a failed tick. */
    int64_t open_after;
    size_t open_n;
    uint64_t open_stored_us; /* lc_mono_us() at which recs[0] was stored (from its age then) */
    lc_counter_t *batches;
};

ch_batcher_t *ch_batcher_new(ch_db_t *db, size_t batch_max, uint64_t window_ms,
                             lc_metrics_t *metrics)
{
    ch_batcher_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->recs = calloc(batch_max, sizeof *self->recs);
    self->leaves = malloc(batch_max * 32);
    if (!self->recs || !self->leaves) {
        ch_batcher_destroy(&self);
        return NULL;
    }
    self->db = db;
    self->batch_max = batch_max;
    self->window_ms = window_ms;
    self->batches =
        lc_metrics_counter(metrics, "lcore_chain_batches_total", "Batches created", NULL);
    return self;
}

void ch_batcher_destroy(ch_batcher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->recs);
    free((*self_p)->leaves);
    free(*self_p);
    *self_p = NULL;
}

void ch_batcher_drop_open(ch_batcher_t *self)
{
    self->open_n = 0;
}

/* Reads the records stored after the open batch's last one into recs; the open batch then holds
 * *got records. */
static int s_read_open(ch_batcher_t *self, size_t *got)
{
    *got = self->open_n;
    if (*got == self->batch_max)
        return 0;
    uint64_t age = 0;
    size_t more = 0;
    int64_t from = *got ? self->recs[*got - 1].pk : self->open_after;
    int rc =
        ch_db_records_after(self->db, from, self->batch_max - *got, self->recs + *got, &more, &age);
    if (rc < 0) {
        ch_batcher_drop_open(self);
        return rc;
    }
    if (*got == 0 && more) {
        uint64_t now = lc_mono_us(), age_us = age * 1000;
        self->open_stored_us = now > age_us ? now - age_us : 0;
    }
    *got += more;
    return 0;
}

int ch_batcher_build(ch_batcher_t *self, int64_t after, int force, ch_batch_t *batch)
{
    batch->n = 0;
    self->built = 0;
    if (force || self->open_after != after) {
        ch_batcher_drop_open(self);
        self->open_after = after;
    }
    size_t got = 0;
    int rc = s_read_open(self, &got);
    if (rc < 0)
        return rc;
    self->open_n = force ? 0 : got; /* a forced read is not kept: the next one starts over */
    uint64_t age_ms = got ? (lc_mono_us() - self->open_stored_us) / 1000 : 0;
    if (got == 0 || (!force && got < self->batch_max && age_ms < self->window_ms))
        return 0;
    ch_batcher_drop_open(self); /* built: the next batch starts after it (recs keep it to save) */
    for (size_t i = 0; i < got; i++)
        lc_merkle_leaf(self->leaves + 32 * i, self->recs[i].record_id, self->recs[i].envelope_hash);
    int err = 0;
    lc_merkle_t *tree = lc_merkle_new(self->leaves, got, &err);
    if (!tree)
        return err ? err : LC_ERR_NOMEM;
    lc_merkle_root(tree, batch->root);
    lc_merkle_destroy(&tree);
    self->built = batch->n = got;
    batch->first_record = self->recs[0].pk;
    batch->last_record = self->recs[got - 1].pk;
    return 0;
}

int ch_batcher_save(ch_batcher_t *self, const ch_batch_t *batch, const ch_replacement_t *repl,
                    int64_t *batch_id)
{
    assert(batch->n > 0 && batch->n == self->built);
    int rc = ch_db_create_batch(self->db, self->recs, self->leaves, batch->n, batch->root, repl,
                                batch_id);
    if (rc == 0) {
        lc_counter_inc(self->batches);
        lc_info("batch_created",
                "batch_id=%" PRId64 " records=%zu first=%" PRId64 " supersedes=%" PRId64, *batch_id,
                batch->n, batch->first_record, repl ? repl->supersedes : 0);
    }
    return rc;
}
