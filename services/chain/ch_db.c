/* ch_db.c: see ch_db.h. */
#include "ch_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ch_migrations.h"
#include "ch_proof_cache.h"
#include "lc_log.h"
#include "lc_merkle.h"
#include "lc_pg.h"
#include "lcore.pb-c.h"

struct ch_db {
    lc_pg_t *pg;
    ch_proof_cache_t *proofs; /* the trees of the anchors asked for lately */
    ch_db_proof_stats_t proof_stats;
};

static const char *const s_states[] = {"in_progress", "unconfirmed", "confirmed", "finalized",
                                       "fatal_error"};

/* The relayer retries whatever failed in PostgreSQL on a later tick: to it every failed
 * statement is LC_ERR_UNAVAILABLE (a row not found stays LC_ERR_NOTFOUND); a row count is 0. */
static int s_status(int rc)
{
    return rc >= 0 ? 0 : rc == LC_ERR_NOTFOUND ? rc : LC_ERR_UNAVAILABLE;
}

/* Ends a transaction begun by the caller: commits if every step went well (rc >= 0), else
 * rolls back. */
static int s_finish(ch_db_t *self, int rc)
{
    if (rc >= 0 && (rc = lc_pg_commit(self->pg)) == 0)
        return 0;
    lc_pg_rollback(self->pg);
    return s_status(rc);
}

/* A statement on one or two ids ($1 = id, $2 = other; typed int8, so SQL may leave $2 out). */
static int s_by_ids(ch_db_t *self, const char *sql, int64_t id, int64_t other)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, id);
    lc_pg_add_i64(p, other);
    return s_status(lc_pg_exec(self->pg, sql, p));
}

ch_db_t *ch_db_new(const char *dsn)
{
    ch_db_t *self = calloc(1, sizeof *self);
    char why[192];
    if (!self || !(self->proofs = ch_proof_cache_new(CH_DB_PROOF_CACHE_LEAVES)) ||
        !(self->pg = lc_pg_new(dsn, "lcore-chain")))
        goto fail;
    if (lc_migrate_check(self->pg, &ch_migrations, why, sizeof why) != 0) {
        lc_info("waiting_for_schema", "version=%d reason=\"%s\"",
                lc_migrate_version(&ch_migrations), why);
        goto fail;
    }
    return self;
fail:
    ch_db_destroy(&self);
    return NULL;
}

lc_pg_t *ch_db_pg(ch_db_t *self)
{
    return self->pg;
}

void ch_db_destroy(ch_db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_pg_destroy(&(*self_p)->pg);
    ch_proof_cache_destroy(&(*self_p)->proofs);
    free(*self_p);
    *self_p = NULL;
}

int ch_db_migrate(const char *dsn, const char *chain_role, FILE *out, lc_pg_stop_fn stop,
                  void *stop_arg)
{
    lc_pg_t *pg = lc_pg_connect_wait(dsn, "lcore-chain", 5000, stop, stop_arg);
    if (!pg)
        return LC_ERR_UNAVAILABLE;
    int rc = lc_migrate(pg, &ch_migrations, chain_role, out);
    lc_pg_destroy(&pg);
    return rc;
}

int ch_db_ok(ch_db_t *self)
{
    return lc_pg_ok(self->pg);
}

uint64_t ch_db_writes(const ch_db_t *self)
{
    return lc_pg_changes(self->pg);
}

/* -- the stores' records ----------------------------------------------------------------- */

int ch_db_feed_position(ch_db_t *self, const char *store_id, uint64_t *position)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_text(p, store_id);
    PGresult *r = NULL;
    int rc =
        lc_pg_query_row(self->pg, &r, "SELECT position FROM chain_feed WHERE store_id = $1", p);
    *position = rc == 0 ? lc_pg_u64(r, 0, 0) : 0;
    PQclear(r);
    return rc == LC_ERR_NOTFOUND ? 0 : s_status(rc);
}

/* Moves store_id's feed position from $2 to $3 (a store never heard of is at 0): 1 row when it
 * moved, 0 when the position was not $2. */
static const char s_feed_move_sql[] =
    "WITH upd AS (UPDATE chain_feed SET position = $3, updated_at = now()"
    " WHERE store_id = $1 AND position = $2 RETURNING 1),"
    " ins AS (INSERT INTO chain_feed (store_id, position) SELECT $1, $3 WHERE $2 = 0"
    " AND NOT EXISTS (SELECT 1 FROM chain_feed WHERE store_id = $1)"
    " ON CONFLICT (store_id) DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins)";

/* In the order given (arrival follows it); a record known already is skipped. */
static const char s_feed_insert_sql[] =
    "INSERT INTO chain_records (record_id, envelope_hash, store_id, position, stored_at,"
    " received_at) SELECT r, e, $1, p, s, v FROM unnest($2::bytea[], $3::bytea[], $4::bigint[],"
    " $5::timestamptz[], $6::timestamptz[]) WITH ORDINALITY AS t(r, e, p, s, v, i) ORDER BY i"
    " ON CONFLICT (record_id) DO NOTHING";

int ch_db_feed_add(ch_db_t *self, const char *store_id, uint64_t after, uint64_t upto,
                   const ch_feed_record_t *recs, size_t n, size_t *inserted)
{
    *inserted = 0;
    if (upto < after || upto > INT64_MAX)
        return LC_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (recs[i].position <= after || recs[i].position > upto)
            return LC_ERR_INVALID;
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_text(p, store_id);
    lc_pg_add_u64(p, after);
    lc_pg_add_u64(p, upto);
    PGresult *r = NULL;
    int rc = lc_pg_begin(self->pg);
    /* Both statements run for every message of a store: prepared (parsed and planned once). */
    if (rc == 0 && (rc = lc_pg_query_prepared(self->pg, &r, s_feed_move_sql, p)) == 0 &&
        (PQntuples(r) != 1 || lc_pg_i64(r, 0, 0) != 1)) {
        PQclear(r);
        lc_pg_rollback(self->pg);
        return LC_ERR_CONFLICT;
    }
    PQclear(r);
    if (rc == 0 && n) {
        p = lc_pg_params(self->pg);
        lc_pg_add_text(p, store_id);
        lc_pg_add_bytes_array(p, recs[0].record_id, sizeof *recs, 32, n);
        lc_pg_add_bytes_array(p, recs[0].envelope_hash, sizeof *recs, 32, n);
        lc_pg_add_i64_array(p, &recs[0].position, sizeof *recs, n);
        lc_pg_add_time_array(p, &recs[0].stored_at_us, sizeof *recs, n);
        lc_pg_add_time_array(p, &recs[0].received_at_us, sizeof *recs, n);
        if ((rc = lc_pg_exec_prepared(self->pg, s_feed_insert_sql, p)) >= 0)
            *inserted = (size_t)rc;
    }
    if ((rc = s_finish(self, rc)) < 0)
        *inserted = 0;
    return rc;
}

