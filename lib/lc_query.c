/* lc_query.c: see lc_query.h. */
#include "lc_query.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_zmq.h"

#define LC_QUERY_POOL_MAX 64

struct lc_query_client {
    char *endpoints;
    unsigned role;
    int timeout_ms;
    lc_curve_t *curve;
    pthread_mutex_t lock; /* guards the free stack */
    zsock_t *free_socks[LC_QUERY_POOL_MAX];
    size_t n_free;
    _Atomic uint64_t next_id;
};

lc_query_client_t *lc_query_client_new(const char *endpoints, unsigned role, int timeout_ms,
                                       lc_curve_t *curve)
{
    lc_query_client_t *self = calloc(1, sizeof *self);
    if (!self || !(self->endpoints = strdup(endpoints))) {
        free(self);
        return NULL;
    }
    self->role = role;
    self->timeout_ms = timeout_ms;
    self->curve = curve;
    pthread_mutex_init(&self->lock, NULL);
    atomic_init(&self->next_id, 1);
    return self;
}

void lc_query_client_destroy(lc_query_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_query_client_t *self = *self_p;
    for (size_t i = 0; i < self->n_free; i++)
        zsock_destroy(&self->free_socks[i]);
    pthread_mutex_destroy(&self->lock);
    free(self->endpoints);
    free(self);
    *self_p = NULL;
}

static zsock_t *s_borrow(lc_query_client_t *self)
{
    zsock_t *s = NULL;
    pthread_mutex_lock(&self->lock);
    if (self->n_free)
        s = self->free_socks[--self->n_free];
    pthread_mutex_unlock(&self->lock);
    if (!s) {
        lc_zmq_opts_t o = {.name = "queries",
                           .type = ZMQ_DEALER,
                           .endpoints = self->endpoints,
                           .roles = self->role,
                           .hwm = 1000,
                           .max_msg = LC_ZMQ_REPLY_MAX};
        s = lc_zmq_open(&o, self->curve, NULL);
        if (s)
            zsock_set_sndtimeo(s, self->timeout_ms);
    }
    return s;
}

static void s_give_back(lc_query_client_t *self, zsock_t *s)
{
    pthread_mutex_lock(&self->lock);
    if (self->n_free < LC_QUERY_POOL_MAX) {
        self->free_socks[self->n_free++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&self->lock);
    zsock_destroy(&s);
}

Lcore__V1__QueryReply *lc_query_call(lc_query_client_t *self, Lcore__V1__Query *q, int *err)
{
    *err = 0;
    zsock_t *sock = s_borrow(self);
    if (!sock) {
        *err = LC_ERR_UNAVAILABLE;
        return NULL;
    }
    q->version = 1;
    q->request_id = atomic_fetch_add(&self->next_id, 1);
    Lcore__V1__QueryReply *reply = NULL;
    int rc = lc_zmq_send_pb(sock, NULL, &q->base, 0);
    if (rc < 0) {
        /* ZMQ_IMMEDIATE: no server connected within the timeout. */
        *err = LC_ERR_UNAVAILABLE;
        goto out;
    }
    uint64_t deadline = lc_mono_us() + (uint64_t)self->timeout_ms * 1000u;
    void *handle = zsock_resolve(sock);
    for (;;) {
        uint64_t now = lc_mono_us();
        if (now >= deadline) {
            *err = LC_ERR_TIMEOUT;
            goto out;
        }
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, (long)((deadline - now + 999) / 1000));
        if (n < 0 && errno != EINTR) {
            *err = LC_ERR_IO;
            goto out;
        }
        if (n <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, handle, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        reply = lcore__v1__query_reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
        if (!reply) {
            *err = LC_ERR_INVALID;
            goto out;
        }
        if (reply->request_id == q->request_id && reply->version == 1)
            break;
        lcore__v1__query_reply__free_unpacked(reply, NULL); /* a stale answer */
        reply = NULL;
    }
out:
    if (reply || *err == LC_ERR_INVALID) {
        s_give_back(self, sock);
    } else {
        /* A socket with a request still outstanding is not reused: its late reply would
         * queue up behind the next caller's. */
        zsock_destroy(&sock);
    }
    if (!reply && *err != LC_ERR_INVALID)
        lc_debug("query_failed", "server=%s err=\"%s\"", lc_role_name(self->role),
                 lc_strerror(*err));
    return reply;
}

void lc_query_server_count(lc_query_server_t *srv, lc_metrics_t *m, const char *prefix)
{
    char name[96];
    snprintf(name, sizeof name, "%s_queries_total", prefix);
    srv->queries = lc_metrics_counter(m, name, "Queries answered", NULL);
    snprintf(name, sizeof name, "%s_bad_messages_total", prefix);
    srv->bad = lc_metrics_counter(m, name, "Messages dropped as undecodable or invalid, by socket",
                                  "socket=\"queries\"");
    snprintf(name, sizeof name, "%s_unauthorized_messages_total", prefix);
    srv->unauthorized = lc_metrics_counter(
        m, name,
        "Messages refused because the authenticated peer's role may not send them, by socket",
        "socket=\"queries\"");
}

/* One query: [identity][Query] -> [identity][QueryReply]. */
static void s_serve_one(zsock_t *router, const lc_query_server_t *srv)
{
    zmsg_t *msg = zmsg_recv(router);
    if (!msg)
        return;
    zframe_t *id = zmsg_pop(msg);
    zframe_t *body = zmsg_last(msg);
    Lcore__V1__Query *q =
        (id && body) ? lcore__v1__query__unpack(NULL, zframe_size(body), zframe_data(body)) : NULL;
    if (!q || q->version != 1) {
        lc_counter_inc(srv->bad);
        goto out;
    }
    const char *user = zframe_meta(body, "User-Id");
    if (!lc_curve_from(srv->curve, user, srv->roles(q->body_case))) {
        lc_counter_inc(srv->unauthorized);
        static lc_log_limit_t limit = LC_LOG_LIMIT_INIT; /* a peer may repeat it in a loop */
        lc_log_limited(&limit, 10000, LC_LOG_WARN, "query_unauthorized", "peer=%s query=%d",
                       user ? user : "-", (int)q->body_case);
        goto out;
    }
    lc_counter_inc(srv->queries);
    Lcore__V1__QueryReply reply = LCORE__V1__QUERY_REPLY__INIT;
    srv->answer(srv->ctx, q, &reply);
    reply.version = 1;
    reply.request_id = q->request_id;
    if (zframe_send(&id, router, ZFRAME_MORE | ZFRAME_REUSE) == 0)
        if (lc_zmq_send_pb(router, NULL, &reply.base, ZMQ_DONTWAIT) < 0)
            lc_debug("query_reply_dropped", "request_id=%llu", (unsigned long long)q->request_id);
    srv->clear(srv->ctx, &reply);
out:
    if (q)
        lcore__v1__query__free_unpacked(q, NULL);
    zframe_destroy(&id);
    zmsg_destroy(&msg);
}

void lc_query_serve(zsock_t *router, const lc_query_server_t *srv, int max)
{
    for (int i = 0; i < max && (zsock_events(router) & ZMQ_POLLIN); i++)
        s_serve_one(router, srv);
}
