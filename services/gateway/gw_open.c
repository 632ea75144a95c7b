/* gw_open.c: see gw_open.h. */
#include "gw_open.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lc_log.h"
#include "lc_zmq.h"

#define GW_OPEN_HWM 100 /* requests queued per worker connection */

struct gw_open {
    int timeout_ms;
    pthread_mutex_t lock; /* guards the socket, its watcher and next_id */
    zsock_t *sock;
    lc_zmq_peers_t *workers;
    uint64_t next_id;
    lc_counter_t *ok, *refused, *timeout, *failed, *late, *bad;
    lc_gauge_t *g_workers;
    lc_histogram_t *seconds;
};

static void s_metrics(gw_open_t *self, lc_metrics_t *m)
{
    const char *name = "lcore_gateway_opens_total";
    const char *help = "Record opens asked of the crypto workers, by result (refused: the worker "
                       "cannot open it; timeout: no worker answered)";
    self->ok = lc_metrics_counter(m, name, help, "result=\"ok\"");
    self->refused = lc_metrics_counter(m, name, help, "result=\"refused\"");
    self->timeout = lc_metrics_counter(m, name, help, "result=\"timeout\"");
    self->failed = lc_metrics_counter(m, name, help, "result=\"error\"");
    self->late = lc_metrics_counter(m, "lcore_gateway_open_late_replies_total",
                                    "Worker answers that came after their open timed out "
                                    "(dropped)",
                                    NULL);
    self->bad =
        lc_metrics_counter(m, "lcore_gateway_bad_messages_total",
                           "Undecodable or unknown-version messages dropped", "socket=\"open\"");
    self->g_workers = lc_metrics_gauge(m, "lcore_gateway_open_workers_connected",
                                       "Crypto worker connections on the open socket", NULL);
    self->seconds = lc_metrics_histogram(m, "lcore_gateway_open_duration_seconds",
                                         "Time to open a record through a crypto worker", NULL,
                                         lc_latency_buckets, lc_latency_buckets_len);
}

gw_open_t *gw_open_new(const gw_open_opts_t *opts)
{
    gw_open_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    pthread_mutex_init(&self->lock, NULL);
    s_metrics(self, opts->metrics);
    /* Linger 0: a request still queued at exit has no caller left to answer. */
    lc_zmq_opts_t o = {.name = "open",
                       .type = ZMQ_DEALER,
                       .endpoints = opts->bind,
                       .bind = 1,
                       .roles = LC_ROLE_CRYPTO,
                       .hwm = GW_OPEN_HWM,
                       .max_msg = (int64_t)opts->max_reply_bytes};
    if (!(self->sock = lc_zmq_open(&o, opts->curve, &self->workers)))
        gw_open_destroy(&self);
    return self;
}