int ch_db_cursor(ch_db_t *self, int64_t *last_arrival)
{
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r,
                             "SELECT coalesce(max(last_arrival), 0) FROM anchors"
                             " WHERE status NOT IN ('superseded', 'abandoned')",
                             NULL);
    if (rc == 0)
        *last_arrival = lc_pg_i64(r, 0, 0);
    PQclear(r);
    return s_status(rc);
}

int ch_db_records_after(ch_db_t *self, int64_t after, size_t max, ch_record_t *out, size_t *n,
                        uint64_t *oldest_age_ms)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, after);
    lc_pg_add_u64(p, max);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r,
                         "SELECT arrival, record_id, envelope_hash,"
                         " (extract(epoch FROM now() - stored_at) * 1000)::bigint"
                         " FROM chain_records WHERE arrival > $1 ORDER BY arrival LIMIT $2",
                         p);
    *n = 0;
    *oldest_age_ms = 0;
    if (rc < 0)
        return s_status(rc);
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        ch_record_t *rec = &out[*n];
        rec->arrival = lc_pg_i64(r, i, 0);
        if (lc_pg_bytes(r, i, 1, rec->record_id, 32) ||
            lc_pg_bytes(r, i, 2, rec->envelope_hash, 32))
            rc = LC_ERR_INVALID;
        else
            (*n)++;
    }
    if (*n)
        *oldest_age_ms = lc_pg_u64(r, 0, 3);
    PQclear(r);
    return rc;
}

/* -- anchors ----------------------------------------------------------------------------- */

int ch_db_reserve_anchor_id(ch_db_t *self, int64_t *anchor_id)
{
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r,
                             "SELECT nextval(pg_get_serial_sequence('anchors', 'id'))", NULL);
    if (rc == 0)
        *anchor_id = lc_pg_i64(r, 0, 0);
    PQclear(r);
    return s_status(rc);
}

static int s_attempt(ch_db_t *self, int64_t tx_id, int64_t anchor_id, uint64_t tip,
                     uint64_t fee_cap, const uint8_t hash[32], const uint8_t *raw, size_t len)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, tx_id);
    lc_pg_add_i64(p, anchor_id);
    lc_pg_add_u64(p, tip);
    lc_pg_add_u64(p, fee_cap);
    lc_pg_add_bytes(p, hash, 32);
    lc_pg_add_bytes(p, raw, len);
    return s_status(lc_pg_exec(self->pg,
                               "INSERT INTO anchor_tx_attempts (tx_id, anchor_id, tip, fee_cap,"
                               " hash, raw) VALUES ($1, $2, $3, $4, $5, $6)",
                               p));
}

/* The anchor row over recs[0 .. n - 1] (a range of arrivals); id 0: a new id, else that
 * reserved one. *anchor_id: its id. */
static int s_insert_anchor(ch_db_t *self, const ch_record_t *recs, size_t n, const uint8_t root[32],
                           int64_t id, int64_t *anchor_id)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, root, 32);
    lc_pg_add_u64(p, n);
    lc_pg_add_i64(p, recs[0].arrival);
    lc_pg_add_i64(p, recs[n - 1].arrival);
    if (id)
        lc_pg_add_i64(p, id);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(
        self->pg, &r,
        id ? "INSERT INTO anchors (id, root, leaf_count, first_arrival, last_arrival)"
             " OVERRIDING SYSTEM VALUE VALUES ($5, $1, $2, $3, $4) RETURNING id"
           : "INSERT INTO anchors (root, leaf_count, first_arrival, last_arrival)"
             " VALUES ($1, $2, $3, $4) RETURNING id",
        p);
    if (rc == 0)
        *anchor_id = lc_pg_i64(r, 0, 0);
    PQclear(r);
    return s_status(rc);
}

/* The leaves go in as two binary arrays, arrivals (int8[]) and leaves (bytea[]): one round
 * trip for the whole anchor, nothing for the server to parse or decode. */
static int s_insert_leaves(ch_db_t *self, int64_t anchor_id, const ch_record_t *recs,
                           const uint8_t *leaves, size_t n)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, anchor_id);
    lc_pg_add_i64_array(p, &recs[0].arrival, sizeof *recs, n);
    lc_pg_add_bytes_array(p, leaves, 32, 32, n);
    return s_status(lc_pg_exec(self->pg,
                               "INSERT INTO anchor_leaves (anchor_id, arrival, leaf_index, leaf)"
                               " SELECT $1, a, i - 1, l FROM unnest($2::bigint[], $3::bytea[])"
                               " WITH ORDINALITY AS t(a, l, i)",
                               p));
}

int ch_db_create_anchor(ch_db_t *self, const ch_record_t *recs, const uint8_t *leaves, size_t n,
                        const uint8_t root[32], const ch_replacement_t *repl, int64_t *anchor_id)
{
    int rc = lc_pg_begin(self->pg);
    if (rc == 0)
        rc = s_insert_anchor(self, recs, n, root, repl ? *anchor_id : 0, anchor_id);
    if (rc == 0)
        rc = s_insert_leaves(self, *anchor_id, recs, leaves, n);
    if (rc == 0 && repl)
        rc = s_by_ids(self,
                      "UPDATE anchors SET status = 'superseded' WHERE id = $1"
                      " AND status = 'pending'",
                      repl->supersedes, 0);
    if (rc == 0 && repl)
        rc = s_attempt(self, repl->tx_id, *anchor_id, repl->tip, repl->fee_cap, repl->hash,
                       repl->raw, repl->raw_len);
    if (rc == 0 && repl)
        rc =
            s_by_ids(self, "UPDATE anchor_txs SET anchor_id = $2, updated_at = now() WHERE id = $1",
                     repl->tx_id, *anchor_id);
    return s_finish(self, rc);
}

int ch_db_supersede_anchor(ch_db_t *self, int64_t anchor_id)
{
    return s_by_ids(self,
                    "UPDATE anchors SET status = 'superseded' WHERE id = $1 AND status ="
                    " 'pending'",
                    anchor_id, 0);
}

