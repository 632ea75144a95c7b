/* st_db.c: PostgreSQL access for the store. See st_db.h. */
#include "st_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lc_log.h"
#include "lc_merkle.h"
#include "lc_pg.h"
#include "st_migrations.h"

#define ST_COLS 10
#define ST_MIGRATION_LOCK 0x6c636f7265 /* "lcore" */

struct st_db {
    char *dsn;
    PGconn *conn;
    /* The SQL text for the last batch size used; rebuilt only when the size changes. */
    char *insert_sql;
    size_t insert_rows;
};

static const char s_insert_head[] =
    "INSERT INTO records (record_id, device_id, seq, device_ts_ms, key_version, aes_nonce,"
    " xchacha_nonce, ciphertext, envelope_hash, received_at) VALUES ";
static const char s_insert_tail[] = " ON CONFLICT DO NOTHING RETURNING id";

static int s_exec_ok(PGconn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        lc_error("db_error", "what=\"%s\" err=\"%s\"", what, strtok(PQresultErrorMessage(r), "\n"));
    PQclear(r);
    return ok;
}

static int s_migrate(PGconn *c)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_advisory_lock(%lld)", (long long)ST_MIGRATION_LOCK);
    if (!s_exec_ok(c, sql, "migration lock"))
        return -1;
    int rc = -1;
    if (!s_exec_ok(c,
                   "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                   " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                   "schema_migrations"))
        goto out;
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        goto out;
    }
    int current = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    for (size_t i = 0; i < st_migrations_len; i++) {
        const st_migration_t *m = &st_migrations[i];
        if (m->version <= current)
            continue;
        if (!s_exec_ok(c, "BEGIN", "begin"))
            goto out;
        char ins[256];
        snprintf(ins, sizeof ins, "INSERT INTO schema_migrations (version, name) VALUES (%d, '%s')",
                 m->version, m->name);
        if (!s_exec_ok(c, m->sql, m->name) || !s_exec_ok(c, ins, "record migration") ||
            !s_exec_ok(c, "COMMIT", "commit")) {
            s_exec_ok(c, "ROLLBACK", "rollback");
            goto out;
        }
        lc_info("migration_applied", "version=%d name=\"%s\"", m->version, m->name);
    }
    rc = 0;
out:
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%lld)", (long long)ST_MIGRATION_LOCK);
    s_exec_ok(c, sql, "migration unlock");
    return rc;
}

st_db_t *st_db_new(const char *dsn, int migrate)
{
    st_db_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dsn = strdup(dsn)))
        goto fail;
    if (!(self->conn = lc_pg_connect(dsn, "lcore-store")))
        goto fail;
    if (migrate && s_migrate(self->conn) < 0)
        goto fail;
    return self;
fail:
    if (self) {
        PQfinish(self->conn);
        free(self->dsn);
        free(self);
    }
    return NULL;
}

void st_db_destroy(st_db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_db_t *self = *self_p;
    PQfinish(self->conn);
    free(self->insert_sql);
    free(self->dsn);
    free(self);
    *self_p = NULL;
}

int st_db_ok(st_db_t *self)
{
    return lc_pg_ensure(&self->conn, self->dsn, "lcore-store");
}

static int s_build_insert(st_db_t *self, size_t n)
{
    if (self->insert_sql && self->insert_rows == n)
        return 0;
    size_t cap = sizeof s_insert_head + sizeof s_insert_tail + n * 140;
    char *sql = malloc(cap);
    if (!sql)
        return LC_ERR_NOMEM;
    size_t off = (size_t)snprintf(sql, cap, "%s", s_insert_head);
    for (size_t i = 0; i < n; i++) {
        size_t p = i * ST_COLS;
        off += (size_t)snprintf(sql + off, cap - off,
                                "%s($%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,$%zu,"
                                "to_timestamp($%zu::float8/1000000))",
                                i ? "," : "", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7,
                                p + 8, p + 9, p + 10);
    }
    snprintf(sql + off, cap - off, "%s", s_insert_tail);
    free(self->insert_sql);
    self->insert_sql = sql;
    self->insert_rows = n;
    return 0;
}

/* SQLSTATE classes that mean the data was refused (not the connection). */
static int s_is_data_error(const char *state)
{
    return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0);
}

