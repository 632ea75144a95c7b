/* ch_db.c: see ch_db.h. */
#include "ch_db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ch_pgarray.h"
#include "lc_codec.h"
#include "lc_log.h"
#include "lc_pg.h"

struct ch_db {
    PGconn *conn;
    char *dsn;
    uint64_t writes; /* see ch_db_writes */
};

static const char *const s_states[] = {"in_progress", "unconfirmed", "confirmed", "finalized",
                                       "fatal_error"};

/* Runs a statement with text parameters; returns the result when its status is `want`. */
static PGresult *s_exec(ch_db_t *self, ExecStatusType want, const char *sql, int n,
                        const char *const *vals, const int *lens, const int *fmts)
{
    PGresult *r = PQexecParams(self->conn, sql, n, NULL, vals, lens, fmts, 0);
    if (PQresultStatus(r) == want)
        return r;
    lc_warn("db_error", "err=\"%s\" sql=\"%.60s\"", strtok(PQresultErrorMessage(r), "\n"), sql);
    PQclear(r);
    return NULL;
}

static int s_cmd(ch_db_t *self, const char *sql, int n, const char *const *vals, const int *lens,
                 const int *fmts)
{
    PGresult *r = s_exec(self, PGRES_COMMAND_OK, sql, n, vals, lens, fmts);
    self->writes++; /* every statement here writes (or opens/ends a writing transaction) */
    if (!r)
        return LC_ERR_UNAVAILABLE;
    PQclear(r);
    return 0;
}

static int s_begin(ch_db_t *self)
{
    return s_cmd(self, "BEGIN", 0, NULL, NULL, NULL);
}
static int s_commit(ch_db_t *self)
{
    return s_cmd(self, "COMMIT", 0, NULL, NULL, NULL);
}
static void s_rollback(ch_db_t *self)
{
    self->writes++;
    PQclear(PQexec(self->conn, "ROLLBACK"));
}

ch_db_t *ch_db_new(const char *dsn)
{
    ch_db_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dsn = strdup(dsn)) || !(self->conn = lc_pg_connect(dsn, "lcore-chain")))
        goto fail;
    /* The newest table this relayer writes, and the grant on it: `lcore-store migrate` creates
     * the tables, then grants our role (a moment later, in another transaction). */
    PGresult *r = s_exec(self, PGRES_TUPLES_OK,
                         "SELECT coalesce(has_table_privilege(to_regclass('chain_tx_attempts'),"
                         " 'INSERT'), false)",
                         0, NULL, NULL, NULL);
    int ready = r && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!ready) {
        lc_info("waiting_for_schema",
                "need=\"INSERT on chain_tx_attempts\" role=%s (run lcore-store migrate)",
                PQuser(self->conn));
        goto fail;
    }
    return self;
fail:
    if (self) {
        PQfinish(self->conn);
        free(self->dsn);
        free(self);
    }
    return NULL;
}

void ch_db_destroy(ch_db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    PQfinish((*self_p)->conn);
    free((*self_p)->dsn);
    free(*self_p);
    *self_p = NULL;
}

int ch_db_ok(ch_db_t *self)
{
    const PGconn *was = self->conn;
    int ok = lc_pg_ensure(&self->conn, self->dsn, "lcore-chain");
    if (self->conn != was)
        self->writes++; /* reconnected: what was read before may be stale */
    return ok;
}

uint64_t ch_db_writes(const ch_db_t *self)
{
    return self->writes;
}

static int64_t s_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* bytea columns are read as hex text ('\x…'). */
static int s_bytes(const PGresult *r, int row, int col, uint8_t *out, size_t len)
{
    const char *v = PQgetvalue(r, row, col);
    size_t n = 0;
    if (PQgetisnull(r, row, col) || strncmp(v, "\\x", 2) != 0 ||
        lc_hex_decode(out, len, &n, v + 2, strlen(v + 2)) != 0 || n != len)
        return LC_ERR_INVALID;
    return 0;
}

static void s_hexparam(char *out, const uint8_t *b, size_t len)
{
    out[0] = '\\';
    out[1] = 'x';
    lc_hex_encode(out + 2, 2 * len + 1, b, len);
}

