/* ch_relayer.c: see ch_relayer.h. */
#include "ch_relayer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lc_abi.h"
#include "lc_ethrpc.h"
#include "lc_codec.h"
#include "lc_keccak.h"
#include "lc_log.h"
#include "lc_merkle.h"

#define CH_MAX_ATTEMPTS 64
#define CH_MAX_LIVE 4096 /* 64 blocks of finality x 4 in flight, with room */
#define CH_GWEI 1000000000ull
#define CH_MAX_LOGS 8
#define CH_ESTIMATE_BACKOFF_MIN_US 1000000ull
#define CH_ESTIMATE_BACKOFF_MAX_US 30000000ull
/* Unmined anchors are rechecked this often: nodes count a block's nonces before its receipts. */
#define CH_UNMINED_RECHECK_US 100000ull
#define CH_AGE_EVERY_US 1000000ull /* lcore_chain_unconfirmed_age_seconds refresh */

struct ch_relayer {
    const ch_config_t *cfg;
    ch_db_t *db;
    lc_rpc_t *rpc;
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
    /* The open batch: recs[0..open_n) are the records after open_after read so far, kept
     * between ticks so that a tick reads only the records stored since the last one (the
     * store's single writer commits records in id order, which the cursor relies on too).
     * Dropped (open_n = 0) when a batch is built, when anything else fills recs, and after a
     * failed tick. */
    int64_t open_after;
    size_t open_n;
    uint64_t open_stored_us; /* lc_mono_us() at which recs[0] was stored (from its age then) */
    /* Transaction tracking (the live transactions, their receipts and depth) runs when the head
     * block changed, the relayer wrote to the database since it last read them, a replacement
     * comes due, or track_due_us passed: nothing else changes them. */
    int tracked;             /* the fields below hold the last pass's view */
    uint64_t tracked_writes; /* ch_db_writes() right after that pass read the live list */
    uint64_t track_due_us;
    uint64_t stuck_at_us; /* when the first unmined transaction is due for a replacement; 0: none */
    int unmined;
    uint64_t age_at_us; /* when the unconfirmed-age gauge was last computed; 0: at the next tick */
    int64_t held_batch; /* a batch whose gas estimate failed: not retried before ... */
    uint64_t held_until_us; /* ... this time (backoff doubling from 1 s to 30 s) */
    uint64_t held_backoff_us;
    uint8_t anchored_topic[32];
    lc_counter_t *batches, *records, *txs_sent, *replacements, *reorgs, *stolen, *fatal;
    lc_counter_t *reconciled, *conflicts;
    lc_counter_t *gas_total, *fees_wei;
    lc_gauge_t *pending, *nonce, *gas_per_record, *balance_wei, *head, *unconfirmed_age;
    lc_histogram_t *confirm_seconds, *received_confirm_seconds;
};

static const double s_confirm_buckets[] = {0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300};

