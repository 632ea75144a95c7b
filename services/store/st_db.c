/* st_db.c: PostgreSQL access for the store. See st_db.h. */
#include "st_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_jws.h"
#include "lc_log.h"
#include "lc_pg.h"
#include "lc_record.h"
#include "lc_seal.h"
#include "st_admin.h"
#include "st_schema.h"
#include "st_seq_ranges.h"

#define ST_REASON_MAX 300 /* bytes kept of a dead letter's reason */
#define ST_AFTER_MAX 2000 /* records in one records_after answer */
/* A gateway-sealed reading: nonce and tag around a packed Reading (gw_letter.h), whose JWS is at
 * most the gateway's LCORE_GATEWAY_MAX_READING_BYTES (1 MiB at most). */
#define ST_GATEWAY_SEALED_MIN 40
#define ST_GATEWAY_SEALED_MAX (1048576 + 4096)
#define ST_STORES_MAX 1000 /* rows in one store_positions answer */
/* The first key of a store_id's advisory lock (the second is hashtext(store_id)): "lcst". Two
 * store_ids whose hashes collide share a lock: one of them waits, nothing is numbered twice. */
#define ST_STORE_LOCK 0x6c637374

/* A StoredRecord and the bytes its record_id and envelope_hash point into: one allocation. */
typedef struct {
    Lcore__V1__StoredRecord rec; /* first: freeing the item frees the record */
    uint8_t bytes[64];
} s_stored_t;

struct st_db {
    lc_pg_t *pg;
    char *store_id;      /* NULL: a connection that only answers queries */
    uint64_t claimed;    /* lc_pg_session of the last claim (lock held, position read); 0: none */
    uint64_t position;   /* the store's committed position, as this writer numbers it */
    char claim_why[192]; /* why the last claim failed */
    const char *invalid; /* why the last dead letter was refused before the database, or NULL */
    struct s_row *rows;  /* the insert's rows, gathered (s_add_rows) */
    size_t rows_cap;
    lc_counter_t *dead_crypto, *dead_store;
    Lcore__V1__StoredRecords written; /* st_db_last_written */
    s_stored_t *written_items;
    Lcore__V1__StoredRecord **written_ptrs;
    size_t written_cap;
    zsock_t *changes; /* st_db_publish_changes */
};

/* Takes store_id's session advisory lock without waiting: 0, LC_ERR_CONFLICT (another session
 * holds it) or the statement's error; why says which. */
static int s_lock(st_db_t *self, char *why, size_t cap)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, ST_STORE_LOCK);
    lc_pg_add_text(p, self->store_id);
    PGresult *r = NULL;
    int rc =
        lc_pg_query_row(self->pg, &r, "SELECT pg_try_advisory_lock($1::integer, hashtext($2))", p);
    if (rc < 0)
        snprintf(why, cap, "cannot lock store_id %s (%s)", self->store_id,
                 lc_pg_last_error(self->pg));
    else if (!lc_pg_bool(r, 0, 0))
        snprintf(why, cap,
                 "store_id %s is held by another lcore-store (one process per LCORE_STORE_ID)",
                 self->store_id);
    rc = rc < 0 ? rc : lc_pg_bool(r, 0, 0) ? 0 : LC_ERR_CONFLICT;
    PQclear(r);
    return rc;
}

/* Reads store_id's position into self->position, its `stores` row created at 0 if new. */
static int s_read_position(st_db_t *self, char *why, size_t cap)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_text(p, self->store_id);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r,
                             "WITH ins AS (INSERT INTO stores (store_id) VALUES ($1)"
                             " ON CONFLICT (store_id) DO NOTHING RETURNING position)"
                             " SELECT position FROM ins"
                             " UNION ALL SELECT position FROM stores WHERE store_id = $1",
                             p);
    if (rc == 0)
        self->position = lc_pg_u64(r, 0, 0);
    else
        snprintf(why, cap, "cannot read the position of store_id %s (%s)", self->store_id,
                 lc_pg_last_error(self->pg));
    PQclear(r);
    return rc;
}

/* Takes store_id's advisory lock for this session and reads its position: positions are
 * numbered by the one process holding the lock. Again after every reconnection: the lock went
 * with the old session, and the position is re-read rather than trusted. 0, or an error with
 * the reason in claim_why (logged when it changes, unless quiet). */
static int s_claim(st_db_t *self, int quiet)
{
    if (self->claimed == lc_pg_session(self->pg))
        return 0;
    self->claimed = 0;
    char why[sizeof self->claim_why];
    int rc = s_lock(self, why, sizeof why);
    if (rc == 0)
        rc = s_read_position(self, why, sizeof why);
    if (rc == 0) {
        self->claimed = lc_pg_session(self->pg);
        self->claim_why[0] = '\0';
        lc_info("store_claimed", "store_id=%s position=%llu", self->store_id,
                (unsigned long long)self->position);
    } else if (strcmp(why, self->claim_why) != 0) {
        snprintf(self->claim_why, sizeof self->claim_why, "%s", why);
        if (!quiet)
            lc_warn("store_not_claimed", "reason=\"%s\"", why);
    }
    return rc;
}

/* INSERT ... SELECT from the write batch's rows (one statement, one transaction): the store's
 * row in `stores` moves from $2 to $3 only if it still says $2, and the records go in only if
 * it did. $1 is the store_id of every row; $4 .. $15 hold the rows as one array per column
 * (unnest), so the text is the same for any number of rows and is prepared once per connection
 * (lc_pg_query_prepared): parsed and planned once, not per write batch. A row received
 * (received_at, the gateway's accept time) once its device was revoked is not a record: it is left
 * out (a hole, as a duplicate leaves; st_db_find_conflicts tells the two apart). The answer:
 * whether the position moved, then the new rows' leaf inputs by position (one row of NULLs if
 * none). */
