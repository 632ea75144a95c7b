/* ch_query.c: see ch_query.h. */
#include "ch_query.h"

#include <czmq.h>
#include <string.h>

#include "ch_db.h"
#include "lc_log.h"
#include "lc_query.h"
#include "lc_record.h"
#include "lc_zmq.h"

struct ch_query {
    const ch_config_t *cfg;
    lc_curve_t *curve;
    uint8_t contract[20];
    lc_query_server_t server;
    ch_db_t *db; /* the actor's; connected on demand */
    int64_t connect_at;
    /* Its proof cache's counts (ch_db_proof_stats), as last published to the metrics: db and
     * these are the actor thread's alone. */
    ch_db_proof_stats_t proofs_seen;
    lc_counter_t *proof_hits, *proof_misses;
    lc_gauge_t *proof_leaves;
    zactor_t *actor;
    int started; /* the actor bound its socket */
};

/* Gateways ask, and nobody else: the relayer's anchors are public on chain anyway, but the
 * link is no one else's business. */
static unsigned s_roles(Lcore__V1__Query__BodyCase body)
{
    return body == LCORE__V1__QUERY__BODY_GET_ANCHOR ||
                   body == LCORE__V1__QUERY__BODY_GET_ANCHORS || body == LCORE__V1__QUERY__BODY_PING
               ? LC_ROLE_GATEWAY
               : 0;
}

static void s_error(Lcore__V1__QueryReply *reply, Lcore__V1__QueryReply__Status st, const char *why)
{
    reply->status = st;
    reply->message = (char *)why; /* static text: s_clear leaves it */
}

/* The actor's connection, reconnected at most once a second while PostgreSQL is away. */
static ch_db_t *s_db(ch_query_t *self)
{
    if (self->db && ch_db_ok(self->db))
        return self->db;
    int64_t now = zclock_mono();
    if (!self->db && now >= self->connect_at) {
        self->connect_at = now + 1000;
        if ((self->db = ch_db_new(self->cfg->pg_dsn)))
            ch_db_set_proof_cache(self->db, (size_t)self->cfg->proof_cache_leaves);
    }
    return self->db;
}

/* The chain's part of an answer: ours, not the database's (s_clear leaves it). */
static void s_stamp(const ch_query_t *self, Lcore__V1__AnchorInfo *info)
{
    info->chain_id = (uint64_t)self->cfg->chain_id;
    info->contract.data = (uint8_t *)self->contract;
    info->contract.len = sizeof self->contract;
}

static void s_clear_info(Lcore__V1__AnchorInfo *info)
{
    info->contract.data = NULL; /* ours, not the answer's */
    info->contract.len = 0;
    ch_db_anchor_info_clear(info);
}

/* get_anchors: 1..CH_QUERY_ANCHORS_MAX record ids of 32 bytes, answered in one pass over the
 * database (ch_db_anchor_infos). */
static void s_answer_anchors(ch_query_t *self, ch_db_t *db, const Lcore__V1__AnchorsQuery *aq,
                             Lcore__V1__QueryReply *reply)
{
    size_t n = aq ? aq->n_record_ids : 0, found = 0;
    int bad = n == 0 || n > CH_QUERY_ANCHORS_MAX;
    for (size_t i = 0; !bad && i < n; i++)
        bad = aq->record_ids[i].len != LC_RECORD_ID_LEN;
    if (bad) {
        s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST,
                "get_anchors: 1 to 1000 record_ids of 32 bytes each");
        return;
    }
    uint8_t *ids = db ? malloc(n * LC_RECORD_ID_LEN) : NULL;
    Lcore__V1__AnchorInfo *infos = ids ? calloc(n, sizeof *infos) : NULL;
    Lcore__V1__AnchorInfo **list = infos ? calloc(n, sizeof *list) : NULL;
    int rc = !db ? LC_ERR_UNAVAILABLE : list ? 0 : LC_ERR_NOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        memcpy(ids + i * LC_RECORD_ID_LEN, aq->record_ids[i].data, LC_RECORD_ID_LEN);
    if (rc == 0)
        rc = ch_db_anchor_infos(db, ids, n, infos, &found);
    free(ids);
    size_t bytes = 0;
    for (size_t i = 0; i < found; i++) {
        s_stamp(self, &infos[i]);
        list[i] = &infos[i]; /* s_clear frees infos through list[0] */
        bytes += lcore__v1__anchor_info__get_packed_size(&infos[i]) + 8;
    }
    /* Over the asker's ZMQ_MAXMSGSIZE the reply would cut its connection instead (deep proofs:
     * 1000 records fit up to LCORE_CHAIN_ANCHOR_MAX's bound). */
    if (rc == 0 && bytes > LC_ZMQ_REPLY_MAX - LC_ZMQ_ENVELOPE_OVERHEAD)
        rc = LC_ERR_TOOBIG;
    if (rc < 0 || found == 0) {
        for (size_t i = 0; i < found; i++)
            s_clear_info(&infos[i]);
        free(list);
        free(infos);
        if (rc < 0)
            s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR,
                    !db                   ? "database unavailable"
                    : rc == LC_ERR_TOOBIG ? "get_anchors: the answer is too large, ask for fewer"
                    : rc == LC_ERR_NOMEM  ? "out of memory"
                                          : "database error");
        return;
    }
    reply->anchors = list;
    reply->n_anchors = found;
}

