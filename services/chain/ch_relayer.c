/* ch_relayer.c: see ch_relayer.h. The tick and the relayer's metrics; each concern of a tick is
 * its own file (ch_relayer_impl.h lists them). */
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "ch_identity.h"
#include "ch_relayer_impl.h"
#include "lc_abi.h"
#include "lc_keccak.h"
#include "lc_log.h"

#define CH_GWEI 1000000000ull
#define CH_AGE_EVERY_US 1000000ull        /* lcore_chain_unconfirmed_age_seconds refresh */
#define CH_BALANCE_EVERY_US 10000000ull   /* lcore_chain_wallet_balance_wei refresh */
#define CH_IDENTITY_EVERY_US 10000000ull  /* the chain's identity, while it matches */
#define CH_IDENTITY_RECHECK_US 1000000ull /* ... and while it does not (adopt-chain is seen) */
#define CH_LOG_EVERY_MS 600000u           /* repeated conditions: one line per 10 min, counted */

static const double s_confirm_buckets[] = {0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300};

static void s_add_counters(ch_relayer_t *self, lc_metrics_t *m)
{
    self->records = lc_metrics_counter(m, "lcore_chain_records_anchored_total",
                                       "Records in anchors that reached confirmation depth", NULL);
    self->txs_sent =
        lc_metrics_counter(m, "lcore_chain_transactions_sent_total",
                           "Signed transactions broadcast (replacements included)", NULL);
    self->replacements = lc_metrics_counter(m, "lcore_chain_replacements_total",
                                            "Transactions replaced at the same nonce", NULL);
    self->reorgs = lc_metrics_counter(m, "lcore_chain_reorgs_total",
                                      "Mined anchors whose block left the chain", NULL);
    self->stolen =
        lc_metrics_counter(m, "lcore_chain_nonce_conflicts_total",
                           "Nonces consumed by another sender of the relayer's key", NULL);
    self->fatal = lc_metrics_counter(m, "lcore_chain_fatal_transactions_total",
                                     "Transactions given up (reverted or refused)", NULL);
    self->reconciled = lc_metrics_counter(
        m, "lcore_chain_anchors_reconciled_total",
        "Anchors found on chain (Anchored event) that the relayer's database had not seen mined",
        NULL);
    self->conflicts =
        lc_metrics_counter(m, "lcore_chain_anchor_conflicts_total",
                           "Anchors whose root the contract holds under another anchor id", NULL);
    self->gas_total = lc_metrics_counter(m, "lcore_chain_gas_used_total",
                                         "Gas used by anchor transactions", NULL);
    self->fees_wei = lc_metrics_counter(m, "lcore_chain_fees_paid_wei_total",
                                        "Fees paid for anchor transactions, in wei", NULL);
    self->nonce_gaps = lc_metrics_counter(
        m, "lcore_chain_nonce_gaps_total",
        "Nonce gaps found below the relayer's unmined transactions (chain nonce too low)", NULL);
}

static void s_add_gauges(ch_relayer_t *self, lc_metrics_t *m)
{
    self->pending = lc_metrics_gauge(m, "lcore_chain_pending_transactions",
                                     "Anchor transactions sent and not yet mined", NULL);
    self->nonce = lc_metrics_gauge(m, "lcore_chain_nonce", "Next nonce the relayer will use", NULL);
    self->gas_per_record = lc_metrics_gauge(m, "lcore_chain_gas_per_record",
                                            "Gas per record of the last mined anchor", NULL);
    self->head = lc_metrics_gauge(m, "lcore_chain_head_block", "Latest block seen", NULL);
    self->balance_wei = lc_metrics_gauge(m, "lcore_chain_wallet_balance_wei",
                                         "Relayer wallet balance (wei, as a float)", NULL);
    self->unconfirmed_age = lc_metrics_gauge(
        m, "lcore_chain_unconfirmed_age_seconds",
        "Age of the oldest stored record not yet in a confirmed anchor (0: none)", NULL);
    self->identity_mismatch = lc_metrics_gauge(
        m, "lcore_chain_identity_mismatch",
        "1 while the chain or contract is not the one the relayer anchors on (adopt-chain)", NULL);
    self->last_progress = lc_metrics_gauge(
        m, "lcore_chain_last_progress_timestamp_seconds",
        "When an anchor was last mined or confirmed, or nothing waited (Unix s)", NULL);
    self->received_confirm_seconds = lc_metrics_histogram(
        m, "lcore_chain_received_to_confirmed_seconds",
        "Time from a record's receipt at the gateway to its anchor's confirmation", NULL,
        s_confirm_buckets, LC_ARRAY_LEN(s_confirm_buckets));
    self->confirm_seconds = lc_metrics_histogram(
        m, "lcore_chain_stored_to_confirmed_seconds",
        "Time from a record's commit in PostgreSQL to its anchor's confirmation", NULL,
        s_confirm_buckets, LC_ARRAY_LEN(s_confirm_buckets));
}