static const char s_insert_sql[] =
    "WITH moved AS (UPDATE stores SET position = $3, updated_at = now()"
    " WHERE store_id = $1 AND position = $2 RETURNING 1),"
    " ins AS (INSERT INTO records (record_id, store_id, position, device_id, seq,"
    " device_ts_ms, key_version, aes_nonce, xchacha_nonce, ciphertext, envelope_hash,"
    " received_at, reading_hash) SELECT v.record_id, $1, v.position, v.device_id, v.seq,"
    " v.device_ts_ms, v.key_version, v.aes_nonce, v.xchacha_nonce, v.ciphertext,"
    " v.envelope_hash, v.received_at, v.reading_hash"
    " FROM unnest($4::bytea[], $5::int8[], $6::text[], $7::int8[], $8::int8[], $9::int8[],"
    " $10::bytea[], $11::bytea[], $12::bytea[], $13::bytea[], $14::timestamptz[], $15::bytea[])"
    " AS v (record_id, position, device_id, seq, device_ts_ms, key_version, aes_nonce,"
    " xchacha_nonce, ciphertext, envelope_hash, received_at, reading_hash)"
    " WHERE EXISTS (SELECT 1 FROM moved)"
    /* revoked before it was received: not a record (an anti-join on devices' key) */
    " AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = v.device_id"
    " AND d.status = 'revoked' AND v.received_at >= coalesce(d.revoked_at, '-infinity'))"
    " ON CONFLICT (record_id) DO NOTHING"
    " RETURNING record_id, envelope_hash, position, stored_at, received_at, device_id, seq),"
    /* The new rows' seqs as runs per device (st_seq_ranges.h): in this statement, so they
     * commit with the records; a duplicate is not in `ins`, so it changes nothing. */
    " runs AS (SELECT device_id, min(seq) AS f, max(seq) AS t, max(received_at) AS at FROM"
    " (SELECT device_id, seq, received_at,"
    " seq - row_number() OVER (PARTITION BY device_id ORDER BY seq) AS run FROM ins) x"
    " GROUP BY device_id, run),"
    " ranged AS (INSERT INTO device_seq_ranges (device_id, from_seq, to_seq, last_received_at)"
    " SELECT device_id, f, t, at FROM runs ON CONFLICT (device_id, from_seq) DO UPDATE"
    " SET to_seq = GREATEST(device_seq_ranges.to_seq, EXCLUDED.to_seq),"
    " last_received_at = GREATEST(device_seq_ranges.last_received_at,"
    " EXCLUDED.last_received_at))"
    " SELECT (SELECT count(*) FROM moved), i.record_id, i.envelope_hash, i.position,"
    " i.stored_at, i.received_at FROM (SELECT 1) AS one LEFT JOIN ins i ON true"
    " ORDER BY i.position";

st_db_t *st_db_new(const char *dsn, const char *store_id)
{
    if (store_id && !lc_store_id_valid(store_id, strlen(store_id))) {
        lc_error("store_id_invalid", "need=\"1..64 bytes of [A-Za-z0-9._:-]\"");
        return NULL;
    }
    st_db_t *self = calloc(1, sizeof *self);
    if (!self || (store_id && !(self->store_id = strdup(store_id))) ||
        !(self->pg = lc_pg_new(dsn, "lcore-store"))) {
        st_db_destroy(&self);
        return NULL;
    }
    lcore__v1__stored_records__init(&self->written);
    if (self->store_id)
        (void)s_claim(self, 1); /* why it failed is st_db_schema_check's to say */
    return self;
}

void st_db_destroy(st_db_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_db_t *self = *self_p;
    lc_pg_destroy(&self->pg); /* the session ends: the store_id's lock with it */
    free(self->rows);
    free(self->written_items);
    free(self->written_ptrs);
    free(self->store_id);
    free(self);
    *self_p = NULL;
}

int st_db_ok(st_db_t *self)
{
    return lc_pg_ok(self->pg) && (!self->store_id || s_claim(self, 0) == 0);
}

int st_db_migrate(st_db_t *self, const char *store_role, const char *chain_role, FILE *out)
{
    (void)chain_role; /* the chain's role is lcore-chain migrate's: the store grants it nothing */
    if (!lc_pg_ok(self->pg))
        return LC_ERR_UNAVAILABLE;
    return st_schema_migrate(self->pg, store_role, out);
}

int st_db_schema_check(st_db_t *self, char *why, size_t cap)
{
    if (!lc_pg_ok(self->pg)) {
        snprintf(why, cap, "PostgreSQL unavailable");
        return LC_ERR_UNAVAILABLE;
    }
    int rc = st_schema_check(self->pg, why, cap);
    if (rc == 0 && self->store_id && (rc = s_claim(self, 0)) < 0)
        snprintf(why, cap, "%s", self->claim_why);
    return rc;
}

/* One record's columns, gathered for the insert's arrays (lc_pg_add_*_array read them by
 * stride). */
typedef struct s_row {
    ProtobufCBinaryData record_id, aes_nonce, xchacha_nonce, ciphertext, envelope_hash,
        reading_hash;
    const char *device_id;
    uint64_t position, seq, device_ts_ms, key_version, received_at_us;
} s_row_t;

/* The insert's parameters: store_id, the position before and after, then a column each. */
static int s_add_rows(st_db_t *self, lc_pg_params_t *p, Lcore__V1__SealedRecord *const *recs,
                      size_t n, uint64_t after)
{
    if (n > self->rows_cap) {
        s_row_t *rows = realloc(self->rows, n * sizeof *rows);
        if (!rows)
            return LC_ERR_NOMEM;
        self->rows = rows;
        self->rows_cap = n;
    }
    s_row_t *r = self->rows;
    for (size_t i = 0; i < n; i++)
        r[i] = (s_row_t){.record_id = recs[i]->record_id,
                         .aes_nonce = recs[i]->aes_nonce,
                         .xchacha_nonce = recs[i]->xchacha_nonce,
                         .ciphertext = recs[i]->ciphertext,
                         .envelope_hash = recs[i]->envelope_hash,
                         .reading_hash = recs[i]->reading_hash,
                         .device_id = recs[i]->device_id,
                         .position = after + 1 + i,
                         .seq = recs[i]->seq,
                         .device_ts_ms = recs[i]->device_ts_ms,
                         .key_version = recs[i]->key_version,
                         .received_at_us = recs[i]->received_at_us};
    const size_t z = sizeof *r;
    lc_pg_add_text(p, self->store_id);
    lc_pg_add_u64(p, after);
    lc_pg_add_u64(p, after + n);
    lc_pg_add_var_array(p, 0, &r->record_id.data, &r->record_id.len, z, n);
    lc_pg_add_i64_array(p, &r->position, z, n);
    lc_pg_add_var_array(p, 1, &r->device_id, NULL, z, n);
    lc_pg_add_i64_array(p, &r->seq, z, n);
    lc_pg_add_i64_array(p, &r->device_ts_ms, z, n);
    lc_pg_add_i64_array(p, &r->key_version, z, n);
    lc_pg_add_var_array(p, 0, &r->aes_nonce.data, &r->aes_nonce.len, z, n);
    lc_pg_add_var_array(p, 0, &r->xchacha_nonce.data, &r->xchacha_nonce.len, z, n);
    lc_pg_add_var_array(p, 0, &r->ciphertext.data, &r->ciphertext.len, z, n);
    lc_pg_add_var_array(p, 0, &r->envelope_hash.data, &r->envelope_hash.len, z, n);
    lc_pg_add_time_array(p, &r->received_at_us, z, n);
    lc_pg_add_var_array(p, 0, &r->reading_hash.data, &r->reading_hash.len, z, n);
    return 0;
}

