/* st_admin.c: the operator and reader APIs' data. See st_admin.h. */
#include "st_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_jws.h"
#include "lc_log.h"
#include "lc_record.h"
#include "lc_zmq.h"
#include "st_db.h"

#define S_ACTOR_MAX 64           /* bytes of a token id in the audit log */
#define S_TARGET_MAX 128         /* bytes of an audit entry's target */
#define S_TOKEN_HASH_LEN 32      /* SHA-256 of a token */
#define S_TOKEN_DEVICES_MAX 1000 /* devices one token may name */
#define S_PAGE_BYTES 524288      /* packed items in one list answer, at most (about) */

static const char s_bad_device[] = "device_id must be 1..128 bytes of [A-Za-z0-9._:-]";
static const char s_bad_limit[] = "limit must be 1..1000";
static const char s_bad_token_id[] = "token id must be \"tok_\" and 16 lowercase hex digits";

/* -- checks ------------------------------------------------------------------------------ */

static int s_device_ok(const char *device_id)
{
    return device_id && lc_device_id_valid(device_id, strlen(device_id));
}

/* 1..max bytes of [A-Za-z0-9._:-] (a device id's alphabet). */
static int s_word_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= max && lc_device_id_valid(s, n);
}

/* "tok_" and 16 lowercase hex digits: what the gateway makes (tokens' CHECK says the same). */
static int s_token_id_ok(const char *id)
{
    if (!id || strlen(id) != 20 || strncmp(id, "tok_", 4) != 0)
        return 0;
    for (const char *c = id + 4; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return 0;
    return 1;
}

const char *st_admin_actor_invalid(const char *actor, int may_be_empty)
{
    if (may_be_empty && (!actor || !actor[0]))
        return NULL;
    return s_word_ok(actor, S_ACTOR_MAX) ? NULL
                                         : "actor must be 1..64 characters of [A-Za-z0-9_.:-]";
}

const char *st_admin_key_invalid(const char *alg_name, const ProtobufCBinaryData *public_key)
{
    lc_alg_t alg = alg_name ? lc_alg_from_name(alg_name) : LC_ALG_NONE;
    if (alg == LC_ALG_NONE)
        return "alg must be EdDSA or ES256K";
    if (!lc_pubkey_valid(alg, public_key->data, public_key->len))
        return "public_key is not a canonical key on the algorithm's curve";
    return NULL;
}

static const char *s_either(const char *first, const char *second)
{
    return first ? first : second;
}

static const char *s_rotate_invalid(const Lcore__V1__RotateKey *rk)
{
    if (!s_device_ok(rk->device_id))
        return s_bad_device;
    if (rk->overlap_s > ST_ADMIN_OVERLAP_MAX)
        return "overlap_s must be 0..2592000 (30 days)";
    return st_admin_key_invalid(rk->alg, &rk->public_key);
}

static const char *s_token_invalid(const Lcore__V1__Token *t)
{
    if (!s_token_id_ok(t->id))
        return s_bad_token_id;
    if (t->hash.len != S_TOKEN_HASH_LEN)
        return "hash must be the 32-byte SHA-256 of the token";
    if (!t->scope || (strcmp(t->scope, "read") != 0 && strcmp(t->scope, "decrypt") != 0 &&
                      strcmp(t->scope, "operator") != 0))
        return "scope must be read, decrypt or operator";
    if (t->n_devices > S_TOKEN_DEVICES_MAX)
        return "a token names at most 1000 devices";
    for (size_t i = 0; i < t->n_devices; i++)
        if (!s_device_ok(t->devices[i]))
            return "devices: each device_id must be 1..128 bytes of [A-Za-z0-9._:-]";
    if (t->expires_at_us > INT64_MAX)
        return "expires_at_us must be at most 2^63-1";
    return NULL;
}

static const char *s_audit_invalid(const Lcore__V1__AuditEntry *e)
{
    if (!e->action || strcmp(e->action, "open") != 0)
        return "only action \"open\" may be appended";
    if (!s_word_ok(e->token_id, S_ACTOR_MAX))
        return "token_id must be 1..64 characters of [A-Za-z0-9_.:-]";
    return s_word_ok(e->target, S_TARGET_MAX)
               ? NULL
               : "target must be 1..128 characters of [A-Za-z0-9_.:-]";
}

static const char *s_records_invalid(const Lcore__V1__RecordList *l)
{
    if (!s_device_ok(l->device_id))
        return s_bad_device;
    return l->limit >= 1 && l->limit <= ST_ADMIN_PAGE_MAX ? NULL : s_bad_limit;
}

static const char *s_limit_invalid(uint32_t limit)
{
    return limit >= 1 && limit <= ST_ADMIN_PAGE_MAX ? NULL : s_bad_limit;
}

static const char *s_device_list_invalid(const Lcore__V1__DeviceList *l)
{
    if (!l || (l->after[0] && !s_device_ok(l->after)))
        return "after must be empty or a device_id";
    return s_limit_invalid(l->limit);
}

/* The bodies list_devices (15) .. list_records (24): the proto numbers them in a row. */
int st_admin_owns(Lcore__V1__Query__BodyCase body)
{
    return body >= LCORE__V1__QUERY__BODY_LIST_DEVICES &&
           body <= LCORE__V1__QUERY__BODY_LIST_RECORDS;
}

const char *st_admin_invalid(const Lcore__V1__Query *q)
{
    const char *actor = st_admin_actor_invalid(q->actor, 0);
    switch (q->body_case) { /* each case reads only its own member of the oneof */
    case LCORE__V1__QUERY__BODY_LIST_DEVICES:
        return s_device_list_invalid(q->list_devices);
    case LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS:
        return !q->set_device_status || !s_device_ok(q->set_device_status->device_id) ? s_bad_device
                                                                                      : actor;
    case LCORE__V1__QUERY__BODY_ROTATE_KEY:
        return q->rotate_key ? s_either(s_rotate_invalid(q->rotate_key), actor) : "empty";
    case LCORE__V1__QUERY__BODY_CREATE_TOKEN:
        return q->create_token ? s_either(s_token_invalid(q->create_token), actor) : "empty";
    case LCORE__V1__QUERY__BODY_LIST_TOKENS:
        return NULL;
    case LCORE__V1__QUERY__BODY_DELETE_TOKEN:
        return s_token_id_ok(q->delete_token) ? actor : s_bad_token_id;
    case LCORE__V1__QUERY__BODY_GET_TOKEN:
        return q->get_token.len == S_TOKEN_HASH_LEN ? NULL : "the token's hash must be 32 bytes";
    case LCORE__V1__QUERY__BODY_APPEND_AUDIT:
        return q->append_audit ? s_audit_invalid(q->append_audit) : "empty";
    case LCORE__V1__QUERY__BODY_LIST_AUDIT:
        if (!q->list_audit || q->list_audit->after > INT64_MAX)
            return "after must be an audit entry id (at most 2^63-1)";
        return s_limit_invalid(q->list_audit->limit);
    case LCORE__V1__QUERY__BODY_LIST_RECORDS:
        return q->list_records ? s_records_invalid(q->list_records) : "empty";
    default:
        return "not an operator or reader query";
    }
}

/* -- rows -------------------------------------------------------------------------------- */

/* Row `row`'s text columns cols[k] into *texts[k] (malloc'd); 0 when every one read. */
static int s_texts(const PGresult *r, int row, char **const *texts, const int *cols, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!(*texts[k] = lc_pg_text_dup(r, row, cols[k])))
            return LC_ERR_NOMEM;
    return 0;
}