ch_relayer_t *ch_relayer_new(const ch_config_t *cfg, ch_db_t *db, lc_rpc_t *rpc,
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
    lc_keccak256(self->anchored_topic, (const uint8_t *)LC_ABI_ANCHORED_EVENT,
                 sizeof LC_ABI_ANCHORED_EVENT - 1);
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
    self->reconciled = lc_metrics_counter(
        m, "lcore_chain_anchors_reconciled_total",
        "Anchors found on chain (Anchored event) that the relayer's database had not seen mined",
        NULL);
    self->conflicts =
        lc_metrics_counter(m, "lcore_chain_batch_conflicts_total",
                           "Batches whose root the contract holds under another batch id", NULL);
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
    self->balance_wei = lc_metrics_gauge(m, "lcore_chain_wallet_balance_wei",
                                         "Relayer wallet balance (wei, as a float)", NULL);
    self->unconfirmed_age = lc_metrics_gauge(
        m, "lcore_chain_unconfirmed_age_seconds",
        "Age of the oldest stored record not yet in a confirmed batch (0: none)", NULL);
    self->received_confirm_seconds = lc_metrics_histogram(
        m, "lcore_chain_received_to_confirmed_seconds",
        "Time from a record's receipt at the gateway to its batch's confirmation", NULL,
        s_confirm_buckets, LC_ARRAY_LEN(s_confirm_buckets));
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

/* Chain nonce for the next new transaction: the chain's pending count, or past our own. */
static int s_sync_nonce(ch_relayer_t *self)
{
    uint64_t chain = 0, db_max = 0;
    int has = 0;
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_get_transaction_count(self->rpc, self->from, LC_ETHRPC_BLOCK_PENDING, &chain,
                                        &err) < 0)
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
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_base_fee(self->rpc, &base, &err) < 0)
        return LC_ERR_UNAVAILABLE;
    if (lc_ethrpc_max_priority_fee(self->rpc, &tip, &err) < 0)
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
    uint8_t data[LC_ABI_ANCHOR_LEN];
    lc_abi_anchor(data, (uint64_t)batch_id, root, count);
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
static lc_ethrpc_send_status_t s_broadcast(ch_relayer_t *self, int64_t tx_id, const uint8_t *raw,
                                           size_t raw_len)
{
    uint8_t hash[32];
    lc_jsonrpc_error_t err;
    lc_ethrpc_send_status_t st =
        lc_ethrpc_send_raw_transaction(self->rpc, raw, raw_len, hash, &err);
    if (st == LC_ETHRPC_SEND_OK || st == LC_ETHRPC_SEND_ALREADY_KNOWN) {
        lc_counter_inc(self->txs_sent);
        if (ch_db_mark_broadcast(self->db, tx_id) < 0)
            lc_warn("broadcast_not_recorded", "tx_id=%" PRId64, tx_id); /* retried next tick */
    } else {
        lc_warn("broadcast_refused", "tx_id=%" PRId64 " status=%s message=\"%.120s\"", tx_id,
                lc_ethrpc_send_status_name(st), err.message);
    }
    return st;
}

static void s_drop_open(ch_relayer_t *self)
{
    self->open_n = 0;
}

/* Leaves and root of the next batch, in self->recs / self->leaves: the records after `after`
 * (all of them when force, else only when the batch is full or its oldest record waited the
 * window). *n = 0: nothing to do. Without force, the records read stay in recs for the next call
 * with the same `after`, which reads only newer ones. */
static int s_build_batch(ch_relayer_t *self, int64_t after, int force, size_t *n, uint8_t root[32])
{
    size_t max = (size_t)self->cfg->batch_max;
    *n = 0;
    if (force || self->open_after != after) {
        s_drop_open(self);
        self->open_after = after;
    }
    size_t got = self->open_n;
    if (got < max) {
        uint64_t age = 0;
        size_t more = 0;
        int64_t from = got ? self->recs[got - 1].pk : after;
        int rc = ch_db_records_after(self->db, from, max - got, self->recs + got, &more, &age);
        if (rc < 0) {
            s_drop_open(self);
            return rc;
        }
        if (got == 0 && more) {
            uint64_t now = lc_mono_us(), age_us = age * 1000;
            self->open_stored_us = now > age_us ? now - age_us : 0;
        }
        got += more;
    }
    self->open_n = force ? 0 : got; /* a forced read is not kept: the next one starts over */
    uint64_t age_ms = got ? (lc_mono_us() - self->open_stored_us) / 1000 : 0;
    if (got == 0 || (!force && got < max && age_ms < (uint64_t)self->cfg->batch_window_ms))
        return 0;
    s_drop_open(self); /* built: the next batch starts after it (recs keep it for the caller) */
    for (size_t i = 0; i < got; i++)
        lc_merkle_leaf(self->leaves + 32 * i, self->recs[i].record_id, self->recs[i].envelope_hash);
    int err = 0;
    lc_merkle_t *tree = lc_merkle_new(self->leaves, got, &err);
    if (!tree)
        return err ? err : LC_ERR_NOMEM;
    lc_merkle_root(tree, root);
    lc_merkle_destroy(&tree);
    *n = got;
    return 0;
}

/* Saves the batch s_build_batch made (with repl: under the reserved id *batch_id, together with
 * the replacement that anchors it). */
