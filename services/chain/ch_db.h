/* ch_db.h: the relayer's state in PostgreSQL, in its own tables (ch_migrations.c, applied by
 * `lcore-chain migrate`): the records the stores reported (chain_records, in arrival order, and
 * how far each store's feed was taken in, chain_feed), anchors and their leaves, transactions
 * (one row per nonce) and their signed attempts. Every state change that must survive kill -9
 * is one SQL transaction; attempts are saved before they are broadcast. */
#ifndef CH_DB_H
#define CH_DB_H

#include <stdio.h>

#include "lc_common.h"
#include "lc_pg.h"

typedef struct ch_db ch_db_t;

/* Connects; NULL when PostgreSQL or the chain's schema (`lcore-chain migrate`) is not there
 * yet. */
ch_db_t *ch_db_new(const char *dsn);
void ch_db_destroy(ch_db_t **self_p);
/* The connection (ch_lease runs on it: the fence checks the session's settings). */
lc_pg_t *ch_db_pg(ch_db_t *self);
int ch_db_ok(ch_db_t *self);
/* `lcore-chain migrate`: connects to dsn (the owner role's), waiting with backoff until stop
 * says to give up, then applies the chain's pending migrations and grants chain_role exactly
 * its privileges (see lc_migrate); one line per step on out. 0 or an error code. */
int ch_db_migrate(const char *dsn, const char *chain_role, FILE *out, lc_pg_stop_fn stop,
                  void *stop_arg) LC_WUR;
/* Grows with every statement that writes the relayer's state (or may have: failed ones,
 * rollbacks, a reconnection). The relayer re-reads its live transactions only when this moved,
 * the chain moved, or a timer ran out: nothing else changes them. */
uint64_t ch_db_writes(const ch_db_t *self);

/* A record waiting for an anchor. */
typedef struct {
    int64_t arrival; /* its number in chain_records: the order the relayer took it in */
    uint8_t record_id[32];
    uint8_t envelope_hash[32];
} ch_record_t;

/* The leaf inputs of one record a store committed (a StoredRecord). */
typedef struct {
    uint8_t record_id[32];
    uint8_t envelope_hash[32];
    uint64_t position;
    uint64_t stored_at_us, received_at_us;
} ch_feed_record_t;

/* How far the relayer has taken in store_id's records (0: never heard of it). */
int ch_db_feed_position(ch_db_t *self, const char *store_id, uint64_t *position) LC_WUR;
/* Takes in store_id's records in (after, upto] in one transaction: inserts those not known yet
 * (by record_id: a record two stores both wrote, or sent twice, is taken once) into
 * chain_records, in the order given, and moves the store's feed position from after to upto.
 * LC_ERR_CONFLICT, with nothing written, when the feed position is not `after` (a message was
 * missed, or this one was already taken in). *inserted: new records. */
int ch_db_feed_add(ch_db_t *self, const char *store_id, uint64_t after, uint64_t upto,
                   const ch_feed_record_t *recs, size_t n, size_t *inserted) LC_WUR;

/* Fills out (fields malloc'd; free with ch_db_anchor_info_clear) for one record: record_id, the
 * leaf, and, once the record is a leaf of a mined live anchor, its status (anchored, confirmed,
 * finalized), proof, anchor_id, root, tx_hash, block_number and confirmations (from chain_head);
 * status "pending" before. chain_id and contract are the caller's. LC_ERR_NOTFOUND when the
 * relayer has not taken the record in. */
struct Lcore__V1__AnchorInfo;
int ch_db_anchor_info(ch_db_t *self, const uint8_t record_id[32],
                      struct Lcore__V1__AnchorInfo *out) LC_WUR;
void ch_db_anchor_info_clear(struct Lcore__V1__AnchorInfo *info);
/* The same for many records (get_anchors): out[0 .. *found) are the record_ids (n of them, 32
 * bytes each, back to back) the relayer has taken in, in the order asked, each once (unknown
 * ones left out); out holds n entries, each cleared with ch_db_anchor_info_clear. At most two
 * statements whatever n (the records, then the leaves of those of their anchors whose Merkle
 * trees are not in this handle's proof cache: none when all are; more only when those anchors
 * hold more than 2^18 leaves together). On error nothing is left to clear. */
