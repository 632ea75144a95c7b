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
    zactor_t *actor;
    int started; /* the actor bound its socket */
};

/* Gateways ask, and nobody else: the relayer's anchors are public on chain anyway, but the
 * link is no one else's business. */
static unsigned s_roles(Lcore__V1__Query__BodyCase body)
{
    return body == LCORE__V1__QUERY__BODY_GET_ANCHOR || body == LCORE__V1__QUERY__BODY_PING
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
        self->db = ch_db_new(self->cfg->pg_dsn);
    }
    return self->db;
}

static void s_answer(void *ctx, const Lcore__V1__Query *q, Lcore__V1__QueryReply *reply)
{
    ch_query_t *self = ctx;
    ch_db_t *db = s_db(self);
    if (q->body_case == LCORE__V1__QUERY__BODY_PING) {
        if (!db)
            s_error(reply, LCORE__V1__QUERY_REPLY__STATUS__ERROR, "database unavailable");
        return;
    }
    if (q->get_anchor.len != LC_RECORD_ID_LEN) {
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
    int rc = ch_db_anchor_info(db, q->get_anchor.data, info);
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
    info->chain_id = (uint64_t)self->cfg->chain_id;
    info->contract.data = self->contract;
    info->contract.len = sizeof self->contract;
    reply->anchor = info;
}

static void s_clear(void *ctx, Lcore__V1__QueryReply *reply)
{
    (void)ctx;
    if (reply->anchor) {
        reply->anchor->contract.data = NULL; /* ours, not the answer's */
        reply->anchor->contract.len = 0;
        ch_db_anchor_info_clear(reply->anchor);
        free(reply->anchor);
        reply->anchor = NULL;
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