ch_relayer_t *ch_relayer_new(const ch_config_t *cfg, ch_db_t *db, lc_rpc_t *rpc,
                             const lc_ethtx_signer_t *signer, const uint8_t contract[20],
                             lc_metrics_t *m)
{
    ch_relayer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->anchorer =
        ch_anchorer_new(db, (size_t)cfg->anchor_max, (uint64_t)cfg->anchor_window_ms, m);
    self->live = calloc(CH_MAX_LIVE, sizeof *self->live);
    if (!self->anchorer || !self->live) {
        ch_relayer_destroy(&self);
        return NULL;
    }
    self->cfg = cfg;
    self->db = db;
    self->rpc = rpc;
    self->signer = signer;
    self->fee_policy = (ch_fee_policy_t){.mode = cfg->fee_mode,
                                         .bump_percent = (uint64_t)cfg->bump_percent,
                                         .fee_cap_multiple = (uint64_t)cfg->fee_cap_multiple,
                                         .max_fee_wei = (uint64_t)cfg->max_fee_gwei * CH_GWEI};
    memcpy(self->from, lc_ethtx_signer_address(signer), 20);
    memcpy(self->contract, contract, 20);
    lc_keccak256(self->anchored_topic, (const uint8_t *)LC_ABI_ANCHORED_EVENT,
                 sizeof LC_ABI_ANCHORED_EVENT - 1);
    s_add_counters(self, m);
    s_add_gauges(self, m);
    ch_relayer_progressed(self);
    return self;
}

void ch_relayer_destroy(ch_relayer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ch_anchorer_destroy(&(*self_p)->anchorer);
    free((*self_p)->live);
    free(*self_p);
    *self_p = NULL;
}

/* The head block; *chain_moved unless it is the same block as last time (number and hash): no
 * new depth then, and no reorg to look for. */
static int s_observe_head(ch_relayer_t *self, uint64_t *head, int *chain_moved)
{
    uint8_t head_hash[32];
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_block_number(self->rpc, head, &err) < 0)
        return LC_ERR_UNAVAILABLE;
    int rc = lc_ethrpc_get_block_hash(self->rpc, *head, head_hash, &err);
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    *chain_moved =
        rc != 0 || *head != self->last_head || memcmp(head_hash, self->last_head_hash, 32) != 0;
    lc_gauge_set(self->head, (double)*head);
    if (*chain_moved && ch_db_set_head(self->db, *head) == 0) {
        self->last_head = *head;
        memcpy(self->last_head_hash, head_hash, 32);
    }
    return 0;
}

static void s_refresh_balance(ch_relayer_t *self)
{
    if (lc_mono_us() - self->balance_at_us <= CH_BALANCE_EVERY_US)
        return;
    uint8_t wei[32];
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_get_balance(self->rpc, self->from, wei, &err) == 0) {
        double v = 0;
        for (int i = 0; i < 32; i++)
            v = v * 256 + wei[i];
        lc_gauge_set(self->balance_wei, v);
        self->balance_at_us = lc_mono_us();
    }
}

static void s_refresh_age(ch_relayer_t *self, uint64_t now)
{
    if (self->age_at_us && now - self->age_at_us < CH_AGE_EVERY_US)
        return;
    double age = 0;
    if (ch_db_unconfirmed_age(self->db, &age) == 0) {
        self->waiting_age = age;
        lc_gauge_set(self->unconfirmed_age, age);
        self->age_at_us = now;
    }
}

void ch_relayer_progressed(ch_relayer_t *self)
{
    self->progress_us = lc_mono_us();
    lc_gauge_set(self->last_progress, (double)time(NULL));
}

/* The chain another one (a node reset, a redeployed contract): everything read of the old one
 * is forgotten, and nothing is tracked or sent (the caller) until it matches again. */
static void s_identity_changed(ch_relayer_t *self, int ok, const char *why)
{
    if (ok) {
        lc_info("chain_identity_matches", "was=\"%s\" (anchoring resumes)", self->identity_why);
        self->identity_why[0] = 0;
        ch_relayer_progressed(self);
    } else {
        snprintf(self->identity_why, sizeof self->identity_why, "%s", why);
    }
    self->identity_ok = ok ? 1 : -1;
    self->nonce_synced = 0;
    self->tracked = 0;
    self->held_anchor = 0;
    self->gap_why[0] = 0;
    ch_anchorer_drop_open(self->anchorer);
    lc_gauge_set(self->identity_mismatch, ok ? 0 : 1);
}

