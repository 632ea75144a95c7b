/* ch_relayer.c: see ch_relayer.h. */
#include "ch_relayer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_log.h"
#include "lc_merkle.h"

#define CH_MAX_ATTEMPTS 64
#define CH_MAX_LIVE 4096 /* 64 blocks of finality x 4 in flight, with room */
#define CH_GWEI 1000000000ull

struct ch_relayer {
    const ch_config_t *cfg;
    ch_db_t *db;
    ch_rpc_t *rpc;
    const lc_ethtx_signer_t *signer;
    uint8_t from[20];
    uint8_t contract[20];
    uint64_t next_nonce;
    int nonce_synced;
    uint64_t last_head;
    uint8_t last_head_hash[32];
    ch_tx_t *live;          /* CH_MAX_LIVE, reused every tick */
    uint64_t balance_at_us; /* when the wallet balance was last read */
    ch_record_t *recs;      /* batch_max records, reused */
    uint8_t *leaves;
    lc_counter_t *batches, *records, *txs_sent, *replacements, *reorgs, *stolen, *fatal;
    lc_counter_t *gas_total, *fees_wei;
    lc_gauge_t *pending, *nonce, *gas_per_record, *balance_eth, *head;
    lc_histogram_t *confirm_seconds;
};

static const double s_confirm_buckets[] = {0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300};

ch_relayer_t *ch_relayer_new(const ch_config_t *cfg, ch_db_t *db, ch_rpc_t *rpc,
                             const lc_ethtx_signer_t *signer, const uint8_t contract[20],
                             lc_metrics_t *m)
{
    ch_relayer_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->recs = calloc((size_t)cfg->batch_max, sizeof *self->recs);
    self->leaves = malloc((size_t)cfg->batch_max * 32);
    self->live = calloc(CH_MAX_LIVE, sizeof *self->live);
    if (!self->recs || !self->leaves || !self->live) {
        ch_relayer_destroy(&self);
        return NULL;
    }
    self->cfg = cfg;
    self->db = db;
    self->rpc = rpc;
    self->signer = signer;
    memcpy(self->from, lc_ethtx_signer_address(signer), 20);
    memcpy(self->contract, contract, 20);
    self->batches = lc_metrics_counter(m, "lcore_chain_batches_total", "Batches created", NULL);
    self->records = lc_metrics_counter(m, "lcore_chain_records_anchored_total",
                                       "Records in batches that reached confirmation depth", NULL);
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
    self->gas_total = lc_metrics_counter(m, "lcore_chain_gas_used_total",
                                         "Gas used by anchor transactions", NULL);
    self->fees_wei = lc_metrics_counter(m, "lcore_chain_fees_paid_wei_total",
                                        "Fees paid for anchor transactions, in wei", NULL);
    self->pending = lc_metrics_gauge(m, "lcore_chain_pending_transactions",
                                     "Anchor transactions sent and not yet mined", NULL);
    self->nonce = lc_metrics_gauge(m, "lcore_chain_nonce", "Next nonce the relayer will use", NULL);
    self->gas_per_record = lc_metrics_gauge(m, "lcore_chain_gas_per_record",
                                            "Gas per record of the last mined batch", NULL);
    self->head = lc_metrics_gauge(m, "lcore_chain_head_block", "Latest block seen", NULL);
    self->balance_eth = lc_metrics_gauge(m, "lcore_chain_wallet_balance_eth",
                                         "Relayer wallet balance (ether, approximate)", NULL);
    self->confirm_seconds = lc_metrics_histogram(
        m, "lcore_chain_stored_to_confirmed_seconds",
        "Time from a record's commit in PostgreSQL to its batch's confirmation", NULL,
        s_confirm_buckets, LC_ARRAY_LEN(s_confirm_buckets));
    return self;
}

void ch_relayer_destroy(ch_relayer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->recs);
    free((*self_p)->leaves);
    free((*self_p)->live);
    free(*self_p);
    *self_p = NULL;
}

static void s_be_word(uint8_t word[32], uint64_t v)
{
    memset(word, 0, 32);
    for (int i = 0; i < 8; i++)
        word[31 - i] = (uint8_t)(v >> (8 * i));
}