Lcore__V1__Device *st_admin_device_row(const PGresult *r, int row)
{
    Lcore__V1__Device *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    lcore__v1__device__init(d);
    d->registered_at_us = lc_pg_time_us(r, row, 5);
    d->revoked_at_us = lc_pg_time_us(r, row, 6);
    d->key_no = (uint32_t)lc_pg_u64(r, row, 7);
    d->key_since_us = lc_pg_time_us(r, row, 8);
    d->prev_until_us = lc_pg_time_us(r, row, 11);
    char **const texts[] = {&d->device_id, &d->alg, &d->status, &d->did_document, &d->prev_alg};
    static const int cols[] = {0, 1, 3, 4, 9};
    if (s_texts(r, row, texts, cols, LC_ARRAY_LEN(cols)) < 0 ||
        lc_pg_bytes_dup(r, row, 2, &d->public_key.data, &d->public_key.len) < 0 ||
        (!lc_pg_null(r, row, 10) &&
         lc_pg_bytes_dup(r, row, 10, &d->prev_public_key.data, &d->prev_public_key.len) < 0)) {
        lcore__v1__device__free_unpacked(d, NULL);
        return NULL;
    }
    return d;
}

Lcore__V1__RecordInfo *st_admin_record_row(const PGresult *r, int row)
{
    Lcore__V1__RecordInfo *ri = malloc(sizeof *ri);
    if (!ri)
        return NULL;
    lcore__v1__record_info__init(ri);
    ri->seq = lc_pg_u64(r, row, 1);
    ri->key_version = (uint32_t)lc_pg_u64(r, row, 2);
    ri->device_ts_ms = lc_pg_u64(r, row, 4);
    ri->stored_at_us = lc_pg_time_us(r, row, 5);
    if (!(ri->device_id = lc_pg_text_dup(r, row, 0)) || !(ri->status = strdup("stored")) ||
        lc_pg_bytes_dup(r, row, 3, &ri->envelope_hash.data, &ri->envelope_hash.len) < 0 ||
        lc_pg_bytes_dup(r, row, 6, &ri->record_id.data, &ri->record_id.len) < 0 ||
        (!lc_pg_null(r, row, 7) &&
         lc_pg_bytes_dup(r, row, 7, &ri->reading_hash.data, &ri->reading_hash.len) < 0)) {
        lcore__v1__record_info__free_unpacked(ri, NULL);
        return NULL;
    }
    return ri;
}