int st_db_insert_records(st_db_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                         size_t *inserted, uint64_t *last_id)
{
    *inserted = 0;
    if (n == 0)
        return 0;
    if (!st_db_ok(self))
        return LC_ERR_UNAVAILABLE;
    if (s_build_insert(self, n) < 0)
        return LC_ERR_NOMEM;
    size_t np = n * ST_COLS;
    const char **values = calloc(np, sizeof *values);
    int *lengths = calloc(np, sizeof *lengths);
    int *formats = calloc(np, sizeof *formats);
    char(*num)[4][24] = calloc(n, sizeof *num); /* text of the numeric columns */
    int rc = LC_ERR_NOMEM;
    PGresult *r = NULL;
    if (!values || !lengths || !formats || !num)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const Lcore__V1__SealedRecord *s = recs[i];
        const char **v = values + i * ST_COLS;
        int *l = lengths + i * ST_COLS, *f = formats + i * ST_COLS;
        snprintf(num[i][0], 24, "%llu", (unsigned long long)s->seq);
        snprintf(num[i][1], 24, "%llu", (unsigned long long)s->device_ts_ms);
        snprintf(num[i][2], 24, "%u", s->key_version);
        snprintf(num[i][3], 24, "%llu", (unsigned long long)s->received_at_us);
        v[0] = (const char *)s->record_id.data, l[0] = (int)s->record_id.len, f[0] = 1;
        v[1] = s->device_id;
        v[2] = num[i][0];
        v[3] = num[i][1];
        v[4] = num[i][2];
        v[5] = (const char *)s->aes_nonce.data, l[5] = (int)s->aes_nonce.len, f[5] = 1;
        v[6] = (const char *)s->xchacha_nonce.data, l[6] = (int)s->xchacha_nonce.len, f[6] = 1;
        v[7] = (const char *)s->ciphertext.data, l[7] = (int)s->ciphertext.len, f[7] = 1;
        v[8] = (const char *)s->envelope_hash.data, l[8] = (int)s->envelope_hash.len, f[8] = 1;
        v[9] = num[i][3];
    }
    r = PQexecParams(self->conn, self->insert_sql, (int)np, NULL, values, lengths, formats, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        int rows = PQntuples(r);
        *inserted = (size_t)rows;
        uint64_t max = 0;
        for (int i = 0; i < rows; i++) {
            uint64_t id = strtoull(PQgetvalue(r, i, 0), NULL, 10);
            if (id > max)
                max = id;
        }
        *last_id = max;
        rc = 0;
    } else {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        lc_warn("db_insert_failed", "rows=%zu sqlstate=%s err=\"%s\"", n, state ? state : "-",
                strtok(PQresultErrorMessage(r), "\n"));
        rc = s_is_data_error(state) ? LC_ERR_INVALID : LC_ERR_UNAVAILABLE;
        if (rc == LC_ERR_UNAVAILABLE && PQstatus(self->conn) != CONNECTION_OK) {
            PQfinish(self->conn);
            self->conn = NULL;
        }
    }
out:
    PQclear(r);
    free(values);
    free(lengths);
    free(formats);
    free(num);
    return rc;
}

static char *s_dup(const char *s)
{
    return strdup(s ? s : "");
}

static void s_reply_error(Lcore__V1__QueryReply *reply, Lcore__V1__QueryReply__Status st,
                          const char *msg)
{
    reply->status = st;
    reply->message = s_dup(msg);
}

static void s_get_device(st_db_t *self, const char *device_id, Lcore__V1__QueryReply *reply)
{
    const char *params[1] = {device_id};
    PGresult *r = PQexecParams(self->conn,
                               "SELECT alg, public_key, status, coalesce(did_document::text, '')"
                               " FROM devices WHERE device_id = $1",
                               1, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database error");
    } else if (PQntuples(r) == 0) {
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
    } else {
        Lcore__V1__Device *d = malloc(sizeof *d);
        uint8_t *pk = malloc((size_t)PQgetlength(r, 0, 1) + 1);
        if (!d || !pk) {
            free(d);
            free(pk);
            s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "out of memory");
        } else {
            lcore__v1__device__init(d);
            d->device_id = s_dup(device_id);
            d->alg = strndup(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
            memcpy(pk, PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
            d->public_key.data = pk;
            d->public_key.len = (size_t)PQgetlength(r, 0, 1);
            d->status = strndup(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2));
            d->did_document = strndup(PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3));
            reply->device = d;
            reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
        }
    }
    PQclear(r);
}