void ch_anchor_calldata(uint8_t out[100], uint64_t batch_id, const uint8_t root[32], uint32_t count)
{
    static const uint8_t selector[4] = {0xa1, 0x49, 0xa2, 0x14}; /* anchor(uint64,bytes32,uint32) */
    memcpy(out, selector, 4);
    s_be_word(out + 4, batch_id);
    memcpy(out + 36, root, 32);
    s_be_word(out + 68, count);
}

/* Chain nonce for the next new transaction: the chain's pending count, or past our own. */
static int s_sync_nonce(ch_relayer_t *self)
{
    uint64_t chain = 0, db_max = 0;
    int has = 0;
    ch_rpc_error_t err;
    if (ch_rpc_get_transaction_count(self->rpc, self->from, CH_BLOCK_PENDING, &chain, &err) < 0)
        return LC_ERR_UNAVAILABLE;
    if (ch_db_max_nonce(self->db, self->from, &db_max, &has) < 0)
        return LC_ERR_UNAVAILABLE;
    uint64_t next = chain;
    if (has && db_max + 1 > next)
        next = db_max + 1;
    if (!self->nonce_synced || next != self->next_nonce)
        lc_info("nonce_synced", "chain_pending=%" PRIu64 " next=%" PRIu64, chain, next);
    self->next_nonce = next;
    self->nonce_synced = 1;
    lc_gauge_set(self->nonce, (double)next);
    return 0;
}

typedef struct {
    uint64_t tip, fee_cap;
} s_fees_t;

static int s_market_fees(ch_relayer_t *self, s_fees_t *f)
{
    uint64_t base = 0, tip = 0;
    ch_rpc_error_t err;
    if (ch_rpc_base_fee(self->rpc, &base, &err) < 0)
        return LC_ERR_UNAVAILABLE;
    if (ch_rpc_max_priority_fee(self->rpc, &tip, &err) < 0)
        tip = 1000000; /* 0.001 gwei: Orbit chains ignore the tip; geth-style nodes need one */
    f->tip = tip;
    f->fee_cap = tip + 2 * base; /* survives two full blocks of base-fee rise */
    uint64_t max = (uint64_t)self->cfg->max_fee_gwei * CH_GWEI;
    if (f->fee_cap > max)
        f->fee_cap = max;
    if (f->tip > f->fee_cap)
        f->tip = f->fee_cap;
    return 0;
}

/* Signs a transaction at nonce for the batch; raw is malloc'd. */
static int s_sign(ch_relayer_t *self, uint64_t nonce, uint64_t gas, const s_fees_t *f,
                  int64_t batch_id, const uint8_t root[32], uint32_t count, uint8_t **raw,
                  size_t *raw_len, uint8_t hash[32])
{
    uint8_t data[100];
    ch_anchor_calldata(data, (uint64_t)batch_id, root, count);
    lc_ethtx_t tx = {.chain_id = (uint64_t)self->cfg->chain_id,
                     .nonce = nonce,
                     .gas_limit = gas,
                     .has_to = true,
                     .data = data,
                     .data_len = sizeof data};
    memcpy(tx.to, self->contract, 20);
    lc_u256_from_u64(&tx.max_priority_fee_per_gas, f->tip);
    lc_u256_from_u64(&tx.max_fee_per_gas, f->fee_cap);
    lc_u256_from_u64(&tx.value, 0);
    return lc_ethtx_signer_sign(self->signer, raw, raw_len, hash, &tx);
}

/* Broadcasts; returns what the node said, having recorded a successful broadcast. */
static ch_send_status_t s_broadcast(ch_relayer_t *self, int64_t tx_id, const uint8_t *raw,
                                    size_t raw_len)
{
    uint8_t hash[32];
    ch_rpc_error_t err;
    ch_send_status_t st = ch_rpc_send_raw_transaction(self->rpc, raw, raw_len, hash, &err);
    if (st == CH_SEND_OK || st == CH_SEND_ALREADY_KNOWN) {
        lc_counter_inc(self->txs_sent);
        if (ch_db_mark_broadcast(self->db, tx_id) < 0)
            lc_warn("broadcast_not_recorded", "tx_id=%" PRId64, tx_id); /* retried next tick */
    } else {
        lc_warn("broadcast_refused", "tx_id=%" PRId64 " status=%s message=\"%.120s\"", tx_id,
                ch_send_status_name(st), err.message);
    }
    return st;
}

