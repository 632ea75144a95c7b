/* ch_reconcile.c: the contract has the last word. It keys anchors by root, and the relayer knows
 * each of its anchors' (id, root), so "is this anchor on chain" is "does anchors(root) name its
 * id". An anchor the contract holds is never sent again: the transaction that anchored it (its
 * Anchored event) is recorded as mined instead, even one the database gave up on or never saw
 * (then it is adopted). See ch_relayer_impl.h. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ch_relayer_impl.h"
#include "lc_abi.h"
#include "lc_codec.h"
#include "lc_log.h"

#define CH_MAX_LOGS 8

/* The contract's anchors(root): the anchor id root was anchored under and the block it did it in
 * (a->count 0: never anchored). */
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
static int s_adopt(ch_relayer_t *self, int64_t anchor_id, const lc_ethrpc_log_t *log,
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
                 "anchor_id=%" PRId64 " block=%" PRIu64
                 " (the Anchored event's transaction is not a type-2 transaction of ours)",
                 anchor_id, log->block_number);
        free(raw);
        return LC_ERR_INVALID;
    }
    ch_adopted_tx_t a = {.anchor_id = anchor_id,
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

/* The Anchored event for (anchor_id, root) in `block` that is still on chain. LC_ERR_NOTFOUND
 * while the endpoint does not show it. */
static int s_anchored_event(ch_relayer_t *self, int64_t anchor_id, const uint8_t root[32],
                            uint64_t block, lc_ethrpc_log_t *out)
{
    uint8_t topics[3][32];
    memcpy(topics[0], self->anchored_topic, 32);
    lc_abi_word(topics[1], (uint64_t)anchor_id);
    memcpy(topics[2], root, 32);
    lc_ethrpc_log_t logs[CH_MAX_LOGS];
    size_t n = 0;
    lc_jsonrpc_error_t err;
    int rc = lc_ethrpc_get_logs(self->rpc, self->contract, (const uint8_t(*)[32])topics, 3, block,
                                block, logs, CH_MAX_LOGS, &n, &err);
    if (rc < 0)
        return rc == LC_ERR_UNAVAILABLE ? rc : LC_ERR_NOTFOUND;
    for (size_t i = 0; i < n; i++)
        if (!logs[i].removed) {
            *out = logs[i];
            return 0;
        }
    return LC_ERR_NOTFOUND;
}

/* The receipt of the event's transaction, for its gas figures; the event alone is enough to
 * track the block, so without a matching receipt *r holds the event's block only. */
static int s_event_receipt(ch_relayer_t *self, const lc_ethrpc_log_t *log, lc_ethrpc_receipt_t *r)
{
    lc_jsonrpc_error_t err;
    int rc = lc_ethrpc_get_transaction_receipt(self->rpc, log->tx_hash, r, &err);
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    if (rc != 0 || r->block_number != log->block_number ||
        memcmp(r->block_hash, log->block_hash, 32) != 0) {
        memset(r, 0, sizeof *r);
        r->status = 1;
        r->block_number = log->block_number;
        memcpy(r->block_hash, log->block_hash, 32);
    }
    return 0;
}

/* The contract holds our root under anchor_id, anchored in `block`: find the transaction that did
 * it (its Anchored event, matched on both anchor id and root) and record it as mined, so
 * confirmation tracking and reorg checks take over. That transaction may be any attempt of ours (a
 * fatal one is taken back) or, if this database never saw it, is adopted. Returns 0,
 * LC_ERR_NOTFOUND while the event or the transaction is not visible on the endpoint yet (try again
 * later), or another error. */
static int s_reconcile(ch_relayer_t *self, int64_t anchor_id, const uint8_t root[32],
                       uint64_t block)
{
    lc_ethrpc_log_t log;
    lc_ethrpc_receipt_t r;
    int rc = s_anchored_event(self, anchor_id, root, block, &log);
    if (rc < 0 || (rc = s_event_receipt(self, &log, &r)) < 0)
        return rc;
    int64_t tx_id = 0, attempt_anchor = 0;
    int adopted = 0;
    rc = ch_db_find_attempt(self->db, log.tx_hash, &tx_id, &attempt_anchor);
    if (rc == LC_ERR_NOTFOUND) {
        adopted = 1;
        rc = s_adopt(self, anchor_id, &log, &r, &tx_id);
    } else if (rc == 0) {
        rc = ch_db_mark_mined(self->db, tx_id, anchor_id, log.tx_hash, r.block_number, r.block_hash,
                              r.gas_used, r.effective_gas_price);
    }
    if (rc == 0) {
        lc_counter_inc(self->reconciled);
        ch_relayer_progressed(self);
        char hex[65];
        lc_hex_encode(hex, sizeof hex, log.tx_hash, 32);
        lc_warn("anchor_reconciled",
                "anchor_id=%" PRId64 " tx_id=%" PRId64 " block=%" PRIu64
                " tx_hash=0x%s adopted=%d (anchored on chain while the database did not have it"
                " mined)",
                anchor_id, tx_id, r.block_number, hex, adopted);
    }
    return rc;
}

int ch_reconcile_if_anchored(ch_relayer_t *self, int64_t anchor_id)
{
    uint8_t root[32];
    uint32_t count = 0;
    lc_abi_anchor_t a;
    int rc = ch_db_anchor_root(self->db, anchor_id, root, &count);
    if (rc < 0)
        return rc;
    if ((rc = s_contract_anchor(self, root, &a)) < 0)
        return rc;
    if (a.count == 0 || a.anchor_id != (uint64_t)anchor_id)
        return 0;
    rc = s_reconcile(self, anchor_id, root, a.block_number);
    return rc == 0 ? 1 : rc;
}

/* The contract holds this anchor's root under another id: the same leaves were put into two
 * anchors. If that is an anchor of ours with this root, it is the live one (reconciled) and this
 * one goes (superseded): returns 1. Else the conflict is counted and logged: 0, or
 * LC_ERR_UNAVAILABLE. */
static int s_anchored_as_other(ch_relayer_t *self, int64_t anchor_id, const uint8_t root[32],
                               const lc_abi_anchor_t *a)
{
    int64_t other = (int64_t)a->anchor_id;
    uint8_t other_root[32];
    uint32_t count = 0;
    int rc = 0;
    if (ch_db_anchor_root(self->db, other, other_root, &count) == 0 &&
        memcmp(other_root, root, 32) == 0) {
        rc = s_reconcile(self, other, root, a->block_number);
        rc = rc == 0 ? 1 : rc;
    }
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    if (rc == 1 && (rc = ch_db_supersede_anchor(self->db, anchor_id)) == 0) {
        lc_warn("anchor_duplicate",
                "anchor_id=%" PRId64 " anchored_as=%" PRId64
                " (same root already anchored; this anchor is superseded)",
                anchor_id, other);
        return 1;
    }
    lc_counter_inc(self->conflicts);
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT; /* every estimate backoff: counted */
    lc_log_limited(&limit, 60000, LC_LOG_ERROR, "root_conflict",
                   "anchor_id=%" PRId64 " anchored_as=%" PRId64
                   " (the contract holds this anchor's root under another anchor id)",
                   anchor_id, other);
    return rc == LC_ERR_UNAVAILABLE ? rc : 0;
}

/* The contract refuses a root it holds already (RootAlreadyAnchored(root, id)): under this
 * anchor's id, the database lost track of a mined anchor, so reconcile from the chain instead of
 * trying the same anchor forever; under another id, the same leaves were put into two anchors. */
int ch_reconcile_estimate_reverted(ch_relayer_t *self, int64_t anchor_id, const uint8_t root[32],
                                   const lc_jsonrpc_error_t *why)
{
    lc_abi_anchor_t a;
    int rc = s_contract_anchor(self, root, &a);
    if (rc == 0 && a.count && a.anchor_id == (uint64_t)anchor_id) {
        rc = s_reconcile(self, anchor_id, root, a.block_number);
        if (rc == LC_ERR_NOTFOUND)
            lc_warn("anchor_not_reconciled",
                    "anchor_id=%" PRId64 " block=%" PRIu64
                    " (the contract holds the anchor; its Anchored event is not visible yet)",
                    anchor_id, a.block_number);
        return rc == LC_ERR_UNAVAILABLE ? rc : 0;
    }
    if (rc == 0 && a.count) {
        int k = s_anchored_as_other(self, anchor_id, root, &a);
        if (k != 0)
            return k < 0 ? k : 0;
    }
    if (rc == LC_ERR_UNAVAILABLE)
        return rc;
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT; /* every estimate backoff: counted */
    lc_log_limited(&limit, 60000, LC_LOG_WARN, "estimate_gas_failed",
                   "anchor_id=%" PRId64 " message=\"%.120s\" data=%.74s", anchor_id, why->message,
                   why->data);
    return 0;
}