static void s_register(st_db_t *self, const Lcore__V1__Device *d, Lcore__V1__QueryReply *reply)
{
    const char *v[4] = {d->device_id, d->alg, (const char *)d->public_key.data, d->did_document};
    int l[4] = {0, 0, (int)d->public_key.len, 0}, f[4] = {0, 0, 1, 0};
    PGresult *r = PQexecParams(self->conn,
                               "INSERT INTO devices (device_id, alg, public_key, did_document)"
                               " VALUES ($1, $2, $3, NULLIF($4, '')::jsonb)"
                               " ON CONFLICT (device_id) DO NOTHING RETURNING 1",
                               4, NULL, v, l, f, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (s_is_data_error(state))
            s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST,
                          "registration refused by the database");
        else
            s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database error");
        PQclear(r);
        return;
    }
    int created = PQntuples(r) == 1;
    PQclear(r);
    if (created) {
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__CREATED;
        return;
    }
    /* Already there: identical registration is fine (idempotent), a different one conflicts. */
    r = PQexecParams(self->conn,
                     "SELECT 1 FROM devices WHERE device_id = $1 AND alg = $2 AND public_key = $3",
                     3, NULL, v, l, f, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database error");
    else
        reply->status = PQntuples(r) == 1 ? LCORE__V1__QUERY_REPLY__STATUS__OK
                                          : LCORE__V1__QUERY_REPLY__STATUS__CONFLICT;
    PQclear(r);
}

/* Copies a bytea value read in binary format into a malloc'd protobuf field. */
static int s_bin(const PGresult *r, int row, int col, ProtobufCBinaryData *out)
{
    size_t len = (size_t)PQgetlength(r, row, col);
    if (PQgetisnull(r, row, col) || !(out->data = malloc(len ? len : 1)))
        return -1;
    memcpy(out->data, PQgetvalue(r, row, col), len);
    out->len = len;
    return 0;
}

/* The record's anchoring: its live batch, the transaction that mined it, and the proof. */
static void s_add_anchor(st_db_t *self, const ProtobufCBinaryData *id, Lcore__V1__RecordInfo *ri)
{
    const char *v[1] = {(const char *)id->data};
    int l[1] = {(int)id->len}, f[1] = {1};
    PGresult *r = PQexecParams(
        self->conn,
        "SELECT b.id, b.status, b.root, lf.leaf_index, lf.leaf, t.mined_hash, t.block_number,"
        " (SELECT block FROM chain_head WHERE id = 1)"
        " FROM records r JOIN chain_batch_leaves lf ON lf.record_pk = r.id"
        " JOIN chain_batches b ON b.id = lf.batch_id"
        " AND b.status IN ('anchored', 'confirmed', 'finalized')"
        " LEFT JOIN chain_txs t ON t.batch_id = b.id AND t.block_number IS NOT NULL"
        " AND t.state <> 'fatal_error' WHERE r.record_id = $1 LIMIT 1",
        1, NULL, v, l, f, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
        s_bin(r, 0, 2, &ri->batch_root) || s_bin(r, 0, 4, &ri->leaf)) {
        PQclear(r);
        return; /* not anchored yet: status stays "stored" */
    }
    ri->batch_id = lc_pg_uint(r, 0, 0);
    free(ri->status);
    ri->status = strndup(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
    uint32_t index = (uint32_t)lc_pg_uint(r, 0, 3);
    if (s_bin(r, 0, 5, &ri->tx_hash) < 0)
        ri->tx_hash.len = 0;
    ri->block_number = lc_pg_uint(r, 0, 6);
    uint64_t head = lc_pg_uint(r, 0, 7);
    ri->confirmations =
        head >= ri->block_number && ri->block_number ? head - ri->block_number + 1 : 0;
    PQclear(r);
    /* The proof: rebuild the batch's tree from its leaves (cheap: at most a few thousand). */
    char bid[24];
    snprintf(bid, sizeof bid, "%llu", (unsigned long long)ri->batch_id);
    const char *v2[1] = {bid};
    r = PQexecParams(self->conn,
                     "SELECT leaf FROM chain_batch_leaves WHERE batch_id = $1 ORDER BY leaf_index",
                     1, NULL, v2, NULL, NULL, 1);
    int n = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : 0;
    uint8_t *leaves = n ? malloc((size_t)n * 32) : NULL;
    lc_merkle_t *tree = NULL;
    if (leaves && (uint32_t)n > index) {
        for (int i = 0; i < n; i++)
            memcpy(leaves + 32 * i, PQgetvalue(r, i, 0), 32);
        int err = 0;
        tree = lc_merkle_new(leaves, (size_t)n, &err);
    }
    uint8_t proof[LC_MERKLE_MAX_PROOF * 32];
    size_t plen = 0;
    if (tree && lc_merkle_proof(tree, proof, sizeof proof / 32, &plen, index) == 0 &&
        (ri->proof = calloc(plen ? plen : 1, sizeof *ri->proof))) {
        for (size_t i = 0; i < plen; i++) {
            ri->proof[i].data = malloc(32);
            if (!ri->proof[i].data)
                break;
            memcpy(ri->proof[i].data, proof + 32 * i, 32);
            ri->proof[i].len = 32;
            ri->n_proof++;
        }
    }
    lc_merkle_destroy(&tree);
    free(leaves);
    PQclear(r);
}

static void s_get_record(st_db_t *self, const ProtobufCBinaryData *id, Lcore__V1__QueryReply *reply)
{
    const char *v[1] = {(const char *)id->data};
    int l[1] = {(int)id->len}, f[1] = {1};
    PGresult *r = PQexecParams(self->conn,
                               "SELECT device_id, seq, key_version, envelope_hash, device_ts_ms,"
                               " (extract(epoch FROM stored_at) * 1000000)::bigint, record_id"
                               " FROM records WHERE record_id = $1",
                               1, NULL, v, l, f, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database error");
        PQclear(r);
        return;
    }
    if (PQntuples(r) == 0) {
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
        PQclear(r);
        return;
    }
    Lcore__V1__RecordInfo *ri = calloc(1, sizeof *ri);
    if (!ri) {
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "out of memory");
        PQclear(r);
        return;
    }
    lcore__v1__record_info__init(ri);
    reply->record = ri; /* owned by the reply from here: st_db_reply_clear frees what is set */
    ri->device_id = strndup(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
    ri->seq = lc_pg_uint(r, 0, 1);
    ri->key_version = (uint32_t)lc_pg_uint(r, 0, 2);
    ri->device_ts_ms = lc_pg_uint(r, 0, 4);
    ri->stored_at_us = lc_pg_uint(r, 0, 5);
    ri->status = strdup("stored");
    if (!ri->device_id || !ri->status || s_bin(r, 0, 3, &ri->envelope_hash) ||
        s_bin(r, 0, 6, &ri->record_id)) {
        PQclear(r);
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "out of memory");
        return;
    }
    PQclear(r);
    s_add_anchor(self, id, ri);
    reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
}