/* Builds the next batch from records after `after` (all of them when force, else only when
 * the batch is full or its oldest record waited the window). *batch_id = 0: nothing to do. */
static int s_make_batch(ch_relayer_t *self, int64_t after, int force, int64_t supersedes,
                        int64_t *batch_id, uint8_t root[32], uint32_t *count)
{
    size_t n = 0;
    uint64_t age = 0;
    *batch_id = 0;
    int rc =
        ch_db_records_after(self->db, after, (size_t)self->cfg->batch_max, self->recs, &n, &age);
    if (rc < 0)
        return rc;
    if (n == 0 ||
        (!force && n < (size_t)self->cfg->batch_max && age < (uint64_t)self->cfg->batch_window_ms))
        return 0;
    for (size_t i = 0; i < n; i++)
        lc_merkle_leaf(self->leaves + 32 * i, self->recs[i].record_id, self->recs[i].envelope_hash);
    int err = 0;
    lc_merkle_t *tree = lc_merkle_new(self->leaves, n, &err);
    if (!tree)
        return err ? err : LC_ERR_NOMEM;
    lc_merkle_root(tree, root);
    lc_merkle_destroy(&tree);
    rc = ch_db_create_batch(self->db, self->recs, self->leaves, n, root, supersedes, batch_id);
    if (rc == 0) {
        *count = (uint32_t)n;
        lc_counter_inc(self->batches);
        lc_info("batch_created",
                "batch_id=%" PRId64 " records=%zu first=%" PRId64 " supersedes=%" PRId64, *batch_id,
                n, self->recs[0].pk, supersedes);
    }
    return rc;
}

/* No transaction in flight: anchor the next batch with a new nonce. */
static int s_start_next(ch_relayer_t *self)
{
    int64_t batch_id = 0, first = 0, cursor = 0;
    uint8_t root[32];
    uint32_t count = 0;
    int rc = ch_db_unsent_batch(self->db, &batch_id, root, &count, &first);
    if (rc == 0 && !batch_id && (rc = ch_db_cursor(self->db, &cursor)) == 0)
        rc = s_make_batch(self, cursor, 0, 0, &batch_id, root, &count);
    if (rc < 0 || !batch_id)
        return rc;
    if (!self->nonce_synced && (rc = s_sync_nonce(self)) < 0)
        return rc;
    uint8_t data[100];
    ch_anchor_calldata(data, (uint64_t)batch_id, root, count);
    uint64_t gas = 0;
    ch_rpc_error_t err;
    if (ch_rpc_estimate_gas(self->rpc, self->from, self->contract, data, sizeof data, &gas, &err) <
        0) {
        lc_warn("estimate_gas_failed", "batch_id=%" PRId64 " message=\"%.120s\"", batch_id,
                err.message);
        return err.kind == CH_RPC_ERR_ENDPOINT ? LC_ERR_UNAVAILABLE : 0;
    }
    gas = gas + gas / 4 + 10000; /* headroom: Orbit adds L1 data cost that moves with L1 fees */
    s_fees_t f;
    if ((rc = s_market_fees(self, &f)) < 0)
        return rc;
    uint8_t *raw = NULL, hash[32];
    size_t raw_len = 0;
    int64_t tx_id = 0;
    if ((rc = s_sign(self, self->next_nonce, gas, &f, batch_id, root, count, &raw, &raw_len,
                     hash)) < 0)
        return rc;
    /* Saved before it is sent: after a crash the same bytes are sent again, never a new tx. */
    rc = ch_db_insert_tx(self->db, batch_id, self->from, self->next_nonce, gas, f.tip, f.fee_cap,
                         hash, raw, raw_len, &tx_id);
    if (rc == 0) {
        lc_info("anchor_tx_created",
                "tx_id=%" PRId64 " batch_id=%" PRId64 " nonce=%" PRIu64 " tip=%" PRIu64
                " fee_cap=%" PRIu64 " gas=%" PRIu64,
                tx_id, batch_id, self->next_nonce, f.tip, f.fee_cap, gas);
        self->next_nonce++;
        lc_gauge_set(self->nonce, (double)self->next_nonce);
        ch_send_status_t st = s_broadcast(self, tx_id, raw, raw_len);
        if (st == CH_SEND_NONCE_TOO_LOW || st == CH_SEND_NONCE_TOO_HIGH)
            self->nonce_synced = 0; /* the receipt check settles this transaction */
    }
    free(raw);
    return rc;
}

