/* gw_store.c: pooled DEALER sockets to the store's query ROUTER. See gw_store.h. */
#include "gw_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "lc_log.h"
#include "lc_zmq.h"

#define GW_STORE_POOL_MAX 64

struct gw_store {
    char *endpoint;
    int timeout_ms;
    lc_curve_t *curve;
    pthread_mutex_t lock; /* guards the free stack */
    zsock_t *free_socks[GW_STORE_POOL_MAX];
    size_t n_free;
    _Atomic uint64_t next_id;
};

gw_store_t *gw_store_new(const char *endpoint, int timeout_ms, lc_curve_t *curve)
{
    gw_store_t *self = calloc(1, sizeof *self);
    if (!self || !(self->endpoint = strdup(endpoint))) {
        free(self);
        return NULL;
    }
    self->timeout_ms = timeout_ms;
    self->curve = curve;
    pthread_mutex_init(&self->lock, NULL);
    atomic_init(&self->next_id, 1);
    return self;
}

void gw_store_destroy(gw_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_store_t *self = *self_p;
    for (size_t i = 0; i < self->n_free; i++)
        zsock_destroy(&self->free_socks[i]);
    pthread_mutex_destroy(&self->lock);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

static zsock_t *s_borrow(gw_store_t *self)
{
    zsock_t *s = NULL;
    pthread_mutex_lock(&self->lock);
    if (self->n_free)
        s = self->free_socks[--self->n_free];
    pthread_mutex_unlock(&self->lock);
    if (!s) {
        lc_zmq_opts_t o = {.name = "queries",
                           .type = ZMQ_DEALER,
                           .endpoints = self->endpoint,
                           .roles = LC_ROLE_STORE,
                           .hwm = 1000,
                           .max_msg = LC_ZMQ_REPLY_MAX};
        s = lc_zmq_open(&o, self->curve, NULL);
        if (s)
            zsock_set_sndtimeo(s, self->timeout_ms);
    }
    return s;
}

static void s_give_back(gw_store_t *self, zsock_t *s)
{
    pthread_mutex_lock(&self->lock);
    if (self->n_free < GW_STORE_POOL_MAX) {
        self->free_socks[self->n_free++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&self->lock);
    zsock_destroy(&s);
}

Lcore__V1__QueryReply *gw_store_call(gw_store_t *self, Lcore__V1__Query *q, int *err)
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
        /* ZMQ_IMMEDIATE: no store connected within the timeout. */
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
        lc_debug("store_query_failed", "err=\"%s\"", lc_strerror(*err));
    return reply;
}
