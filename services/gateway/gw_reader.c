/* gw_reader.c: the reader API on the device listener (DESIGN.md "HTTP API", Readers): records,
 * receipts, a device's records page by page, its completeness report, and opening a record
 * through the crypto tier. gw_http.c has checked the bearer token's scope; the token's device
 * list is checked here, once the device of the answer is known. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_handlers.h"
#include "gw_open.h"
#include "gw_seq.h"
#include "lc_jws.h"
#include "lc_log.h"
#include "lc_record.h"

#define S_CURSOR_RECORDS 1 /* a device's records: the last seq of the page (8 bytes) */
#define S_DEFAULT_LIMIT 100

static Lcore__V1__QueryReply *s_ask(lc_query_client_t *link, Lcore__V1__Query *q)
{
    int err = 0;
    return lc_query_call(link, q, &err);
}

static enum MHD_Result s_forbidden_device(const gw_call_t *call)
{
    return gw_reply_error(call, 403, "forbidden", "this token does not cover the device", 0);
}

/* The record's JSON before the chain's part: status "stored", leaf null, proof [], batch null. */
static json_t *s_record_json(const Lcore__V1__RecordInfo *ri)
{
    char stored_at[96];
    time_t secs = (time_t)(ri->stored_at_us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(stored_at, sizeof stored_at, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(ri->stored_at_us % 1000000u));
    return json_pack("{s:o, s:s, s:I, s:I, s:s, s:i, s:s, s:o, s:n, s:[], s:n}", "record_id",
                     gw_json_hex(ri->record_id.data, ri->record_id.len), "device_id",
                     ri->device_id ? ri->device_id : "", "seq", (json_int_t)ri->seq, "ts",
                     (json_int_t)ri->device_ts_ms, "status", ri->status ? ri->status : "stored",
                     "key_version", (int)ri->key_version, "stored_at", stored_at, "envelope_hash",
                     gw_json_hex(ri->envelope_hash.data, ri->envelope_hash.len), "leaf", "proof",
                     "batch");
}

/* Sets the chain's part of rec from anchor a: 1 when a is mined ("anchored" or later: leaf,
 * proof, batch; `chain`, when not NULL, gets chain_id and contract), 0 while pending. */
static int s_apply_anchor(json_t *rec, const Lcore__V1__AnchorInfo *a, json_t *chain)
{
    if (!a || !a->status || strcmp(a->status, "pending") == 0 || a->leaf.len != 32 ||
        a->root.len != 32)
        return 0;
    json_t *proof = json_array();
    for (size_t i = 0; i < a->n_proof; i++)
        json_array_append_new(proof, gw_json_hex0x(a->proof[i].data, a->proof[i].len));
    json_object_set_new(rec, "status", json_string(a->status));
    json_object_set_new(rec, "leaf", gw_json_hex0x(a->leaf.data, 32));
    json_object_set_new(rec, "proof", proof);
    json_object_set_new(
        rec, "batch",
        json_pack("{s:I, s:o, s:o, s:I, s:I}", "id", (json_int_t)a->anchor_id, "root",
                  gw_json_hex0x(a->root.data, 32), "tx_hash",
                  a->tx_hash.len == 32 ? gw_json_hex0x(a->tx_hash.data, 32) : json_null(), "block",
                  (json_int_t)a->block_number, "confirmations", (json_int_t)a->confirmations));
    if (chain) {
        json_object_set_new(chain, "chain_id", json_integer((json_int_t)a->chain_id));
        json_object_set_new(chain, "contract",
                            a->contract.len == 20 ? gw_json_hex0x(a->contract.data, 20)
                                                  : json_null());
    }
    return 1;
}

/* The chain's part of one record (the relayer's get_anchor): 1 anchored, 0 not (yet), -1 the
 * relayer did not answer (counted; the record stays "stored"). */
static int s_add_anchor(const gw_call_t *call, const uint8_t id[LC_RECORD_ID_LEN], json_t *rec,
                        json_t *chain)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_ANCHOR;
    q.get_anchor.data = (uint8_t *)id;
    q.get_anchor.len = LC_RECORD_ID_LEN;
    Lcore__V1__QueryReply *r = s_ask(call->deps->chain, &q);
    int anchored = 0;
    if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__OK)
        anchored = s_apply_anchor(rec, r->anchor, chain);
    else if (!r || r->status != LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND)
        anchored = -1;
    if (anchored < 0)
        lc_counter_inc(call->chain_unanswered);
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return anchored;
}