int ch_db_unsent_anchor(ch_db_t *self, int64_t *anchor_id, uint8_t root[32], uint32_t *count,
                        int64_t *first_arrival)
{
    PGresult *r = NULL;
    int rc =
        lc_pg_query(self->pg, &r,
                    "SELECT b.id, b.root, b.leaf_count, b.first_arrival FROM anchors b"
                    " WHERE b.status = 'pending' AND NOT EXISTS (SELECT 1 FROM anchor_txs t WHERE"
                    " t.anchor_id = b.id AND t.state NOT IN ('fatal_error')) ORDER BY b.id LIMIT 1",
                    NULL);
    *anchor_id = 0;
    if (rc == 0 && PQntuples(r) == 1) {
        *anchor_id = lc_pg_i64(r, 0, 0);
        *count = (uint32_t)lc_pg_u64(r, 0, 2);
        *first_arrival = lc_pg_i64(r, 0, 3);
        if (lc_pg_bytes(r, 0, 1, root, 32))
            rc = LC_ERR_INVALID;
    }
    PQclear(r);
    return rc == LC_ERR_INVALID ? rc : s_status(rc);
}

int ch_db_set_head(ch_db_t *self, uint64_t block)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_u64(p, block);
    return s_status(lc_pg_exec(self->pg,
                               "INSERT INTO chain_head (id, block) VALUES (1, $1) ON CONFLICT (id)"
                               " DO UPDATE SET block = excluded.block, updated_at = now()",
                               p));
}

int ch_db_anchor_root(ch_db_t *self, int64_t anchor_id, uint8_t root[32], uint32_t *count)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, anchor_id);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r, "SELECT root, leaf_count FROM anchors WHERE id = $1", p);
    if (rc == 0 && lc_pg_bytes(r, 0, 0, root, 32) == 0)
        *count = (uint32_t)lc_pg_u64(r, 0, 1);
    else if (rc == 0)
        rc = LC_ERR_NOTFOUND;
    PQclear(r);
    return s_status(rc);
}

int ch_db_anchor_ages(ch_db_t *self, int64_t anchor_id, double *stored, double *received,
                      size_t cap, size_t *n)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, anchor_id);
    lc_pg_add_u64(p, cap);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r,
                         "SELECT extract(epoch FROM now() - c.stored_at)::float8,"
                         " extract(epoch FROM now() - c.received_at)::float8"
                         " FROM anchor_leaves l JOIN chain_records c ON c.arrival = l.arrival"
                         " WHERE l.anchor_id = $1 LIMIT $2",
                         p);
    *n = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++, (*n)++) {
        stored[*n] = lc_pg_double(r, i, 0);
        received[*n] = lc_pg_double(r, i, 1);
    }
    PQclear(r);
    return s_status(rc);
}

int ch_db_unconfirmed_age(ch_db_t *self, double *age)
{
    /* Anchors cover records in arrival order: the first record past the last confirmed anchor
     * is the oldest waiting (one index probe, however long the backlog). */
    PGresult *r = NULL;
    int rc = lc_pg_query_row(
        self->pg, &r,
        "SELECT coalesce(extract(epoch FROM now() - (SELECT stored_at FROM chain_records"
        " WHERE arrival > coalesce((SELECT max(last_arrival) FROM anchors WHERE status IN"
        " ('confirmed', 'finalized')), 0) ORDER BY arrival LIMIT 1)), 0)::float8",
        NULL);
    *age = rc == 0 ? lc_pg_double(r, 0, 0) : 0;
    PQclear(r);
    return s_status(rc);
}

/* One live transaction from a row of ch_db_live_txs's query. */
static void s_tx_from_row(const PGresult *r, int i, ch_tx_t *tx)
{
    memset(tx, 0, sizeof *tx);
    tx->id = lc_pg_i64(r, i, 0);
    tx->anchor_id = lc_pg_i64(r, i, 1);
    tx->nonce = lc_pg_u64(r, i, 2);
    char *st = lc_pg_text_dup(r, i, 3);
    for (int k = 0; st && k < 5; k++)
        if (strcmp(st, s_states[k]) == 0)
            tx->state = (ch_tx_state_t)k;
    free(st);
    tx->gas_limit = lc_pg_u64(r, i, 4);
    tx->block_number = lc_pg_u64(r, i, 5);
    if (tx->block_number && lc_pg_bytes(r, i, 6, tx->block_hash, 32))
        tx->block_number = 0;
    tx->last_tip = lc_pg_u64(r, i, 7);
    tx->last_fee_cap = lc_pg_u64(r, i, 8);
    tx->last_attempt_age_ms = lc_pg_u64(r, i, 9);
    tx->first_fee_cap = lc_pg_u64(r, i, 10);
    tx->first_arrival = lc_pg_i64(r, i, 11);
    tx->last_arrival = lc_pg_i64(r, i, 12);
}

int ch_db_live_txs(ch_db_t *self, const uint8_t from[20], int mined_too, ch_tx_t *txs, size_t cap,
                   size_t *n)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, from, 20);
    lc_pg_add_bool(p, mined_too);
    PGresult *r = NULL;
    /* Fees are numeric(78, 0) in the table; the relayer's (capped by LCORE_CHAIN_MAX_FEE_GWEI)
     * fit a bigint. */
    int rc = lc_pg_query(
        self->pg, &r,
        "SELECT t.id, t.anchor_id, t.nonce, t.state, t.gas_limit, coalesce(t.block_number, 0),"
        " t.block_hash, a.tip::bigint, a.fee_cap::bigint, (extract(epoch FROM now() -"
        " coalesce(a.broadcast_at, a.created_at)) * 1000)::bigint, (SELECT fee_cap FROM"
        " anchor_tx_attempts WHERE tx_id = t.id ORDER BY id LIMIT 1)::bigint, b.first_arrival,"
        " b.last_arrival FROM anchor_txs t JOIN anchors b ON b.id = t.anchor_id"
        " JOIN LATERAL (SELECT * FROM anchor_tx_attempts WHERE tx_id = t.id ORDER BY id DESC"
        " LIMIT 1) a ON true"
        " WHERE t.from_address = $1 AND t.state IN ('in_progress', 'unconfirmed', 'confirmed')"
        " AND (t.block_number IS NULL OR $2)"
        " ORDER BY t.block_number IS NOT NULL, t.nonce",
        p);
    *n = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r) && *n < cap; i++)
        s_tx_from_row(r, i, &txs[(*n)++]);
    PQclear(r);
    return s_status(rc);
}

int ch_db_attempt_hashes(ch_db_t *self, int64_t tx_id, uint8_t (*hashes)[32], int64_t *anchor_ids,
                         size_t cap, size_t *n)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, tx_id);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r,
                         "SELECT hash, anchor_id FROM anchor_tx_attempts WHERE tx_id = $1"
                         " ORDER BY id DESC",
                         p);
    *n = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r) && *n < cap; i++) {
        if (lc_pg_bytes(r, i, 0, hashes[*n], 32) == 0) {
            anchor_ids[*n] = lc_pg_i64(r, i, 1);
            (*n)++;
        }
    }
    PQclear(r);
    return s_status(rc);
}

