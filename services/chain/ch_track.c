/* ch_track.c: following each live anchor transaction on chain. Unmined: the receipts of all its
 * attempts (any of them may land), a replacement when it is stuck, and whether another sender
 * took its nonce. Mined: its block still canonical (else a reorg: back to pending, sent again),
 * and its depth (confirmed, then finalized). See ch_relayer_impl.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_relayer_impl.h"
#include "lc_log.h"

#define CH_MAX_ATTEMPTS 64
/* Unmined anchors are rechecked this often: nodes count a block's nonces before its receipts. */
#define CH_UNMINED_RECHECK_US 100000ull

/* The signed attempts of one transaction (newest first) and the anchor each sends. */
typedef struct {
    uint8_t hashes[CH_MAX_ATTEMPTS][32];
    int64_t anchor_ids[CH_MAX_ATTEMPTS];
    size_t n;
} s_attempts_t;

static void s_observe_confirmed(ch_relayer_t *self, int64_t anchor_id)
{
    double stored[1024], received[1024];
    size_t n = 0;
    if (ch_db_anchor_ages(self->db, anchor_id, stored, received, LC_ARRAY_LEN(stored), &n) == 0)
        for (size_t i = 0; i < n; i++) {
            lc_histogram_observe(self->confirm_seconds, stored[i]);
            lc_histogram_observe(self->received_confirm_seconds, received[i]);
        }
}

/* The block of a mined anchor left the chain: back to unconfirmed, and its bytes sent again. */
static int s_reorged(ch_relayer_t *self, const ch_tx_t *tx)
{
    lc_warn("reorg_detected", "tx_id=%" PRId64 " anchor_id=%" PRId64 " block=%" PRIu64, tx->id,
            tx->anchor_id, tx->block_number);
    lc_counter_inc(self->reorgs);
    int rc = ch_db_mark_unmined(self->db, tx->id);
    if (rc < 0)
        return rc;
    (void)ch_submit_resend(self, tx->id, NULL);
    return 0;
}

static int s_confirmed(ch_relayer_t *self, const ch_tx_t *tx, uint64_t depth)
{
    int rc = ch_db_mark_depth(self->db, tx->id, CH_TX_CONFIRMED);
    if (rc < 0)
        return rc;
    self->age_at_us = 0; /* the unconfirmed age changes now */
    uint32_t count = 0;
    uint8_t root[32];
    if (ch_db_anchor_root(self->db, tx->anchor_id, root, &count) == 0)
        lc_counter_add(self->records, count);
    s_observe_confirmed(self, tx->anchor_id);
    lc_info("anchor_confirmed", "anchor_id=%" PRId64 " block=%" PRIu64 " depth=%" PRIu64,
            tx->anchor_id, tx->block_number, depth);
    ch_relayer_progressed(self);
    return 0;
}

/* A mined transaction: still in the canonical chain, and how deep. */
static int s_track_mined(ch_relayer_t *self, const ch_tx_t *tx, uint64_t head)
{
    uint8_t canon[32];
    lc_jsonrpc_error_t err;
    int rc = lc_ethrpc_get_block_hash(self->rpc, tx->block_number, canon, &err);
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    if (rc == LC_ERR_NOTFOUND || (rc == 0 && memcmp(canon, tx->block_hash, 32) != 0))
        return s_reorged(self, tx);
    uint64_t depth = head >= tx->block_number ? head - tx->block_number + 1 : 0;
    if (depth >= (uint64_t)self->cfg->finality)
        return ch_db_mark_depth(self->db, tx->id, CH_TX_FINALIZED);
    if (depth >= (uint64_t)self->cfg->confirmations && tx->state != CH_TX_CONFIRMED)
        return s_confirmed(self, tx, depth);
    return 0;
}

/* Attempt i's receipt shows it mined. */
static int s_mined(ch_relayer_t *self, const ch_tx_t *tx, const s_attempts_t *a, size_t i,
                   const lc_ethrpc_receipt_t *r)
{
    int rc = ch_db_mark_mined(self->db, tx->id, a->anchor_ids[i], a->hashes[i], r->block_number,
                              r->block_hash, r->gas_used, r->effective_gas_price);
    if (rc < 0)
        return rc;
    uint32_t count = 0;
    uint8_t root[32];
    lc_counter_add(self->gas_total, r->gas_used);
    lc_counter_add(self->fees_wei, r->gas_used * r->effective_gas_price);
    if (ch_db_anchor_root(self->db, a->anchor_ids[i], root, &count) == 0 && count)
        lc_gauge_set(self->gas_per_record, (double)r->gas_used / count);
    lc_info("anchor_mined",
            "tx_id=%" PRId64 " anchor_id=%" PRId64 " block=%" PRIu64 " gas_used=%" PRIu64
            " records=%u",
            tx->id, a->anchor_ids[i], r->block_number, r->gas_used, count);
    ch_relayer_progressed(self);
    return 0;
}