/* A sealed record's device_id, seq, device_ts_ms and envelope (key_version, nonces,
 * ciphertext, envelope_hash), in that order: the columns records and seq_conflicts share. */
static void s_add_sealed(lc_pg_params_t *p, const Lcore__V1__SealedRecord *s)
{
    lc_pg_add_text(p, s->device_id);
    lc_pg_add_u64(p, s->seq);
    lc_pg_add_u64(p, s->device_ts_ms);
    lc_pg_add_u64(p, s->key_version);
    lc_pg_add_bytes(p, s->aes_nonce.data, s->aes_nonce.len);
    lc_pg_add_bytes(p, s->xchacha_nonce.data, s->xchacha_nonce.len);
    lc_pg_add_bytes(p, s->ciphertext.data, s->ciphertext.len);
    lc_pg_add_bytes(p, s->envelope_hash.data, s->envelope_hash.len);
}

/* Room for n records in st_db_last_written, made before the insert so that nothing can fail
 * once it committed. */
static int s_reserve_written(st_db_t *self, size_t n)
{
    if (n <= self->written_cap)
        return 0;
    s_stored_t *items = realloc(self->written_items, n * sizeof *items);
    if (items)
        self->written_items = items;
    Lcore__V1__StoredRecord **ptrs = realloc(self->written_ptrs, n * sizeof *ptrs);
    if (ptrs)
        self->written_ptrs = ptrs;
    if (!items || !ptrs)
        return LC_ERR_NOMEM;
    self->written_cap = n;
    return 0;
}

/* A StoredRecord from the columns col .. col + 4 of a row (record_id, envelope_hash, position,
 * stored_at, received_at), its bytes in item. 0 or LC_ERR_INVALID. */
static int s_stored_from_row(const PGresult *r, int row, int col, s_stored_t *item)
{
    Lcore__V1__StoredRecord *rec = &item->rec;
    lcore__v1__stored_record__init(rec);
    if (lc_pg_bytes(r, row, col, item->bytes, 32) ||
        lc_pg_bytes(r, row, col + 1, item->bytes + 32, 32))
        return LC_ERR_INVALID;
    rec->record_id = (ProtobufCBinaryData){32, item->bytes};
    rec->envelope_hash = (ProtobufCBinaryData){32, item->bytes + 32};
    rec->position = lc_pg_u64(r, row, col + 2);
    rec->stored_at_us = lc_pg_time_us(r, row, col + 3);
    rec->received_at_us = lc_pg_time_us(r, row, col + 4);
    return 0;
}

/* st_db_last_written from the insert's answer: the write batch moved the position from after to
 * after + n. Returns how many rows are new. */
static size_t s_keep_written(st_db_t *self, const PGresult *r, uint64_t after, size_t n)
{
    Lcore__V1__StoredRecords *w = &self->written;
    lcore__v1__stored_records__init(w);
    w->version = 1;
    w->store_id = self->store_id;
    w->after = after;
    w->upto = after + n;
    w->records = self->written_ptrs;
    for (int i = 0; i < PQntuples(r) && w->n_records < n; i++) {
        if (lc_pg_null(r, i, 1) || s_stored_from_row(r, i, 1, &self->written_items[w->n_records]))
            continue;
        w->records[w->n_records] = &self->written_items[w->n_records].rec;
        w->n_records++;
    }
    return w->n_records;
}

int st_db_insert_records(st_db_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                         size_t *inserted)
{
    *inserted = 0;
    if (!self->store_id) {
        lc_error("insert_without_store_id", NULL); /* a query-only connection: our bug */
        return LC_ERR_UNSUPPORTED;
    }
    if (n == 0)
        return 0;
    if (!st_db_ok(self))
        return LC_ERR_UNAVAILABLE;
    uint64_t after = self->position;
    lc_pg_params_t *p = lc_pg_params(self->pg);
    if (s_reserve_written(self, n) < 0 || s_add_rows(self, p, recs, n, after) < 0)
        return LC_ERR_NOMEM;
    PGresult *r = NULL;
    int rc = lc_pg_query_prepared(self->pg, &r, s_insert_sql, p);
    if (rc < 0) {
        lc_warn("db_insert_failed", "rows=%zu err=\"%s\"", n, lc_pg_last_error(self->pg));
        return rc;
    }
    if (lc_pg_i64(r, 0, 0) != 1) {
        /* Someone moved the position under our lock (or the row went): re-read it. */
        lc_warn("store_position_moved", "store_id=%s expected=%llu", self->store_id,
                (unsigned long long)after);
        self->claimed = 0;
        PQclear(r);
        return LC_ERR_UNAVAILABLE;
    }
    self->position = after + n;
    *inserted = s_keep_written(self, r, after, n);
    PQclear(r);
    if (*inserted && st_seq_ranges_merge(self->pg, self->store_id, after, after + n) < 0)
        lc_warn("seq_ranges_merge_failed", "err=\"%s\"", lc_pg_last_error(self->pg));
    return 0;
}

/* Rows of the last insert (recs, n, numbered from the written batch's `after`) that were not
 * new: their indexes into idx, in order. Returns how many. */
static size_t s_not_new(const st_db_t *self, size_t n, size_t *idx)
{
    const Lcore__V1__StoredRecords *w = &self->written;
    size_t k = 0, j = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t pos = w->after + 1 + i;
        while (j < w->n_records && w->records[j]->position < pos)
            j++;
        if (j < w->n_records && w->records[j]->position == pos)
            continue;
        idx[k++] = i;
    }
    return k;
}

static const char s_conflict_sql[] =
    "INSERT INTO seq_conflicts (record_id, reading_hash, store_id, device_id, seq, device_ts_ms,"
    " key_version, aes_nonce, xchacha_nonce, ciphertext, envelope_hash, gateway_id, received_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) ON CONFLICT DO NOTHING";