/* At the first tick, then every CH_IDENTITY_EVERY_US, and at once when the head went back. */
static int s_check_identity(ch_relayer_t *self, int went_back)
{
    uint64_t now = lc_mono_us();
    if (self->identity_ok && !went_back && now < self->identity_due_us)
        return 0;
    char why[256] = "";
    int rc = ch_identity_verify(self->db, self->rpc, self->from, self->contract,
                                (uint64_t)self->cfg->chain_id, why, sizeof why);
    if (rc < 0)
        return rc;
    self->identity_due_us = now + (rc ? CH_IDENTITY_RECHECK_US : CH_IDENTITY_EVERY_US);
    if ((rc == 0) != (self->identity_ok == 1))
        s_identity_changed(self, rc == 0, why);
    if (rc) {
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, CH_LOG_EVERY_MS, LC_LOG_ERROR, "chain_identity_mismatch",
                       "reason=\"%s\" (nothing is sent; `lcore-chain adopt-chain` starts over on "
                       "this chain)",
                       why);
    }
    return 0;
}

/* LCORE_CHAIN_STALL_MS: nothing waiting is progress; a stall is said once per 10 min. */
static void s_check_progress(ch_relayer_t *self, uint64_t now)
{
    if (self->unmined == 0 && self->waiting_age <= 0) {
        ch_relayer_progressed(self);
        return;
    }
    if (now - self->progress_us < (uint64_t)self->cfg->stall_ms * 1000)
        return;
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
    lc_log_limited(&limit, CH_LOG_EVERY_MS, LC_LOG_WARN, "relayer_stalled",
                   "since_s=%" PRIu64 " unmined=%d oldest_waiting_s=%.0f",
                   (now - self->progress_us) / 1000000, self->unmined, self->waiting_age);
}

static int s_tick(ch_relayer_t *self)
{
    if (!ch_db_ok(self->db))
        return LC_ERR_UNAVAILABLE;
    uint64_t head = 0, prev_head = self->last_head;
    int chain_moved = 0;
    int rc = s_observe_head(self, &head, &chain_moved);
    if (rc < 0 || (rc = s_check_identity(self, head < prev_head)) < 0)
        return rc;
    if (self->identity_ok < 0)
        return 0;
    s_refresh_balance(self);
    uint64_t now = lc_mono_us();
    if (chain_moved || !self->tracked || ch_db_writes(self->db) != self->tracked_writes ||
        now >= self->track_due_us || (self->stuck_at_us && now >= self->stuck_at_us)) {
        self->tracked = 0; /* until the pass completes */
        if ((rc = ch_track_all(self, head, chain_moved)) < 0)
            return rc;
    }
    now = lc_mono_us();
    s_refresh_age(self, now);
    s_check_progress(self, now);
    if (self->gap_why[0])
        return 0; /* ch_track said why; nothing new behind a gap that cannot fill */
    /* Up to LCORE_CHAIN_MAX_INFLIGHT unmined transactions at consecutive nonces: one block can
     * carry several anchors when the backlog is deep. Nothing new behind a stuck one: waiting
     * records go into its replacement instead. */
    int stuck = self->stuck_at_us && now >= self->stuck_at_us;
    return !stuck && self->unmined < (int)self->cfg->max_inflight ? ch_submit_next(self) : 0;
}

int ch_relayer_tick(ch_relayer_t *self)
{
    int rc = s_tick(self);
    if (rc < 0) { /* read everything again next time */
        ch_anchorer_drop_open(self->anchorer);
        self->tracked = 0;
    }
    return rc;
}

void ch_relayer_activate(ch_relayer_t *self)
{
    ch_anchorer_drop_open(self->anchorer);
    self->tracked = 0;
    ch_relayer_progressed(self);
}

const char *ch_relayer_not_ready(ch_relayer_t *self)
{
    uint64_t idle_us = lc_mono_us() - self->progress_us;
    if (self->identity_ok < 0)
        snprintf(self->not_ready, sizeof self->not_ready,
                 "chain identity mismatch (adopt-chain starts over): %s", self->identity_why);
    else if (self->gap_why[0])
        snprintf(self->not_ready, sizeof self->not_ready, "nonce gap: %s", self->gap_why);
    else if (idle_us >= (uint64_t)self->cfg->stall_ms * 1000)
        snprintf(self->not_ready, sizeof self->not_ready,
                 "stalled: no anchor mined or confirmed for %" PRIu64
                 " s (%d unmined, oldest record waiting %.0f s)",
                 idle_us / 1000000, self->unmined, self->waiting_age);
    else
        return NULL;
    return self->not_ready;
}