/* A token (without its hash): id, scope, devices (joined by ','), expires_at, created_at,
 * created_by. */
#define S_TOKEN_COLUMNS                                                                            \
    "id, scope, coalesce(array_to_string(devices, ','), ''), expires_at, created_at, created_by"

/* A ','-joined list of device ids as the Token's devices. 0 or LC_ERR_NOMEM. */
static int s_split_devices(Lcore__V1__Token *t, const char *joined)
{
    if (!joined[0])
        return 0;
    size_t n = 1;
    for (const char *c = joined; *c; c++)
        n += *c == ',';
    if (!(t->devices = calloc(n, sizeof *t->devices)))
        return LC_ERR_NOMEM;
    for (const char *s = joined; t->n_devices < n; s += strcspn(s, ",") + 1) {
        if (!(t->devices[t->n_devices] = strndup(s, strcspn(s, ","))))
            return LC_ERR_NOMEM;
        t->n_devices++;
    }
    return 0;
}

/* A token row (S_TOKEN_COLUMNS) as a Token, or NULL. */
static ProtobufCMessage *s_token_msg(const PGresult *r, int row)
{
    Lcore__V1__Token *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    lcore__v1__token__init(t);
    t->expires_at_us = lc_pg_time_us(r, row, 3);
    t->created_at_us = lc_pg_time_us(r, row, 4);
    char *devices = NULL;
    char **const texts[] = {&t->id, &t->scope, &devices, &t->created_by};
    static const int cols[] = {0, 1, 2, 5};
    int rc = s_texts(r, row, texts, cols, LC_ARRAY_LEN(cols));
    if (rc == 0)
        rc = s_split_devices(t, devices);
    free(devices);
    if (rc < 0) {
        lcore__v1__token__free_unpacked(t, NULL);
        return NULL;
    }
    return &t->base;
}