/* Keeps one conflicting reading, sealed as the worker sent it. 0 or the statement's error. */
static int s_keep_conflict(st_db_t *self, const Lcore__V1__SealedRecord *s)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, s->record_id.data, s->record_id.len);
    lc_pg_add_bytes(p, s->reading_hash.data, s->reading_hash.len);
    lc_pg_add_text(p, self->store_id);
    s_add_sealed(p, s);
    lc_pg_add_text(p, s->gateway_id);
    lc_pg_add_time_us(p, s->received_at_us);
    int rc = lc_pg_exec(self->pg, s_conflict_sql, p);
    return rc < 0 ? rc : 0;
}

int st_db_find_conflicts(st_db_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                         unsigned char *mark, size_t *found)
{
    *found = 0;
    memset(mark, ST_ROW_WRITTEN, n);
    size_t *idx = malloc(n * sizeof *idx);
    uint8_t *ids = malloc(n * LC_RECORD_ID_LEN);
    int rc = idx && ids ? 0 : LC_ERR_NOMEM;
    size_t k = rc == 0 ? s_not_new(self, n, idx) : 0;
    PGresult *r = NULL;
    if (k > 0) {
        for (size_t i = 0; i < k; i++)
            memcpy(ids + i * LC_RECORD_ID_LEN, recs[idx[i]]->record_id.data, LC_RECORD_ID_LEN);
        lc_pg_params_t *p = lc_pg_params(self->pg);
        lc_pg_add_bytes_array(p, ids, LC_RECORD_ID_LEN, LC_RECORD_ID_LEN, k);
        rc = lc_pg_query(self->pg, &r,
                         "SELECT r.record_id IS NOT NULL, r.reading_hash FROM unnest($1::bytea[])"
                         " WITH ORDINALITY AS u(id, i) LEFT JOIN records r ON r.record_id = u.id"
                         " ORDER BY u.i",
                         p);
    }
    for (size_t i = 0; rc == 0 && k > 0 && i < k && i < (size_t)PQntuples(r); i++) {
        const Lcore__V1__SealedRecord *s = recs[idx[i]];
        uint8_t stored[32];
        /* No row: the insert left it out, its device being revoked when it was received (a
         * record is never deleted, and one that another store's insert held was committed
         * before ours ended). */
        if (!lc_pg_bool(r, (int)i, 0)) {
            mark[idx[i]] = ST_ROW_REVOKED;
            continue;
        }
        /* No hash (written before hashes) or the same one: a duplicate. */
        if (lc_pg_null(r, (int)i, 1) || lc_pg_bytes(r, (int)i, 1, stored, sizeof stored) ||
            memcmp(stored, s->reading_hash.data, sizeof stored) == 0)
            continue;
        if ((rc = s_keep_conflict(self, s)) == 0) {
            mark[idx[i]] = ST_ROW_CONFLICT;
            (*found)++;
        }
    }
    PQclear(r);
    free(idx);
    free(ids);
    return rc;
}

lc_pg_t *st_db_pg(st_db_t *self)
{
    return self->pg;
}

const Lcore__V1__StoredRecords *st_db_last_written(const st_db_t *self)
{
    return &self->written;
}

void st_db_publish_changes(st_db_t *self, zsock_t *changes)
{
    self->changes = changes;
}

const char *st_db_last_error(const st_db_t *self)
{
    return self->invalid ? self->invalid : lc_pg_last_error(self->pg);
}

void st_db_count_dead_letters(st_db_t *self, lc_counter_t *crypto, lc_counter_t *store)
{
    self->dead_crypto = crypto;
    self->dead_store = store;
}

/* Strict UTF-8 (no overlong forms, no surrogates, at most U+10FFFF): PostgreSQL refuses
 * anything else in a text column. */
static int s_utf8_valid(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        size_t more; /* continuation bytes that follow the lead byte */
        if (c < 0x80)
            more = 0;
        else if (c >= 0xc2 && c <= 0xdf)
            more = 1;
        else if (c >= 0xe0 && c <= 0xef)
            more = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            more = 3;
        else
            return 0;
        if (len - i <= more)
            return 0;
        for (size_t k = 1; k <= more; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) ||
            (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
            return 0;
        i += more + 1;
    }
    return 1;
}

/* A copy of untrusted text fit for a quoted log value: quotes, backslashes and control
 * characters replaced, cut to cap. */
static void s_log_text(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = c == '"' || c == '\\' ? '\'' : c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    out[i] = '\0';
}

/* The reading a dead letter keeps: stage "store" as the worker sealed it, stage "crypto" sealed
 * by the gateway; never both, never neither. */
static const char *s_dead_letter_reading_invalid(const Lcore__V1__DeadLetter *dl)
{
    const Lcore__V1__SealedRecord *s = dl->sealed;
    if (strcmp(dl->stage, "crypto") == 0) {
        if (s || dl->gateway_sealed.len < ST_GATEWAY_SEALED_MIN ||
            dl->gateway_sealed.len > ST_GATEWAY_SEALED_MAX || dl->gateway_key_version == 0 ||
            dl->gateway_key_version > INT32_MAX)
            return "a crypto-stage dead letter carries its reading sealed by the gateway"
                   " (gateway_sealed, gateway_key_version) and nothing else";
        return NULL;
    }
    if (!s || dl->gateway_sealed.len || s->record_id.len != LC_RECORD_ID_LEN ||
        memcmp(s->record_id.data, dl->record_id.data, LC_RECORD_ID_LEN) != 0 ||
        s->aes_nonce.len != LC_AES_NONCE_LEN || s->xchacha_nonce.len != LC_XCHACHA_NONCE_LEN ||
        s->envelope_hash.len != LC_ENVELOPE_HASH_LEN ||
        s->reading_hash.len != LC_READING_HASH_LEN || s->ciphertext.len <= LC_SEAL_OVERHEAD ||
        s->key_version == 0 || s->key_version > INT32_MAX)
        return "a store-stage dead letter carries its record as the worker sealed it (sealed)";
    return NULL;
}