void gw_open_destroy(gw_open_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_open_t *self = *self_p;
    lc_zmq_peers_destroy(&self->workers);
    zsock_destroy(&self->sock);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* Frees a reply, wiping the plaintext it may hold first. */
static void s_free_reply(Lcore__V1__OpenReply *r)
{
    if (!r)
        return;
    sodium_memzero(r->jws.data, r->jws.len);
    lcore__v1__open_reply__free_unpacked(r, NULL);
}

/* Takes one message off the socket without waiting, wiping its bytes. Returns 0 when there was
 * none, else 1 with *out the reply, or NULL for a message that is not an OpenReply (counted). */
static int s_recv(gw_open_t *self, Lcore__V1__OpenReply **out)
{
    void *h = zsock_resolve(self->sock);
    zmq_msg_t m;
    zmq_msg_init(&m);
    *out = NULL;
    if (zmq_msg_recv(&m, h, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return 0;
    }
    int more = zmq_msg_more(&m); /* a worker answers one frame */
    if (!more)
        *out = lcore__v1__open_reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    sodium_memzero(zmq_msg_data(&m), zmq_msg_size(&m));
    zmq_msg_close(&m);
    while (more) {
        zmq_msg_init(&m);
        more = zmq_msg_recv(&m, h, 0) >= 0 && zmq_msg_more(&m);
        sodium_memzero(zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
    }
    if (*out && (*out)->version != 1) {
        s_free_reply(*out);
        *out = NULL;
    }
    if (!*out)
        lc_counter_inc(self->bad);
    return 1;
}

/* Drops what is queued: answers to calls that timed out (their plaintext is wiped). */
static void s_drop_late(gw_open_t *self)
{
    Lcore__V1__OpenReply *r = NULL;
    while (s_recv(self, &r)) {
        if (r)
            lc_counter_inc(self->late);
        s_free_reply(r);
    }
}

/* Keeps printable ASCII only: a worker's reason goes into JSON answers and log lines. */
static void s_printable(char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            *s = '?';
}

/* The caller's result from the worker's answer. */
static int s_take(const Lcore__V1__OpenReply *r, uint8_t **jws, size_t *jws_len, char *err,
                  size_t errcap)
{
    if (!r->ok || r->jws.len == 0) {
        snprintf(err, errcap, "%s",
                 !r->ok && r->error && *r->error ? r->error : "the worker cannot open it");
        s_printable(err);
        return LC_ERR_INVALID;
    }
    if (!(*jws = malloc(r->jws.len))) {
        snprintf(err, errcap, "out of memory");
        return LC_ERR_NOMEM;
    }
    memcpy(*jws, r->jws.data, r->jws.len);
    *jws_len = r->jws.len;
    return 0;
}

/* Waits for the answer to request `id` until the deadline (lc_mono_us); answers to earlier
 * requests are late, dropped. */
static int s_wait(gw_open_t *self, uint64_t id, uint64_t deadline, uint8_t **jws, size_t *jws_len,
                  char *err, size_t errcap)
{
    void *h = zsock_resolve(self->sock);
    for (;;) {
        uint64_t now = lc_mono_us();
        if (now >= deadline) {
            snprintf(err, errcap, "no crypto worker answered within %d ms", self->timeout_ms);
            return LC_ERR_TIMEOUT;
        }
        zmq_pollitem_t item = {h, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, (long)((deadline - now + 999) / 1000));
        if (n < 0 && errno != EINTR) {
            snprintf(err, errcap, "open link failed: %s", zmq_strerror(errno));
            return LC_ERR_IO;
        }
        Lcore__V1__OpenReply *r = NULL;
        while (n > 0 && s_recv(self, &r)) {
            if (r && r->request_id == id) {
                int rc = s_take(r, jws, jws_len, err, errcap);
                s_free_reply(r);
                return rc;
            }
            if (r)
                lc_counter_inc(self->late);
            s_free_reply(r);
        }
    }
}

/* Sends the request to the next connected worker; LC_ERR_TIMEOUT when none is connected (or
 * every connection's queue is full). */
static int s_send(gw_open_t *self, const Lcore__V1__SealedRecord *sealed, uint64_t id, char *err,
                  size_t errcap)
{
    Lcore__V1__OpenRequest q = LCORE__V1__OPEN_REQUEST__INIT;
    q.version = 1;
    q.request_id = id;
    q.sealed = (Lcore__V1__SealedRecord *)sealed; /* only read */
    int rc = lc_zmq_send_pb(self->sock, NULL, &q.base, ZMQ_DONTWAIT);
    if (rc == LC_ERR_TIMEOUT)
        snprintf(err, errcap, "no crypto worker connected");
    else if (rc < 0)
        snprintf(err, errcap, "open link failed: %s", lc_strerror(rc));
    return rc;
}

/* CLOCK_REALTIME ms from now, for pthread_mutex_timedlock. */
static struct timespec s_realtime_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void s_count(gw_open_t *self, const Lcore__V1__SealedRecord *sealed, int rc, uint64_t t0,
                    const char *err)
{
    lc_counter_inc(rc == 0                ? self->ok
                   : rc == LC_ERR_INVALID ? self->refused
                   : rc == LC_ERR_TIMEOUT ? self->timeout
                                          : self->failed);
    lc_histogram_observe(self->seconds, (double)(lc_mono_us() - t0) / 1e6);
    if (rc == 0)
        return;
    char hex[2 * 32 + 1] = "-";
    if (sealed->record_id.len == 32)
        sodium_bin2hex(hex, sizeof hex, sealed->record_id.data, 32);
    static lc_log_limit_t limit = LC_LOG_LIMIT_INIT; /* readers may retry in a loop */
    lc_log_limited(&limit, 1000, LC_LOG_WARN, "open_failed", "record_id=%s err=\"%s\"", hex, err);
}

int gw_open_call(gw_open_t *self, const Lcore__V1__SealedRecord *sealed, uint8_t **jws,
                 size_t *jws_len, char *err, size_t errcap)
{
    char why[128] = "";
    *jws = NULL;
    *jws_len = 0;
    uint64_t t0 = lc_mono_us(), deadline = t0 + (uint64_t)self->timeout_ms * 1000u;
    struct timespec until = s_realtime_in(self->timeout_ms);
    int rc = pthread_mutex_timedlock(&self->lock, &until);
    if (rc != 0) {
        snprintf(why, sizeof why, "no crypto worker answered within %d ms (opens queued)",
                 self->timeout_ms);
        rc = LC_ERR_TIMEOUT;
    } else {
        s_drop_late(self);
        uint64_t id = ++self->next_id;
        rc = s_send(self, sealed, id, why, sizeof why);
        if (rc == 0)
            rc = s_wait(self, id, deadline, jws, jws_len, why, sizeof why);
        lc_gauge_set(self->g_workers, (double)lc_zmq_peers_update(self->workers));
        pthread_mutex_unlock(&self->lock);
    }
    s_count(self, sealed, rc, t0, why);
    if (errcap)
        snprintf(err, errcap, "%s", why);
    return rc;
}

void gw_open_tick(gw_open_t *self)
{
    if (pthread_mutex_trylock(&self->lock) != 0)
        return;
    s_drop_late(self);
    lc_gauge_set(self->g_workers, (double)lc_zmq_peers_update(self->workers));
    pthread_mutex_unlock(&self->lock);
}