int ch_db_last_raw(ch_db_t *self, int64_t tx_id, uint8_t **raw, size_t *raw_len)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, tx_id);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r,
                             "SELECT raw FROM anchor_tx_attempts WHERE tx_id = $1"
                             " ORDER BY id DESC LIMIT 1",
                             p);
    if (rc == 0)
        rc = lc_pg_bytes_dup(r, 0, 0, raw, raw_len);
    PQclear(r);
    return rc == LC_ERR_NOMEM ? rc : rc < 0 ? LC_ERR_UNAVAILABLE : 0;
}

/* A query of one row and one bigint column: *v (0 when NULL), *has whether it was not NULL. */
static int s_u64_row(ch_db_t *self, const char *sql, const lc_pg_params_t *p, uint64_t *v, int *has)
{
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r, sql, p);
    *has = rc == 0 && !lc_pg_null(r, 0, 0);
    *v = *has ? lc_pg_u64(r, 0, 0) : 0;
    PQclear(r);
    return s_status(rc);
}

int ch_db_max_nonce(ch_db_t *self, const uint8_t from[20], uint64_t *nonce, int *has)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, from, 20);
    return s_u64_row(self,
                     "SELECT max(nonce) FROM anchor_txs WHERE from_address = $1"
                     " AND state NOT IN ('fatal_error', 'abandoned')",
                     p, nonce, has);
}

/* -- transactions ------------------------------------------------------------------------ */

int ch_db_insert_tx(ch_db_t *self, int64_t anchor_id, const uint8_t from[20], uint64_t nonce,
                    uint64_t gas_limit, uint64_t tip, uint64_t fee_cap, const uint8_t hash[32],
                    const uint8_t *raw, size_t raw_len, int64_t *tx_id)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, anchor_id);
    lc_pg_add_bytes(p, from, 20);
    lc_pg_add_u64(p, nonce);
    lc_pg_add_u64(p, gas_limit);
    PGresult *r = NULL;
    int rc = lc_pg_begin(self->pg);
    if (rc == 0 && (rc = lc_pg_query_row(self->pg, &r,
                                         "INSERT INTO anchor_txs (anchor_id, from_address, nonce,"
                                         " state, gas_limit) VALUES ($1, $2, $3, 'in_progress',"
                                         " $4) RETURNING id",
                                         p)) == 0)
        *tx_id = lc_pg_i64(r, 0, 0);
    PQclear(r);
    if (rc == 0)
        rc = s_attempt(self, *tx_id, anchor_id, tip, fee_cap, hash, raw, raw_len);
    return s_finish(self, rc);
}

int ch_db_add_attempt(ch_db_t *self, int64_t tx_id, int64_t anchor_id, uint64_t tip,
                      uint64_t fee_cap, const uint8_t hash[32], const uint8_t *raw, size_t raw_len)
{
    int rc = lc_pg_begin(self->pg);
    if (rc == 0)
        rc = s_attempt(self, tx_id, anchor_id, tip, fee_cap, hash, raw, raw_len);
    if (rc == 0)
        rc =
            s_by_ids(self, "UPDATE anchor_txs SET anchor_id = $2, updated_at = now() WHERE id = $1",
                     tx_id, anchor_id);
    return s_finish(self, rc);
}

int ch_db_mark_broadcast(ch_db_t *self, int64_t tx_id)
{
    return s_by_ids(self,
                    "WITH a AS (UPDATE anchor_tx_attempts SET broadcast_at = now()"
                    " WHERE id = (SELECT max(id) FROM anchor_tx_attempts WHERE tx_id = $1)"
                    " AND broadcast_at IS NULL)"
                    " UPDATE anchor_txs SET state = 'unconfirmed', updated_at = now()"
                    " WHERE id = $1 AND state = 'in_progress'",
                    tx_id, 0);
}

int ch_db_touch_attempt(ch_db_t *self, int64_t tx_id)
{
    return s_by_ids(self,
                    "UPDATE anchor_tx_attempts SET broadcast_at = now() WHERE id ="
                    " (SELECT max(id) FROM anchor_tx_attempts WHERE tx_id = $1)",
                    tx_id, 0);
}

/* The anchor a transaction mined is anchored (a superseded one is taken back: the chain says
 * it landed). */
static const char s_anchored_sql[] = "UPDATE anchors SET status = 'anchored' WHERE id = $1 AND"
                                     " status IN ('pending', 'superseded')";
/* Whatever else was sent at this transaction's nonce can no longer land. */
static const char s_nonce_taken_sql[] =
    "UPDATE anchor_txs o SET state = 'fatal_error', error = 'nonce used by another"
    " transaction', updated_at = now() FROM anchor_txs t WHERE t.id = $1"
    " AND o.from_address = t.from_address AND o.nonce = t.nonce AND o.id <> t.id"
    " AND o.state NOT IN ('fatal_error', 'abandoned')";

int ch_db_mark_mined(ch_db_t *self, int64_t tx_id, int64_t anchor_id, const uint8_t hash[32],
                     uint64_t block, const uint8_t block_hash[32], uint64_t gas_used,
                     uint64_t gas_price)
{
    int rc = lc_pg_begin(self->pg);
    if (rc == 0)
        rc = s_by_ids(self, s_nonce_taken_sql, tx_id, 0);
    if (rc == 0) {
        lc_pg_params_t *p = lc_pg_params(self->pg);
        lc_pg_add_i64(p, tx_id);
        lc_pg_add_i64(p, anchor_id);
        lc_pg_add_bytes(p, hash, 32);
        lc_pg_add_u64(p, block);
        lc_pg_add_bytes(p, block_hash, 32);
        lc_pg_add_u64(p, gas_used);
        lc_pg_add_u64(p, gas_price);
        rc = s_status(lc_pg_exec(self->pg,
                                 "UPDATE anchor_txs SET anchor_id = $2, mined_hash = $3,"
                                 " block_number = $4, block_hash = $5, gas_used ="
                                 " nullif($6::bigint, 0), effective_gas_price ="
                                 " nullif($7::numeric, 0), state = 'unconfirmed', error = NULL,"
                                 " updated_at = now() WHERE id = $1",
                                 p));
    }
    if (rc == 0)
        rc = s_by_ids(self, s_anchored_sql, anchor_id, 0);
    /* Other anchors sent by attempts at this nonce did not land: superseded. */
    if (rc == 0)
        rc = s_by_ids(self,
                      "UPDATE anchors SET status = 'superseded' WHERE id IN (SELECT anchor_id"
                      " FROM anchor_tx_attempts WHERE tx_id = $1) AND id <> $2"
                      " AND status = 'pending'",
                      tx_id, anchor_id);
    return s_finish(self, rc);
}