const char *st_db_dead_letter_invalid(const Lcore__V1__DeadLetter *dl)
{
    if (dl->record_id.len != LC_RECORD_ID_LEN)
        return "record_id must be 32 bytes";
    if (!dl->device_id || !lc_device_id_valid(dl->device_id, strlen(dl->device_id)))
        return "device_id must be 1..128 bytes of [A-Za-z0-9._:-]";
    if (dl->seq > INT64_MAX || dl->device_ts_ms > INT64_MAX || dl->received_at_us > INT64_MAX)
        return "seq, device_ts_ms and received_at_us must be at most 2^63-1";
    uint8_t id[LC_RECORD_ID_LEN];
    lc_record_id(id, dl->device_id, strlen(dl->device_id), dl->seq);
    if (memcmp(id, dl->record_id.data, sizeof id) != 0)
        return "record_id does not match device_id and seq";
    size_t gw = dl->gateway_id ? strlen(dl->gateway_id) : 0;
    if (gw == 0 || gw > ST_GATEWAY_ID_MAX ||
        !s_utf8_valid((const unsigned char *)dl->gateway_id, gw))
        return "gateway_id must be 1..64 bytes of UTF-8";
    if (!dl->stage || (strcmp(dl->stage, "crypto") != 0 && strcmp(dl->stage, "store") != 0))
        return "stage must be \"crypto\" or \"store\"";
    if (!dl->reason || !dl->reason[0] ||
        !s_utf8_valid((const unsigned char *)dl->reason, strlen(dl->reason)))
        return "reason must be non-empty UTF-8";
    if (dl->attempts == 0 || dl->attempts > INT32_MAX)
        return "attempts must be 1..2^31-1";
    return s_dead_letter_reading_invalid(dl);
}

/* Records the dead letter unless its record is stored, and says which happened, in one
 * statement (one snapshot: both EXISTS see the same records). */
static const char s_dead_letter_sql[] =
    "WITH ins AS (INSERT INTO dead_letters (record_id, device_id, seq, device_ts_ms, received_at,"
    " gateway_id, stage, reason, attempts, key_version, aes_nonce, xchacha_nonce, ciphertext,"
    " envelope_hash, reading_hash, gateway_sealed, gateway_key_version)"
    " SELECT $1::bytea, $2::text, $3::bigint, $4::bigint, $5::timestamptz, $6::text, $7::text,"
    " $8::text, $9::integer, $10::integer, $11::bytea, $12::bytea, $13::bytea, $14::bytea,"
    " $15::bytea, $16::bytea, $17::integer"
    " WHERE NOT EXISTS (SELECT 1 FROM records WHERE record_id = $1::bytea)"
    " ON CONFLICT (record_id) DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM ins), EXISTS (SELECT 1 FROM records WHERE record_id = "
    "$1::bytea)";

/* The dead letter's parameters, its reason cut to ST_REASON_MAX bytes at a character boundary
 * (so it stays valid UTF-8) into reason. */
static void s_dead_letter_params(lc_pg_params_t *p, const Lcore__V1__DeadLetter *dl,
                                 char reason[ST_REASON_MAX + 1])
{
    size_t rlen = strlen(dl->reason);
    if (rlen > ST_REASON_MAX) {
        rlen = ST_REASON_MAX;
        while (rlen > 0 && ((unsigned char)dl->reason[rlen] & 0xc0) == 0x80)
            rlen--;
    }
    memcpy(reason, dl->reason, rlen);
    reason[rlen] = '\0';
    lc_pg_add_bytes(p, dl->record_id.data, dl->record_id.len);
    lc_pg_add_text(p, dl->device_id);
    lc_pg_add_u64(p, dl->seq);
    lc_pg_add_u64(p, dl->device_ts_ms);
    if (dl->received_at_us)
        lc_pg_add_time_us(p, dl->received_at_us);
    else
        lc_pg_add_null(p); /* unknown */
    lc_pg_add_text(p, dl->gateway_id);
    lc_pg_add_text(p, dl->stage);
    lc_pg_add_text(p, reason);
    lc_pg_add_u64(p, dl->attempts);
    const Lcore__V1__SealedRecord *s = dl->sealed;
    if (s)
        lc_pg_add_u64(p, s->key_version);
    else
        lc_pg_add_null(p);
    lc_pg_add_bytes(p, s ? s->aes_nonce.data : NULL, s ? s->aes_nonce.len : 0);
    lc_pg_add_bytes(p, s ? s->xchacha_nonce.data : NULL, s ? s->xchacha_nonce.len : 0);
    lc_pg_add_bytes(p, s ? s->ciphertext.data : NULL, s ? s->ciphertext.len : 0);
    lc_pg_add_bytes(p, s ? s->envelope_hash.data : NULL, s ? s->envelope_hash.len : 0);
    lc_pg_add_bytes(p, s ? s->reading_hash.data : NULL, s ? s->reading_hash.len : 0);
    lc_pg_add_bytes(p, s ? NULL : dl->gateway_sealed.data, dl->gateway_sealed.len);
    if (!s)
        lc_pg_add_u64(p, dl->gateway_key_version);
    else
        lc_pg_add_null(p);
}

/* Counts and logs a dead letter recorded now. */
static void s_dead_lettered(st_db_t *self, const Lcore__V1__DeadLetter *dl, const char *hex,
                            const char *reason)
{
    lc_counter_t *c = strcmp(dl->stage, "crypto") == 0 ? self->dead_crypto : self->dead_store;
    if (c)
        lc_counter_inc(c);
    char gw[ST_GATEWAY_ID_MAX + 1], why_log[ST_REASON_MAX + 1];
    s_log_text(gw, sizeof gw, dl->gateway_id);
    s_log_text(why_log, sizeof why_log, reason);
    lc_warn("record_dead_lettered",
            "record_id=%s device_id=%s seq=%llu stage=%s attempts=%u gateway_id=\"%s\""
            " reason=\"%s\"",
            hex, dl->device_id, (unsigned long long)dl->seq, dl->stage, dl->attempts, gw, why_log);
}

int st_db_dead_letter(st_db_t *self, const Lcore__V1__DeadLetter *dl,
                      st_dead_letter_outcome_t *outcome)
{
    if ((self->invalid = st_db_dead_letter_invalid(dl)) != NULL)
        return LC_ERR_INVALID;
    if (!st_db_ok(self))
        return LC_ERR_UNAVAILABLE;
    char reason[ST_REASON_MAX + 1];
    lc_pg_params_t *p = lc_pg_params(self->pg);
    s_dead_letter_params(p, dl, reason);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(self->pg, &r, s_dead_letter_sql, p);
    char hex[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1];
    lc_hex_encode(hex, sizeof hex, dl->record_id.data, dl->record_id.len);
    if (rc < 0) {
        char err[192];
        s_log_text(err, sizeof err, lc_pg_last_error(self->pg));
        lc_warn("dead_letter_failed", "record_id=%s device_id=%s seq=%llu stage=%s err=\"%s\"", hex,
                dl->device_id, (unsigned long long)dl->seq, dl->stage, err);
        return rc == LC_ERR_NOTFOUND ? LC_ERR_UNAVAILABLE : rc;
    }
    if (lc_pg_i64(r, 0, 0) == 1) {
        *outcome = ST_DEAD_LETTERED;
        s_dead_lettered(self, dl, hex, reason);
    } else {
        *outcome = lc_pg_bool(r, 0, 1) ? ST_ALREADY_STORED : ST_ALREADY_DEAD_LETTERED;
        lc_debug("dead_letter_absorbed", "record_id=%s stage=%s outcome=%s", hex, dl->stage,
                 *outcome == ST_ALREADY_STORED ? "already_stored" : "already_dead_lettered");
    }
    PQclear(r);
    return 0;
}