/* Attempt i's receipt shows it reverted. A revert can mean the anchor is on chain already, by
 * another transaction (the contract refuses a root twice, RootAlreadyAnchored): that one is
 * recorded first, so the anchor is not superseded under it. */
static int s_reverted(ch_relayer_t *self, const ch_tx_t *tx, const s_attempts_t *a, size_t i)
{
    int rc = ch_reconcile_if_anchored(self, a->anchor_ids[i]);
    if (rc == LC_ERR_UNAVAILABLE || rc == LC_ERR_NOTFOUND)
        return rc == LC_ERR_UNAVAILABLE ? rc : 0; /* settled in a later tick */
    lc_counter_inc(self->fatal);
    lc_error("anchor_reverted", "tx_id=%" PRId64 " anchor_id=%" PRId64, tx->id, a->anchor_ids[i]);
    return ch_db_mark_fatal(self->db, tx->id, "reverted on chain", 0);
}

/* The first attempt with a receipt, settled (mined or reverted). Returns 1 settled, 0 no receipt
 * of any attempt, or an error. */
static int s_settle_receipt(ch_relayer_t *self, const ch_tx_t *tx, const s_attempts_t *a)
{
    lc_jsonrpc_error_t err;
    for (size_t i = 0; i < a->n; i++) {
        lc_ethrpc_receipt_t r;
        int rc = lc_ethrpc_get_transaction_receipt(self->rpc, a->hashes[i], &r, &err);
        if (rc == LC_ERR_UNAVAILABLE)
            return rc;
        if (rc != 0)
            continue;
        rc = r.status ? s_mined(self, tx, a, i, &r) : s_reverted(self, tx, a, i);
        return rc < 0 ? rc : 1;
    }
    return 0;
}

/* Whether the contract holds any of the transaction's anchors (an attempt's root under that
 * attempt's anchor id), each asked once: 1 yes (reconciled, or soon: its event is not visible
 * yet), 0 none, or LC_ERR_UNAVAILABLE. */
static int s_any_on_chain(ch_relayer_t *self, const ch_tx_t *tx, const s_attempts_t *a)
{
    for (size_t i = 0; i < a->n; i++) {
        int seen = 0;
        for (size_t k = 0; k < i; k++)
            seen |= a->anchor_ids[k] == a->anchor_ids[i];
        if (seen)
            continue;
        int rc = ch_reconcile_if_anchored(self, a->anchor_ids[i]);
        if (rc == 1 || rc == LC_ERR_NOTFOUND)
            return 1;
        if (rc == LC_ERR_UNAVAILABLE)
            return rc;
        if (rc < 0) /* the settled nonce stands; a later gas estimate would still notice */
            lc_warn("anchor_check_failed", "tx_id=%" PRId64 " anchor_id=%" PRId64 " err=%s", tx->id,
                    a->anchor_ids[i], lc_strerror(rc));
    }
    return 0;
}

/* The nonce is used and no receipt of ours shows: not proof yet that another sender took it. A
 * node can count a block's nonces an instant before it serves the block's receipts (anvil does),
 * and across failover or a load balancer the receipts may come from a node some blocks behind.
 * Taking our own mined anchor for a stolen nonce sends its anchor again, which the contract
 * refuses forever (RootAlreadyAnchored). So: only once the nonce was used `confirmations` blocks
 * ago, and the contract holds none of this transaction's anchors. */
static int s_nonce_used(ch_relayer_t *self, const ch_tx_t *tx, uint64_t head, uint64_t mined_nonce,
                        const s_attempts_t *a)
{
    uint64_t depth = (uint64_t)self->cfg->confirmations, settled = 0;
    if (head < depth)
        return 0;
    lc_jsonrpc_error_t err;
    int rc =
        lc_ethrpc_get_transaction_count_at(self->rpc, self->from, head - depth, &settled, &err);
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    if (rc == 0 && settled <= tx->nonce)
        return 0; /* used in the last blocks: look again later */
    if ((rc = s_any_on_chain(self, tx, a)) != 0)
        return rc < 0 ? rc : 0; /* ours after all */
    lc_counter_inc(self->stolen);
    lc_warn("nonce_taken",
            "tx_id=%" PRId64 " nonce=%" PRIu64 " chain_nonce=%" PRIu64
            " (another sender used the relayer's key); the anchor is sent again",
            tx->id, tx->nonce, mined_nonce);
    self->nonce_synced = 0;
    return ch_db_mark_fatal(self->db, tx->id, "nonce used by another transaction", 1);
}

/* Not mined (yet): any of its attempts may have landed. The chain's nonce is read before the
 * receipts: if it is past ours and still no receipt of ours shows, another sender used the nonce
 * (read the other way round, a block mined in between looks like theft). */