int ch_db_find_attempt(ch_db_t *self, const uint8_t hash[32], int64_t *tx_id, int64_t *anchor_id)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, hash, 32);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r,
                             "SELECT tx_id, anchor_id FROM anchor_tx_attempts WHERE hash = $1", p);
    if (rc == 0) {
        *tx_id = lc_pg_i64(r, 0, 0);
        *anchor_id = lc_pg_i64(r, 0, 1);
    }
    PQclear(r);
    return s_status(rc);
}

/* The adopted transaction's row, as mined. */
static int s_insert_adopted(ch_db_t *self, const ch_adopted_tx_t *tx, int64_t *tx_id)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, tx->anchor_id);
    lc_pg_add_bytes(p, tx->from, 20);
    lc_pg_add_u64(p, tx->nonce);
    lc_pg_add_u64(p, tx->gas_limit);
    lc_pg_add_bytes(p, tx->hash, 32);
    lc_pg_add_u64(p, tx->block);
    lc_pg_add_bytes(p, tx->block_hash, 32);
    lc_pg_add_u64(p, tx->gas_used);
    lc_pg_add_u64(p, tx->gas_price);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(
        self->pg, &r,
        "INSERT INTO anchor_txs (anchor_id, from_address, nonce, state, gas_limit, mined_hash,"
        " block_number, block_hash, gas_used, effective_gas_price) VALUES ($1, $2, $3,"
        " 'unconfirmed', $4, $5, $6, $7, nullif($8::bigint, 0), nullif($9::numeric, 0))"
        " RETURNING id",
        p);
    if (rc == 0)
        *tx_id = lc_pg_i64(r, 0, 0);
    PQclear(r);
    return s_status(rc);
}

int ch_db_adopt_tx(ch_db_t *self, const ch_adopted_tx_t *tx, int64_t *tx_id)
{
    int rc = lc_pg_begin(self->pg);
    if (rc == 0) {
        /* The chain says this nonce is used: whatever else we have at it can no longer land. */
        lc_pg_params_t *p = lc_pg_params(self->pg);
        lc_pg_add_bytes(p, tx->from, 20);
        lc_pg_add_u64(p, tx->nonce);
        rc = s_status(lc_pg_exec(self->pg,
                                 "UPDATE anchor_txs SET state = 'fatal_error', error = 'nonce used"
                                 " by another transaction', updated_at = now()"
                                 " WHERE from_address = $1 AND nonce = $2"
                                 " AND state NOT IN ('fatal_error', 'abandoned')",
                                 p));
    }
    if (rc == 0)
        rc = s_insert_adopted(self, tx, tx_id);
    if (rc == 0)
        rc = s_attempt(self, *tx_id, tx->anchor_id, tx->tip, tx->fee_cap, tx->hash, tx->raw,
                       tx->raw_len);
    if (rc == 0)
        rc = s_by_ids(self, s_anchored_sql, tx->anchor_id, 0);
    return s_finish(self, rc);
}

int ch_db_mark_unmined(ch_db_t *self, int64_t tx_id)
{
    int rc = lc_pg_begin(self->pg);
    if (rc == 0)
        rc = s_by_ids(self,
                      "UPDATE anchors SET status = 'pending', confirmed_at = NULL WHERE id ="
                      " (SELECT anchor_id FROM anchor_txs WHERE id = $1)",
                      tx_id, 0);
    if (rc == 0)
        rc = s_by_ids(self,
                      "UPDATE anchor_txs SET state = 'unconfirmed', mined_hash = NULL,"
                      " block_number = NULL, block_hash = NULL, gas_used = NULL,"
                      " effective_gas_price = NULL, updated_at = now() WHERE id = $1",
                      tx_id, 0);
    return s_finish(self, rc);
}

int ch_db_mark_depth(ch_db_t *self, int64_t tx_id, ch_tx_state_t state)
{
    int final = state == CH_TX_FINALIZED;
    int rc = lc_pg_begin(self->pg);
    if (rc == 0)
        rc = s_by_ids(self,
                      final ? "UPDATE anchor_txs SET state = 'finalized', updated_at = now()"
                              " WHERE id = $1"
                            : "UPDATE anchor_txs SET state = 'confirmed', updated_at = now()"
                              " WHERE id = $1",
                      tx_id, 0);
    if (rc == 0)
        rc = s_by_ids(self,
                      final ? "UPDATE anchors SET status = 'finalized' WHERE id ="
                              " (SELECT anchor_id FROM anchor_txs WHERE id = $1)"
                            : "UPDATE anchors SET status = 'confirmed', confirmed_at = now()"
                              " WHERE id = (SELECT anchor_id FROM anchor_txs WHERE id = $1)",
                      tx_id, 0);
    return s_finish(self, rc);
}

int ch_db_mark_fatal(ch_db_t *self, int64_t tx_id, const char *why, int requeue)
{
    int rc = lc_pg_begin(self->pg);
    if (rc == 0 && !requeue)
        rc = s_by_ids(self,
                      "UPDATE anchors b SET status = 'superseded' WHERE b.id = (SELECT anchor_id"
                      " FROM anchor_txs WHERE id = $1) AND b.status IN ('pending', 'anchored')"
                      " AND NOT EXISTS (SELECT 1 FROM anchor_txs o WHERE o.anchor_id = b.id"
                      " AND o.id <> $1 AND o.block_number IS NOT NULL"
                      " AND o.state <> 'fatal_error')",
                      tx_id, 0);
    if (rc == 0) {
        lc_pg_params_t *p = lc_pg_params(self->pg);
        lc_pg_add_i64(p, tx_id);
        lc_pg_add_text(p, why);
        rc = s_status(lc_pg_exec(self->pg,
                                 "UPDATE anchor_txs SET state = 'fatal_error', error = $2,"
                                 " updated_at = now() WHERE id = $1",
                                 p));
    }
    return s_finish(self, rc);
}

/* -- the chain's identity ------------------------------------------------------------------ */

int ch_db_chain_identity(ch_db_t *self, ch_chain_identity_t *out)
{
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r,
                             "SELECT id, chain_id, genesis_hash, contract, code_hash,"
                             " coalesce(deploy_block, 0), deploy_block_hash FROM chain_identity"
                             " WHERE retired_at IS NULL",
                             NULL);
    memset(out, 0, sizeof *out);
    if (rc == 0) {
        out->id = lc_pg_i64(r, 0, 0);
        out->chain_id = lc_pg_u64(r, 0, 1);
        out->deploy_block = lc_pg_u64(r, 0, 5);
        if (lc_pg_bytes(r, 0, 2, out->genesis_hash, 32) ||
            lc_pg_bytes(r, 0, 3, out->contract, 20) || lc_pg_bytes(r, 0, 4, out->code_hash, 32) ||
            (out->deploy_block && lc_pg_bytes(r, 0, 6, out->deploy_block_hash, 32)))
            rc = LC_ERR_UNAVAILABLE;
    }
    PQclear(r);
    return s_status(rc);
}