#define S_AUDIT_COLUMNS "id, at, token_id, action, target"

/* An audit_log row (S_AUDIT_COLUMNS) as an AuditEntry, or NULL. */
static ProtobufCMessage *s_audit_msg(const PGresult *r, int row)
{
    Lcore__V1__AuditEntry *e = malloc(sizeof *e);
    if (!e)
        return NULL;
    lcore__v1__audit_entry__init(e);
    e->id = lc_pg_u64(r, row, 0);
    e->at_us = lc_pg_time_us(r, row, 1);
    char **const texts[] = {&e->token_id, &e->action, &e->target};
    static const int cols[] = {2, 3, 4};
    if (s_texts(r, row, texts, cols, LC_ARRAY_LEN(cols)) < 0) {
        lcore__v1__audit_entry__free_unpacked(e, NULL);
        return NULL;
    }
    return &e->base;
}

/* One row of a result as a message (malloc'd, for protobuf_c_message_free_unpacked), or NULL. */
typedef ProtobufCMessage *(*s_row_fn)(const PGresult *r, int row);

static ProtobufCMessage *s_device_msg(const PGresult *r, int row)
{
    Lcore__V1__Device *d = st_admin_device_row(r, row);
    return d ? &d->base : NULL;
}
static ProtobufCMessage *s_record_msg(const PGresult *r, int row)
{
    Lcore__V1__RecordInfo *ri = st_admin_record_row(r, row);
    return ri ? &ri->base : NULL;
}

/* The answer to a page of `rows` rows of r, limit + 1 of which were asked (one more means more):
 * each made by fn into a new array *items (a repeated field of reply, as protobuf-c keeps it:
 * an array of message pointers), OK; ERROR when memory ran out (what was made stays for
 * st_db_reply_clear). A page is cut short (more) past S_PAGE_BYTES packed: a gateway takes an
 * answer of 1 MiB at most, and 1000 devices may carry 16 KiB DID documents each. */
static void s_page(const PGresult *r, size_t rows, uint32_t limit, s_row_fn fn,
                   ProtobufCMessage ***items, size_t *n_items, Lcore__V1__QueryReply *reply)
{
    size_t n = rows > limit ? limit : rows, bytes = 0;
    reply->more = rows > limit;
    *items = calloc(n ? n : 1, sizeof **items);
    for (size_t i = 0; *items && i < n; i++) {
        if (!((*items)[i] = fn(r, (int)i)))
            break;
        bytes += protobuf_c_message_get_packed_size((*items)[i]) + 8;
        if (i > 0 && bytes > S_PAGE_BYTES) {
            protobuf_c_message_free_unpacked((*items)[i], NULL);
            reply->more = 1;
            n = i;
            break;
        }
        (*n_items)++;
    }
    if (*n_items == n && *items)
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    else
        st_db_reply_incomplete(reply);
}

/* One row expected: 1 with *out, or 0 after answering (NOT_FOUND when none, else the failure). */
static int s_one(lc_pg_t *pg, PGresult **out, const char *sql, const lc_pg_params_t *p,
                 Lcore__V1__QueryReply *reply)
{
    int rc = lc_pg_query_row(pg, out, sql, p);
    if (rc == LC_ERR_NOTFOUND)
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
    else if (rc < 0)
        st_db_reply_failure(reply, rc, "refused by the database");
    return rc == 0;
}

/* -- changes ----------------------------------------------------------------------------- */

/* Tells the gateways (topic "changes/") that what they cache of a device or a token changed. */
static void s_publish_change(zsock_t *changes, const char *device_id, const char *token_id)
{
    if (!changes)
        return;
    Lcore__V1__Change c = LCORE__V1__CHANGE__INIT;
    c.version = 1;
    c.device_id = (char *)(device_id ? device_id : "");
    c.token_id = (char *)(token_id ? token_id : "");
    if (lc_zmq_send_pb(changes, "changes/", &c.base, ZMQ_DONTWAIT) < 0)
        lc_warn("change_not_published", "device_id=%s token_id=%s", c.device_id, c.token_id);
}