static char *s_dup(const char *s)
{
    return strdup(s ? s : "");
}

void st_db_reply_error(Lcore__V1__QueryReply *reply, Lcore__V1__QueryReply__Status st,
                       const char *msg)
{
    reply->status = st;
    reply->message = s_dup(msg);
}

void st_db_reply_incomplete(Lcore__V1__QueryReply *reply)
{
    uint64_t request_id = reply->request_id;
    st_db_reply_clear(reply);
    reply->version = 1;
    reply->request_id = request_id;
    st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "out of memory");
}

void st_db_reply_failure(Lcore__V1__QueryReply *reply, int rc, const char *msg)
{
    if (rc == LC_ERR_INVALID)
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST, msg);
    else
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR,
                          rc == LC_ERR_NOMEM ? "out of memory" : "database error");
}

/* A query for one row by a key: 1 with *out when found, 0 after replying (NOT_FOUND or the
 * failure). */
static int s_one_row(st_db_t *self, PGresult **out, const char *sql, const lc_pg_params_t *p,
                     Lcore__V1__QueryReply *reply)
{
    int rc = lc_pg_query_row(self->pg, out, sql, p);
    if (rc == LC_ERR_NOTFOUND)
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
    else if (rc < 0)
        st_db_reply_failure(reply, rc, "refused by the database");
    return rc == 0;
}

static void s_get_device(st_db_t *self, const char *device_id, Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_text(p, device_id);
    PGresult *r = NULL;
    if (!s_one_row(self, &r,
                   "SELECT " ST_DEVICE_COLUMNS
                   ", (SELECT max(seq) + 1 FROM records r WHERE r.device_id = d.device_id)"
                   " FROM devices d" ST_DEVICE_KEYS " WHERE d.device_id = $1",
                   p, reply))
        return;
    if ((reply->device = st_admin_device_row(r, 0))) {
        reply->device->next_seq = lc_pg_u64(r, 0, ST_DEVICE_NCOLS); /* NULL (none yet): 0 */
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    } else {
        st_db_reply_incomplete(reply);
    }
    PQclear(r);
}

/* A registration is checked as the gateway checks it (device id, algorithm, a canonical key on
 * the curve, DID document size) before it reaches the database: the query link is not trusted
 * to have done it. */
static const char *s_registration_error(const Lcore__V1__Device *d)
{
    if (!lc_device_id_valid(d->device_id, strlen(d->device_id)))
        return "device_id must be 1-128 characters of [A-Za-z0-9._:-]";
    const char *why = st_admin_key_invalid(d->alg, &d->public_key);
    if (why)
        return why;
    if (d->did_document && strlen(d->did_document) > 16384)
        return "did_document too large (16 KiB)";
    return NULL;
}

/* $1 device_id, $2 alg, $3 public_key, and (with_did) $4 the DID document. */
static lc_pg_params_t *s_device_params(st_db_t *self, const Lcore__V1__Device *d, int with_did)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_text(p, d->device_id);
    lc_pg_add_text(p, d->alg);
    lc_pg_add_bytes(p, d->public_key.data, d->public_key.len);
    if (with_did)
        lc_pg_add_text(p, d->did_document);
    return p;
}

/* A new device, its key 1 (device_keys) and its audit row in one statement: one audit row
 * written means the device is new. */
static const char s_register_sql[] =
    "WITH d AS (INSERT INTO devices (device_id, alg, public_key, did_document)"
    " VALUES ($1, $2, $3, NULLIF($4, '')::jsonb) ON CONFLICT (device_id) DO NOTHING"
    " RETURNING device_id, alg, public_key, registered_at),"
    " k AS (INSERT INTO device_keys (device_id, key_no, alg, public_key, since)"
    " SELECT device_id, 1, alg, public_key, registered_at FROM d)"
    " INSERT INTO audit_log (token_id, action, target)"
    " SELECT $5, 'device.register', device_id FROM d";

static void s_register(st_db_t *self, const Lcore__V1__Device *d, const char *actor,
                       Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = s_device_params(self, d, 1);
    if (!actor || !actor[0])
        actor = ST_ADMIN_ACTOR; /* callers from before the audit log name no token */
    lc_pg_add_text(p, actor);
    int rc = lc_pg_exec(self->pg, s_register_sql, p);
    if (rc == 1) {
        lc_info("device_registered", "device_id=%s alg=%s actor=%s", d->device_id, d->alg, actor);
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__CREATED;
        return;
    }
    /* Already there: its current key again is fine (idempotent), another key conflicts. */
    PGresult *r = NULL;
    if (rc == 0)
        rc = lc_pg_query(self->pg, &r,
                         "SELECT 1"
                         " FROM devices d" ST_DEVICE_KEYS " WHERE d.device_id = $1"
                         " AND coalesce(c.alg, d.alg) = $2"
                         " AND coalesce(c.public_key, d.public_key) = $3",
                         s_device_params(self, d, 0));
    if (rc < 0)
        st_db_reply_failure(reply, rc, "registration refused by the database");
    else
        reply->status = PQntuples(r) == 1 ? LCORE__V1__QUERY_REPLY__STATUS__OK
                                          : LCORE__V1__QUERY_REPLY__STATUS__CONFLICT;
    PQclear(r);
}

static void s_get_record(st_db_t *self, const ProtobufCBinaryData *id, Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, id->data, id->len);
    PGresult *r = NULL;
    if (!s_one_row(self, &r, "SELECT " ST_RECORD_COLUMNS " FROM records WHERE record_id = $1", p,
                   reply))
        return;
    if ((reply->record = st_admin_record_row(r, 0)))
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    else
        st_db_reply_incomplete(reply);
    PQclear(r);
}

/* One statement, so one snapshot: a record is committed together with the `stores` row that
 * counts it, so every record up to the position read here is among those read here. */
