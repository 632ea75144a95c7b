/* st_db.c: PostgreSQL access for the store. See st_db.h. */
#include "st_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "lc_codec.h"
#include "lc_jws.h"
#include "lc_log.h"
#include "lc_merkle.h"
#include "lc_pg.h"
#include "lc_record.h"
#include "st_schema.h"

#define ST_COLS 10
#define ST_REASON_MAX 300 /* bytes kept of a dead letter's reason */

struct st_db {
    char *dsn;
    PGconn *conn;
    /* The SQL text for the last batch size used; rebuilt only when the size changes. */
    char *insert_sql;
    size_t insert_rows;
    char last_error[192]; /* see st_db_last_error */
    lc_counter_t *dead_crypto, *dead_store;
};

static const char s_insert_head[] =
    "INSERT INTO records (record_id, device_id, seq, device_ts_ms, key_version, aes_nonce,"
    " xchacha_nonce, ciphertext, envelope_hash, received_at) VALUES ";
static const char s_insert_tail[] = " ON CONFLICT DO NOTHING RETURNING id";

st_db_t *st_db_new(const char *dsn, const char *store_id)
{
    (void)store_id; /* WIP: positions */
    st_db_t *self = calloc(1, sizeof *self);
    if (!self || !(self->dsn = strdup(dsn)))
        goto fail;
    if (!(self->conn = lc_pg_connect(dsn, "lcore-store")))
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

int st_db_migrate(st_db_t *self, const char *store_role, const char *chain_role, FILE *out)
{
    if (!st_db_ok(self))
        return LC_ERR_UNAVAILABLE;
    return st_schema_migrate(self->conn, store_role, chain_role, out);
}

int st_db_schema_check(st_db_t *self, char *why, size_t cap)
{
    if (!st_db_ok(self)) {
        snprintf(why, cap, "PostgreSQL unavailable");
        return LC_ERR_UNAVAILABLE;
    }
    return st_schema_check(self->conn, why, cap);
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

/* Keeps why a statement failed, without parameter values: an integrity violation's primary
 * message names only the table, column or constraint; a data exception's (class 22) may quote
 * the offending value, so only its SQLSTATE is kept. Details ("Failing row contains ...") never. */
static void s_set_error(st_db_t *self, const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (state && strncmp(state, "23", 2) == 0 && primary)
        snprintf(self->last_error, sizeof self->last_error, "%s: %s", state, primary);
    else if (state && strncmp(state, "22", 2) == 0)
        snprintf(self->last_error, sizeof self->last_error, "%s: data exception", state);
    else
        snprintf(self->last_error, sizeof self->last_error, "%s", state ? state : "no SQLSTATE");
}

/* After a failed statement: LC_ERR_INVALID when the data was refused, else LC_ERR_UNAVAILABLE
 * (and a broken connection is dropped so the next call reconnects). */
static int s_failure(st_db_t *self, const PGresult *r)
{
    s_set_error(self, r);
    if (s_is_data_error(PQresultErrorField(r, PG_DIAG_SQLSTATE)))
        return LC_ERR_INVALID;
    if (PQstatus(self->conn) != CONNECTION_OK) {
        PQfinish(self->conn);
        self->conn = NULL;
    }
    return LC_ERR_UNAVAILABLE;
}

const char *st_db_last_error(const st_db_t *self)
{
    return self->last_error;
}

int st_db_insert_records(st_db_t *self, Lcore__V1__SealedRecord *const *recs, size_t n,
                         size_t *inserted)
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
        rc = 0;
    } else {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        lc_warn("db_insert_failed", "rows=%zu sqlstate=%s err=\"%s\"", n, state ? state : "-",
                strtok(PQresultErrorMessage(r), "\n"));
        rc = s_failure(self, r);
    }
out:
    PQclear(r);
    free(values);
    free(lengths);
    free(formats);
    free(num);
    return rc;
}

const Lcore__V1__StoredRecords *st_db_last_written(const st_db_t *self)
{
    (void)self; /* WIP: positions */
    static Lcore__V1__StoredRecords none = LCORE__V1__STORED_RECORDS__INIT;
    return &none;
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
    return NULL;
}

/* Records the dead letter unless its record is stored, and says which happened, in one
 * statement (one snapshot: both EXISTS see the same records). */
static const char s_dead_letter_sql[] =
    "WITH ins AS (INSERT INTO dead_letters (record_id, device_id, seq, device_ts_ms, received_at,"
    " gateway_id, stage, reason, attempts)"
    " SELECT $1::bytea, $2::text, $3::bigint, $4::bigint, to_timestamp($5::float8 / 1000000),"
    " $6::text, $7::text, $8::text, $9::integer"
    " WHERE NOT EXISTS (SELECT 1 FROM records WHERE record_id = $1::bytea)"
    " ON CONFLICT (record_id) DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM ins), EXISTS (SELECT 1 FROM records WHERE record_id = "
    "$1::bytea)";