/* A replacement at the same nonce: bumped fees (or market price), and if more records are
 * waiting, a newer batch that covers the stuck one's records and the new ones. */
static int s_replace(ch_relayer_t *self, const ch_tx_t *tx)
{
    s_fees_t market, f;
    int rc = s_market_fees(self, &market);
    if (rc < 0)
        return rc;
    if (self->cfg->fee_mode == 1 && tx->last_fee_cap >= market.fee_cap) {
        /* Orbit: the sequencer has no fee market to win; a transaction priced at or above market
         * is sent again as it is, not outbid. */
        uint8_t *raw = NULL;
        size_t len = 0;
        if ((rc = ch_db_last_raw(self->db, tx->id, &raw, &len)) == 0) {
            ch_send_status_t st = s_broadcast(self, tx->id, raw, len);
            if ((st == CH_SEND_OK || st == CH_SEND_ALREADY_KNOWN) &&
                ch_db_touch_attempt(self->db, tx->id) < 0)
                rc = LC_ERR_UNAVAILABLE;
        }
        free(raw);
        return rc;
    }
    uint64_t pct = (uint64_t)self->cfg->bump_percent;
    uint64_t min_tip = tx->last_tip + (tx->last_tip * pct + 99) / 100;
    uint64_t min_cap = tx->last_fee_cap + (tx->last_fee_cap * pct + 99) / 100;
    if (self->cfg->fee_mode == 1) { /* market: today's price, at least a valid replacement */
        f.tip = market.tip > min_tip ? market.tip : min_tip;
        f.fee_cap = market.fee_cap > min_cap ? market.fee_cap : min_cap;
    } else {
        f.tip = min_tip;
        f.fee_cap = market.fee_cap > min_cap ? market.fee_cap : min_cap;
    }
    uint64_t ceiling = tx->first_fee_cap * (uint64_t)self->cfg->fee_cap_multiple;
    uint64_t max = (uint64_t)self->cfg->max_fee_gwei * CH_GWEI;
    if (ceiling > max)
        ceiling = max;
    if (f.fee_cap > ceiling || f.tip > f.fee_cap) {
        /* At the ceiling: no valid replacement is possible; keep the last one in the pool. */
        uint8_t *raw = NULL;
        size_t len = 0;
        if (ch_db_last_raw(self->db, tx->id, &raw, &len) == 0)
            (void)s_broadcast(self, tx->id, raw, len);
        free(raw);
        lc_warn("fee_ceiling_reached", "tx_id=%" PRId64 " fee_cap=%" PRIu64, tx->id,
                tx->last_fee_cap);
        return 0;
    }
    /* Anchor everything waiting, from the stuck batch's first record on. */
    int64_t batch_id = 0;
    uint8_t root[32];
    uint32_t count = 0;
    int64_t cursor = 0;
    if ((rc = ch_db_cursor(self->db, &cursor)) < 0)
        return rc;
    size_t more = 0;
    uint64_t age = 0;
    if ((rc = ch_db_records_after(self->db, cursor, 1, self->recs, &more, &age)) < 0)
        return rc;
    /* Only the newest batch may grow: batches after it would otherwise share its records. */
    if (more && tx->last_record == cursor) {
        rc = s_make_batch(self, tx->first_record - 1, 1, tx->batch_id, &batch_id, root, &count);
        if (rc < 0)
            return rc;
    }
    if (!batch_id) {
        /* Same batch: fetch its root and count again from the batch row. */
        batch_id = tx->batch_id;
        if ((rc = ch_db_batch_root(self->db, batch_id, root, &count)) < 0)
            return rc;
    }
    uint8_t *raw = NULL, hash[32];
    size_t raw_len = 0;
    if ((rc = s_sign(self, tx->nonce, tx->gas_limit, &f, batch_id, root, count, &raw, &raw_len,
                     hash)) < 0)
        return rc;
    rc = ch_db_add_attempt(self->db, tx->id, batch_id, f.tip, f.fee_cap, hash, raw, raw_len);
    if (rc == 0) {
        lc_counter_inc(self->replacements);
        lc_info("anchor_tx_replaced",
                "tx_id=%" PRId64 " nonce=%" PRIu64 " batch_id=%" PRId64 " tip=%" PRIu64
                " fee_cap=%" PRIu64,
                tx->id, tx->nonce, batch_id, f.tip, f.fee_cap);
        (void)s_broadcast(self, tx->id, raw, raw_len);
    }
    free(raw);
    return rc;
}