/* -- devices ----------------------------------------------------------------------------- */

static void s_list_devices(lc_pg_t *pg, const Lcore__V1__DeviceList *l,
                           Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, l->after);
    lc_pg_add_u64(p, (uint64_t)l->limit + 1);
    PGresult *r = NULL;
    int rc = lc_pg_query(pg, &r,
                         "SELECT " ST_DEVICE_COLUMNS " FROM devices d" ST_DEVICE_KEYS
                         " WHERE d.device_id > $1 ORDER BY d.device_id LIMIT $2",
                         p);
    if (rc < 0)
        st_db_reply_failure(reply, rc, "list_devices refused by the database");
    else
        s_page(r, (size_t)PQntuples(r), l->limit, s_device_msg,
               (ProtobufCMessage ***)&reply->devices, &reply->n_devices, reply);
    PQclear(r);
}

/* Revoke: status revoked from now on (a revoked device keeps its revoked_at); reactivate: active,
 * revoked_at NULL. The audit row in the same statement; the device as it is now. */
static const char s_status_sql[] =
    "WITH d AS (UPDATE devices SET status = CASE WHEN $2 THEN 'revoked' ELSE 'active' END,"
    " revoked_at = CASE WHEN NOT $2 THEN NULL WHEN status = 'revoked'"
    " THEN coalesce(revoked_at, now()) ELSE now() END WHERE device_id = $1 RETURNING *),"
    " a AS (INSERT INTO audit_log (token_id, action, target) SELECT $3, $4, device_id FROM d)"
    " SELECT " ST_DEVICE_COLUMNS " FROM d" ST_DEVICE_KEYS;

static void s_set_status(lc_pg_t *pg, zsock_t *changes, const Lcore__V1__SetDeviceStatus *s,
                         const char *actor, Lcore__V1__QueryReply *reply)
{
    const char *action = s->revoked ? "device.revoke" : "device.reactivate";
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, s->device_id);
    lc_pg_add_bool(p, s->revoked);
    lc_pg_add_text(p, actor);
    lc_pg_add_text(p, action);
    PGresult *r = NULL;
    if (!s_one(pg, &r, s_status_sql, p, reply))
        return;
    lc_info("device_status_set", "device_id=%s action=%s actor=%s", s->device_id, action, actor);
    s_publish_change(changes, s->device_id, NULL);
    if ((reply->device = st_admin_device_row(r, 0)))
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    else
        st_db_reply_incomplete(reply);
    PQclear(r);
}

/* The device's current key (cur), the next one inserted unless it is the same key (a rotation
 * racing another one finds its key_no taken: nothing inserted), the audit row, then one row: the
 * device as it is now (ST_DEVICE_COLUMNS, NULLs when nothing was inserted), whether the device
 * exists, whether the key asked for is the current one. */
#define S_CURRENT_KEY                                                                              \
    "SELECT d.device_id, coalesce(c.key_no, 1) AS key_no, coalesce(c.alg, d.alg) AS alg,"          \
    " coalesce(c.public_key, d.public_key) AS public_key FROM devices d" ST_DEVICE_KEYS            \
    " WHERE d.device_id = $1"
static const char s_rotate_sql[] =
    "WITH cur AS (" S_CURRENT_KEY "),"
    " k AS (INSERT INTO device_keys (device_id, key_no, alg, public_key, since, prev_until)"
    " SELECT device_id, key_no + 1, $2, $3, now(), now() + $4 * interval '1 second' FROM cur"
    " WHERE NOT (alg = $2 AND public_key = $3) ON CONFLICT DO NOTHING RETURNING *),"
    " a AS (INSERT INTO audit_log (token_id, action, target)"
    " SELECT $5, 'device.rotate', device_id FROM k)"
    " SELECT d.device_id, k.alg, k.public_key, d.status, coalesce(d.did_document::text, ''),"
    " d.registered_at, d.revoked_at, k.key_no, k.since, cur.alg, cur.public_key, k.prev_until,"
    " (SELECT count(*) FROM cur), (SELECT alg = $2 AND public_key = $3 FROM cur)"
    " FROM (SELECT 1) AS one LEFT JOIN k ON true LEFT JOIN cur ON true"
    " LEFT JOIN devices d ON d.device_id = k.device_id";