/* INSERT of the current identity ($1 .. $6 as in ch_chain_identity_t). */
static int s_insert_identity(ch_db_t *self, const ch_chain_identity_t *id)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_u64(p, id->chain_id);
    lc_pg_add_bytes(p, id->genesis_hash, 32);
    lc_pg_add_bytes(p, id->contract, 20);
    lc_pg_add_bytes(p, id->code_hash, 32);
    if (id->deploy_block) {
        lc_pg_add_u64(p, id->deploy_block);
        lc_pg_add_bytes(p, id->deploy_block_hash, 32);
    } else {
        lc_pg_add_null(p);
        lc_pg_add_null(p);
    }
    return s_status(lc_pg_exec(self->pg,
                               "INSERT INTO chain_identity (chain_id, genesis_hash, contract,"
                               " code_hash, deploy_block, deploy_block_hash) VALUES ($1, $2, $3,"
                               " $4, $5::bigint, $6::bytea) ON CONFLICT DO NOTHING",
                               p));
}

int ch_db_record_chain_identity(ch_db_t *self, const ch_chain_identity_t *id)
{
    return s_insert_identity(self, id);
}

/* Stamps the current chain's rows ($1 = its identity) and abandons the live ones; the number
 * of rows abandoned. */
static int s_abandon(ch_db_t *self, int64_t old_id, const char *sql, uint64_t *n)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, old_id);
    int rc = lc_pg_exec(self->pg, sql, p);
    *n = rc > 0 ? (uint64_t)rc : 0;
    return s_status(rc);
}

int ch_db_adopt_chain(ch_db_t *self, const ch_chain_identity_t *id, uint64_t *anchors,
                      uint64_t *txs)
{
    ch_chain_identity_t old;
    *anchors = *txs = 0;
    int rc = lc_pg_begin(self->pg);
    if (rc == 0 && (rc = ch_db_chain_identity(self, &old)) == LC_ERR_NOTFOUND)
        rc = 0; /* nothing recorded: nothing to abandon, the rows stay unstamped */
    if (rc == 0 && old.id)
        rc = s_abandon(self, old.id,
                       "UPDATE anchors SET chain_identity = $1, status = 'abandoned'"
                       " WHERE chain_identity IS NULL AND status <> 'superseded'",
                       anchors);
    if (rc == 0 && old.id)
        rc = s_abandon(self, old.id,
                       "UPDATE anchor_txs SET chain_identity = $1, updated_at = now(), state ="
                       " 'abandoned' WHERE chain_identity IS NULL AND state <> 'fatal_error'",
                       txs);
    if (rc == 0 && old.id) /* superseded and fatal rows: stamped, kept as they are */
        rc = s_by_ids(self,
                      "WITH a AS (UPDATE anchors SET chain_identity = $1 WHERE chain_identity"
                      " IS NULL) UPDATE anchor_txs SET chain_identity = $1 WHERE chain_identity"
                      " IS NULL",
                      old.id, 0);
    if (rc == 0 && old.id)
        rc =
            s_by_ids(self, "UPDATE chain_identity SET retired_at = now() WHERE id = $1", old.id, 0);
    if (rc == 0)
        rc = s_insert_identity(self, id);
    return s_finish(self, rc);
}

int ch_db_newest_final_block(ch_db_t *self, const uint8_t from[20], uint64_t *block,
                             uint8_t hash[32])
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, from, 20);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r,
                             "SELECT block_number, block_hash FROM anchor_txs WHERE from_address"
                             " = $1 AND state = 'finalized' ORDER BY block_number DESC LIMIT 1",
                             p);
    if (rc == 0) {
        *block = lc_pg_u64(r, 0, 0);
        if (lc_pg_bytes(r, 0, 1, hash, 32))
            rc = LC_ERR_NOTFOUND;
    }
    PQclear(r);
    return s_status(rc);
}

int ch_db_count_nonces(ch_db_t *self, const uint8_t from[20], uint64_t lo, uint64_t hi, uint64_t *n)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, from, 20);
    lc_pg_add_u64(p, lo);
    lc_pg_add_u64(p, hi);
    int has = 0;
    return s_u64_row(self,
                     "SELECT count(*) FROM anchor_txs WHERE from_address = $1 AND nonce >= $2"
                     " AND nonce < $3 AND state NOT IN ('fatal_error', 'abandoned')",
                     p, n, &has);
}

/* -- what the gateways ask ----------------------------------------------------------------- */

/* The records asked for ($1, bytea[]) that the relayer took in, one row each, with its live
 * mined anchor if any (the newest, should there be two), and its leaf there (a cached tree is
 * checked against it). */
static const char s_anchor_info_sql[] =
    "SELECT DISTINCT ON (c.record_id) c.record_id, c.envelope_hash, b.id, b.status, b.root,"
    " lf.leaf_index, t.mined_hash, t.block_number, (SELECT block FROM chain_head WHERE id = 1),"
    " b.leaf_count, lf.leaf FROM chain_records c"
    " LEFT JOIN (anchor_leaves lf JOIN anchors b ON b.id = lf.anchor_id"
    " AND b.status IN ('anchored', 'confirmed', 'finalized')) ON lf.arrival = c.arrival"
    " LEFT JOIN anchor_txs t ON t.anchor_id = b.id AND t.block_number IS NOT NULL"
    " AND t.state <> 'fatal_error'"
    " WHERE c.record_id = ANY($1) ORDER BY c.record_id, b.id DESC NULLS LAST";

/* The leaves of the anchors $1 (int8[]), each anchor's in leaf order. */
static const char s_anchor_leaves_sql[] =
    "SELECT anchor_id, leaf FROM anchor_leaves"
    " WHERE anchor_id = ANY($1) ORDER BY anchor_id, leaf_index";

/* Leaves read by one statement at most (8 MiB), whatever was asked: whole anchors are read
 * together up to it, one larger than it alone. */
#define S_PROOF_LEAVES (1u << 18)

/* One row of s_anchor_info_sql, and the answer made of it. */
typedef struct {
    uint8_t record_id[32];
    int row;
    int64_t anchor;              /* 0: in no mined anchor */
    uint64_t index;              /* its leaf's index in the anchor */
    uint64_t leaves;             /* the anchor's leaf count */
    uint8_t root[32], leaf[32];  /* the anchor's root, the record's leaf in it */
    Lcore__V1__AnchorInfo *info; /* its answer, once asked for */
} s_found_t;

static int s_by_record(const void *a, const void *b)
{
    return memcmp(((const s_found_t *)a)->record_id, ((const s_found_t *)b)->record_id, 32);
}

static int s_by_anchor(const void *a, const void *b)
{
    int64_t x = (*(s_found_t *const *)a)->anchor, y = (*(s_found_t *const *)b)->anchor;
    return (x > y) - (x < y);
}