static int s_save_batch(ch_relayer_t *self, size_t n, const uint8_t root[32],
                        const ch_replacement_t *repl, int64_t *batch_id)
{
    int rc = ch_db_create_batch(self->db, self->recs, self->leaves, n, root, repl, batch_id);
    if (rc == 0) {
        lc_counter_inc(self->batches);
        lc_info("batch_created",
                "batch_id=%" PRId64 " records=%zu first=%" PRId64 " supersedes=%" PRId64, *batch_id,
                n, self->recs[0].pk, repl ? repl->supersedes : 0);
    }
    return rc;
}

/* The contract's anchors(root): the batch id that anchored root and the block it did it in
 * (a->count 0: never anchored). The relayer knows each of its batches' (id, root), so "is this
 * batch on chain" is "does the contract hold its root under its id". */
static int s_contract_anchor(ch_relayer_t *self, const uint8_t root[32], lc_abi_anchor_t *a)
{
    uint8_t data[LC_ABI_ANCHORS_LEN];
    lc_abi_anchors(data, root);
    uint8_t *out = NULL;
    size_t len = 0;
    lc_jsonrpc_error_t err;
    int rc = lc_ethrpc_call(self->rpc, self->contract, data, sizeof data, &out, &len, &err);
    if (rc == 0)
        rc = lc_abi_anchors_decode(a, out, len);
    free(out);
    return rc;
}

/* The anchoring transaction is not in this database (a relayer with another database, one
 * restored from an older backup, sent it with our key): saved as ours, mined. */
static int s_adopt(ch_relayer_t *self, int64_t batch_id, const lc_ethrpc_log_t *log,
                   const lc_ethrpc_receipt_t *r, int64_t *tx_id)
{
    uint8_t *raw = NULL, hash[32], from[20];
    size_t len = 0;
    lc_jsonrpc_error_t err;
    int rc = lc_ethrpc_get_raw_transaction(self->rpc, log->tx_hash, &raw, &len, &err);
    if (rc < 0)
        return rc == LC_ERR_UNAVAILABLE ? rc : LC_ERR_NOTFOUND;
    lc_ethtx_t tx;
    lc_ethtx_sig_t sig;
    uint64_t tip = 0, cap = 0;
    lc_ethtx_hash(hash, raw, len);
    if (memcmp(hash, log->tx_hash, 32) != 0 || lc_ethtx_decode(&tx, &sig, raw, len) != 0 ||
        lc_ethtx_sender(from, raw, len) != 0 || memcmp(from, self->from, 20) != 0 ||
        lc_u256_to_u64(&tip, &tx.max_priority_fee_per_gas) != 0 ||
        lc_u256_to_u64(&cap, &tx.max_fee_per_gas) != 0) {
        lc_error("anchor_not_adoptable",
                 "batch_id=%" PRId64 " block=%" PRIu64
                 " (the Anchored event's transaction is not a type-2 transaction of ours)",
                 batch_id, log->block_number);
        free(raw);
        return LC_ERR_INVALID;
    }
    ch_adopted_tx_t a = {.batch_id = batch_id,
                         .from = self->from,
                         .nonce = tx.nonce,
                         .gas_limit = tx.gas_limit,
                         .tip = tip,
                         .fee_cap = cap,
                         .hash = hash,
                         .raw = raw,
                         .raw_len = len,
                         .block = r->block_number,
                         .block_hash = r->block_hash,
                         .gas_used = r->gas_used,
                         .gas_price = r->effective_gas_price};
    rc = ch_db_adopt_tx(self->db, &a, tx_id);
    free(raw);
    return rc;
}

/* The contract holds our root under batch_id, anchored in `block`: find the transaction that did
 * it (its Anchored event, matched on both batch id and root) and record it as mined, so
 * confirmation tracking and reorg checks take over. That transaction may be any attempt of ours (a
 * fatal one is taken back) or, if this database never saw it, is adopted. Returns 0,
 * LC_ERR_NOTFOUND while the event or the transaction is not visible on the endpoint yet (try again
 * later), or another error. */
