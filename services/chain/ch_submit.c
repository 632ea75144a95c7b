/* ch_submit.c: sending anchors. The nonce (the chain's pending count, or past the database's
 * highest), the gas estimate (held back with a per-anchor backoff when it fails), today's fees,
 * the signed transaction saved before it is sent (after a crash the same bytes are sent again,
 * never a new transaction), and replacements at the same nonce. See ch_relayer_impl.h. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ch_relayer_impl.h"
#include "lc_abi.h"
#include "lc_ethsend.h"
#include "lc_log.h"

#define CH_ESTIMATE_BACKOFF_MIN_US 1000000ull
#define CH_ESTIMATE_BACKOFF_MAX_US 30000000ull

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

static int s_market_fees(ch_relayer_t *self, ch_fees_t *f)
{
    lc_jsonrpc_error_t err;
    if (lc_ethsend_market_fees(self->rpc, self->fee_policy.max_fee_wei, &f->tip, &f->fee_cap,
                               &err) < 0)
        return LC_ERR_UNAVAILABLE;
    return 0;
}

/* Signs a transaction at nonce for the anchor; raw is malloc'd. */
static int s_sign(ch_relayer_t *self, uint64_t nonce, uint64_t gas, const ch_fees_t *f,
                  int64_t anchor_id, const uint8_t root[32], uint32_t count, uint8_t **raw,
                  size_t *raw_len, uint8_t hash[32])
{
    uint8_t data[LC_ABI_ANCHOR_LEN];
    lc_abi_anchor(data, (uint64_t)anchor_id, root, count);
    lc_ethsend_tx_t tx = {.chain_id = (uint64_t)self->cfg->chain_id,
                          .nonce = nonce,
                          .gas_limit = gas,
                          .tip = f->tip,
                          .fee_cap = f->fee_cap,
                          .to = self->contract,
                          .data = data,
                          .data_len = sizeof data};
    return lc_ethsend_sign(self->signer, &tx, raw, raw_len, hash);
}

lc_ethrpc_send_status_t ch_submit_broadcast(ch_relayer_t *self, int64_t tx_id, const uint8_t *raw,
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
    } else { /* the same refusal comes back at every resend: one line a minute, counted */
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, 60000, LC_LOG_WARN, "broadcast_refused",
                       "tx_id=%" PRId64 " status=%s message=\"%.120s\"", tx_id,
                       lc_ethrpc_send_status_name(st), err.message);
    }
    return st;
}

int ch_submit_resend(ch_relayer_t *self, int64_t tx_id, lc_ethrpc_send_status_t *st)
{
    uint8_t *raw = NULL;
    size_t len = 0;
    int rc = ch_db_last_raw(self->db, tx_id, &raw, &len);
    lc_ethrpc_send_status_t sent =
        rc == 0 ? ch_submit_broadcast(self, tx_id, raw, len) : LC_ETHRPC_SEND_RETRYABLE;
    if (st)
        *st = sent;
    free(raw);
    return rc;
}

/* The anchor to send next: the oldest saved anchor no transaction holds, else a new one if one is
 * due. *anchor_id 0: nothing to send. */
static int s_next_anchor(ch_relayer_t *self, int64_t *anchor_id, uint8_t root[32], uint32_t *count)
{
    int64_t first = 0, cursor = 0;
    int rc = ch_db_unsent_anchor(self->db, anchor_id, root, count, &first);
    if (rc < 0 || *anchor_id)
        return rc;
    ch_anchor_t anchor;
    if ((rc = ch_db_cursor(self->db, &cursor)) < 0 ||
        (rc = ch_anchorer_build(self->anchorer, cursor, 0, &anchor)) < 0 || !anchor.n)
        return rc;
    memcpy(root, anchor.root, 32);
    *count = (uint32_t)anchor.n;
    return ch_anchorer_save(self->anchorer, &anchor, NULL, anchor_id);
}

/* The gas limit for sending the anchor. A failed estimate holds the anchor back, not tried again
 * at every tick: a backoff per anchor. Returns 0 (*gas set), 1 held back, or LC_ERR_UNAVAILABLE. */