/* The path's record, as the store has it. NULL once answered (400, 403, 404, 503; a reading
 * this gateway holds in its log unacknowledged: 200 "accepted" when accepted_ok, else
 * 409 not_stored). */
static Lcore__V1__QueryReply *s_fetch(const gw_call_t *call, uint8_t id[LC_RECORD_ID_LEN],
                                      int accepted_ok, enum MHD_Result *ret)
{
    if (lc_record_id_parse(id, call->param, strlen(call->param)) != 0) {
        *ret = gw_reply_error(call, 400, "malformed", "record_id must be 64 hex digits", 0);
        return NULL;
    }
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_RECORD;
    q.get_record.data = id;
    q.get_record.len = LC_RECORD_ID_LEN;
    Lcore__V1__QueryReply *r = s_ask(call->deps->store, &q);
    if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__OK && r->record && r->record->device_id) {
        if (gw_token_allows(call->token, GW_AUTH_READ, r->record->device_id))
            return r;
        *ret = s_forbidden_device(call);
    } else if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND) {
        if (!gw_seq_logged(call->deps->seq, id))
            *ret = gw_reply_error(call, 404, "not_found", "no record with this id", 0);
        else if (accepted_ok)
            *ret =
                gw_reply_json(call, 200,
                              json_pack("{s:o, s:s}", "record_id",
                                        gw_json_hex(id, LC_RECORD_ID_LEN), "status", "accepted"));
        else
            *ret = gw_reply_error(call, 409, "not_stored",
                                  "the reading is accepted and on its way; retry shortly", 0);
    } else {
        *ret = gw_reply_unavailable(call, r, "store");
    }
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return NULL;
}

enum MHD_Result gw_reader_record(const gw_call_t *call)
{
    uint8_t id[LC_RECORD_ID_LEN];
    enum MHD_Result ret = MHD_NO;
    Lcore__V1__QueryReply *r = s_fetch(call, id, 1, &ret);
    if (!r)
        return ret;
    json_t *rec = s_record_json(r->record);
    lcore__v1__query_reply__free_unpacked(r, NULL);
    if (rec)
        s_add_anchor(call, id, rec, NULL);
    return gw_reply_json(call, 200, rec);
}

/* GET /v1/records/{id}/receipt: the anchored record as a self-contained receipt
 * (docs/RECEIPTS.md), checkable against the chain alone. 409 not_anchored while the record is
 * stored but its anchor is not mined; 503 when the relayer does not answer. */
enum MHD_Result gw_reader_receipt(const gw_call_t *call)
{
    uint8_t id[LC_RECORD_ID_LEN];
    enum MHD_Result ret = MHD_NO;
    Lcore__V1__QueryReply *r = s_fetch(call, id, 0, &ret);
    if (!r)
        return ret;
    json_t *rec = s_record_json(r->record), *chain = json_object();
    lcore__v1__query_reply__free_unpacked(r, NULL);
    int anchored = rec && chain ? s_add_anchor(call, id, rec, chain) : -2;
    if (anchored == -2) {
        ret = gw_reply_json(call, 500, NULL);
    } else if (anchored < 0) {
        ret = gw_reply_error(call, 503, "not_ready", "the chain relayer did not answer", 1);
    } else if (anchored == 0) {
        ret = gw_reply_error(call, 409, "not_anchored",
                             "the record is stored but its anchor is not on chain yet; retry "
                             "later",
                             0);
    } else {
        const json_t *batch = json_object_get(rec, "batch");
        const char *rid = json_string_value(json_object_get(rec, "record_id"));
        const char *env = json_string_value(json_object_get(rec, "envelope_hash"));
        ret = gw_reply_json(
            call, 200,
            json_pack("{s:s, s:s+, s:s+, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "format",
                      "lcore-receipt/1", "record_id", "0x", rid ? rid : "", "envelope_hash", "0x",
                      env ? env : "", "leaf", json_object_get(rec, "leaf"), "proof",
                      json_object_get(rec, "proof"), "root", json_object_get(batch, "root"),
                      "anchor_id", json_object_get(batch, "id"), "chain_id",
                      json_object_get(chain, "chain_id"), "contract",
                      json_object_get(chain, "contract"), "tx_hash",
                      json_object_get(batch, "tx_hash"), "block", json_object_get(batch, "block")));
    }
    json_decref(rec);
    json_decref(chain);
    return ret;
}