static int s_reconcile(ch_relayer_t *self, int64_t batch_id, const uint8_t root[32], uint64_t block)
{
    uint8_t topics[3][32];
    memcpy(topics[0], self->anchored_topic, 32);
    s_be_word(topics[1], (uint64_t)batch_id);
    memcpy(topics[2], root, 32);
    lc_ethrpc_log_t logs[CH_MAX_LOGS];
    size_t n = 0;
    lc_jsonrpc_error_t err;
    int rc = lc_ethrpc_get_logs(self->rpc, self->contract, (const uint8_t(*)[32])topics, 3, block,
                                block, logs, CH_MAX_LOGS, &n, &err);
    if (rc < 0)
        return rc == LC_ERR_UNAVAILABLE ? rc : LC_ERR_NOTFOUND;
    const lc_ethrpc_log_t *log = NULL;
    for (size_t i = 0; i < n && !log; i++)
        if (!logs[i].removed)
            log = &logs[i];
    if (!log)
        return LC_ERR_NOTFOUND;
    /* The receipt adds gas figures; the event alone is enough to track the block. */
    lc_ethrpc_receipt_t r;
    rc = lc_ethrpc_get_transaction_receipt(self->rpc, log->tx_hash, &r, &err);
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    if (rc != 0 || r.block_number != log->block_number ||
        memcmp(r.block_hash, log->block_hash, 32) != 0) {
        memset(&r, 0, sizeof r);
        r.status = 1;
        r.block_number = log->block_number;
        memcpy(r.block_hash, log->block_hash, 32);
    }
    int64_t tx_id = 0, attempt_batch = 0;
    int adopted = 0;
    rc = ch_db_find_attempt(self->db, log->tx_hash, &tx_id, &attempt_batch);
    if (rc == LC_ERR_NOTFOUND) {
        adopted = 1;
        rc = s_adopt(self, batch_id, log, &r, &tx_id);
    } else if (rc == 0) {
        rc = ch_db_mark_mined(self->db, tx_id, batch_id, log->tx_hash, r.block_number, r.block_hash,
                              r.gas_used, r.effective_gas_price);
    }
    if (rc == 0) {
        lc_counter_inc(self->reconciled);
        char hex[65];
        lc_hex_encode(hex, sizeof hex, log->tx_hash, 32);
        lc_warn("anchor_reconciled",
                "batch_id=%" PRId64 " tx_id=%" PRId64 " block=%" PRIu64
                " tx_hash=0x%s adopted=%d (anchored on chain while the database did not have it"
                " mined)",
                batch_id, tx_id, r.block_number, hex, adopted);
    }
    return rc;
}

/* Whether the contract holds the root the database has for batch_id, under batch_id; if so,
 * reconciled (s_reconcile). Returns 1 reconciled, 0 not anchored with our root under this id,
 * LC_ERR_NOTFOUND anchored but not reconcilable yet, or another error. */
static int s_reconcile_if_anchored(ch_relayer_t *self, int64_t batch_id)
{
    uint8_t root[32];
    uint32_t count = 0;
    lc_abi_anchor_t a;
    int rc = ch_db_batch_root(self->db, batch_id, root, &count);
    if (rc < 0)
        return rc;
    if ((rc = s_contract_anchor(self, root, &a)) < 0)
        return rc;
    if (a.count == 0 || a.batch_id != (uint64_t)batch_id)
        return 0;
    rc = s_reconcile(self, batch_id, root, a.block_number);
    return rc == 0 ? 1 : rc;
}

/* The gas estimate of a batch that no live transaction holds reverted. The contract refuses a
 * root it holds already (RootAlreadyAnchored(root, id)): under this batch's id, the database lost
 * track of a mined anchor, so reconcile from the chain instead of trying the same anchor forever;
 * under another id, the same leaves were batched twice. Returns 0 or LC_ERR_UNAVAILABLE. */