static int s_estimate(ch_relayer_t *self, int64_t anchor_id, const uint8_t root[32], uint32_t count,
                      uint64_t *gas)
{
    uint8_t data[LC_ABI_ANCHOR_LEN];
    lc_abi_anchor(data, (uint64_t)anchor_id, root, count);
    lc_jsonrpc_error_t err;
    if (lc_ethrpc_estimate_gas(self->rpc, self->from, self->contract, data, sizeof data, gas,
                               &err) == 0) {
        self->held_anchor = 0;
        *gas = *gas + *gas / 4 + 10000; /* headroom: Orbit adds L1 data cost that moves with L1 */
        return 0;
    }
    uint64_t backoff = anchor_id == self->held_anchor ? 2 * self->held_backoff_us : 0;
    if (backoff < CH_ESTIMATE_BACKOFF_MIN_US)
        backoff = CH_ESTIMATE_BACKOFF_MIN_US;
    if (backoff > CH_ESTIMATE_BACKOFF_MAX_US)
        backoff = CH_ESTIMATE_BACKOFF_MAX_US;
    self->held_anchor = anchor_id;
    self->held_backoff_us = backoff;
    self->held_until_us = lc_mono_us() + backoff;
    int rc = 0;
    if (err.kind == LC_JSONRPC_ERR_REVERTED) {
        rc = ch_reconcile_estimate_reverted(self, anchor_id, root, &err);
    } else {
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, 60000, LC_LOG_WARN, "estimate_gas_failed",
                       "anchor_id=%" PRId64 " message=\"%.120s\"", anchor_id, err.message);
        rc = err.kind == LC_JSONRPC_ERR_ENDPOINT ? LC_ERR_UNAVAILABLE : 0;
    }
    return rc < 0 ? rc : 1;
}

int ch_submit_next(ch_relayer_t *self)
{
    int64_t anchor_id = 0, tx_id = 0;
    uint8_t root[32];
    uint32_t count = 0;
    int rc = s_next_anchor(self, &anchor_id, root, &count);
    if (rc < 0 || !anchor_id)
        return rc;
    if (anchor_id == self->held_anchor && lc_mono_us() < self->held_until_us)
        return 0; /* its estimate failed a moment ago */
    if (!self->nonce_synced && (rc = s_sync_nonce(self)) < 0)
        return rc;
    uint64_t gas = 0;
    ch_fees_t f;
    if ((rc = s_estimate(self, anchor_id, root, count, &gas)) != 0)
        return rc < 0 ? rc : 0;
    if ((rc = s_market_fees(self, &f)) < 0)
        return rc;
    uint8_t *raw = NULL, hash[32];
    size_t raw_len = 0;
    if ((rc = s_sign(self, self->next_nonce, gas, &f, anchor_id, root, count, &raw, &raw_len,
                     hash)) < 0)
        return rc;
    /* Saved before it is sent: after a crash the same bytes are sent again, never a new tx. */
    rc = ch_db_insert_tx(self->db, anchor_id, self->from, self->next_nonce, gas, f.tip, f.fee_cap,
                         hash, raw, raw_len, &tx_id);
    if (rc == 0) {
        lc_info("anchor_tx_created",
                "tx_id=%" PRId64 " anchor_id=%" PRId64 " nonce=%" PRIu64 " tip=%" PRIu64
                " fee_cap=%" PRIu64 " gas=%" PRIu64,
                tx_id, anchor_id, self->next_nonce, f.tip, f.fee_cap, gas);
        self->next_nonce++;
        lc_gauge_set(self->nonce, (double)self->next_nonce);
        lc_ethrpc_send_status_t st = ch_submit_broadcast(self, tx_id, raw, raw_len);
        if (st == LC_ETHRPC_SEND_NONCE_TOO_LOW || st == LC_ETHRPC_SEND_NONCE_TOO_HIGH)
            self->nonce_synced = 0; /* the receipt check settles this transaction */
    }
    free(raw);
    return rc;
}

/* The anchor a replacement of tx sends when more records wait: the stuck anchor's records and the
 * new ones. Only the newest anchor may grow: anchors after it would otherwise share its records.
 * grown->n 0: the replacement sends the same anchor. */
