/* st_letters.c: dead letters for operators. See st_letters.h. */
#include "st_letters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_record.h"
#include "lc_zmq.h"
#include "st_db.h"

static void s_reply_db(Lcore__V1__QueryReply *reply, int rc)
{
    st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR,
                      rc == LC_ERR_UNAVAILABLE ? "database unavailable"
                                               : "refused by the database");
}

/* -- list -------------------------------------------------------------------------------- */

static const char s_list_sql[] =
    "SELECT d.record_id, d.device_id, d.seq, d.device_ts_ms, d.received_at, d.gateway_id,"
    " d.attempts, d.stage, d.reason, d.created_at,"
    " EXISTS (SELECT 1 FROM records r WHERE r.record_id = d.record_id)"
    " FROM dead_letters d"
    " WHERE ($1::bytea IS NULL OR (d.created_at, d.record_id) >"
    "  (SELECT created_at, record_id FROM dead_letters WHERE record_id = $1::bytea))"
    " AND (NOT $3::boolean OR NOT EXISTS (SELECT 1 FROM records r WHERE r.record_id ="
    " d.record_id))"
    " ORDER BY d.created_at, d.record_id LIMIT $2";

/* Row i of s_list_sql as a DeadLetter (malloc'd fields: lcore__v1__dead_letter__free_unpacked
 * frees it), or NULL. */
static Lcore__V1__DeadLetter *s_listed(const PGresult *r, int i)
{
    Lcore__V1__DeadLetter *dl = malloc(sizeof *dl);
    if (!dl)
        return NULL;
    lcore__v1__dead_letter__init(dl);
    dl->seq = lc_pg_u64(r, i, 2);
    dl->device_ts_ms = lc_pg_u64(r, i, 3);
    dl->received_at_us = lc_pg_time_us(r, i, 4);
    dl->attempts = (uint32_t)lc_pg_u64(r, i, 6);
    dl->created_at_us = lc_pg_time_us(r, i, 9);
    dl->resolved = lc_pg_bool(r, i, 10);
    char **texts[] = {&dl->device_id, &dl->gateway_id, &dl->stage, &dl->reason};
    const int cols[] = {1, 5, 7, 8};
    int ok = lc_pg_bytes_dup(r, i, 0, &dl->record_id.data, &dl->record_id.len) == 0;
    for (size_t k = 0; k < LC_ARRAY_LEN(texts); k++)
        ok = ok && (*texts[k] = lc_pg_text_dup(r, i, cols[k])) != NULL;
    if (!ok) {
        lcore__v1__dead_letter__free_unpacked(dl, NULL);
        return NULL;
    }
    return dl;
}

static void s_list(const st_letters_t *self, const Lcore__V1__DeadLetterList *l,
                   Lcore__V1__QueryReply *reply)
{
    uint32_t limit = l->limit && l->limit < ST_LETTERS_LIST_MAX ? l->limit : ST_LETTERS_LIST_MAX;
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes(p, l->after.len ? l->after.data : NULL, l->after.len);
    lc_pg_add_u64(p, limit);
    lc_pg_add_bool(p, l->unresolved_only);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r, s_list_sql, p);
    if (rc < 0) {
        s_reply_db(reply, rc);
        return;
    }
    int n = PQntuples(r);
    reply->dead_letters = n ? calloc((size_t)n, sizeof *reply->dead_letters) : NULL;
    for (int i = 0; i < n && reply->dead_letters; i++) {
        if (!(reply->dead_letters[i] = s_listed(r, i)))
            break;
        reply->n_dead_letters++;
    }
    PQclear(r);
    if ((size_t)n != reply->n_dead_letters)
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "out of memory");
    else
        reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
}

/* -- replay ------------------------------------------------------------------------------ */

/* The unresolved dead letters among $1 that kept their reading. */
static const char s_replay_sql[] =
    "SELECT d.record_id, d.device_id, d.seq, d.device_ts_ms, d.received_at, d.gateway_id,"
    " d.key_version, d.aes_nonce, d.xchacha_nonce, d.ciphertext, d.envelope_hash,"
    " d.reading_hash, d.gateway_sealed, d.gateway_key_version"
    " FROM dead_letters d WHERE d.record_id = ANY ($1::bytea[])"
    " AND (d.ciphertext IS NOT NULL OR d.gateway_sealed IS NOT NULL)"
    " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.record_id = d.record_id)"
    " ORDER BY d.created_at";