int ch_db_anchor_infos(ch_db_t *self, const uint8_t *record_ids, size_t n,
                       struct Lcore__V1__AnchorInfo *out, size_t *found) LC_WUR;

/* The proof cache: each handle keeps the Merkle trees of the anchors it answered for lately
 * (ch_proof_cache; a tree costs about 72 bytes a leaf), the least recently used going first
 * once they hold more than this many leaves together; 0 keeps none. An anchor's leaves never
 * change, and each cached tree is checked against its anchor's root and the record's leaf before
 * use, so answers are the same with or without it. The handle's own: no locking (the query
 * thread has a handle of its own). New handles start with CH_DB_PROOF_CACHE_LEAVES (2^19, the
 * default of LCORE_CHAIN_PROOF_CACHE_LEAVES). */
#define CH_DB_PROOF_CACHE_LEAVES 524288
void ch_db_set_proof_cache(ch_db_t *self, size_t max_leaves);
typedef struct {
    uint64_t hits;        /* anchors of an answer whose tree was in the cache */
    uint64_t misses;      /* anchors of an answer whose leaves were read to build it */
    uint64_t leaves_read; /* leaves read from PostgreSQL for proofs */
    size_t leaves, trees; /* held now */
} ch_db_proof_stats_t;
/* Counts since the handle was made. */
void ch_db_proof_stats(const ch_db_t *self, ch_db_proof_stats_t *out);

/* Highest arrival already in a live (not superseded) anchor; 0 when none. */
int ch_db_cursor(ch_db_t *self, int64_t *last_arrival) LC_WUR;
/* Records with arrival > after, in arrival order, at most max. *oldest_age_ms: how long the
 * first one has been stored. */
int ch_db_records_after(ch_db_t *self, int64_t after, size_t max, ch_record_t *out, size_t *n,
                        uint64_t *oldest_age_ms) LC_WUR;
/* A signed replacement that sends a new anchor at a transaction's nonce. */
typedef struct {
    int64_t tx_id;
    int64_t supersedes; /* the anchor it replaces */
    uint64_t tip, fee_cap;
    const uint8_t *hash; /* 32 bytes */
    const uint8_t *raw;
    size_t raw_len;
} ch_replacement_t;

/* An anchor id for an anchor not created yet (ids are the on-chain batchId, so a replacement can be
 * signed before its anchor is saved). An id reserved and never used is a harmless gap. */
int ch_db_reserve_anchor_id(ch_db_t *self, int64_t *anchor_id) LC_WUR;
/* Persists an anchor and its leaves in one transaction. repl NULL: a new anchor, id assigned here.
 * repl set: the anchor takes the reserved id *anchor_id, and in the same transaction repl's anchor
 * is superseded, the attempt saved and the transaction row moved to the new anchor, so that a
 * crash can never leave the new anchor saved without the attempt that anchors it (it would be
 * anchored again at another nonce while the old one may still land: records twice). */
int ch_db_create_anchor(ch_db_t *self, const ch_record_t *recs, const uint8_t *leaves, size_t n,
                        const uint8_t root[32], const ch_replacement_t *repl,
                        int64_t *anchor_id) LC_WUR;
/* A pending anchor whose records are anchored under another anchor id: superseded. */
int ch_db_supersede_anchor(ch_db_t *self, int64_t anchor_id) LC_WUR;
/* A pending anchor with no live transaction (oldest first), or *anchor_id = 0. */
int ch_db_unsent_anchor(ch_db_t *self, int64_t *anchor_id, uint8_t root[32], uint32_t *count,
                        int64_t *first_arrival) LC_WUR;

