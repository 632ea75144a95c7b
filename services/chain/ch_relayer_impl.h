/* ch_relayer_impl.h: inside the relayer only. Its state, shared by the files that each hold one
 * concern of ch_relayer.h's work, and what each of them offers the others:
 *   ch_relayer.c   the tick: head block, wallet balance, when tracking runs; metrics
 *   ch_anchorer.c   forming anchors (own type, ch_anchorer.h)
 *   ch_fees.c      fee policy (pure, ch_fees.h)
 *   ch_submit.c    nonces, signing, sending anchors and their replacements
 *   ch_track.c     receipts, confirmation depth, reorgs, nonces taken by another sender
 *   ch_reconcile.c what the contract holds that the database did not see (adopting anchors)
 *   ch_identity.c  whether the chain is still the one the relayer anchors on (own header)
 * Other modules use ch_relayer.h. */
#ifndef CH_RELAYER_IMPL_H
#define CH_RELAYER_IMPL_H

#include "ch_anchorer.h"
#include "ch_fees.h"
#include "ch_relayer.h"
#include "lc_ethrpc.h"

#define CH_MAX_LIVE 4096 /* 64 blocks of finality x 4 in flight, with room */

struct ch_relayer {
    const ch_config_t *cfg;
    ch_db_t *db;
    lc_rpc_t *rpc;
    const lc_ethtx_signer_t *signer;
    uint8_t from[20];
    uint8_t contract[20];
    ch_anchorer_t *anchorer;
    ch_fee_policy_t fee_policy;
    /* ch_submit */
    uint64_t next_nonce;
    int nonce_synced;
    int64_t held_anchor;    /* an anchor whose gas estimate failed: not retried before ... */
    uint64_t held_until_us; /* ... this time (backoff doubling from 1 s to 30 s) */
    uint64_t held_backoff_us;
    /* ch_relayer: the head block and balance last seen */
    uint64_t last_head;
    uint8_t last_head_hash[32];
    uint64_t balance_at_us; /* when the wallet balance was last read */
    /* ch_track. Tracking (the live transactions, their receipts and depth) runs when the head
     * block changed, the relayer wrote to the database since it last read them, a replacement
     * comes due, or track_due_us passed: nothing else changes them. */
    ch_tx_t *live;           /* CH_MAX_LIVE, reused every tick */
    int tracked;             /* the fields below hold the last pass's view */
    uint64_t tracked_writes; /* ch_db_writes() right after that pass read the live list */
    uint64_t track_due_us;
    uint64_t stuck_at_us; /* when the first unmined transaction is due for a replacement; 0: none */
    int unmined;
    uint64_t age_at_us; /* when the unconfirmed-age gauge was last computed; 0: at the next tick */
    uint8_t anchored_topic[32]; /* ch_reconcile: topic0 of the contract's Anchored event */
    /* ch_relayer: the chain's identity (ch_identity.h), checked at the first tick, every
     * CH_IDENTITY_EVERY_US and whenever the head went back; nothing is tracked or sent while it
     * differs. */
    int identity_ok; /* 1 the same chain, -1 another one (identity_why), 0 not checked yet */
    uint64_t identity_due_us;
    char identity_why[256];
    /* ch_track: a nonce gap below the unmined transactions that the relayer cannot fill (its
     * database holds those nonces as mined, the chain does not): nothing is sent or replaced. */
    char gap_why[256];
    /* Progress: when an anchor was last mined or confirmed, or nothing waited. */
    uint64_t progress_us;
    double waiting_age; /* lcore_chain_unconfirmed_age_seconds as last read */
    char not_ready[512];
    /* Metrics (registered by ch_relayer_new). */
    lc_counter_t *records, *txs_sent, *replacements, *reorgs, *stolen, *fatal;
    lc_counter_t *reconciled, *conflicts;
    lc_counter_t *gas_total, *fees_wei;
    lc_gauge_t *pending, *nonce, *gas_per_record, *balance_wei, *head, *unconfirmed_age;
    lc_gauge_t *identity_mismatch, *last_progress;
    lc_counter_t *nonce_gaps;
    lc_histogram_t *confirm_seconds, *received_confirm_seconds;
};

/* ch_relayer.c */
/* An anchor was mined or confirmed: the relayer moves (LCORE_CHAIN_STALL_MS). */
void ch_relayer_progressed(ch_relayer_t *self);

/* ch_submit.c */
/* No transaction is stuck and fewer than LCORE_CHAIN_MAX_INFLIGHT are unmined: anchors the next
 * anchor (a saved one no transaction holds, else a new one when one is due) at a new nonce. */
int ch_submit_next(ch_relayer_t *self) LC_WUR;
/* tx has had no receipt for LCORE_CHAIN_BUMP_AFTER_MS: a replacement at the same nonce, priced
 * by the fee policy, anchoring a larger anchor when more records wait. */
int ch_submit_replace(ch_relayer_t *self, const ch_tx_t *tx) LC_WUR;
/* Broadcasts signed bytes of transaction tx_id; a broadcast the node took is recorded. */
lc_ethrpc_send_status_t ch_submit_broadcast(ch_relayer_t *self, int64_t tx_id, const uint8_t *raw,
                                            size_t raw_len);
/* Broadcasts the newest saved attempt of tx_id again, unchanged; *st (may be NULL) receives what
 * the node said. Returns how reading the attempt went (0 or ch_db_last_raw's error). */
int ch_submit_resend(ch_relayer_t *self, int64_t tx_id, lc_ethrpc_send_status_t *st);

/* ch_track.c */
/* The live transactions: receipts, replacements and nonce conflicts for the unmined ones; depth
 * and reorgs for the mined ones, when the chain moved. */
int ch_track_all(ch_relayer_t *self, uint64_t head, int chain_moved) LC_WUR;

/* ch_reconcile.c */
/* Whether the contract holds the root the database has for anchor_id, under anchor_id; if so, the
 * anchoring transaction is recorded as mined. Returns 1 reconciled, 0 not anchored with our root
 * under this id, LC_ERR_NOTFOUND anchored but not reconcilable yet, or another error. */
int ch_reconcile_if_anchored(ch_relayer_t *self, int64_t anchor_id) LC_WUR;
/* The gas estimate of an anchor that no live transaction holds reverted (why): reconciles when the
 * contract holds its root (under its id: anchored; under another id of ours: this anchor is
 * superseded). Returns 0 or LC_ERR_UNAVAILABLE. */
int ch_reconcile_estimate_reverted(ch_relayer_t *self, int64_t anchor_id, const uint8_t root[32],
                                   const lc_jsonrpc_error_t *why) LC_WUR;

#endif