/* get_anchor: one record id of 32 bytes. */
static void s_answer_anchor(ch_query_t *self, ch_db_t *db, const ProtobufCBinaryData *record_id,
                            Lcore__V1__QueryReply *reply)
{
    if (record_id->len != LC_RECORD_ID_LEN) {
        s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST,
                "get_anchor: record_id must be 32 bytes");
        return;
    }
    if (!db) {
        s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database unavailable");
        return;
    }
    Lcore__V1__AnchorInfo *info = malloc(sizeof *info);
    if (!info) {
        s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "out of memory");
        return;
    }
    lcore__v1__anchor_info__init(info);
    int rc = ch_db_anchor_info(db, record_id->data, info);
    if (rc < 0) {
        ch_db_anchor_info_clear(info);
        free(info);
        if (rc == LC_ERR_NOTFOUND)
            s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND,
                    "the relayer has not taken this record in yet");
        else
            s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database error");
        return;
    }
    s_stamp(self, info);
    reply->anchor = info;
}

/* What the proof cache did since the last answer, into the metrics. */
static void s_count_proofs(ch_query_t *self, const ch_db_t *db)
{
    ch_db_proof_stats_t now;
    ch_db_proof_stats(db, &now);
    lc_counter_add(self->proof_hits, now.hits - self->proofs_seen.hits);
    lc_counter_add(self->proof_misses, now.misses - self->proofs_seen.misses);
    lc_gauge_set(self->proof_leaves, (double)now.leaves);
    self->proofs_seen = now;
}

static void s_answer(void *ctx, const Lcore__V1__Query *q, Lcore__V1__QueryReply *reply)
{
    ch_query_t *self = ctx;
    ch_db_t *db = s_db(self);
    if (q->body_case == LCORE__V1__QUERY__BODY_PING) {
        if (!db)
            s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database unavailable");
    } else if (q->body_case == LCORE__V1__QUERY__BODY_GET_ANCHORS) {
        s_answer_anchors(self, db, q->get_anchors, reply);
    } else {
        s_answer_anchor(self, db, &q->get_anchor, reply);
    }
    if (db)
        s_count_proofs(self, db);
}

static void s_clear(void *ctx, Lcore__V1__QueryReply *reply)
{
    (void)ctx;
    if (reply->anchor) {
        s_clear_info(reply->anchor);
        free(reply->anchor);
        reply->anchor = NULL;
    }
    if (reply->n_anchors) {
        for (size_t i = 0; i < reply->n_anchors; i++)
            s_clear_info(reply->anchors[i]);
        free(reply->anchors[0]); /* the array of answers, one block */
        free(reply->anchors);
        reply->anchors = NULL;
        reply->n_anchors = 0;
    }
}

static void s_actor(zsock_t *pipe, void *args)
{
    ch_query_t *self = args;
    lc_zmq_peers_t *askers = NULL;
    lc_zmq_opts_t qo = {.name = "queries",
                        .type = ZMQ_ROUTER,
                        .endpoints = self->cfg->queries_bind,
                        .bind = 1,
                        .roles = LC_ROLE_GATEWAY,
                        .hwm = 1000,
                        .max_msg = LC_ZMQ_QUERY_MAX};
    zsock_t *router = lc_zmq_open(&qo, self->curve, &askers);
    self->started = router != NULL;
    zsock_signal(pipe, 0);
    zpoller_t *poller = router ? zpoller_new(pipe, router, NULL) : NULL;
    while (poller) {
        void *which = zpoller_wait(poller, 1000);
        lc_zmq_peers_update(askers); /* counts refused handshakes */
        if (which == pipe || zpoller_terminated(poller))
            break; /* $TERM */
        if (which == router)
            lc_query_serve(router, &self->server, 100);
    }
    zpoller_destroy(&poller);
    lc_zmq_peers_destroy(&askers);
    zsock_destroy(&router);
    ch_db_destroy(&self->db);
}

ch_query_t *ch_query_new(const ch_config_t *cfg, lc_curve_t *curve, lc_metrics_t *m,
                         const uint8_t contract[20])
{
    ch_query_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->curve = curve;
    memcpy(self->contract, contract, sizeof self->contract);
    self->server = (lc_query_server_t){
        .roles = s_roles, .answer = s_answer, .clear = s_clear, .ctx = self, .curve = curve};
    lc_query_server_count(&self->server, m, "lcore_chain");
    self->proof_hits = lc_metrics_counter(
        m, "lcore_chain_proof_cache_hits_total",
        "Anchors of a proof answer whose Merkle tree the query thread had cached", NULL);
    self->proof_misses = lc_metrics_counter(
        m, "lcore_chain_proof_cache_misses_total",
        "Anchors of a proof answer whose leaves were read from PostgreSQL to build the tree", NULL);
    self->proof_leaves = lc_metrics_gauge(
        m, "lcore_chain_proof_cache_leaves",
        "Leaves of the anchor trees the query thread holds (LCORE_CHAIN_PROOF_CACHE_LEAVES)", NULL);
    self->actor = zactor_new(s_actor, self);
    if (!self->actor || !self->started)
        ch_query_destroy(&self);
    return self;
}

void ch_query_destroy(ch_query_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zactor_destroy(&(*self_p)->actor);
    free(*self_p);
    *self_p = NULL;
}