/* Records the latest block the relayer saw (record lookups derive confirmations from it). */
int ch_db_set_head(ch_db_t *self, uint64_t block) LC_WUR;
/* An anchor's root and leaf count. */
int ch_db_anchor_root(ch_db_t *self, int64_t anchor_id, uint8_t root[32], uint32_t *count) LC_WUR;
/* Seconds since each of the anchor's records was stored, and since its gateway received it (at
 * most cap of them). */
int ch_db_anchor_ages(ch_db_t *self, int64_t anchor_id, double *stored, double *received,
                      size_t cap, size_t *n) LC_WUR;

/* Seconds since the oldest record not yet in a confirmed anchor was stored (0: none). */
int ch_db_unconfirmed_age(ch_db_t *self, double *age) LC_WUR;

typedef enum {
    CH_TX_IN_PROGRESS, /* nonce taken, attempt signed and saved, not known to be broadcast */
    CH_TX_UNCONFIRMED, /* broadcast; mined (block_number > 0) or not */
    CH_TX_CONFIRMED,   /* receipt at depth >= confirmations */
    CH_TX_FINALIZED,
    CH_TX_FATAL,
} ch_tx_state_t;

/* A transaction not yet final: at most one unmined (the relayer sends one anchor at a time),
 * plus mined ones still watched for depth and reorgs. */
typedef struct {
    int64_t id, anchor_id;
    uint64_t nonce;
    ch_tx_state_t state;
    uint64_t gas_limit;
    uint64_t block_number; /* 0: not mined */
    uint8_t block_hash[32];
    uint64_t last_tip, last_fee_cap, first_fee_cap;
    uint64_t last_attempt_age_ms;
    int64_t first_arrival, last_arrival; /* arrivals: of its anchor */
} ch_tx_t;

/* Transactions in progress, unconfirmed, or confirmed-not-final (at most cap): the unmined ones
 * first, then (mined_too) the mined ones, each by nonce. */
int ch_db_live_txs(ch_db_t *self, const uint8_t from[20], int mined_too, ch_tx_t *txs, size_t cap,
                   size_t *n) LC_WUR;
/* All attempt hashes of a transaction (newest first), at most cap. */
int ch_db_attempt_hashes(ch_db_t *self, int64_t tx_id, uint8_t (*hashes)[32], int64_t *anchor_ids,
                         size_t cap, size_t *n) LC_WUR;
/* The newest attempt's signed bytes (malloc'd). */
int ch_db_last_raw(ch_db_t *self, int64_t tx_id, uint8_t **raw, size_t *raw_len) LC_WUR;
/* Highest nonce of any non-fatal transaction from this address; *has = 0 if none. */
int ch_db_max_nonce(ch_db_t *self, const uint8_t from[20], uint64_t *nonce, int *has) LC_WUR;

/* New transaction (state in_progress) with its first attempt, in one SQL transaction. */
int ch_db_insert_tx(ch_db_t *self, int64_t anchor_id, const uint8_t from[20], uint64_t nonce,
                    uint64_t gas_limit, uint64_t tip, uint64_t fee_cap, const uint8_t hash[32],
                    const uint8_t *raw, size_t raw_len, int64_t *tx_id) LC_WUR;
/* A replacement at the same nonce (possibly for a newer anchor: the tx row follows it). */
int ch_db_add_attempt(ch_db_t *self, int64_t tx_id, int64_t anchor_id, uint64_t tip,
                      uint64_t fee_cap, const uint8_t hash[32], const uint8_t *raw,
                      size_t raw_len) LC_WUR;
int ch_db_mark_broadcast(ch_db_t *self, int64_t tx_id) LC_WUR;
/* The newest attempt was sent again unchanged: its broadcast time (the replacement clock) is
 * now. */
int ch_db_touch_attempt(ch_db_t *self, int64_t tx_id) LC_WUR;
/* Receipt seen: the attempt's anchor becomes the transaction's anchor, status 'anchored'; any
 * other anchor that shared this nonce is superseded. A transaction given up on (fatal) is taken
 * back: the chain says it landed. Any other live transaction at its nonce can no longer land:
 * it becomes fatal and its anchor is sent again. gas_used and gas_price 0: not known. */