static void s_rotate(lc_pg_t *pg, zsock_t *changes, const Lcore__V1__RotateKey *rk,
                     const char *actor, Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, rk->device_id);
    lc_pg_add_text(p, rk->alg);
    lc_pg_add_bytes(p, rk->public_key.data, rk->public_key.len);
    lc_pg_add_u64(p, rk->overlap_s);
    lc_pg_add_text(p, actor);
    PGresult *r = NULL;
    if (!s_one(pg, &r, s_rotate_sql, p, reply))
        return;
    if (lc_pg_null(r, 0, 0)) { /* no key inserted */
        if (lc_pg_i64(r, 0, ST_DEVICE_NCOLS) == 0)
            reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
        else
            st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__CONFLICT,
                              lc_pg_bool(r, 0, ST_DEVICE_NCOLS + 1)
                                  ? "same key: the device already uses this key"
                                  : "the device's key changed meanwhile: ask again");
    } else {
        lc_info("device_key_rotated", "device_id=%s key_no=%llu overlap_s=%u actor=%s",
                rk->device_id, (unsigned long long)lc_pg_u64(r, 0, 7), rk->overlap_s, actor);
        s_publish_change(changes, rk->device_id, NULL);
        if ((reply->device = st_admin_device_row(r, 0)))
            reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
        else
            st_db_reply_incomplete(reply);
    }
    PQclear(r);
}

/* -- tokens ------------------------------------------------------------------------------ */

/* A token's device ids joined by ',' (none contains one), or NULL (no memory). */
static char *s_join_devices(const Lcore__V1__Token *t)
{
    size_t len = 1;
    for (size_t i = 0; i < t->n_devices; i++)
        len += strlen(t->devices[i]) + 1;
    char *joined = calloc(1, len);
    for (size_t i = 0; joined && i < t->n_devices; i++)
        strcat(strcat(joined, i ? "," : ""), t->devices[i]);
    return joined;
}

static const char s_create_token_sql[] =
    "WITH t AS (INSERT INTO tokens (id, hash, scope, devices, expires_at, created_by)"
    " VALUES ($1, $2, $3, NULLIF(string_to_array($4, ','), '{}'), $5, $6)"
    " ON CONFLICT DO NOTHING RETURNING " S_TOKEN_COLUMNS "),"
    " a AS (INSERT INTO audit_log (token_id, action, target)"
    " SELECT $6, 'token.create', id FROM t)"
    " SELECT * FROM t";

static void s_create_token(lc_pg_t *pg, const Lcore__V1__Token *t, const char *actor,
                           Lcore__V1__QueryReply *reply)
{
    char *devices = s_join_devices(t);
    if (!devices) {
        st_db_reply_incomplete(reply);
        return;
    }
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, t->id);
    lc_pg_add_bytes(p, t->hash.data, t->hash.len);
    lc_pg_add_text(p, t->scope);
    lc_pg_add_text(p, devices);
    lc_pg_add_time_us(p, t->expires_at_us); /* 0: NULL, never expires */
    lc_pg_add_text(p, actor);
    PGresult *r = NULL;
    int rc = lc_pg_query_row(pg, &r, s_create_token_sql, p);
    free(devices);
    if (rc == LC_ERR_NOTFOUND) {
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__CONFLICT,
                          "a token with this id or hash exists");
    } else if (rc < 0) {
        st_db_reply_failure(reply, rc, "create_token refused by the database");
    } else {
        lc_info("token_created", "token_id=%s scope=%s devices=%zu actor=%s", t->id, t->scope,
                t->n_devices, actor);
        s_page(r, 1, 1, s_token_msg, (ProtobufCMessage ***)&reply->tokens, &reply->n_tokens, reply);
        reply->status = reply->status == LCORE__V1__QUERY_REPLY__STATUS__OK
                            ? LCORE__V1__QUERY_REPLY__STATUS__CREATED
                            : reply->status;
    }
    PQclear(r);
}