int st_db_dead_letter(st_db_t *self, const Lcore__V1__DeadLetter *dl,
                      st_dead_letter_outcome_t *outcome)
{
    const char *why = st_db_dead_letter_invalid(dl);
    if (why) {
        snprintf(self->last_error, sizeof self->last_error, "%s", why);
        return LC_ERR_INVALID;
    }
    if (!st_db_ok(self))
        return LC_ERR_UNAVAILABLE;
    /* The reason is cut at a character boundary so it stays valid UTF-8. */
    char reason[ST_REASON_MAX + 1];
    size_t rlen = strlen(dl->reason);
    if (rlen > ST_REASON_MAX) {
        rlen = ST_REASON_MAX;
        while (rlen > 0 && ((unsigned char)dl->reason[rlen] & 0xc0) == 0x80)
            rlen--;
    }
    memcpy(reason, dl->reason, rlen);
    reason[rlen] = '\0';
    char seq[24], ts[24], at[24], attempts[16];
    snprintf(seq, sizeof seq, "%llu", (unsigned long long)dl->seq);
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)dl->device_ts_ms);
    snprintf(at, sizeof at, "%llu", (unsigned long long)dl->received_at_us);
    snprintf(attempts, sizeof attempts, "%u", dl->attempts);
    const char *v[9] = {(const char *)dl->record_id.data,
                        dl->device_id,
                        seq,
                        ts,
                        dl->received_at_us ? at : NULL, /* 0: unknown */
                        dl->gateway_id,
                        dl->stage,
                        reason,
                        attempts};
    int l[9] = {(int)dl->record_id.len}, f[9] = {1};
    PGresult *r = PQexecParams(self->conn, s_dead_letter_sql, 9, NULL, v, l, f, 0);
    char hex[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1];
    lc_hex_encode(hex, sizeof hex, dl->record_id.data, dl->record_id.len);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = s_failure(self, r);
        char err[sizeof self->last_error];
        s_log_text(err, sizeof err, self->last_error);
        lc_warn("dead_letter_failed", "record_id=%s device_id=%s seq=%llu stage=%s err=\"%s\"", hex,
                dl->device_id, (unsigned long long)dl->seq, dl->stage, err);
    } else if (strcmp(PQgetvalue(r, 0, 0), "1") == 0) {
        *outcome = ST_DEAD_LETTERED;
        lc_counter_t *c = strcmp(dl->stage, "crypto") == 0 ? self->dead_crypto : self->dead_store;
        if (c)
            lc_counter_inc(c);
        char gw[ST_GATEWAY_ID_MAX + 1], why_log[ST_REASON_MAX + 1];
        s_log_text(gw, sizeof gw, dl->gateway_id);
        s_log_text(why_log, sizeof why_log, reason);
        lc_warn("record_dead_lettered",
                "record_id=%s device_id=%s seq=%llu stage=%s attempts=%u gateway_id=\"%s\""
                " reason=\"%s\"",
                hex, dl->device_id, (unsigned long long)dl->seq, dl->stage, dl->attempts, gw,
                why_log);
    } else {
        *outcome = PQgetvalue(r, 0, 1)[0] == 't' ? ST_ALREADY_STORED : ST_ALREADY_DEAD_LETTERED;
        lc_debug("dead_letter_absorbed", "record_id=%s stage=%s outcome=%s", hex, dl->stage,
                 *outcome == ST_ALREADY_STORED ? "already_stored" : "already_dead_lettered");
    }
    PQclear(r);
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

/* A registration is checked as the gateway checks it (device id, algorithm, a canonical key on
 * the curve, DID document size) before it reaches the database: the query link is not trusted
 * to have done it. */
static const char *s_registration_error(const Lcore__V1__Device *d)
{
    lc_alg_t alg = lc_alg_from_name(d->alg);
    if (!lc_device_id_valid(d->device_id, strlen(d->device_id)))
        return "device_id must be 1-128 characters of [A-Za-z0-9._:-]";
    if (alg == LC_ALG_NONE)
        return "alg must be EdDSA or ES256K";
    if (!lc_pubkey_valid(alg, d->public_key.data, d->public_key.len))
        return "public_key is not a canonical key on the algorithm's curve";
    if (d->did_document && strlen(d->did_document) > 16384)
        return "did_document too large (16 KiB)";
    return NULL;
}

static void s_register(st_db_t *self, const Lcore__V1__Device *d, Lcore__V1__QueryReply *reply)
{
    const char *invalid = s_registration_error(d);
    if (invalid) {
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST, invalid);
        return;
    }
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
    reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
}

static void s_answer_dead_letter(st_db_t *self, const Lcore__V1__DeadLetter *dl,
                                 Lcore__V1__QueryReply *reply)
{
    const char *why = dl ? st_db_dead_letter_invalid(dl) : "dead_letter is empty";
    if (why) {
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST, why);
        return;
    }
    st_dead_letter_outcome_t outcome = ST_DEAD_LETTERED;
    int rc = st_db_dead_letter(self, dl, &outcome);
    if (rc == 0) {
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
        reply->message = s_dup(outcome == ST_DEAD_LETTERED    ? "dead_lettered"
                               : outcome == ST_ALREADY_STORED ? "already_stored"
                                                              : "already_dead_lettered");
    } else if (rc == LC_ERR_INVALID)
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST,
                      "dead letter refused by the database");
    else
        s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR,
                      rc == LC_ERR_UNAVAILABLE ? "database unavailable" : "out of memory");
}

void st_db_answer(st_db_t *self, const Lcore__V1__Query *q, int writable,
                  Lcore__V1__QueryReply *reply)
{
    reply->version = 1;
    reply->request_id = q->request_id;
    /* Readiness is the writer's view (can it make progress?), not a round trip: a ping must stay
     * cheap however often gateways ask. */
    if (q->body_case == LCORE__V1__QUERY__BODY_PING) {
        if (writable)
            reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
        else
            s_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "PostgreSQL unavailable");
        return;
    }
    if (q->body_case == LCORE__V1__QUERY__BODY_DEAD_LETTER) {
        s_answer_dead_letter(self, q->dead_letter, reply); /* validates before connecting */
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
        free(ri);
    }
    lcore__v1__query_reply__init(reply);
}