int ch_db_mark_mined(ch_db_t *self, int64_t tx_id, int64_t anchor_id, const uint8_t hash[32],
                     uint64_t block, const uint8_t block_hash[32], uint64_t gas_used,
                     uint64_t gas_price) LC_WUR;
/* The transaction (and the anchor it sends) a signed attempt belongs to; LC_ERR_NOTFOUND if none.
 */
int ch_db_find_attempt(ch_db_t *self, const uint8_t hash[32], int64_t *tx_id,
                       int64_t *anchor_id) LC_WUR;
/* A transaction sent with the relayer's key but not in this database (found on chain by its
 * Anchored event): saved as mined for anchor_id, as if this relayer had sent it. */
typedef struct {
    int64_t anchor_id;
    const uint8_t *from; /* 20 bytes */
    uint64_t nonce, gas_limit, tip, fee_cap;
    const uint8_t *hash; /* 32 bytes */
    const uint8_t *raw;
    size_t raw_len;
    uint64_t block;
    const uint8_t *block_hash; /* 32 bytes */
    uint64_t gas_used, gas_price;
} ch_adopted_tx_t;
int ch_db_adopt_tx(ch_db_t *self, const ch_adopted_tx_t *tx, int64_t *tx_id) LC_WUR;
/* Reorg: the receipt is gone; back to unconfirmed, anchor back to pending. */
int ch_db_mark_unmined(ch_db_t *self, int64_t tx_id) LC_WUR;
/* confirmed / finalized, for the transaction and its anchor. */
int ch_db_mark_depth(ch_db_t *self, int64_t tx_id, ch_tx_state_t state) LC_WUR;
/* The transaction will never land. requeue: its anchor stays pending and is sent again with a new
 * nonce (the nonce was taken by another sender); else the anchor is superseded (reverted), unless
 * another transaction has it mined. */
int ch_db_mark_fatal(ch_db_t *self, int64_t tx_id, const char *why, int requeue) LC_WUR;

/* -- the chain's identity (ch_identity.c compares it) ------------------------------------- */

/* What says which chain and which contract the relayer anchors on. */
typedef struct {
    int64_t id; /* its row; 0: not recorded */
    uint64_t chain_id;
    uint8_t genesis_hash[32];
    uint8_t contract[20];
    uint8_t code_hash[32];         /* keccak256 of the contract's runtime code */
    uint64_t deploy_block;         /* 0: not known (the node would not search its logs) */
    uint8_t deploy_block_hash[32]; /* of deploy_block */
} ch_chain_identity_t;

/* The current identity; LC_ERR_NOTFOUND when none is recorded yet. */
int ch_db_chain_identity(ch_db_t *self, ch_chain_identity_t *out) LC_WUR;
/* Records id as the current identity unless one is recorded already (then nothing changes):
 * the first start's. */
int ch_db_record_chain_identity(ch_db_t *self, const ch_chain_identity_t *id) LC_WUR;
/* `lcore-chain adopt-chain`, one SQL transaction: every anchor and transaction of the current
 * chain is stamped with its identity (history is kept), the live ones become 'abandoned', the
 * identity is retired and id recorded as the current one. The records go back to waiting: the
 * relayer anchors all of them again. *anchors, *txs: how many were abandoned. */
int ch_db_adopt_chain(ch_db_t *self, const ch_chain_identity_t *id, uint64_t *anchors,
                      uint64_t *txs) LC_WUR;
/* The block of the newest finalized transaction from this address (a block the chain must keep
 * for good); LC_ERR_NOTFOUND when there is none. */
int ch_db_newest_final_block(ch_db_t *self, const uint8_t from[20], uint64_t *block,
                             uint8_t hash[32]) LC_WUR;
/* How many live (not fatal, not abandoned) transactions from this address have a nonce in
 * [lo, hi). */
int ch_db_count_nonces(ch_db_t *self, const uint8_t from[20], uint64_t lo, uint64_t hi,
                       uint64_t *n) LC_WUR;

#endif