int ch_db_cursor(ch_db_t *self, int64_t *last_record)
{
    PGresult *r = s_exec(self, PGRES_TUPLES_OK,
                         "SELECT coalesce(max(last_record), 0) FROM chain_batches"
                         " WHERE status <> 'superseded'",
                         0, NULL, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    *last_record = s_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

int ch_db_records_after(ch_db_t *self, int64_t after, size_t max, ch_record_t *out, size_t *n,
                        uint64_t *oldest_age_ms)
{
    char a[24], m[24];
    snprintf(a, sizeof a, "%" PRId64, after);
    snprintf(m, sizeof m, "%zu", max);
    const char *v[2] = {a, m};
    PGresult *r = s_exec(self, PGRES_TUPLES_OK,
                         "SELECT id, record_id, envelope_hash,"
                         " (extract(epoch FROM now() - stored_at) * 1000)::bigint"
                         " FROM records WHERE id > $1 ORDER BY id LIMIT $2",
                         2, v, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    int rows = PQntuples(r);
    *n = 0;
    *oldest_age_ms = 0;
    for (int i = 0; i < rows; i++) {
        ch_record_t *rec = &out[*n];
        rec->pk = s_i64(r, i, 0);
        if (s_bytes(r, i, 1, rec->record_id, 32) || s_bytes(r, i, 2, rec->envelope_hash, 32)) {
            PQclear(r);
            return LC_ERR_INVALID;
        }
        if (i == 0) {
            int64_t age = s_i64(r, 0, 3);
            *oldest_age_ms = age > 0 ? (uint64_t)age : 0;
        }
        (*n)++;
    }
    PQclear(r);
    return 0;
}

int ch_db_reserve_batch_id(ch_db_t *self, int64_t *batch_id)
{
    PGresult *r = s_exec(self, PGRES_TUPLES_OK,
                         "SELECT nextval(pg_get_serial_sequence('chain_batches', 'id'))", 0, NULL,
                         NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    *batch_id = s_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int s_attempt(ch_db_t *self, const char *tx, const char *batch, uint64_t tip,
                     uint64_t fee_cap, const uint8_t hash[32], const uint8_t *raw, size_t len);

int ch_db_create_batch(ch_db_t *self, const ch_record_t *recs, const uint8_t *leaves, size_t n,
                       const uint8_t root[32], const ch_replacement_t *repl, int64_t *batch_id)
{
    /* Leaves go in as two binary arrays, record pks (int8[]) and leaves (bytea[]): one round
     * trip for the whole batch, nothing for the server to parse or decode. */
    uint8_t *pk_be = malloc(n * 8), *pks = malloc(ch_pgarray_size(8, n)),
            *lv = malloc(ch_pgarray_size(32, n));
    int rc = LC_ERR_NOMEM;
    if (!pk_be || !pks || !lv)
        goto out;
    for (size_t i = 0; i < n; i++)
        ch_pgarray_int8(pk_be + 8 * i, recs[i].pk);
    int pks_len = (int)ch_pgarray_encode(pks, CH_PGARRAY_OID_INT8, pk_be, 8, 8, n);
    int lv_len = (int)ch_pgarray_encode(lv, CH_PGARRAY_OID_BYTEA, leaves, 32, 32, n);
    char root_hex[70], cnt[16], first[24], last[24], sup[24], rid[24], tx[24];
    s_hexparam(root_hex, root, 32);
    snprintf(cnt, sizeof cnt, "%zu", n);
    snprintf(first, sizeof first, "%" PRId64, recs[0].pk);
    snprintf(last, sizeof last, "%" PRId64, recs[n - 1].pk);
    snprintf(sup, sizeof sup, "%" PRId64, repl ? repl->supersedes : 0);
    snprintf(rid, sizeof rid, "%" PRId64, repl ? *batch_id : 0);
    snprintf(tx, sizeof tx, "%" PRId64, repl ? repl->tx_id : 0);
    rc = LC_ERR_UNAVAILABLE;
    if (s_begin(self) < 0)
        goto out;
    const char *v1[5] = {root_hex, cnt, first, last, rid};
    PGresult *r =
        repl ? s_exec(self, PGRES_TUPLES_OK,
                      "INSERT INTO chain_batches (id, root, leaf_count, first_record, last_record)"
                      " OVERRIDING SYSTEM VALUE VALUES ($5, $1, $2, $3, $4) RETURNING id",
                      5, v1, NULL, NULL)
             : s_exec(self, PGRES_TUPLES_OK,
                      "INSERT INTO chain_batches (root, leaf_count, first_record, last_record)"
                      " VALUES ($1, $2, $3, $4) RETURNING id",
                      4, v1, NULL, NULL);
    if (!r)
        goto rollback;
    *batch_id = s_i64(r, 0, 0);
    PQclear(r);
    char bid[24];
    snprintf(bid, sizeof bid, "%" PRId64, *batch_id);
    const char *v2[3] = {bid, (const char *)pks, (const char *)lv};
    const int lens2[3] = {0, pks_len, lv_len}, fmts2[3] = {0, 1, 1};
    const char *v3[1] = {sup};
    const char *v4[2] = {tx, bid};
    if (s_cmd(self,
              "INSERT INTO chain_batch_leaves (batch_id, record_pk, leaf_index, leaf)"
              " SELECT $1, p, i - 1, l"
              " FROM unnest($2::bigint[], $3::bytea[]) WITH ORDINALITY AS t(p, l, i)",
              3, v2, lens2, fmts2) < 0)
        goto rollback;
    if (repl && (s_cmd(self,
                       "UPDATE chain_batches SET status = 'superseded' WHERE id = $1"
                       " AND status = 'pending'",
                       1, v3, NULL, NULL) < 0 ||
                 s_attempt(self, tx, bid, repl->tip, repl->fee_cap, repl->hash, repl->raw,
                           repl->raw_len) < 0 ||
                 s_cmd(self, "UPDATE chain_txs SET batch_id = $2, updated_at = now() WHERE id = $1",
                       2, v4, NULL, NULL) < 0))
        goto rollback;
    if (s_commit(self) < 0)
        goto rollback;
    rc = 0;
    goto out;
rollback:
    s_rollback(self);
out:
    free(pk_be);
    free(pks);
    free(lv);
    return rc;
}

int ch_db_supersede_batch(ch_db_t *self, int64_t batch_id)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, batch_id);
    const char *v[1] = {id};
    return s_cmd(self,
                 "UPDATE chain_batches SET status = 'superseded' WHERE id = $1 AND status ="
                 " 'pending'",
                 1, v, NULL, NULL);
}

int ch_db_unsent_batch(ch_db_t *self, int64_t *batch_id, uint8_t root[32], uint32_t *count,
                       int64_t *first_record)
{
    PGresult *r =
        s_exec(self, PGRES_TUPLES_OK,
               "SELECT b.id, b.root, b.leaf_count, b.first_record FROM chain_batches b"
               " WHERE b.status = 'pending' AND NOT EXISTS (SELECT 1 FROM chain_txs t WHERE"
               " t.batch_id = b.id AND t.state NOT IN ('fatal_error')) ORDER BY b.id LIMIT 1",
               0, NULL, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    *batch_id = 0;
    if (PQntuples(r) == 1) {
        *batch_id = s_i64(r, 0, 0);
        *count = (uint32_t)s_i64(r, 0, 2);
        *first_record = s_i64(r, 0, 3);
        if (s_bytes(r, 0, 1, root, 32)) {
            PQclear(r);
            return LC_ERR_INVALID;
        }
    }
    PQclear(r);
    return 0;
}

int ch_db_set_head(ch_db_t *self, uint64_t block)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRIu64, block);
    const char *v[1] = {b};
    return s_cmd(self,
                 "INSERT INTO chain_head (id, block) VALUES (1, $1) ON CONFLICT (id) DO UPDATE"
                 " SET block = excluded.block, updated_at = now()",
                 1, v, NULL, NULL);
}

int ch_db_batch_root(ch_db_t *self, int64_t batch_id, uint8_t root[32], uint32_t *count)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, batch_id);
    const char *v[1] = {id};
    PGresult *r =
        s_exec(self, PGRES_TUPLES_OK, "SELECT root, leaf_count FROM chain_batches WHERE id = $1", 1,
               v, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    int rc = LC_ERR_NOTFOUND;
    if (PQntuples(r) == 1 && s_bytes(r, 0, 0, root, 32) == 0) {
        *count = (uint32_t)s_i64(r, 0, 1);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int ch_db_batch_ages(ch_db_t *self, int64_t batch_id, double *stored, double *received, size_t cap,
                     size_t *n)
{
    char id[24], lim[24];
    snprintf(id, sizeof id, "%" PRId64, batch_id);
    snprintf(lim, sizeof lim, "%zu", cap);
    const char *v[2] = {id, lim};
    PGresult *r = s_exec(self, PGRES_TUPLES_OK,
                         "SELECT extract(epoch FROM now() - r.stored_at),"
                         " extract(epoch FROM now() - r.received_at) FROM chain_batch_leaves l"
                         " JOIN records r ON r.id = l.record_pk WHERE l.batch_id = $1 LIMIT $2",
                         2, v, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    *n = 0;
    for (int i = 0; i < PQntuples(r); i++, (*n)++) {
        stored[*n] = strtod(PQgetvalue(r, i, 0), NULL);
        received[*n] = strtod(PQgetvalue(r, i, 1), NULL);
    }
    PQclear(r);
    return 0;
}

int ch_db_unconfirmed_age(ch_db_t *self, double *age)
{
    /* Batches cover records in id order: the first record past the last confirmed batch is the
     * oldest waiting (one index probe, however long the backlog). */
    PGresult *r = s_exec(
        self, PGRES_TUPLES_OK,
        "SELECT coalesce(extract(epoch FROM now() - (SELECT stored_at FROM records WHERE id >"
        " coalesce((SELECT max(last_record) FROM chain_batches WHERE status IN"
        " ('confirmed', 'finalized')), 0) ORDER BY id LIMIT 1)), 0)",
        0, NULL, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    *age = PQntuples(r) == 1 ? strtod(PQgetvalue(r, 0, 0), NULL) : 0;
    PQclear(r);
    return 0;
}

int ch_db_live_txs(ch_db_t *self, const uint8_t from[20], int mined_too, ch_tx_t *txs, size_t cap,
                   size_t *n)
{
    char addr[48];
    s_hexparam(addr, from, 20);
    const char *v[2] = {addr, mined_too ? "t" : "f"};
    PGresult *r = s_exec(
        self, PGRES_TUPLES_OK,
        "SELECT t.id, t.batch_id, t.nonce, t.state, t.gas_limit, coalesce(t.block_number, 0),"
        " t.block_hash, a.tip, a.fee_cap, (extract(epoch FROM now() - coalesce(a.broadcast_at, "
        "a.created_at)) * 1000)"
        "::bigint, (SELECT fee_cap FROM chain_tx_attempts WHERE tx_id = t.id ORDER BY id LIMIT"
        " 1), b.first_record, b.last_record"
        " FROM chain_txs t JOIN chain_batches b ON b.id = t.batch_id"
        " JOIN LATERAL (SELECT * FROM chain_tx_attempts WHERE tx_id = t.id ORDER BY id DESC"
        " LIMIT 1) a ON true"
        " WHERE t.from_address = $1 AND t.state IN ('in_progress', 'unconfirmed', 'confirmed')"
        " AND (t.block_number IS NULL OR $2::boolean)"
        " ORDER BY t.block_number IS NOT NULL, t.nonce",
        2, v, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    *n = 0;
    for (int i = 0; i < PQntuples(r) && *n < cap; i++) {
        ch_tx_t *tx = &txs[(*n)++];
        memset(tx, 0, sizeof *tx);
        tx->id = s_i64(r, i, 0);
        tx->batch_id = s_i64(r, i, 1);
        tx->nonce = (uint64_t)s_i64(r, i, 2);
        const char *st = PQgetvalue(r, i, 3);
        for (int k = 0; k < 5; k++)
            if (strcmp(st, s_states[k]) == 0)
                tx->state = (ch_tx_state_t)k;
        tx->gas_limit = (uint64_t)s_i64(r, i, 4);
        tx->block_number = (uint64_t)s_i64(r, i, 5);
        if (tx->block_number && s_bytes(r, i, 6, tx->block_hash, 32))
            tx->block_number = 0;
        tx->last_tip = strtoull(PQgetvalue(r, i, 7), NULL, 10);
        tx->last_fee_cap = strtoull(PQgetvalue(r, i, 8), NULL, 10);
        int64_t age = s_i64(r, i, 9);
        tx->last_attempt_age_ms = age > 0 ? (uint64_t)age : 0;
        tx->first_fee_cap = strtoull(PQgetvalue(r, i, 10), NULL, 10);
        tx->first_record = s_i64(r, i, 11);
        tx->last_record = s_i64(r, i, 12);
    }
    PQclear(r);
    return 0;
}

int ch_db_attempt_hashes(ch_db_t *self, int64_t tx_id, uint8_t (*hashes)[32], int64_t *batch_ids,
                         size_t cap, size_t *n)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, tx_id);
    const char *v[1] = {id};
    PGresult *r = s_exec(self, PGRES_TUPLES_OK,
                         "SELECT hash, batch_id FROM chain_tx_attempts WHERE tx_id = $1"
                         " ORDER BY id DESC",
                         1, v, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    *n = 0;
    for (int i = 0; i < PQntuples(r) && *n < cap; i++) {
        if (s_bytes(r, i, 0, hashes[*n], 32) == 0) {
            batch_ids[*n] = s_i64(r, i, 1);
            (*n)++;
        }
    }
    PQclear(r);
    return 0;
}

int ch_db_last_raw(ch_db_t *self, int64_t tx_id, uint8_t **raw, size_t *raw_len)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, tx_id);
    const char *v[1] = {id};
    PGresult *r = PQexecParams(self->conn,
                               "SELECT raw FROM chain_tx_attempts WHERE tx_id = $1"
                               " ORDER BY id DESC LIMIT 1",
                               1, NULL, v, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        PQclear(r);
        return LC_ERR_UNAVAILABLE;
    }
    *raw_len = (size_t)PQgetlength(r, 0, 0);
    *raw = malloc(*raw_len);
    if (*raw)
        memcpy(*raw, PQgetvalue(r, 0, 0), *raw_len);
    PQclear(r);
    return *raw ? 0 : LC_ERR_NOMEM;
}

int ch_db_max_nonce(ch_db_t *self, const uint8_t from[20], uint64_t *nonce, int *has)
{
    char addr[48];
    s_hexparam(addr, from, 20);
    const char *v[1] = {addr};
    PGresult *r = s_exec(self, PGRES_TUPLES_OK,
                         "SELECT max(nonce) FROM chain_txs WHERE from_address = $1"
                         " AND state <> 'fatal_error'",
                         1, v, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    *has = !PQgetisnull(r, 0, 0);
    *nonce = *has ? (uint64_t)s_i64(r, 0, 0) : 0;
    PQclear(r);
    return 0;
}

static int s_attempt(ch_db_t *self, const char *tx, const char *batch, uint64_t tip,
                     uint64_t fee_cap, const uint8_t hash[32], const uint8_t *raw, size_t len)
{
    char t[24], c[24], h[70];
    snprintf(t, sizeof t, "%" PRIu64, tip);
    snprintf(c, sizeof c, "%" PRIu64, fee_cap);
    s_hexparam(h, hash, 32);
    const char *v[6] = {tx, batch, t, c, h, (const char *)raw};
    int l[6] = {0, 0, 0, 0, 0, (int)len}, f[6] = {0, 0, 0, 0, 0, 1};
    return s_cmd(self,
                 "INSERT INTO chain_tx_attempts (tx_id, batch_id, tip, fee_cap, hash, raw)"
                 " VALUES ($1, $2, $3, $4, $5, $6)",
                 6, v, l, f);
}

int ch_db_insert_tx(ch_db_t *self, int64_t batch_id, const uint8_t from[20], uint64_t nonce,
                    uint64_t gas_limit, uint64_t tip, uint64_t fee_cap, const uint8_t hash[32],
                    const uint8_t *raw, size_t raw_len, int64_t *tx_id)
{
    char b[24], addr[48], n[24], g[24];
    snprintf(b, sizeof b, "%" PRId64, batch_id);
    s_hexparam(addr, from, 20);
    snprintf(n, sizeof n, "%" PRIu64, nonce);
    snprintf(g, sizeof g, "%" PRIu64, gas_limit);
    if (s_begin(self) < 0)
        return LC_ERR_UNAVAILABLE;
    const char *v[4] = {b, addr, n, g};
    PGresult *r = s_exec(self, PGRES_TUPLES_OK,
                         "INSERT INTO chain_txs (batch_id, from_address, nonce, state, gas_limit)"
                         " VALUES ($1, $2, $3, 'in_progress', $4) RETURNING id",
                         4, v, NULL, NULL);
    if (!r)
        goto rollback;
    *tx_id = s_i64(r, 0, 0);
    PQclear(r);
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, *tx_id);
    if (s_attempt(self, id, b, tip, fee_cap, hash, raw, raw_len) < 0 || s_commit(self) < 0)
        goto rollback;
    return 0;
rollback:
    s_rollback(self);
    return LC_ERR_UNAVAILABLE;
}

int ch_db_add_attempt(ch_db_t *self, int64_t tx_id, int64_t batch_id, uint64_t tip,
                      uint64_t fee_cap, const uint8_t hash[32], const uint8_t *raw, size_t raw_len)
{
    char id[24], b[24];
    snprintf(id, sizeof id, "%" PRId64, tx_id);
    snprintf(b, sizeof b, "%" PRId64, batch_id);
    const char *v[2] = {id, b};
    if (s_begin(self) < 0)
        return LC_ERR_UNAVAILABLE;
    if (s_attempt(self, id, b, tip, fee_cap, hash, raw, raw_len) < 0 ||
        s_cmd(self, "UPDATE chain_txs SET batch_id = $2, updated_at = now() WHERE id = $1", 2, v,
              NULL, NULL) < 0 ||
        s_commit(self) < 0) {
        s_rollback(self);
        return LC_ERR_UNAVAILABLE;
    }
    return 0;
}

static int s_tx_update(ch_db_t *self, int64_t tx_id, const char *sql)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, tx_id);
    const char *v[1] = {id};
    return s_cmd(self, sql, 1, v, NULL, NULL);
}

int ch_db_mark_broadcast(ch_db_t *self, int64_t tx_id)
{
    return s_tx_update(self, tx_id,
                       "WITH a AS (UPDATE chain_tx_attempts SET broadcast_at = now()"
                       " WHERE id = (SELECT max(id) FROM chain_tx_attempts WHERE tx_id = $1)"
                       " AND broadcast_at IS NULL)"
                       " UPDATE chain_txs SET state = 'unconfirmed', updated_at = now()"
                       " WHERE id = $1 AND state = 'in_progress'");
}

int ch_db_touch_attempt(ch_db_t *self, int64_t tx_id)
{
    return s_tx_update(self, tx_id,
                       "UPDATE chain_tx_attempts SET broadcast_at = now() WHERE id ="
                       " (SELECT max(id) FROM chain_tx_attempts WHERE tx_id = $1)");
}

int ch_db_mark_mined(ch_db_t *self, int64_t tx_id, int64_t batch_id, const uint8_t hash[32],
                     uint64_t block, const uint8_t block_hash[32], uint64_t gas_used,
                     uint64_t gas_price)
{
    char id[24], b[24], h[70], bn[24], bh[70], gu[24], gp[24];
    snprintf(id, sizeof id, "%" PRId64, tx_id);
    snprintf(b, sizeof b, "%" PRId64, batch_id);
    s_hexparam(h, hash, 32);
    snprintf(bn, sizeof bn, "%" PRIu64, block);
    s_hexparam(bh, block_hash, 32);
    snprintf(gu, sizeof gu, "%" PRIu64, gas_used);
    snprintf(gp, sizeof gp, "%" PRIu64, gas_price);
    const char *v[7] = {id, b, h, bn, bh, gu, gp};
    if (s_begin(self) < 0)
        return LC_ERR_UNAVAILABLE;
    /* Other batches anchored by attempts at this nonce did not land: supersede them. */
    if (s_tx_update(self, tx_id,
                    "UPDATE chain_txs o SET state = 'fatal_error', error = 'nonce used by another"
                    " transaction', updated_at = now() FROM chain_txs t WHERE t.id = $1"
                    " AND o.from_address = t.from_address AND o.nonce = t.nonce AND o.id <> t.id"
                    " AND o.state <> 'fatal_error'") < 0 ||
        s_cmd(self,
              "UPDATE chain_txs SET batch_id = $2, mined_hash = $3, block_number = $4,"
              " block_hash = $5, gas_used = nullif($6::bigint, 0),"
              " effective_gas_price = nullif($7::numeric, 0), state = 'unconfirmed',"
              " error = NULL, updated_at = now() WHERE id = $1",
              7, v, NULL, NULL) < 0 ||
        s_cmd(self,
              "UPDATE chain_batches SET status = 'anchored' WHERE id = $1 AND status IN"
              " ('pending', 'superseded')",
              1, v + 1, NULL, NULL) < 0 ||
        s_cmd(self,
              "UPDATE chain_batches SET status = 'superseded' WHERE id IN (SELECT batch_id FROM"
              " chain_tx_attempts WHERE tx_id = $1) AND id <> $2 AND status = 'pending'",
              2, v, NULL, NULL) < 0 ||
        s_commit(self) < 0) {
        s_rollback(self);
        return LC_ERR_UNAVAILABLE;
    }
    return 0;
}

int ch_db_find_attempt(ch_db_t *self, const uint8_t hash[32], int64_t *tx_id, int64_t *batch_id)
{
    char h[70];
    s_hexparam(h, hash, 32);
    const char *v[1] = {h};
    PGresult *r =
        s_exec(self, PGRES_TUPLES_OK,
               "SELECT tx_id, batch_id FROM chain_tx_attempts WHERE hash = $1", 1, v, NULL, NULL);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    int rc = LC_ERR_NOTFOUND;
    if (PQntuples(r) == 1) {
        *tx_id = s_i64(r, 0, 0);
        *batch_id = s_i64(r, 0, 1);
        rc = 0;
    }
    PQclear(r);
    return rc;
}

int ch_db_adopt_tx(ch_db_t *self, const ch_adopted_tx_t *tx, int64_t *tx_id)
{
    char b[24], addr[48], n[24], g[24], h[70], bn[24], bh[70], gu[24], gp[24], id[24];
    snprintf(b, sizeof b, "%" PRId64, tx->batch_id);
    s_hexparam(addr, tx->from, 20);
    snprintf(n, sizeof n, "%" PRIu64, tx->nonce);
    snprintf(g, sizeof g, "%" PRIu64, tx->gas_limit);
    s_hexparam(h, tx->hash, 32);
    snprintf(bn, sizeof bn, "%" PRIu64, tx->block);
    s_hexparam(bh, tx->block_hash, 32);
    snprintf(gu, sizeof gu, "%" PRIu64, tx->gas_used);
    snprintf(gp, sizeof gp, "%" PRIu64, tx->gas_price);
    const char *v[9] = {b, addr, n, g, h, bn, bh, gu, gp};
    if (s_begin(self) < 0)
        return LC_ERR_UNAVAILABLE;
    /* The chain says this nonce is used: whatever else we have at it can no longer land. */
    if (s_cmd(self,
              "UPDATE chain_txs SET state = 'fatal_error', error = 'nonce used by another"
              " transaction', updated_at = now() WHERE from_address = $1 AND nonce = $2"
              " AND state <> 'fatal_error'",
              2, v + 1, NULL, NULL) < 0)
        goto rollback;
    PGresult *r =
        s_exec(self, PGRES_TUPLES_OK,
               "INSERT INTO chain_txs (batch_id, from_address, nonce, state, gas_limit, mined_hash,"
               " block_number, block_hash, gas_used, effective_gas_price) VALUES ($1, $2, $3,"
               " 'unconfirmed', $4, $5, $6, $7, nullif($8::bigint, 0), nullif($9::numeric, 0))"
               " RETURNING id",
               9, v, NULL, NULL);
    if (!r)
        goto rollback;
    *tx_id = s_i64(r, 0, 0);
    PQclear(r);
    snprintf(id, sizeof id, "%" PRId64, *tx_id);
    if (s_attempt(self, id, b, tx->tip, tx->fee_cap, tx->hash, tx->raw, tx->raw_len) < 0 ||
        s_cmd(self,
              "UPDATE chain_batches SET status = 'anchored' WHERE id = $1 AND status IN"
              " ('pending', 'superseded')",
              1, v, NULL, NULL) < 0 ||
        s_commit(self) < 0)
        goto rollback;
    return 0;
rollback:
    s_rollback(self);
    return LC_ERR_UNAVAILABLE;
}

int ch_db_mark_unmined(ch_db_t *self, int64_t tx_id)
{
    if (s_begin(self) < 0)
        return LC_ERR_UNAVAILABLE;
    if (s_tx_update(self, tx_id,
                    "UPDATE chain_batches SET status = 'pending', confirmed_at = NULL WHERE id ="
                    " (SELECT batch_id FROM chain_txs WHERE id = $1)") < 0 ||
        s_tx_update(self, tx_id,
                    "UPDATE chain_txs SET state = 'unconfirmed', mined_hash = NULL,"
                    " block_number = NULL, block_hash = NULL, gas_used = NULL,"
                    " effective_gas_price = NULL, updated_at = now() WHERE id = $1") < 0 ||
        s_commit(self) < 0) {
        s_rollback(self);
        return LC_ERR_UNAVAILABLE;
    }
    return 0;
}

int ch_db_mark_depth(ch_db_t *self, int64_t tx_id, ch_tx_state_t state)
{
    const char *tx_sql = state == CH_TX_FINALIZED
                             ? "UPDATE chain_txs SET state = 'finalized', updated_at = now()"
                               " WHERE id = $1"
                             : "UPDATE chain_txs SET state = 'confirmed', updated_at = now()"
                               " WHERE id = $1";
    const char *batch_sql =
        state == CH_TX_FINALIZED
            ? "UPDATE chain_batches SET status = 'finalized' WHERE id ="
              " (SELECT batch_id FROM chain_txs WHERE id = $1)"
            : "UPDATE chain_batches SET status = 'confirmed', confirmed_at = now() WHERE id ="
              " (SELECT batch_id FROM chain_txs WHERE id = $1)";
    if (s_begin(self) < 0)
        return LC_ERR_UNAVAILABLE;
    if (s_tx_update(self, tx_id, tx_sql) < 0 || s_tx_update(self, tx_id, batch_sql) < 0 ||
        s_commit(self) < 0) {
        s_rollback(self);
        return LC_ERR_UNAVAILABLE;
    }
    return 0;
}

int ch_db_mark_fatal(ch_db_t *self, int64_t tx_id, const char *why, int requeue)
{
    char id[24];
    snprintf(id, sizeof id, "%" PRId64, tx_id);
    const char *v[2] = {id, why};
    if (s_begin(self) < 0)
        return LC_ERR_UNAVAILABLE;
    if ((!requeue &&
         s_cmd(self,
               "UPDATE chain_batches b SET status = 'superseded' WHERE b.id = (SELECT batch_id"
               " FROM chain_txs WHERE id = $1) AND b.status IN ('pending', 'anchored')"
               " AND NOT EXISTS (SELECT 1 FROM chain_txs o WHERE o.batch_id = b.id AND o.id <> $1"
               " AND o.block_number IS NOT NULL AND o.state <> 'fatal_error')",
               1, v, NULL, NULL) < 0) ||
        s_cmd(self,
              "UPDATE chain_txs SET state = 'fatal_error', error = $2, updated_at = now()"
              " WHERE id = $1",
              2, v, NULL, NULL) < 0 ||
        s_commit(self) < 0) {
        s_rollback(self);
        return LC_ERR_UNAVAILABLE;
    }
    return 0;
}