static void s_list_tokens(lc_pg_t *pg, Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_u64(p, ST_ADMIN_PAGE_MAX + 1);
    PGresult *r = NULL;
    int rc = lc_pg_query(pg, &r,
                         "SELECT " S_TOKEN_COLUMNS " FROM tokens WHERE deleted_at IS NULL"
                         " ORDER BY created_at DESC, id DESC LIMIT $1",
                         p);
    if (rc < 0)
        st_db_reply_failure(reply, rc, "list_tokens refused by the database");
    else
        s_page(r, (size_t)PQntuples(r), ST_ADMIN_PAGE_MAX, s_token_msg,
               (ProtobufCMessage ***)&reply->tokens, &reply->n_tokens, reply);
    PQclear(r);
}

static void s_delete_token(lc_pg_t *pg, zsock_t *changes, const char *id, const char *actor,
                           Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, id);
    lc_pg_add_text(p, actor);
    int rc = lc_pg_exec(pg,
                        "WITH t AS (UPDATE tokens SET deleted_at = now()"
                        " WHERE id = $1 AND deleted_at IS NULL RETURNING id)"
                        " INSERT INTO audit_log (token_id, action, target)"
                        " SELECT $2, 'token.delete', id FROM t",
                        p);
    if (rc < 0) {
        st_db_reply_failure(reply, rc, "delete_token refused by the database");
    } else if (rc == 0) {
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
    } else {
        lc_info("token_deleted", "token_id=%s actor=%s", id, actor);
        s_publish_change(changes, NULL, id);
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    }
}

static void s_get_token(lc_pg_t *pg, const ProtobufCBinaryData *hash, Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_bytes(p, hash->data, hash->len);
    PGresult *r = NULL;
    if (s_one(pg, &r,
              "SELECT " S_TOKEN_COLUMNS " FROM tokens WHERE hash = $1 AND deleted_at IS NULL", p,
              reply))
        s_page(r, 1, 1, s_token_msg, (ProtobufCMessage ***)&reply->tokens, &reply->n_tokens, reply);
    PQclear(r);
}

/* -- audit log --------------------------------------------------------------------------- */

static void s_append_audit(lc_pg_t *pg, const Lcore__V1__AuditEntry *e,
                           Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, e->token_id);
    lc_pg_add_text(p, e->action);
    lc_pg_add_text(p, e->target);
    PGresult *r = NULL;
    if (s_one(pg, &r,
              "INSERT INTO audit_log (token_id, action, target) VALUES ($1, $2, $3)"
              " RETURNING " S_AUDIT_COLUMNS,
              p, reply))
        s_page(r, 1, 1, s_audit_msg, (ProtobufCMessage ***)&reply->audit, &reply->n_audit, reply);
    PQclear(r);
}

static void s_list_audit(lc_pg_t *pg, const Lcore__V1__AuditList *l, Lcore__V1__QueryReply *reply)
{
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_u64(p, l->after);
    lc_pg_add_u64(p, (uint64_t)l->limit + 1);
    PGresult *r = NULL;
    int rc = lc_pg_query(
        pg, &r, "SELECT " S_AUDIT_COLUMNS " FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2", p);
    if (rc < 0)
        st_db_reply_failure(reply, rc, "list_audit refused by the database");
    else
        s_page(r, (size_t)PQntuples(r), l->limit, s_audit_msg, (ProtobufCMessage ***)&reply->audit,
               &reply->n_audit, reply);
    PQclear(r);
}