static int s_estimate_reverted(ch_relayer_t *self, int64_t batch_id, const uint8_t root[32],
                               const lc_jsonrpc_error_t *why)
{
    lc_abi_anchor_t a;
    int rc = s_contract_anchor(self, root, &a);
    if (rc == 0 && a.count && a.batch_id == (uint64_t)batch_id) {
        rc = s_reconcile(self, batch_id, root, a.block_number);
        if (rc == LC_ERR_NOTFOUND)
            lc_warn("anchor_not_reconciled",
                    "batch_id=%" PRId64 " block=%" PRIu64
                    " (the contract holds the batch; its Anchored event is not visible yet)",
                    batch_id, a.block_number);
        return rc == LC_ERR_UNAVAILABLE ? rc : 0;
    }
    if (rc == 0 && a.count) {
        /* The same leaves anchored under another id. If that is a batch of ours with this root,
         * it is the live one and this one goes. */
        int64_t other = (int64_t)a.batch_id;
        uint8_t other_root[32];
        uint32_t count = 0;
        int k = 0;
        if (ch_db_batch_root(self->db, other, other_root, &count) == 0 &&
            memcmp(other_root, root, 32) == 0) {
            k = s_reconcile(self, other, root, a.block_number);
            k = k == 0 ? 1 : k;
        }
        if (k == LC_ERR_UNAVAILABLE)
            return k;
        if (k == 1 && (rc = ch_db_supersede_batch(self->db, batch_id)) == 0) {
            lc_warn("batch_duplicate",
                    "batch_id=%" PRId64 " anchored_as=%" PRId64
                    " (same root already anchored; this batch is superseded)",
                    batch_id, other);
            return 0;
        }
        lc_counter_inc(self->conflicts);
        lc_error("root_conflict",
                 "batch_id=%" PRId64 " anchored_as=%" PRId64
                 " (the contract holds this batch's root under another batch id)",
                 batch_id, other);
    }
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    lc_warn("estimate_gas_failed", "batch_id=%" PRId64 " message=\"%.120s\" data=%.74s", batch_id,
            why->message, why->data);
    return 0;
}

