/* ch_relayer.c: see ch_relayer.h. The tick and the relayer's metrics; each concern of a tick is
 * its own file (ch_relayer_impl.h lists them). */
#include <stdlib.h>
#include <string.h>

#include "ch_relayer_impl.h"
#include "lc_abi.h"
#include "lc_keccak.h"
#include "lc_log.h"

#define CH_GWEI 1000000000ull
#define CH_AGE_EVERY_US 1000000ull      /* lcore_chain_unconfirmed_age_seconds refresh */
#define CH_BALANCE_EVERY_US 10000000ull /* lcore_chain_wallet_balance_wei refresh */

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
        lc_gauge_set(self->unconfirmed_age, age);
        self->age_at_us = now;
    }
}

static int s_tick(ch_relayer_t *self)
{
    if (!ch_db_ok(self->db))
        return LC_ERR_UNAVAILABLE;
    uint64_t head = 0;
    int chain_moved = 0;
    int rc = s_observe_head(self, &head, &chain_moved);
    if (rc < 0)
        return rc;
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