/* -- records ----------------------------------------------------------------------------- */

/* Whether the device exists, and its records with seq in [$2, $3] in seq order (at most $4): one
 * statement, a range scan of UNIQUE (device_id, seq). One row of NULLs when there are none. */
static const char s_list_records_sql[] =
    "SELECT r.*, d.n FROM (SELECT count(*) AS n FROM devices"
    " WHERE device_id = $1) AS d LEFT JOIN LATERAL (SELECT " ST_RECORD_COLUMNS " FROM records"
    " WHERE device_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq LIMIT $4) AS r ON d.n = 1"
    " ORDER BY r.seq";

static void s_list_records(lc_pg_t *pg, const Lcore__V1__RecordList *l,
                           Lcore__V1__QueryReply *reply)
{
    /* seq >= from_seq, > after_seq, <= to_seq; seqs stop at 2^63-1. Nothing in between: 1..0. */
    uint64_t lo = l->from_seq, hi = l->to_seq > INT64_MAX ? INT64_MAX : l->to_seq;
    if (l->has_after && l->after_seq >= lo)
        lo = l->after_seq >= INT64_MAX ? (uint64_t)INT64_MAX + 1 : l->after_seq + 1;
    if (lo > hi) {
        lo = 1;
        hi = 0;
    }
    lc_pg_params_t *p = lc_pg_params(pg);
    lc_pg_add_text(p, l->device_id);
    lc_pg_add_u64(p, lo);
    lc_pg_add_u64(p, hi);
    lc_pg_add_u64(p, (uint64_t)l->limit + 1);
    PGresult *r = NULL;
    int rc = lc_pg_query(pg, &r, s_list_records_sql, p);
    if (rc < 0)
        st_db_reply_failure(reply, rc, "list_records refused by the database");
    else if (PQntuples(r) < 1 || lc_pg_i64(r, 0, 8) == 0)
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND;
    else
        s_page(r, lc_pg_null(r, 0, 6) ? 0 : (size_t)PQntuples(r), l->limit, s_record_msg,
               (ProtobufCMessage ***)&reply->records, &reply->n_records, reply);
    PQclear(r);
}

void st_admin_answer(lc_pg_t *pg, zsock_t *changes, const Lcore__V1__Query *q,
                     Lcore__V1__QueryReply *reply)
{
    const char *actor = q->actor;
    switch (q->body_case) {
    case LCORE__V1__QUERY__BODY_LIST_DEVICES:
        s_list_devices(pg, q->list_devices, reply);
        break;
    case LCORE__V1__QUERY__BODY_SET_DEVICE_STATUS:
        s_set_status(pg, changes, q->set_device_status, actor, reply);
        break;
    case LCORE__V1__QUERY__BODY_ROTATE_KEY:
        s_rotate(pg, changes, q->rotate_key, actor, reply);
        break;
    case LCORE__V1__QUERY__BODY_CREATE_TOKEN:
        s_create_token(pg, q->create_token, actor, reply);
        break;
    case LCORE__V1__QUERY__BODY_LIST_TOKENS:
        s_list_tokens(pg, reply);
        break;
    case LCORE__V1__QUERY__BODY_DELETE_TOKEN:
        s_delete_token(pg, changes, q->delete_token, actor, reply);
        break;
    case LCORE__V1__QUERY__BODY_GET_TOKEN:
        s_get_token(pg, &q->get_token, reply);
        break;
    case LCORE__V1__QUERY__BODY_APPEND_AUDIT:
        s_append_audit(pg, q->append_audit, reply);
        break;
    case LCORE__V1__QUERY__BODY_LIST_AUDIT:
        s_list_audit(pg, q->list_audit, reply);
        break;
    case LCORE__V1__QUERY__BODY_LIST_RECORDS:
        s_list_records(pg, q->list_records, reply);
        break;
    default: /* refused by st_admin_invalid */
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST,
                          "not an operator or reader query");
        break;
    }
}