/* The device id of a device route's path, checked against the token's device list: 1 to go on,
 * 0 once answered (400 or 403). */
static int s_device_ok(const gw_call_t *call, enum MHD_Result *ret)
{
    if (!call->param[0] || !lc_device_id_valid(call->param, strlen(call->param))) {
        *ret = gw_reply_error(call, 400, "malformed",
                              "device_id must be 1..128 characters of [A-Za-z0-9._:-]", 0);
        return 0;
    }
    if (!gw_token_allows(call->token, GW_AUTH_READ, call->param)) {
        *ret = s_forbidden_device(call);
        return 0;
    }
    return 1;
}

/* {"device_id","status","last_seq","contiguous_through" (null, null before the first reading),
 * "gaps":[[from,to],...] (lowest first, capped),"gaps_capped","last_seen"}. */
static json_t *s_status_json(const Lcore__V1__DeviceStatus *ds)
{
    json_t *gaps = json_array();
    for (size_t i = 0; gaps && i < ds->n_gaps; i++)
        json_array_append_new(
            gaps, json_pack("[I, I]", (json_int_t)ds->gaps[i]->from, (json_int_t)ds->gaps[i]->to));
    json_t *last = ds->has_seqs ? json_integer((json_int_t)ds->last_seq) : json_null();
    json_t *through = ds->has_seqs ? json_integer((json_int_t)ds->contiguous_through) : json_null();
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:b, s:o}", "device_id", ds->device_id, "status",
                     ds->status, "last_seq", last, "contiguous_through", through, "gaps", gaps,
                     "gaps_capped", ds->gaps_capped, "last_seen", gw_json_time(ds->last_seen_us));
}

/* GET /v1/devices/{device_id}/status: the store's completeness report (st_seq_ranges.h). */
enum MHD_Result gw_reader_device_status(const gw_call_t *call)
{
    enum MHD_Result ret = MHD_NO;
    if (!s_device_ok(call, &ret))
        return ret;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_DEVICE_STATUS;
    q.device_status = (char *)call->param;
    Lcore__V1__QueryReply *r = s_ask(call->deps->store, &q);
    if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND)
        ret = gw_reply_error(call, 404, "not_found", "no such device", 0);
    else if (!r || r->status != LCORE__V1__QUERY_REPLY__STATUS__OK || !r->device_status)
        ret = gw_reply_unavailable(call, r, "store");
    else
        ret = gw_reply_json(call, 200, s_status_json(r->device_status));
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}

/* A seq bound of the query string: 0 with *out (absent: def), -1 when not a u63. */
static int s_arg_seq(const gw_call_t *call, const char *name, uint64_t def, uint64_t *out)
{
    const char *v = gw_call_arg(call, name);
    *out = def;
    if (!v)
        return 0;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (!v[0] || *end || v[0] == '-' || v[0] == '+' || n > INT64_MAX)
        return -1;
    *out = n;
    return 0;
}

/* The page's query: from the query string (from_seq, to_seq, limit, after). 0, or -1 with
 * *why. */
static int s_page_query(const gw_call_t *call, Lcore__V1__RecordList *rl, const char **why)
{
    int limit = gw_arg_limit(call, S_DEFAULT_LIMIT);
    const char *after = gw_call_arg(call, "after");
    *why = "limit must be an integer from 1 to 1000";
    if (limit < 0)
        return -1;
    rl->limit = (uint32_t)limit;
    *why = "from_seq and to_seq must be integers from 0 to 2^63-1, from_seq <= to_seq";
    if (s_arg_seq(call, "from_seq", 0, &rl->from_seq) < 0 ||
        s_arg_seq(call, "to_seq", INT64_MAX, &rl->to_seq) < 0 || rl->from_seq > rl->to_seq)
        return -1;
    if (after && after[0]) {
        *why = "after must be the \"next\" of a previous page";
        if (gw_cursor_parse_u64(after, S_CURSOR_RECORDS, &rl->after_seq) < 0)
            return -1;
        rl->has_after = 1;
    }
    return 0;
}