static const char s_records_after_sql[] =
    "SELECT s.position, r.record_id, r.envelope_hash, r.position, r.stored_at, r.received_at"
    " FROM (SELECT coalesce((SELECT position FROM stores WHERE store_id = $1), 0) AS position) s"
    " LEFT JOIN LATERAL (SELECT record_id, envelope_hash, position, stored_at, received_at"
    " FROM records WHERE store_id = $1 AND position > $2 ORDER BY position LIMIT $3) r ON true"
    " ORDER BY r.position";

/* StoredRecords from s_records_after_sql's rows (at most limit of them; one more means more). */
static Lcore__V1__StoredRecords *s_stored_records(const PGresult *r, const char *store_id,
                                                  uint64_t after, size_t limit)
{
    size_t rows = lc_pg_null(r, 0, 1) ? 0 : (size_t)PQntuples(r);
    size_t n = rows > limit ? limit : rows;
    Lcore__V1__StoredRecords *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    lcore__v1__stored_records__init(st);
    st->version = 1;
    st->after = after;
    st->more = rows > limit;
    st->store_id = strdup(store_id);
    st->records = calloc(n ? n : 1, sizeof *st->records);
    for (size_t i = 0; st->store_id && st->records && i < n; i++) {
        s_stored_t *item = malloc(sizeof *item);
        if (!item)
            break;
        st->records[st->n_records++] = &item->rec;
        if (s_stored_from_row(r, (int)i, 1, item) < 0)
            break;
    }
    /* Past the holes: up to the store's position, unless more remain. */
    st->upto = st->more && st->n_records == n ? st->records[n - 1]->position : lc_pg_u64(r, 0, 0);
    return st;
}

static void s_records_after(st_db_t *self, const Lcore__V1__RecordsAfter *ra,
                            Lcore__V1__QueryReply *reply)
{
    size_t limit = ra->limit == 0 || ra->limit > ST_AFTER_MAX ? ST_AFTER_MAX : ra->limit;
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_text(p, ra->store_id);
    lc_pg_add_u64(p, ra->after);
    lc_pg_add_u64(p, limit + 1);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r, s_records_after_sql, p);
    if (rc < 0) {
        st_db_reply_failure(reply, rc, "records_after refused by the database");
        return;
    }
    size_t want = lc_pg_null(r, 0, 1) ? 0 : (size_t)PQntuples(r);
    reply->stored = s_stored_records(r, ra->store_id, ra->after, limit);
    PQclear(r);
    if (!reply->stored || !reply->stored->store_id ||
        reply->stored->n_records != (want > limit ? limit : want))
        st_db_reply_incomplete(reply);
    else
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
}

static void s_store_positions(st_db_t *self, Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_i64(p, ST_STORES_MAX);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r,
                         "SELECT store_id, position FROM stores ORDER BY store_id LIMIT $1", p);
    if (rc < 0) {
        st_db_reply_failure(reply, rc, "store_positions refused by the database");
        return;
    }
    size_t n = (size_t)PQntuples(r);
    reply->positions = calloc(n ? n : 1, sizeof *reply->positions);
    for (size_t i = 0; reply->positions && i < n; i++) {
        Lcore__V1__StorePosition *sp = malloc(sizeof *sp);
        if (!sp)
            break;
        lcore__v1__store_position__init(sp);
        reply->positions[reply->n_positions++] = sp;
        sp->position = lc_pg_u64(r, (int)i, 1);
        if (!(sp->store_id = lc_pg_text_dup(r, (int)i, 0)))
            break;
    }
    int complete = reply->n_positions == n && (n == 0 || reply->positions[n - 1]->store_id);
    PQclear(r);
    if (!complete)
        st_db_reply_incomplete(reply);
    else
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
}

static void s_get_sealed(st_db_t *self, const ProtobufCBinaryData *id, Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, id->data, id->len);
    PGresult *r = NULL;
    if (!s_one_row(self, &r,
                   "SELECT record_id, device_id, seq, device_ts_ms, received_at, key_version,"
                   " aes_nonce, xchacha_nonce, ciphertext, envelope_hash FROM records"
                   " WHERE record_id = $1",
                   p, reply))
        return;
    Lcore__V1__SealedRecord *s = calloc(1, sizeof *s);
    int rc = LC_ERR_NOMEM;
    if (s) {
        lcore__v1__sealed_record__init(s);
        reply->sealed = s; /* owned by the reply from here: st_db_reply_clear frees what is set */
        s->version = 1;
        s->seq = lc_pg_u64(r, 0, 2);
        s->device_ts_ms = lc_pg_u64(r, 0, 3);
        s->received_at_us = lc_pg_time_us(r, 0, 4);
        s->key_version = (uint32_t)lc_pg_u64(r, 0, 5);
        if ((s->device_id = lc_pg_text_dup(r, 0, 1)) &&
            !(rc = lc_pg_bytes_dup(r, 0, 0, &s->record_id.data, &s->record_id.len)) &&
            !(rc = lc_pg_bytes_dup(r, 0, 6, &s->aes_nonce.data, &s->aes_nonce.len)) &&
            !(rc = lc_pg_bytes_dup(r, 0, 7, &s->xchacha_nonce.data, &s->xchacha_nonce.len)) &&
            !(rc = lc_pg_bytes_dup(r, 0, 8, &s->ciphertext.data, &s->ciphertext.len)))
            rc = lc_pg_bytes_dup(r, 0, 9, &s->envelope_hash.data, &s->envelope_hash.len);
    }
    PQclear(r);
    if (rc < 0)
        st_db_reply_incomplete(reply);
    else
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
}

static void s_device_status(st_db_t *self, const char *device_id, Lcore__V1__QueryReply *reply)
{
    int rc = st_seq_ranges_status(self->pg, device_id, &reply->device_status);
    if (rc == 0)
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    else if (rc == LC_ERR_NOTFOUND)
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
    else
        st_db_reply_failure(reply, rc, "device_status refused by the database");
}

static void s_answer_dead_letter(st_db_t *self, const Lcore__V1__DeadLetter *dl,
                                 Lcore__V1__QueryReply *reply)
{
    st_dead_letter_outcome_t outcome = ST_DEAD_LETTERED;
    int rc = st_db_dead_letter(self, dl, &outcome);
    if (rc == 0) {
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
        reply->message = s_dup(outcome == ST_DEAD_LETTERED    ? "dead_lettered"
                               : outcome == ST_ALREADY_STORED ? "already_stored"
                                                              : "already_dead_lettered");
    } else if (rc == LC_ERR_INVALID)
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST,
                          "dead letter refused by the database");
    else
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR,
                          rc == LC_ERR_UNAVAILABLE ? "database unavailable" : "out of memory");
}