static int s_track_unmined(ch_relayer_t *self, const ch_tx_t *tx, uint64_t head)
{
    uint64_t mined_nonce = 0;
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_get_transaction_count(self->rpc, self->from, LC_ETHRPC_BLOCK_LATEST, &mined_nonce,
                                        &err) < 0)
        return LC_ERR_UNAVAILABLE;
    s_attempts_t a;
    int rc = ch_db_attempt_hashes(self->db, tx->id, a.hashes, a.anchor_ids, CH_MAX_ATTEMPTS, &a.n);
    if (rc < 0)
        return rc;
    if ((rc = s_settle_receipt(self, tx, &a)) != 0)
        return rc < 0 ? rc : 0;
    if (mined_nonce > tx->nonce)
        return s_nonce_used(self, tx, head, mined_nonce, &a);
    if (tx->last_attempt_age_ms >= (uint64_t)self->cfg->bump_after_ms)
        return ch_submit_replace(self, tx);
    return 0;
}

/* The transaction in flight. */
static int s_track(ch_relayer_t *self, const ch_tx_t *tx, uint64_t head)
{
    int rc;
    /* Saved, maybe never sent (crash): send it now. */
    if (tx->state == CH_TX_IN_PROGRESS && (rc = ch_submit_resend(self, tx->id, NULL)) < 0)
        return rc;
    return tx->block_number ? s_track_mined(self, tx, head) : s_track_unmined(self, tx, head);
}

/* The unmined transactions wait for a replacement and the chain's next nonce (pool included) is
 * below the lowest of them: nothing of theirs can land until the nonces in between are used.
 * With none of ours in between (a nonce given up that a reorg freed), they are given up and their
 * anchors sent again from the chain's nonce. With ours in between, the database holds as mined
 * what the chain does not have (a reset chain, a reorg past finality): that is for the operator,
 * and nothing new is sent (gap_why, the relayer's readiness) instead of bumping fees forever. */
static int s_check_gap(ch_relayer_t *self, uint64_t lowest, size_t n)
{
    uint64_t next = 0, ours = 0;
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_get_transaction_count(self->rpc, self->from, LC_ETHRPC_BLOCK_PENDING, &next,
                                        &err) < 0)
        return LC_ERR_UNAVAILABLE;
    if (next >= lowest) {
        self->gap_why[0] = 0;
        return 0;
    }
    int rc = ch_db_count_nonces(self->db, self->from, next, lowest, &ours);
    if (rc < 0)
        return rc;
    if (!self->gap_why[0])
        lc_counter_inc(self->nonce_gaps);
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
    lc_log_limited(&limit, 600000, ours ? LC_LOG_ERROR : LC_LOG_WARN, "nonce_gap",
                   "chain_next_nonce=%" PRIu64 " lowest_unmined=%" PRIu64 " ours_between=%" PRIu64
                   " action=%s",
                   next, lowest, ours, ours ? "stop" : "send_again");
    if (ours) {
        snprintf(self->gap_why, sizeof self->gap_why,
                 "chain next %" PRIu64 " < lowest unmined %" PRIu64 ", %" PRIu64
                 " mined of ours between (chain lost them?)",
                 next, lowest, ours);
        return 0;
    }
    self->gap_why[0] = 0;
    self->nonce_synced = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (self->live[i].block_number == 0)
            rc = ch_db_mark_fatal(self->db, self->live[i].id, "nonce gap below it", 1);
    return rc;
}

int ch_track_all(ch_relayer_t *self, uint64_t head, int chain_moved)
{
    size_t n = 0;
    int rc = ch_db_live_txs(self->db, self->from, chain_moved, self->live, CH_MAX_LIVE, &n);
    if (rc < 0)
        return rc;
    self->tracked_writes = ch_db_writes(self->db);
    uint64_t now = lc_mono_us(), bump_us = (uint64_t)self->cfg->bump_after_ms * 1000;
    uint64_t stuck_at = 0;
    int unmined = 0;
    for (size_t i = 0; i < n; i++) {
        const ch_tx_t *tx = &self->live[i];
        if (tx->block_number == 0) { /* listed first */
            unmined++;
            uint64_t age_us = tx->last_attempt_age_ms * 1000;
            uint64_t at = age_us >= bump_us ? now : now + (bump_us - age_us);
            if (!stuck_at || at < stuck_at)
                stuck_at = at;
        } else if (!chain_moved) {
            continue;
        }
        if ((rc = s_track(self, tx, head)) < 0)
            return rc;
    }
    if (!unmined)
        self->gap_why[0] = 0;
    else if (stuck_at <= now && (rc = s_check_gap(self, self->live[0].nonce, n)) < 0)
        return rc;
    self->unmined = unmined;
    self->stuck_at_us = stuck_at;
    /* Unmined ones again soon: a receipt can show a moment after the block that holds it. */
    uint64_t every = (uint64_t)self->cfg->poll_ms * 1000;
    if (unmined && every > CH_UNMINED_RECHECK_US)
        every = CH_UNMINED_RECHECK_US;
    self->track_due_us = now + every;
    self->tracked = 1;
    lc_gauge_set(self->pending, (double)unmined);
    return 0;
}