void st_db_answer(st_db_t *self, const Lcore__V1__Query *q, Lcore__V1__QueryReply *reply)
{
    reply->version = 1;
    reply->request_id = q->request_id;
    if (q->body_case == LCORE__V1__QUERY__BODY_PING) {
        if (st_db_ok(self))
            reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
        else
            s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database unavailable");
        return;
    }
    if (!st_db_ok(self)) {
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database unavailable");
        return;
    }
    switch (q->body_case) {
    case LCORE__V1__QUERY__BODY_GET_DEVICE:
        s_get_device(self, q->get_device, reply);
        break;
    case LCORE__V1__QUERY__BODY_REGISTER_DEVICE:
        if (!q->register_device || !q->register_device->device_id || !q->register_device->alg)
            s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST, "incomplete");
        else
            s_register(self, q->register_device, reply);
        break;
    case LCORE__V1__QUERY__BODY_GET_RECORD:
        if (q->get_record.len != 32)
            s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST,
                          "record_id must be 32 bytes");
        else
            s_get_record(self, &q->get_record, reply);
        break;
    default:
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST, "unknown query");
        break;
    }
}

void st_db_reply_clear(Lcore__V1__QueryReply *reply)
{
    if (reply->message != protobuf_c_empty_string)
        free(reply->message);
    if (reply->device) {
        free(reply->device->device_id);
        free(reply->device->alg);
        free(reply->device->public_key.data);
        free(reply->device->status);
        free(reply->device->did_document);
        free(reply->device);
    }
    if (reply->record) {
        Lcore__V1__RecordInfo *ri = reply->record;
        free(ri->record_id.data);
        if (ri->device_id != protobuf_c_empty_string)
            free(ri->device_id);
        free(ri->envelope_hash.data);
        if (ri->status != protobuf_c_empty_string)
            free(ri->status);
        free(ri->leaf.data);
        free(ri->batch_root.data);
        free(ri->tx_hash.data);
        for (size_t i = 0; i < ri->n_proof; i++)
            free(ri->proof[i].data);
        free(ri->proof);
        free(ri);
    }
    lcore__v1__query_reply__init(reply);
}