const char *st_db_query_invalid(const Lcore__V1__Query *q)
{
    static const char bad_id[] = "record_id must be 32 bytes";
    static const char bad_device[] = "device_id must be 1..128 bytes of [A-Za-z0-9._:-]";
    const Lcore__V1__Device *d;
    const Lcore__V1__RecordsAfter *ra;
    switch (q->body_case) { /* each case reads only its own member of the oneof */
    case LCORE__V1__QUERY__BODY_PING:
    case LCORE__V1__QUERY__BODY_STORE_POSITIONS:
        return NULL;
    case LCORE__V1__QUERY__BODY_GET_DEVICE:
        return q->get_device && lc_device_id_valid(q->get_device, strlen(q->get_device))
                   ? NULL
                   : bad_device;
    case LCORE__V1__QUERY__BODY_DEVICE_STATUS:
        return q->device_status && lc_device_id_valid(q->device_status, strlen(q->device_status))
                   ? NULL
                   : bad_device;
    case LCORE__V1__QUERY__BODY_DEAD_LETTER:
        return q->dead_letter ? st_db_dead_letter_invalid(q->dead_letter) : "dead_letter is empty";
    case LCORE__V1__QUERY__BODY_REGISTER_DEVICE:
        d = q->register_device;
        if (!d || !d->device_id || !d->alg)
            return "incomplete";
        return s_registration_error(d) ? s_registration_error(d)
                                       : st_admin_actor_invalid(q->actor, 1);
    case LCORE__V1__QUERY__BODY_GET_RECORD:
        return q->get_record.len == LC_RECORD_ID_LEN ? NULL : bad_id;
    case LCORE__V1__QUERY__BODY_GET_SEALED:
        return q->get_sealed.len == LC_RECORD_ID_LEN ? NULL : bad_id;
    case LCORE__V1__QUERY__BODY_RECORDS_AFTER:
        ra = q->records_after;
        if (!ra || !ra->store_id || !lc_store_id_valid(ra->store_id, strlen(ra->store_id)))
            return "store_id must be 1..64 bytes of [A-Za-z0-9._:-]";
        return NULL;
    default: /* the operator and reader APIs' bodies (st_admin), or none of the store's */
        return st_admin_owns(q->body_case) ? st_admin_invalid(q) : "unknown query";
    }
}

void st_db_answer(st_db_t *self, const Lcore__V1__Query *q, int writable,
                  Lcore__V1__QueryReply *reply)
{
    reply->version = 1;
    reply->request_id = q->request_id;
    const char *why = st_db_query_invalid(q); /* before the database: it may be down */
    if (why) {
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST, why);
        return;
    }
    /* Readiness is the writer's view (can it make progress?), not a round trip: a ping must stay
     * cheap however often gateways ask. */
    if (q->body_case == LCORE__V1__QUERY__BODY_PING) {
        if (writable)
            reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
        else
            st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR,
                              "PostgreSQL unavailable");
        return;
    }
    if (q->body_case == LCORE__V1__QUERY__BODY_DEAD_LETTER) {
        s_answer_dead_letter(self, q->dead_letter, reply); /* connects only when needed */
        return;
    }
    if (!st_db_ok(self)) {
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database unavailable");
        return;
    }
    switch (q->body_case) {
    case LCORE__V1__QUERY__BODY_GET_DEVICE:
        s_get_device(self, q->get_device, reply);
        break;
    case LCORE__V1__QUERY__BODY_REGISTER_DEVICE:
        s_register(self, q->register_device, q->actor, reply);
        break;
    case LCORE__V1__QUERY__BODY_GET_RECORD:
        s_get_record(self, &q->get_record, reply);
        break;
    case LCORE__V1__QUERY__BODY_RECORDS_AFTER:
        s_records_after(self, q->records_after, reply);
        break;
    case LCORE__V1__QUERY__BODY_STORE_POSITIONS:
        s_store_positions(self, reply);
        break;
    case LCORE__V1__QUERY__BODY_GET_SEALED:
        s_get_sealed(self, &q->get_sealed, reply);
        break;
    case LCORE__V1__QUERY__BODY_DEVICE_STATUS:
        s_device_status(self, q->device_status, reply);
        break;
    default: /* st_admin's (st_db_query_invalid refused any other body) */
        st_admin_answer(self->pg, self->changes, q, reply);
        break;
    }
}

/* A string field set by this file (not the protobuf-c default). */
static void s_free_str(char *s)
{
    if (s != protobuf_c_empty_string)
        free(s);
}

static void s_free_stored(Lcore__V1__StoredRecords *st)
{
    for (size_t i = 0; i < st->n_records; i++)
        free(st->records[i]); /* an s_stored_t: its bytes with it */
    free(st->records);
    s_free_str(st->store_id);
    free(st);
}

static void s_free_sealed(Lcore__V1__SealedRecord *s)
{
    free(s->record_id.data);
    s_free_str(s->device_id);
    free(s->aes_nonce.data);
    free(s->xchacha_nonce.data);
    free(s->ciphertext.data);
    free(s->envelope_hash.data);
    free(s);
}

/* A repeated message field whose items were made with malloc (protobuf-c's layout). */
static void s_free_items(ProtobufCMessage **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        protobuf_c_message_free_unpacked(items[i], NULL);
    free(items);
}

void st_db_reply_clear(Lcore__V1__QueryReply *reply)
{
    s_free_str(reply->message);
    if (reply->device)
        lcore__v1__device__free_unpacked(reply->device, NULL);
    if (reply->record)
        lcore__v1__record_info__free_unpacked(reply->record, NULL);
    s_free_items((ProtobufCMessage **)reply->devices, reply->n_devices);
    s_free_items((ProtobufCMessage **)reply->tokens, reply->n_tokens);
    s_free_items((ProtobufCMessage **)reply->audit, reply->n_audit);
    s_free_items((ProtobufCMessage **)reply->records, reply->n_records);
    if (reply->stored)
        s_free_stored(reply->stored);
    for (size_t i = 0; i < reply->n_positions; i++) {
        s_free_str(reply->positions[i]->store_id);
        free(reply->positions[i]);
    }
    free(reply->positions);
    if (reply->sealed)
        s_free_sealed(reply->sealed);
    for (size_t i = 0; i < reply->n_dead_letters; i++)
        lcore__v1__dead_letter__free_unpacked(reply->dead_letters[i], NULL);
    free(reply->dead_letters);
    st_seq_ranges_free(reply->device_status);
    lcore__v1__query_reply__init(reply);
}
