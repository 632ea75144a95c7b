/* ch_anchorer.c: see ch_anchorer.h. */
#include "ch_anchorer.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>

#include "lc_log.h"
#include "lc_merkle.h"

struct ch_anchorer {
    ch_db_t *db;
    size_t anchor_max;
    uint64_t window_ms;
    ch_record_t *recs; /* anchor_max records, reused */
    uint8_t *leaves;
    size_t built; /* recs[0..built) are the anchor the last build made */
    /* The open anchor: recs[0..open_n) are the records after open_after read so far. Dropped
     * (open_n = 0) when an anchor is built and after a failed tick. */
    int64_t open_after;
    size_t open_n;
    uint64_t open_stored_us; /* lc_mono_us() at which recs[0] was stored (from its age then) */
    lc_counter_t *anchors;
};

ch_anchorer_t *ch_anchorer_new(ch_db_t *db, size_t anchor_max, uint64_t window_ms,
                               lc_metrics_t *metrics)
{
    ch_anchorer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->recs = calloc(anchor_max, sizeof *self->recs);
    self->leaves = malloc(anchor_max * 32);
    if (!self->recs || !self->leaves) {
        ch_anchorer_destroy(&self);
        return NULL;
    }
    self->db = db;
    self->anchor_max = anchor_max;
    self->window_ms = window_ms;
    self->anchors =
        lc_metrics_counter(metrics, "lcore_chain_anchors_total", "Anchors created", NULL);
    return self;
}

void ch_anchorer_destroy(ch_anchorer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->recs);
    free((*self_p)->leaves);
    free(*self_p);
    *self_p = NULL;
}

void ch_anchorer_drop_open(ch_anchorer_t *self)
{
    self->open_n = 0;
}

/* Reads the records stored after the open anchor's last one into recs; the open anchor then holds
 * *got records. */
static int s_read_open(ch_anchorer_t *self, size_t *got)
{
    *got = self->open_n;
    if (*got == self->anchor_max)
        return 0;
    uint64_t age = 0;
    size_t more = 0;
    int64_t from = *got ? self->recs[*got - 1].arrival : self->open_after;
    int rc = ch_db_records_after(self->db, from, self->anchor_max - *got, self->recs + *got, &more,
                                 &age);
    if (rc < 0) {
        ch_anchorer_drop_open(self);
        return rc;
    }
    if (*got == 0 && more) {
        uint64_t now = lc_mono_us(), age_us = age * 1000;
        self->open_stored_us = now > age_us ? now - age_us : 0;
    }
    *got += more;
    return 0;
}

int ch_anchorer_build(ch_anchorer_t *self, int64_t after, int force, ch_anchor_t *anchor)
{
    anchor->n = 0;
    self->built = 0;
    if (force || self->open_after != after) {
        ch_anchorer_drop_open(self);
        self->open_after = after;
    }
    size_t got = 0;
    int rc = s_read_open(self, &got);
    if (rc < 0)
        return rc;
    self->open_n = force ? 0 : got; /* a forced read is not kept: the next one starts over */
    uint64_t age_ms = got ? (lc_mono_us() - self->open_stored_us) / 1000 : 0;
    if (got == 0 || (!force && got < self->anchor_max && age_ms < self->window_ms))
        return 0;
    ch_anchorer_drop_open(self); /* built: the next anchor starts after it (recs keep it to save) */
    for (size_t i = 0; i < got; i++)
        lc_merkle_leaf(self->leaves + 32 * i, self->recs[i].record_id, self->recs[i].envelope_hash);
    int err = 0;
    lc_merkle_t *tree = lc_merkle_new(self->leaves, got, &err);
    if (!tree)
        return err ? err : LC_ERR_NOMEM;
    lc_merkle_root(tree, anchor->root);
    lc_merkle_destroy(&tree);
    self->built = anchor->n = got;
    anchor->first_arrival = self->recs[0].arrival;
    anchor->last_arrival = self->recs[got - 1].arrival;
    return 0;
}

int ch_anchorer_save(ch_anchorer_t *self, const ch_anchor_t *anchor, const ch_replacement_t *repl,
                     int64_t *anchor_id)
{
    assert(anchor->n > 0 && anchor->n == self->built);
    int rc = ch_db_create_anchor(self->db, self->recs, self->leaves, anchor->n, anchor->root, repl,
                                 anchor_id);
    if (rc == 0) {
        lc_counter_inc(self->anchors);
        lc_info("anchor_created",
                "anchor_id=%" PRId64 " records=%zu first=%" PRId64 " supersedes=%" PRId64,
                *anchor_id, anchor->n, anchor->first_arrival, repl ? repl->supersedes : 0);
    }
    return rc;
}