static void s_observe_confirmed(ch_relayer_t *self, int64_t batch_id)
{
    double ages[1024];
    size_t n = 0;
    if (ch_db_batch_ages(self->db, batch_id, ages, LC_ARRAY_LEN(ages), &n) == 0)
        for (size_t i = 0; i < n; i++)
            lc_histogram_observe(self->confirm_seconds, ages[i]);
}

/* The transaction in flight. */
static int s_track(ch_relayer_t *self, const ch_tx_t *tx, uint64_t head)
{
    ch_rpc_error_t err;
    int rc;
    if (tx->state == CH_TX_IN_PROGRESS) { /* saved, maybe never sent (crash): send it now */
        uint8_t *raw = NULL;
        size_t len = 0;
        if ((rc = ch_db_last_raw(self->db, tx->id, &raw, &len)) < 0)
            return rc;
        (void)s_broadcast(self, tx->id, raw, len);
        free(raw);
    }
    if (tx->block_number) {
        /* Mined: still in the canonical chain? */
        uint8_t canon[32];
        rc = ch_rpc_get_block_hash(self->rpc, tx->block_number, canon, &err);
        if (rc == LC_ERR_UNAVAILABLE)
            return rc;
        if (rc == LC_ERR_NOTFOUND || (rc == 0 && memcmp(canon, tx->block_hash, 32) != 0)) {
            lc_warn("reorg_detected", "tx_id=%" PRId64 " batch_id=%" PRId64 " block=%" PRIu64,
                    tx->id, tx->batch_id, tx->block_number);
            lc_counter_inc(self->reorgs);
            if ((rc = ch_db_mark_unmined(self->db, tx->id)) < 0)
                return rc;
            uint8_t *raw = NULL;
            size_t len = 0;
            if (ch_db_last_raw(self->db, tx->id, &raw, &len) == 0)
                (void)s_broadcast(self, tx->id, raw, len);
            free(raw);
            return 0;
        }
        uint64_t depth = head >= tx->block_number ? head - tx->block_number + 1 : 0;
        if (depth >= (uint64_t)self->cfg->finality)
            return ch_db_mark_depth(self->db, tx->id, CH_TX_FINALIZED);
        if (depth >= (uint64_t)self->cfg->confirmations && tx->state != CH_TX_CONFIRMED) {
            if ((rc = ch_db_mark_depth(self->db, tx->id, CH_TX_CONFIRMED)) < 0)
                return rc;
            uint32_t count = 0;
            uint8_t root[32];
            if (ch_db_batch_root(self->db, tx->batch_id, root, &count) == 0)
                lc_counter_add(self->records, count);
            s_observe_confirmed(self, tx->batch_id);
            lc_info("batch_confirmed", "batch_id=%" PRId64 " block=%" PRIu64 " depth=%" PRIu64,
                    tx->batch_id, tx->block_number, depth);
        }
        return 0;
    }
    /* Not mined (yet): any of its attempts may have landed. The chain's nonce is read before
     * the receipts: if it is past ours and still no receipt of ours shows, another sender used
     * the nonce (read the other way round, a block mined in between looks like theft). */
    uint64_t mined_nonce = 0;
    if (ch_rpc_get_transaction_count(self->rpc, self->from, CH_BLOCK_LATEST, &mined_nonce, &err) <
        0)
        return LC_ERR_UNAVAILABLE;
    uint8_t hashes[CH_MAX_ATTEMPTS][32];
    int64_t batch_ids[CH_MAX_ATTEMPTS];
    size_t n = 0;
    if ((rc = ch_db_attempt_hashes(self->db, tx->id, hashes, batch_ids, CH_MAX_ATTEMPTS, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        ch_receipt_t r;
        rc = ch_rpc_get_transaction_receipt(self->rpc, hashes[i], &r, &err);
        if (rc == LC_ERR_UNAVAILABLE)
            return rc;
        if (rc != 0)
            continue;
        if (!r.status) {
            lc_counter_inc(self->fatal);
            lc_error("anchor_reverted", "tx_id=%" PRId64 " batch_id=%" PRId64, tx->id,
                     batch_ids[i]);
            return ch_db_mark_fatal(self->db, tx->id, "reverted on chain", 0);
        }
        if ((rc = ch_db_mark_mined(self->db, tx->id, batch_ids[i], hashes[i], r.block_number,
                                   r.block_hash, r.gas_used, r.effective_gas_price)) < 0)
            return rc;
        uint32_t count = 0;
        uint8_t root[32];
        lc_counter_add(self->gas_total, r.gas_used);
        lc_counter_add(self->fees_wei, r.gas_used * r.effective_gas_price);
        if (ch_db_batch_root(self->db, batch_ids[i], root, &count) == 0 && count)
            lc_gauge_set(self->gas_per_record, (double)r.gas_used / count);
        lc_info("anchor_mined",
                "tx_id=%" PRId64 " batch_id=%" PRId64 " block=%" PRIu64 " gas_used=%" PRIu64
                " records=%u",
                tx->id, batch_ids[i], r.block_number, r.gas_used, count);
        return 0;
    }
    if (mined_nonce > tx->nonce) {
        lc_counter_inc(self->stolen);
        lc_warn("nonce_taken",
                "tx_id=%" PRId64 " nonce=%" PRIu64 " chain_nonce=%" PRIu64
                " (another sender used the relayer's key); the batch is sent again",
                tx->id, tx->nonce, mined_nonce);
        self->nonce_synced = 0;
        return ch_db_mark_fatal(self->db, tx->id, "nonce used by another transaction", 1);
    }
    if (tx->last_attempt_age_ms >= (uint64_t)self->cfg->bump_after_ms)
        return s_replace(self, tx);
    return 0;
}

int ch_relayer_tick(ch_relayer_t *self)
{
    if (!ch_db_ok(self->db))
        return LC_ERR_UNAVAILABLE;
    uint64_t head = 0;
    uint8_t head_hash[32];
    ch_rpc_error_t err;
    if (ch_rpc_block_number(self->rpc, &head, &err) < 0)
        return LC_ERR_UNAVAILABLE;
    int rc = ch_rpc_get_block_hash(self->rpc, head, head_hash, &err);
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    /* Same head block as last time (number and hash): no new depth, no reorg to look for. */
    int chain_moved =
        rc != 0 || head != self->last_head || memcmp(head_hash, self->last_head_hash, 32) != 0;
    lc_gauge_set(self->head, (double)head);
    if (chain_moved && ch_db_set_head(self->db, head) == 0) {
        self->last_head = head;
        memcpy(self->last_head_hash, head_hash, 32);
    }
    if (lc_mono_us() - self->balance_at_us > 10000000u) {
        uint8_t wei[32];
        if (ch_rpc_get_balance(self->rpc, self->from, wei, &err) == 0) {
            double eth = 0;
            for (int i = 0; i < 32; i++)
                eth = eth * 256 + wei[i];
            lc_gauge_set(self->balance_eth, eth / 1e18);
            self->balance_at_us = lc_mono_us();
        }
    }
    size_t n = 0;
    if ((rc = ch_db_live_txs(self->db, self->from, self->live, CH_MAX_LIVE, &n)) < 0)
        return rc;
    /* Unmined ones (listed first): receipts, replacements, nonce conflicts. Mined ones: depth
     * and reorgs, when the chain moved. */
    int unmined = 0, stuck = 0;
    for (size_t i = 0; i < n; i++) {
        const ch_tx_t *tx = &self->live[i];
        if (tx->block_number == 0) {
            unmined++;
            stuck |= tx->last_attempt_age_ms >= (uint64_t)self->cfg->bump_after_ms;
        } else if (!chain_moved) {
            continue;
        }
        if ((rc = s_track(self, tx, head)) < 0)
            return rc;
    }
    lc_gauge_set(self->pending, (double)unmined);
    /* Up to LCORE_CHAIN_MAX_INFLIGHT unmined transactions at consecutive nonces: one block can
     * carry several batches when the backlog is deep. Nothing new behind a stuck one: waiting
     * records go into its replacement instead. */
    return !stuck && unmined < (int)self->cfg->max_inflight ? s_start_next(self) : 0;
}