/* The page's records with their chain part, asked of the relayer in one query. */
static json_t *s_page_json(const gw_call_t *call, const Lcore__V1__QueryReply *r)
{
    json_t *records = json_array();
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    Lcore__V1__AnchorsQuery aq = LCORE__V1__ANCHORS_QUERY__INIT;
    ProtobufCBinaryData *ids = calloc(r->n_records ? r->n_records : 1, sizeof *ids);
    if (!records || !ids) {
        free(ids);
        json_decref(records);
        return NULL;
    }
    for (size_t i = 0; i < r->n_records; i++)
        ids[i] = r->records[i]->record_id;
    aq.record_ids = ids;
    aq.n_record_ids = r->n_records;
    q.body_case = LCORE__V1__QUERY__BODY_GET_ANCHORS;
    q.get_anchors = &aq;
    Lcore__V1__QueryReply *a = r->n_records ? s_ask(call->deps->chain, &q) : NULL;
    if (r->n_records && (!a || a->status != LCORE__V1__QUERY_REPLY__STATUS__OK))
        lc_counter_inc(call->chain_unanswered);
    size_t k = 0; /* anchors come in the request's order, unknown ones left out */
    for (size_t i = 0; i < r->n_records; i++) {
        json_t *rec = s_record_json(r->records[i]);
        if (a && a->status == LCORE__V1__QUERY_REPLY__STATUS__OK && k < a->n_anchors &&
            a->anchors[k]->record_id.len == LC_RECORD_ID_LEN &&
            memcmp(a->anchors[k]->record_id.data, ids[i].data, LC_RECORD_ID_LEN) == 0)
            s_apply_anchor(rec, a->anchors[k++], NULL);
        json_array_append_new(records, rec);
    }
    free(ids);
    if (a)
        lcore__v1__query_reply__free_unpacked(a, NULL);
    return records;
}

/* GET /v1/devices/{device_id}/records: the device's records in seq order, a page at a time; the
 * cursor is the page's last seq, so records written meanwhile above it come on later pages and
 * none comes twice. */
enum MHD_Result gw_reader_device_records(const gw_call_t *call)
{
    enum MHD_Result ret = MHD_NO;
    Lcore__V1__RecordList rl = LCORE__V1__RECORD_LIST__INIT;
    const char *why = NULL;
    if (!s_device_ok(call, &ret))
        return ret;
    if (s_page_query(call, &rl, &why) < 0)
        return gw_reply_error(call, 400, "malformed", why, 0);
    rl.device_id = (char *)call->param;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_LIST_RECORDS;
    q.list_records = &rl;
    Lcore__V1__QueryReply *r = s_ask(call->deps->store, &q);
    if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND) {
        ret = gw_reply_error(call, 404, "not_found", "no such device", 0);
    } else if (!r || r->status != LCORE__V1__QUERY_REPLY__STATUS__OK || r->n_records > rl.limit) {
        ret = gw_reply_unavailable(call, r, "store");
    } else {
        char cursor[GW_CURSOR_MAX];
        int paged =
            r->more && r->n_records &&
            gw_cursor_make_u64(cursor, S_CURSOR_RECORDS, r->records[r->n_records - 1]->seq) == 0;
        json_t *records = s_page_json(call, r);
        ret = gw_reply_json(call, 200,
                            records ? json_pack("{s:o, s:o}", "records", records, "next",
                                                paged ? json_string(cursor) : json_null())
                                    : NULL);
    }
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}

/* Writes the "open" audit entry before anything is opened: no entry, no plaintext. */
static int s_audit_open(const gw_call_t *call, const uint8_t id[LC_RECORD_ID_LEN])
{
    char target[2 * LC_RECORD_ID_LEN + 1];
    sodium_bin2hex(target, sizeof target, id, LC_RECORD_ID_LEN);
    Lcore__V1__AuditEntry e = LCORE__V1__AUDIT_ENTRY__INIT;
    e.token_id = (char *)call->token->id;
    e.action = "open";
    e.target = target;
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_APPEND_AUDIT;
    q.append_audit = &e;
    q.actor = (char *)call->token->id;
    Lcore__V1__QueryReply *r = s_ask(call->deps->store, &q);
    int ok = r && r->status == LCORE__V1__QUERY_REPLY__STATUS__OK;
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ok ? 0 : -1;
}

/* Whether jws verifies with the device's current key or the one before it (a reading signed
 * before a rotation opens as verified, whatever the overlap was). */