/* out from row f->row: record_id, leaf, status and, in a mined anchor, the anchor's part
 * (the proof comes from s_proofs). */
static int s_info_from_row(const PGresult *r, const s_found_t *f, Lcore__V1__AnchorInfo *out)
{
    int row = f->row;
    uint8_t eh[32];
    if (lc_pg_bytes(r, row, 1, eh, sizeof eh) != 0)
        return LC_ERR_INVALID;
    out->record_id.data = malloc(32);
    out->leaf.data = malloc(LC_MERKLE_HASH_LEN);
    out->status = f->anchor ? lc_pg_text_dup(r, row, 3) : strdup("pending");
    if (!out->record_id.data || !out->leaf.data || !out->status)
        return LC_ERR_NOMEM;
    memcpy(out->record_id.data, f->record_id, out->record_id.len = 32);
    lc_merkle_leaf(out->leaf.data, f->record_id, eh);
    out->leaf.len = LC_MERKLE_HASH_LEN;
    if (!f->anchor)
        return 0;
    out->anchor_id = (uint64_t)f->anchor;
    int rc = lc_pg_bytes_dup(r, row, 4, &out->root.data, &out->root.len);
    if (rc == 0 && !lc_pg_null(r, row, 6))
        rc = lc_pg_bytes_dup(r, row, 6, &out->tx_hash.data, &out->tx_hash.len);
    out->block_number = lc_pg_u64(r, row, 7);
    uint64_t head = lc_pg_u64(r, row, 8);
    out->confirmations =
        out->block_number && head >= out->block_number ? head - out->block_number + 1 : 0;
    return rc;
}

static int s_set_proof(Lcore__V1__AnchorInfo *out, const uint8_t *proof, size_t plen)
{
    if (!(out->proof = calloc(plen ? plen : 1, sizeof *out->proof)))
        return LC_ERR_NOMEM;
    for (size_t i = 0; i < plen; i++) {
        if (!(out->proof[i].data = malloc(32)))
            return LC_ERR_NOMEM;
        memcpy(out->proof[i].data, proof + 32 * i, 32);
        out->proof[i].len = 32;
        out->n_proof++;
    }
    return 0;
}

/* How many of found[0 .. n) (n >= 1, sorted by anchor) are in found[0]'s anchor. */
static size_t s_same_anchor(s_found_t *const *found, size_t n)
{
    size_t k = 1;
    while (k < n && found[k]->anchor == found[0]->anchor)
        k++;
    return k;
}

/* The proofs of found[0 .. n), all in the anchor whose tree this is. */
static int s_tree_proofs(const lc_merkle_t *tree, s_found_t *const *found, size_t n)
{
    uint8_t proof[LC_MERKLE_MAX_PROOF * 32];
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t plen = 0;
        rc = lc_merkle_proof(tree, proof, LC_MERKLE_MAX_PROOF, &plen, found[i]->index);
        if (rc == LC_ERR_NOTFOUND)
            rc = LC_ERR_INVALID; /* its leaf is not among its anchor's */
        if (rc == 0)
            rc = s_set_proof(found[i]->info, proof, plen);
    }
    return rc;
}

/* The proofs of found[0 .. n) (sorted by anchor) in found[0]'s anchor, whose leaves are rows
 * [first, first + count) of r; the tree built from them is kept in the cache. *used: how many
 * of found were in it. */
static int s_anchor_proofs(ch_db_t *self, const PGresult *r, int first, int count,
                           s_found_t *const *found, size_t n, size_t *used)
{
    uint8_t *leaves = malloc((size_t)count * 32);
    int rc = leaves ? 0 : LC_ERR_NOMEM;
    for (int i = 0; rc == 0 && i < count; i++)
        rc = lc_pg_bytes(r, first + i, 1, leaves + 32 * (size_t)i, 32);
    lc_merkle_t *tree = NULL;
    if (rc == 0 && !(tree = lc_merkle_new(leaves, (size_t)count, &rc)))
        rc = rc < 0 ? rc : LC_ERR_INVALID;
    *used = s_same_anchor(found, n);
    if (rc == 0)
        rc = s_tree_proofs(tree, found, *used);
    if (rc == 0)
        ch_proof_cache_put(self->proofs, found[0]->anchor, &tree);
    lc_merkle_destroy(&tree);
    free(leaves);
    return rc;
}

/* The proofs of found[0 .. n) (sorted by anchor, whose ids are ids[0 .. n_ids)): each anchor's
 * tree rebuilt from its leaves, all read with one statement. */
static int s_proof_batch(ch_db_t *self, const int64_t *ids, size_t n_ids, s_found_t *const *found,
                         size_t n)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64_array(p, ids, sizeof *ids, n_ids);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r, s_anchor_leaves_sql, p);
    int rows = rc == 0 ? PQntuples(r) : 0;
    self->proof_stats.leaves_read += (uint64_t)rows;
    size_t done = 0;
    for (int first = 0; rc == 0 && first < rows;) {
        int64_t anchor = lc_pg_i64(r, first, 0);
        int count = 1;
        while (first + count < rows && lc_pg_i64(r, first + count, 0) == anchor)
            count++;
        size_t used = 0;
        if (done < n && found[done]->anchor == anchor)
            rc = s_anchor_proofs(self, r, first, count, found + done, n - done, &used);
        done += used;
        first += count;
    }
    if (rc == 0 && done < n)
        rc = LC_ERR_INVALID; /* an anchor without leaves */
    PQclear(r);
    return rc;
}

/* The cached tree of the anchor of found[0 .. n) (all in it), if it is the tree these rows
 * describe: the anchor's root and leaf count, each record's leaf at its index. Anchor leaves
 * are never changed or deleted, so this holds unless the database was replaced under the
 * relayer (a restore: the id may then name other leaves): a tree that fails is dropped. */
static const lc_merkle_t *s_cached_tree(ch_db_t *self, s_found_t *const *found, size_t n)
{
    const lc_merkle_t *tree = ch_proof_cache_get(self->proofs, found[0]->anchor);
    uint8_t root[LC_MERKLE_HASH_LEN];
    if (tree)
        lc_merkle_root(tree, root);
    int same = tree && lc_merkle_leaf_count(tree) == found[0]->leaves &&
               memcmp(root, found[0]->root, sizeof root) == 0;
    for (size_t i = 0; same && i < n; i++) {
        const uint8_t *leaf = lc_merkle_node(tree, lc_merkle_tree_index(tree, found[i]->index));
        same = leaf && memcmp(leaf, found[i]->leaf, LC_MERKLE_HASH_LEN) == 0;
    }
    if (tree && !same)
        ch_proof_cache_drop(self->proofs, found[0]->anchor);
    return same ? tree : NULL;
}