/* No transaction in flight: anchor the next batch with a new nonce. */
static int s_start_next(ch_relayer_t *self)
{
    int64_t batch_id = 0, first = 0, cursor = 0;
    uint8_t root[32];
    uint32_t count = 0;
    size_t n = 0;
    int rc = ch_db_unsent_batch(self->db, &batch_id, root, &count, &first);
    if (rc == 0 && !batch_id && (rc = ch_db_cursor(self->db, &cursor)) == 0 &&
        (rc = s_build_batch(self, cursor, 0, &n, root)) == 0 && n) {
        rc = s_save_batch(self, n, root, NULL, &batch_id);
        count = (uint32_t)n;
    }
    if (rc < 0 || !batch_id)
        return rc;
    if (batch_id == self->held_batch && lc_mono_us() < self->held_until_us)
        return 0; /* its estimate failed a moment ago */
    if (!self->nonce_synced && (rc = s_sync_nonce(self)) < 0)
        return rc;
    uint8_t data[LC_ABI_ANCHOR_LEN];
    lc_abi_anchor(data, (uint64_t)batch_id, root, count);
    uint64_t gas = 0;
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_estimate_gas(self->rpc, self->from, self->contract, data, sizeof data, &gas,
                               &err) < 0) {
        /* Not again at every tick: back off, per batch. */
        uint64_t backoff = batch_id == self->held_batch ? 2 * self->held_backoff_us : 0;
        if (backoff < CH_ESTIMATE_BACKOFF_MIN_US)
            backoff = CH_ESTIMATE_BACKOFF_MIN_US;
        if (backoff > CH_ESTIMATE_BACKOFF_MAX_US)
            backoff = CH_ESTIMATE_BACKOFF_MAX_US;
        self->held_batch = batch_id;
        self->held_backoff_us = backoff;
        self->held_until_us = lc_mono_us() + backoff;
        if (err.kind == LC_JSONRPC_ERR_REVERTED)
            return s_estimate_reverted(self, batch_id, root, &err);
        lc_warn("estimate_gas_failed", "batch_id=%" PRId64 " message=\"%.120s\"", batch_id,
                err.message);
        return err.kind == LC_JSONRPC_ERR_ENDPOINT ? LC_ERR_UNAVAILABLE : 0;
    }
    self->held_batch = 0;
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
        lc_ethrpc_send_status_t st = s_broadcast(self, tx_id, raw, raw_len);
        if (st == LC_ETHRPC_SEND_NONCE_TOO_LOW || st == LC_ETHRPC_SEND_NONCE_TOO_HIGH)
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
    if (self->cfg->fee_mode == CH_FEE_MODE_MARKET && tx->last_fee_cap >= market.fee_cap) {
        /* Orbit: the sequencer has no fee market to win; a transaction priced at or above market
         * is sent again as it is, not outbid. */
        uint8_t *raw = NULL;
        size_t len = 0;
        if ((rc = ch_db_last_raw(self->db, tx->id, &raw, &len)) == 0) {
            lc_ethrpc_send_status_t st = s_broadcast(self, tx->id, raw, len);
            if ((st == LC_ETHRPC_SEND_OK || st == LC_ETHRPC_SEND_ALREADY_KNOWN) &&
                ch_db_touch_attempt(self->db, tx->id) < 0)
                rc = LC_ERR_UNAVAILABLE;
        }
        free(raw);
        return rc;
    }
    uint64_t pct = (uint64_t)self->cfg->bump_percent;
    uint64_t min_tip = tx->last_tip + (tx->last_tip * pct + 99) / 100;
    uint64_t min_cap = tx->last_fee_cap + (tx->last_fee_cap * pct + 99) / 100;
    if (self->cfg->fee_mode ==
        CH_FEE_MODE_MARKET) { /* market: today's price, at least a valid replacement */
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
    s_drop_open(self); /* recs are overwritten below */
    if ((rc = ch_db_records_after(self->db, cursor, 1, self->recs, &more, &age)) < 0)
        return rc;
    /* Only the newest batch may grow: batches after it would otherwise share its records. */
    size_t n = 0;
    if (more && tx->last_record == cursor) {
        if ((rc = s_build_batch(self, tx->first_record - 1, 1, &n, root)) < 0)
            return rc;
        if (n && self->recs[n - 1].pk == tx->last_record)
            n = 0; /* the stuck batch is as large as a batch gets: nothing to add */
    }
    if (n) {
        /* Signed before it is saved: the new batch's id is reserved first. */
        if ((rc = ch_db_reserve_batch_id(self->db, &batch_id)) < 0)
            return rc;
        count = (uint32_t)n;
    } else {
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
    if (n) {
        /* The new batch, the old one superseded and the attempt: one SQL transaction. */
        ch_replacement_t repl = {.tx_id = tx->id,
                                 .supersedes = tx->batch_id,
                                 .tip = f.tip,
                                 .fee_cap = f.fee_cap,
                                 .hash = hash,
                                 .raw = raw,
                                 .raw_len = raw_len};
        rc = s_save_batch(self, n, root, &repl, &batch_id);
    } else {
        rc = ch_db_add_attempt(self->db, tx->id, batch_id, f.tip, f.fee_cap, hash, raw, raw_len);
    }
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
    double stored[1024], received[1024];
    size_t n = 0;
    if (ch_db_batch_ages(self->db, batch_id, stored, received, LC_ARRAY_LEN(stored), &n) == 0)
        for (size_t i = 0; i < n; i++) {
            lc_histogram_observe(self->confirm_seconds, stored[i]);
            lc_histogram_observe(self->received_confirm_seconds, received[i]);
        }
}

/* The transaction in flight. */
static int s_track(ch_relayer_t *self, const ch_tx_t *tx, uint64_t head)
{
    lc_jsonrpc_error_t err;
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
        rc = lc_ethrpc_get_block_hash(self->rpc, tx->block_number, canon, &err);
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
            self->age_at_us = 0; /* the unconfirmed age changes now */
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
    if (lc_ethrpc_get_transaction_count(self->rpc, self->from, LC_ETHRPC_BLOCK_LATEST, &mined_nonce,
                                        &err) < 0)
        return LC_ERR_UNAVAILABLE;
    uint8_t hashes[CH_MAX_ATTEMPTS][32];
    int64_t batch_ids[CH_MAX_ATTEMPTS];
    size_t n = 0;
    if ((rc = ch_db_attempt_hashes(self->db, tx->id, hashes, batch_ids, CH_MAX_ATTEMPTS, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        lc_ethrpc_receipt_t r;
        rc = lc_ethrpc_get_transaction_receipt(self->rpc, hashes[i], &r, &err);
        if (rc == LC_ERR_UNAVAILABLE)
            return rc;
        if (rc != 0)
            continue;
        if (!r.status) {
            /* A revert can mean the batch is anchored already, by another transaction (the
             * contract refuses a root twice, RootAlreadyAnchored): that one is recorded first,
             * so the batch is not superseded under it. */
            rc = s_reconcile_if_anchored(self, batch_ids[i]);
            if (rc == LC_ERR_UNAVAILABLE || rc == LC_ERR_NOTFOUND)
                return rc == LC_ERR_UNAVAILABLE ? rc : 0; /* settled in a later tick */
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
        /* The nonce is used and no receipt of ours shows: not proof yet that another sender
         * took it. A node can count a block's nonces an instant before it serves the block's
         * receipts (anvil does), and across failover or a load balancer the receipts may come
         * from a node some blocks behind. Taking our own mined anchor for a stolen nonce sends
         * its batch again, which the contract refuses forever (RootAlreadyAnchored). So: only
         * once the nonce was used `confirmations` blocks ago, and the contract holds none of
         * this transaction's batches (no attempt's root under that attempt's batch id). */
        uint64_t depth = (uint64_t)self->cfg->confirmations, settled = 0;
        if (head < depth)
            return 0;
        rc =
            lc_ethrpc_get_transaction_count_at(self->rpc, self->from, head - depth, &settled, &err);
        if (rc == LC_ERR_UNAVAILABLE)
            return rc;
        if (rc == 0 && settled <= tx->nonce)
            return 0; /* used in the last blocks: look again later */
        for (size_t i = 0; i < n; i++) {
            int seen = 0;
            for (size_t k = 0; k < i; k++)
                seen |= batch_ids[k] == batch_ids[i];
            if (seen)
                continue;
            rc = s_reconcile_if_anchored(self, batch_ids[i]);
            if (rc == 1 || rc == LC_ERR_NOTFOUND)
                return 0; /* ours after all (or soon: its event is not visible yet) */
            if (rc == LC_ERR_UNAVAILABLE)
                return rc;
            if (rc < 0) /* the settled nonce stands; a later gas estimate would still notice */
                lc_warn("anchor_check_failed", "tx_id=%" PRId64 " batch_id=%" PRId64 " err=%s",
                        tx->id, batch_ids[i], lc_strerror(rc));
        }
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

/* The live transactions: receipts, replacements and nonce conflicts for the unmined ones;
 * depth and reorgs for the mined ones, when the chain moved. */
static int s_track_all(ch_relayer_t *self, uint64_t head, int chain_moved)
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

static int s_tick(ch_relayer_t *self)

{
    if (!ch_db_ok(self->db))
        return LC_ERR_UNAVAILABLE;
    uint64_t head = 0;
    uint8_t head_hash[32];
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_block_number(self->rpc, &head, &err) < 0)
        return LC_ERR_UNAVAILABLE;
    int rc = lc_ethrpc_get_block_hash(self->rpc, head, head_hash, &err);
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
        if (lc_ethrpc_get_balance(self->rpc, self->from, wei, &err) == 0) {
            double v = 0;
            for (int i = 0; i < 32; i++)
                v = v * 256 + wei[i];
            lc_gauge_set(self->balance_wei, v);
            self->balance_at_us = lc_mono_us();
        }
    }
    uint64_t now = lc_mono_us();
    if (chain_moved || !self->tracked || ch_db_writes(self->db) != self->tracked_writes ||
        now >= self->track_due_us || (self->stuck_at_us && now >= self->stuck_at_us)) {
        self->tracked = 0; /* until the pass completes */
        if ((rc = s_track_all(self, head, chain_moved)) < 0)
            return rc;
    }
    now = lc_mono_us();
    if (!self->age_at_us || now - self->age_at_us >= CH_AGE_EVERY_US) {
        double age = 0;
        if (ch_db_unconfirmed_age(self->db, &age) == 0) {
            lc_gauge_set(self->unconfirmed_age, age);
            self->age_at_us = now;
        }
    }
    /* Up to LCORE_CHAIN_MAX_INFLIGHT unmined transactions at consecutive nonces: one block can
     * carry several batches when the backlog is deep. Nothing new behind a stuck one: waiting
     * records go into its replacement instead. */
    int stuck = self->stuck_at_us && now >= self->stuck_at_us;
    return !stuck && self->unmined < (int)self->cfg->max_inflight ? s_start_next(self) : 0;
}

int ch_relayer_tick(ch_relayer_t *self)
{
    int rc = s_tick(self);
    if (rc < 0) { /* read everything again next time */
        s_drop_open(self);
        self->tracked = 0;
    }
    return rc;
}