static int s_verified(const gw_call_t *call, const char *device_id, const lc_jws_t *jw)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = (char *)device_id;
    Lcore__V1__QueryReply *r = s_ask(call->deps->store, &q);
    int ok = 0;
    if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__OK && r->device) {
        const Lcore__V1__Device *d = r->device;
        lc_alg_t alg = lc_alg_from_name(d->alg), prev = lc_alg_from_name(d->prev_alg);
        ok = (alg != LC_ALG_NONE && jw->alg == alg &&
              lc_jws_verify(jw, alg, d->public_key.data, d->public_key.len) == 0) ||
             (prev != LC_ALG_NONE && jw->alg == prev &&
              lc_jws_verify(jw, prev, d->prev_public_key.data, d->prev_public_key.len) == 0);
    }
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return ok;
}

/* The opened reading as the answer: {"record_id","device_id","seq","jws","payload","verified"}.
 * The plaintext passes through jansson's buffers, which are freed when the answer is sent. */
static json_t *s_opened_json(const gw_call_t *call, const Lcore__V1__RecordInfo *ri,
                             const uint8_t *jws, size_t len)
{
    uint8_t *payload_buf = malloc(len + 1);
    lc_jws_t jw;
    json_t *payload = NULL;
    int verified = 0;
    if (payload_buf && lc_jws_parse(&jw, (const char *)jws, len, payload_buf, len + 1) == 0) {
        payload = json_loadb((const char *)jw.payload, jw.payload_len, 0, NULL);
        verified = s_verified(call, ri->device_id, &jw);
    }
    if (payload_buf) {
        sodium_memzero(payload_buf, len + 1);
        free(payload_buf);
    }
    return json_pack("{s:o, s:s, s:I, s:s%, s:o, s:b}", "record_id",
                     gw_json_hex(ri->record_id.data, ri->record_id.len), "device_id", ri->device_id,
                     "seq", (json_int_t)ri->seq, "jws", (const char *)jws, len, "payload",
                     payload ? payload : json_null(), "verified", verified);
}

/* Opens a stored record in the crypto tier: audited first, the sealed envelope fetched from
 * the store, opened by a worker, re-verified here against the device's key. */
static enum MHD_Result s_open_sealed(const gw_call_t *call, const Lcore__V1__RecordInfo *ri,
                                     const uint8_t id[LC_RECORD_ID_LEN])
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_SEALED;
    q.get_sealed.data = (uint8_t *)id;
    q.get_sealed.len = LC_RECORD_ID_LEN;
    Lcore__V1__QueryReply *r = s_ask(call->deps->store, &q);
    if (!r || r->status != LCORE__V1__QUERY_REPLY__STATUS__OK || !r->sealed) {
        enum MHD_Result ret = gw_reply_unavailable(call, r, "store");
        if (r)
            lcore__v1__query_reply__free_unpacked(r, NULL);
        return ret;
    }
    uint8_t *jws = NULL;
    size_t len = 0;
    char err[128] = "";
    int rc = gw_open_call(call->deps->open, r->sealed, &jws, &len, err, sizeof err);
    lcore__v1__query_reply__free_unpacked(r, NULL);
    if (rc == LC_ERR_INVALID) {
        lc_warn("open_refused", "token_id=%s reason=\"%s\"", call->token->id, err);
        return gw_reply_error(call, 500, "cannot_open", "the crypto tier could not open the record",
                              0);
    }
    if (rc < 0)
        return gw_reply_error(call, 503, "not_ready", "no crypto worker answered", 1);
    json_t *j = s_opened_json(call, ri, jws, len);
    sodium_memzero(jws, len);
    free(jws);
    return gw_reply_json(call, 200, j);
}

/* POST /v1/records/{id}/open (scope decrypt). */
enum MHD_Result gw_reader_open(const gw_call_t *call)
{
    uint8_t id[LC_RECORD_ID_LEN];
    enum MHD_Result ret = MHD_NO;
    Lcore__V1__QueryReply *r = s_fetch(call, id, 0, &ret);
    if (!r)
        return ret;
    if (!call->deps->open) {
        ret = gw_reply_error(call, 503, "not_ready", "opening records is not configured", 1);
    } else if (s_audit_open(call, id) < 0) {
        ret = gw_reply_error(call, 503, "not_ready", "the audit log cannot be written", 1);
    } else {
        lc_info("record_open", "token_id=%s device_id=%s seq=%llu", call->token->id,
                r->record->device_id, (unsigned long long)r->record->seq);
        ret = s_open_sealed(call, r->record, id);
    }
    lcore__v1__query_reply__free_unpacked(r, NULL);
    return ret;
}