/* The proofs of found[0 .. n) (sorted by anchor) whose anchor's tree is cached; the others
 * are moved to found[0 .. *missed), still sorted. */
static int s_cached_proofs(ch_db_t *self, s_found_t **found, size_t n, size_t *missed)
{
    int rc = 0;
    *missed = 0;
    for (size_t i = 0, k = 0; rc == 0 && i < n; i += k) {
        k = s_same_anchor(found + i, n - i);
        const lc_merkle_t *tree = s_cached_tree(self, found + i, k);
        if (tree) {
            self->proof_stats.hits++;
            rc = s_tree_proofs(tree, found + i, k);
        } else {
            self->proof_stats.misses++;
            memmove(found + *missed, found + i, k * sizeof *found);
            *missed += k;
        }
    }
    return rc;
}

/* The proofs of found[0 .. n) (sorted by anchor): from the cached trees, then for the other
 * anchors from their leaves, whole anchors read together, at most S_PROOF_LEAVES leaves a
 * statement (one larger anchor alone). */
static int s_proofs(ch_db_t *self, s_found_t **found, size_t asked)
{
    size_t n = 0; /* found[0 .. n): those whose anchor's tree is not cached */
    int rc = s_cached_proofs(self, found, asked, &n);
    int64_t *ids = rc == 0 ? malloc((n ? n : 1) * sizeof *ids) : NULL;
    if (rc == 0 && !ids)
        rc = LC_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n;) {
        size_t j = i, n_ids = 0;
        uint64_t leaves = 0;
        for (; j < n; j++) {
            if (n_ids && ids[n_ids - 1] == found[j]->anchor)
                continue;
            if (n_ids && leaves + found[j]->leaves > S_PROOF_LEAVES)
                break;
            ids[n_ids++] = found[j]->anchor;
            leaves += found[j]->leaves;
        }
        rc = s_proof_batch(self, ids, n_ids, found + i, j - i);
        i = j;
    }
    free(ids);
    return rc;
}

/* The answers, in the order asked (each record once), from the rows of s_anchor_info_sql;
 * *in_anchor: how many are in a mined anchor, listed first in by_anchor. */
static int s_answers(const PGresult *r, s_found_t *found, size_t rows, const uint8_t *record_ids,
                     size_t n, Lcore__V1__AnchorInfo *out, size_t *k, s_found_t **by_anchor,
                     size_t *in_anchor)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        s_found_t key, *f;
        memcpy(key.record_id, record_ids + 32 * i, 32);
        if (!(f = bsearch(&key, found, rows, sizeof *found, s_by_record)) || f->info)
            continue; /* unknown, or asked for twice */
        f->info = &out[*k];
        lcore__v1__anchor_info__init(f->info);
        (*k)++;
        rc = s_info_from_row(r, f, f->info);
        if (rc == 0 && f->anchor)
            by_anchor[(*in_anchor)++] = f;
    }
    return rc;
}

/* found[i] from row i of s_anchor_info_sql, sorted by record_id. */
static int s_found(const PGresult *r, s_found_t *found, size_t rows)
{
    for (size_t i = 0; i < rows; i++) {
        s_found_t *f = &found[i];
        f->row = (int)i;
        f->info = NULL;
        if (lc_pg_bytes(r, (int)i, 0, f->record_id, 32) != 0)
            return LC_ERR_INVALID;
        f->anchor = lc_pg_null(r, (int)i, 2) ? 0 : lc_pg_i64(r, (int)i, 2);
        f->index = lc_pg_u64(r, (int)i, 5);
        f->leaves = lc_pg_u64(r, (int)i, 9);
        if (f->anchor && (lc_pg_bytes(r, (int)i, 4, f->root, 32) != 0 ||
                          lc_pg_bytes(r, (int)i, 10, f->leaf, 32) != 0))
            return LC_ERR_INVALID;
    }
    qsort(found, rows, sizeof *found, s_by_record);
    return 0;
}

int ch_db_anchor_infos(ch_db_t *self, const uint8_t *record_ids, size_t n,
                       Lcore__V1__AnchorInfo *out, size_t *found_n)
{
    *found_n = 0;
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes_array(p, record_ids, 32, 32, n);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r, s_anchor_info_sql, p);
    size_t rows = rc == 0 ? (size_t)PQntuples(r) : 0, k = 0, in_anchor = 0;
    s_found_t *found = rc == 0 ? malloc((rows ? rows : 1) * sizeof *found) : NULL;
    s_found_t **by_anchor = found ? malloc((rows ? rows : 1) * sizeof *by_anchor) : NULL;
    if (rc == 0 && !by_anchor)
        rc = LC_ERR_NOMEM;
    if (rc == 0)
        rc = s_found(r, found, rows);
    if (rc == 0)
        rc = s_answers(r, found, rows, record_ids, n, out, &k, by_anchor, &in_anchor);
    PQclear(r);
    if (rc == 0) {
        qsort(by_anchor, in_anchor, sizeof *by_anchor, s_by_anchor);
        rc = s_proofs(self, by_anchor, in_anchor);
    }
    for (size_t i = 0; rc < 0 && i < k; i++)
        ch_db_anchor_info_clear(&out[i]);
    free(by_anchor);
    free(found);
    if (rc == 0)
        *found_n = k;
    return rc == 0 || rc == LC_ERR_INVALID || rc == LC_ERR_NOMEM ? rc : LC_ERR_UNAVAILABLE;
}

int ch_db_anchor_info(ch_db_t *self, const uint8_t record_id[32], Lcore__V1__AnchorInfo *out)
{
    size_t found = 0;
    int rc = ch_db_anchor_infos(self, record_id, 1, out, &found);
    return rc == 0 && found == 0 ? LC_ERR_NOTFOUND : rc;
}

void ch_db_set_proof_cache(ch_db_t *self, size_t max_leaves)
{
    ch_proof_cache_set_max(self->proofs, max_leaves);
}

void ch_db_proof_stats(const ch_db_t *self, ch_db_proof_stats_t *out)
{
    *out = self->proof_stats;
    out->leaves = ch_proof_cache_leaves(self->proofs);
    out->trees = ch_proof_cache_trees(self->proofs);
}

static void s_free_str(char *s)
{
    if (s != protobuf_c_empty_string)
        free(s);
}

void ch_db_anchor_info_clear(Lcore__V1__AnchorInfo *info)
{
    free(info->record_id.data);
    s_free_str(info->status);
    free(info->leaf.data);
    for (size_t i = 0; i < info->n_proof; i++)
        free(info->proof[i].data);
    free(info->proof);
    free(info->root.data);
    free(info->tx_hash.data);
    /* chain_id and contract are the caller's */
    lcore__v1__anchor_info__init(info);
}