/* Row i as the SealedRecord the worker sent (attempts start over), given to the writer. */
static int s_replay_sealed(const st_letters_t *self, const PGresult *r, int i)
{
    uint8_t bytes[32 + 12 + 24 + 32 + 32];
    Lcore__V1__SealedRecord s = LCORE__V1__SEALED_RECORD__INIT;
    s.version = 1;
    s.device_id = PQgetvalue(r, i, 1);
    s.seq = lc_pg_u64(r, i, 2);
    s.device_ts_ms = lc_pg_u64(r, i, 3);
    s.received_at_us = lc_pg_time_us(r, i, 4);
    s.sealed_at_us = lc_now_us();
    s.gateway_id = PQgetvalue(r, i, 5);
    s.key_version = (uint32_t)lc_pg_u64(r, i, 6);
    s.attempt = 1;
    const struct {
        int col;
        size_t len;
        ProtobufCBinaryData *field;
    } fixed[] = {{0, 32, &s.record_id},
                 {7, 12, &s.aes_nonce},
                 {8, 24, &s.xchacha_nonce},
                 {10, 32, &s.envelope_hash},
                 {11, 32, &s.reading_hash}};
    size_t off = 0;
    for (size_t k = 0; k < LC_ARRAY_LEN(fixed); k++) {
        if (lc_pg_bytes(r, i, fixed[k].col, bytes + off, fixed[k].len))
            return LC_ERR_INVALID;
        *fixed[k].field = (ProtobufCBinaryData){fixed[k].len, bytes + off};
        off += fixed[k].len;
    }
    s.ciphertext.data = (uint8_t *)PQgetvalue(r, i, 9); /* binary format: the raw bytes */
    s.ciphertext.len = (size_t)PQgetlength(r, i, 9);
    size_t len = protobuf_c_message_get_packed_size(&s.base);
    uint8_t *buf = malloc(len);
    if (!buf)
        return LC_ERR_NOMEM;
    protobuf_c_message_pack(&s.base, buf);
    int rc = st_writer_full(self->writer) ? st_writer_flush(self->writer) : 0;
    if (rc == 0)
        st_writer_take_one(self->writer, buf, len); /* checked there as any sealed record */
    free(buf);
    return rc;
}

/* Row i's gateway-sealed reading, published to its gateway. */
static int s_replay_gateway(const st_letters_t *self, const PGresult *r, int i)
{
    Lcore__V1__DeadLetter dl = LCORE__V1__DEAD_LETTER__INIT;
    dl.record_id.data = (uint8_t *)PQgetvalue(r, i, 0);
    dl.record_id.len = (size_t)PQgetlength(r, i, 0);
    dl.device_id = PQgetvalue(r, i, 1);
    dl.seq = lc_pg_u64(r, i, 2);
    dl.gateway_id = PQgetvalue(r, i, 5);
    dl.gateway_sealed.data = (uint8_t *)PQgetvalue(r, i, 12);
    dl.gateway_sealed.len = (size_t)PQgetlength(r, i, 12);
    dl.gateway_key_version = (uint32_t)lc_pg_u64(r, i, 13);
    char topic[16 + 64 + 1];
    snprintf(topic, sizeof topic, "replay/%s/", dl.gateway_id);
    return lc_zmq_send_pb(self->events, topic, &dl.base, ZMQ_DONTWAIT);
}

static void s_replay(const st_letters_t *self, const Lcore__V1__DeadLetterReplay *rp,
                     Lcore__V1__QueryReply *reply)
{
    size_t n = rp->n_record_ids; /* 1..ST_LETTERS_REPLAY_MAX: st_letters_query_invalid */
    uint8_t ids[ST_LETTERS_REPLAY_MAX][LC_RECORD_ID_LEN];
    for (size_t i = 0; i < n; i++)
        memcpy(ids[i], rp->record_ids[i].data, LC_RECORD_ID_LEN);
    lc_pg_params_t *p = lc_pg_params(self->pg);
    lc_pg_add_bytes_array(p, ids, LC_RECORD_ID_LEN, LC_RECORD_ID_LEN, n);
    PGresult *r = NULL;
    int rc = lc_pg_query(self->pg, &r, s_replay_sql, p);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        int sealed = !lc_pg_null(r, i, 9);
        rc = sealed ? s_replay_sealed(self, r, i) : s_replay_gateway(self, r, i);
        if (rc == 0)
            (*(sealed ? &reply->replayed_store : &reply->replayed_gateway))++;
    }
    PQclear(r);
    if (rc == 0 && reply->replayed_store)
        rc = st_writer_flush(self->writer); /* written before the answer */
    reply->replay_skipped = (uint32_t)n - reply->replayed_store - reply->replayed_gateway;
    if (rc < 0) {
        s_reply_db(reply, rc);
        return;
    }
    reply->status = LCORE__V1__QUERY_REPLY__STATUS__OK;
    lc_info("dead_letters_replayed", "asked=%zu store=%u gateway=%u skipped=%u", n,
            reply->replayed_store, reply->replayed_gateway, reply->replay_skipped);
}

const char *st_letters_query_invalid(const Lcore__V1__Query *q)
{
    if (q->body_case == LCORE__V1__QUERY__BODY_LIST_DEAD_LETTERS) {
        const Lcore__V1__DeadLetterList *l = q->list_dead_letters;
        if (!l || (l->after.len != 0 && l->after.len != LC_RECORD_ID_LEN))
            return "after must be empty or a 32-byte record_id";
        return NULL;
    }
    if (q->body_case != LCORE__V1__QUERY__BODY_REPLAY_DEAD_LETTERS)
        return "not a dead-letter query";
    const Lcore__V1__DeadLetterReplay *rp = q->replay_dead_letters;
    size_t n = rp ? rp->n_record_ids : 0;
    int bad = n == 0 || n > ST_LETTERS_REPLAY_MAX;
    for (size_t i = 0; !bad && i < n; i++)
        bad = rp->record_ids[i].len != LC_RECORD_ID_LEN;
    return bad ? "record_ids: 1..100 ids of 32 bytes" : NULL;
}

void st_letters_answer(const st_letters_t *self, const Lcore__V1__Query *q,
                       Lcore__V1__QueryReply *reply)
{
    const char *why = st_letters_query_invalid(q);
    if (why)
        st_db_reply_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST, why);
    else if (q->body_case == LCORE__V1__QUERY__BODY_LIST_DEAD_LETTERS)
        s_list(self, q->list_dead_letters, reply);
    else
        s_replay(self, q->replay_dead_letters, reply);
}