static int s_grown_anchor(ch_relayer_t *self, const ch_tx_t *tx, ch_anchor_t *grown)
{
    grown->n = 0;
    int64_t cursor = 0;
    int rc = ch_db_cursor(self->db, &cursor);
    if (rc < 0 || tx->last_arrival != cursor)
        return rc;
    ch_record_t next;
    size_t more = 0;
    uint64_t age = 0;
    if ((rc = ch_db_records_after(self->db, cursor, 1, &next, &more, &age)) < 0 || !more)
        return rc;
    if ((rc = ch_anchorer_build(self->anchorer, tx->first_arrival - 1, 1, grown)) < 0)
        return rc;
    if (grown->n && grown->last_arrival == tx->last_arrival)
        grown->n = 0; /* the stuck anchor is as large as an anchor gets: nothing to add */
    return 0;
}

/* Signs, saves and sends the replacement of tx at fees f. */
static int s_replace_at(ch_relayer_t *self, const ch_tx_t *tx, const ch_fees_t *f)
{
    ch_anchor_t grown;
    int64_t anchor_id = tx->anchor_id;
    uint8_t root[32];
    uint32_t count = 0;
    int rc = s_grown_anchor(self, tx, &grown);
    if (rc < 0)
        return rc;
    if (grown.n) { /* signed before it is saved: the new anchor's id is reserved first */
        if ((rc = ch_db_reserve_anchor_id(self->db, &anchor_id)) < 0)
            return rc;
        memcpy(root, grown.root, 32);
        count = (uint32_t)grown.n;
    } else if ((rc = ch_db_anchor_root(self->db, anchor_id, root, &count)) < 0) {
        return rc; /* the same anchor: its root and count from the anchor row */
    }
    uint8_t *raw = NULL, hash[32];
    size_t raw_len = 0;
    if ((rc = s_sign(self, tx->nonce, tx->gas_limit, f, anchor_id, root, count, &raw, &raw_len,
                     hash)) < 0)
        return rc;
    if (grown.n) { /* the new anchor, the old one superseded and the attempt: one SQL transaction */
        ch_replacement_t repl = {.tx_id = tx->id,
                                 .supersedes = tx->anchor_id,
                                 .tip = f->tip,
                                 .fee_cap = f->fee_cap,
                                 .hash = hash,
                                 .raw = raw,
                                 .raw_len = raw_len};
        rc = ch_anchorer_save(self->anchorer, &grown, &repl, &anchor_id);
    } else {
        rc = ch_db_add_attempt(self->db, tx->id, anchor_id, f->tip, f->fee_cap, hash, raw, raw_len);
    }
    if (rc == 0) {
        lc_counter_inc(self->replacements);
        lc_info("anchor_tx_replaced",
                "tx_id=%" PRId64 " nonce=%" PRIu64 " anchor_id=%" PRId64 " tip=%" PRIu64
                " fee_cap=%" PRIu64,
                tx->id, tx->nonce, anchor_id, f->tip, f->fee_cap);
        (void)ch_submit_broadcast(self, tx->id, raw, raw_len);
    }
    free(raw);
    return rc;
}

int ch_submit_replace(ch_relayer_t *self, const ch_tx_t *tx)
{
    ch_fees_t market, next, last = {.tip = tx->last_tip, .fee_cap = tx->last_fee_cap};
    int rc = s_market_fees(self, &market);
    if (rc < 0)
        return rc;
    switch (ch_fees_replacement(&self->fee_policy, &last, tx->first_fee_cap, &market, &next)) {
    case CH_FEES_RESEND: {
        /* Sent again as it is: the replacement clock starts over. */
        lc_ethrpc_send_status_t st;
        if ((rc = ch_submit_resend(self, tx->id, &st)) == 0 &&
            (st == LC_ETHRPC_SEND_OK || st == LC_ETHRPC_SEND_ALREADY_KNOWN) &&
            ch_db_touch_attempt(self->db, tx->id) < 0)
            rc = LC_ERR_UNAVAILABLE;
        return rc;
    }
    case CH_FEES_CEILING:
        /* No valid replacement is possible: keep the last one in the pool. */
        (void)ch_submit_resend(self, tx->id, NULL);
        /* Checked every tick while the transaction waits: one line a minute, with a count. */
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT;
        lc_log_limited(&limit, 60000, LC_LOG_WARN, "fee_ceiling_reached",
                       "tx_id=%" PRId64 " fee_cap=%" PRIu64, tx->id, tx->last_fee_cap);
        return 0;
    case CH_FEES_REPLACE:
        break;
    }
    return s_replace_at(self, tx, &next);
}
