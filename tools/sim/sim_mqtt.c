/* sim_mqtt.c: the devices' MQTT 5 connections and the paced publish loop. See sim_mqtt.h.
 * Why one thread and epoll: mosquitto_loop_start() would start a thread per device (hundreds of
 * threads waking for every PUBACK and result, each with a select() of its own); here a single
 * loop waits on every client's socket at once and runs libmosquitto's loop_read/loop_write only
 * on the sockets that are ready, with loop_misc (keepalive) once a second. The clients are never
 * touched from another thread, so libmosquitto's own locking is uncontended. */
#include "sim_mqtt.h"

#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lc_log.h"
#include "lc_record.h"
#include "sim_ids.h"
#include "sim_log.h"
#include "sim_track.h"

#define SIM_MQTT_KEEPALIVE_S 60
#define SIM_MQTT_UNACKED_MAX 1024     /* PUBACK-pending messages a device tracks (>= concurrency) */
#define SIM_MQTT_TICK_US 1000000u     /* progress, keepalive */
#define SIM_MQTT_IDLE_WAIT_US 100000u /* longest sleep between checks of *stop */
#define SIM_MQTT_BURST_S 0.02         /* token bucket depth: 20 ms of rate, as over HTTP */
#define SIM_MQTT_RECONNECT_MIN_US 1000000u
#define SIM_MQTT_RECONNECT_MAX_US 8000000u
#define SIM_MQTT_EVENTS 256
#define SIM_MQTT_TOPIC_MAX (LC_DEVICE_ID_MAX + 32)
#define SIM_MQTT_FDS_PER_CLIENT 3 /* the socket and libmosquitto's wake-up socket pair */

typedef enum { C_DOWN = 0, C_CONNECTING, C_SUBSCRIBING, C_READY, C_FAILED } conn_state_t;

typedef struct {
    int mid;
    size_t job;
} unacked_t;

typedef struct {
    sim_mqtt_t *owner;
    struct mosquitto *mosq;
    size_t device;
    conn_state_t state;
    int ever_ready;
    int fd;                          /* watched by epoll; -1: none */
    int watch_out;                   /* EPOLLOUT requested */
    unacked_t *unacked;              /* messages awaiting their PUBACK (unordered) */
    unsigned n_unacked, unacked_cap; /* cap: the broker's receive maximum, bounded */
    int sub_mid;
    unsigned reconnects;
    uint64_t reconnect_at_us;
    char topic_out[SIM_MQTT_TOPIC_MAX]; /* lcore/v1/<device_id>/data or .../batch */
    char topic_result[SIM_MQTT_TOPIC_MAX];
} conn_t;

struct sim_mqtt {
    const sim_devices_t *devices;
    conn_t *conns;
    size_t n_conns;
    int epfd;
    char host[SIM_MQTT_HOST_MAX];
    int port;
    size_t ready;               /* devices ready when the load started */
    size_t n_down;              /* connections waiting to reconnect... */
    uint64_t next_reconnect_us; /* ...the first of them at this time */
    sim_track_t *track;         /* during sim_mqtt_run */
    int closing;
    sim_log_limit_t log_limit;
};

int sim_mqtt_url_parse(const char *url, char host[SIM_MQTT_HOST_MAX], int *port, int *tls)
{
    const char *rest;
    if (strncmp(url, "mqtt://", 7) == 0) {
        *tls = 0;
        rest = url + 7;
    } else if (strncmp(url, "mqtts://", 8) == 0) {
        *tls = 1;
        rest = url + 8;
    } else {
        return -1;
    }
    *port = *tls ? 8883 : 1883;
    const char *host_end, *after;
    if (rest[0] == '[') { /* [IPv6]:port */
        host_end = strchr(rest, ']');
        if (!host_end)
            return -1;
        rest++;
        after = host_end + 1;
    } else {
        host_end = rest + strcspn(rest, ":/");
        after = host_end;
    }
    size_t len = (size_t)(host_end - rest);
    if (len == 0 || len >= SIM_MQTT_HOST_MAX)
        return -1;
    memcpy(host, rest, len);
    host[len] = '\0';
    if (*after == ':') {
        char *end = NULL;
        long p = strtol(after + 1, &end, 10);
        if (end == after + 1 || p < 1 || p > 65535)
            return -1;
        *port = (int)p;
        after = end;
    }
    /* nothing but an optional trailing '/' */
    return strcmp(after, "") == 0 || strcmp(after, "/") == 0 ? 0 : -1;
}

/* Logs the first few connection problems in detail; after that they are only counted. */
static int s_may_log(sim_mqtt_t *self)
{
    return sim_log_may(&self->log_limit, "MQTT connection problems");
}

static const char *s_id(const conn_t *c)
{
    return sim_devices_id(c->owner->devices, c->device);
}

/* ---- epoll ---- */

/* Watches the client's socket: always for input, for output while libmosquitto has some. */
static void s_watch(sim_mqtt_t *self, conn_t *c)
{
    int fd = mosquitto_socket(c->mosq);
    if (fd < 0)
        return;
    int out = mosquitto_want_write(c->mosq);
    if (fd == c->fd && out == c->watch_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    /* A reconnected client may have its new socket under the old number, or not. */
    int op = fd == c->fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(self->epfd, op, fd, &ev) < 0) {
        op = errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(self->epfd, op, fd, &ev) < 0) {
            lc_error("epoll_ctl_failed", "device_id=%s error=\"%s\"", s_id(c), strerror(errno));
            return;
        }
    }
    c->fd = fd;
    c->watch_out = out;
}

static void s_unwatch(sim_mqtt_t *self, conn_t *c)
{
    if (c->fd >= 0)
        epoll_ctl(self->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->fd = -1;
    c->watch_out = 0;
}

/* ---- libmosquitto callbacks (all on the loop's thread) ---- */

static void s_schedule_reconnect(conn_t *c)
{
    uint64_t delay = (uint64_t)SIM_MQTT_RECONNECT_MIN_US << (c->reconnects < 4 ? c->reconnects : 4);
    if (delay > SIM_MQTT_RECONNECT_MAX_US)
        delay = SIM_MQTT_RECONNECT_MAX_US;
    c->reconnects++;
    c->reconnect_at_us = lc_mono_us() + delay;
    sim_mqtt_t *self = c->owner;
    if (self->n_down == 0 || c->reconnect_at_us < self->next_reconnect_us)
        self->next_reconnect_us = c->reconnect_at_us;
    if (c->state != C_DOWN)
        self->n_down++;
    c->state = C_DOWN;
}

/* A device that never got ready is left out of the run; one that was ready tries again, like a
 * device would (its revoked credentials, say, keep it out). */
static void s_conn_lost(conn_t *c)
{
    if (c->ever_ready)
        s_schedule_reconnect(c);
    else
        c->state = C_FAILED;
}

/* A session this client cannot use (no memory, no subscription): the device is left out. */
static void s_session_failed(conn_t *c, const char *event, const char *error)
{
    lc_warn(event, "device_id=%s error=\"%s\"", s_id(c), error);
    mosquitto_disconnect_v5(c->mosq, MQTT_RC_UNSPECIFIED, NULL);
    c->state = C_FAILED;
}

static void s_on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                         const mosquitto_property *props)
{
    (void)flags;
    conn_t *c = obj;
    if (rc != 0) {
        if (s_may_log(c->owner))
            lc_warn("mqtt_connect_refused", "device_id=%s reason=\"%s\"", s_id(c),
                    mosquitto_reason_string(rc));
        s_conn_lost(c);
        return;
    }
    /* The broker's receive maximum bounds this client's messages awaiting a PUBACK (65535 when
     * it names none); our list of them is kept at most SIM_MQTT_UNACKED_MAX long. */
    uint16_t receive_max = 65535;
    mosquitto_property_read_int16(props, MQTT_PROP_RECEIVE_MAXIMUM, &receive_max, false);
    unsigned cap = receive_max < SIM_MQTT_UNACKED_MAX ? receive_max : SIM_MQTT_UNACKED_MAX;
    if (cap > c->unacked_cap) {
        unacked_t *p = realloc(c->unacked, cap * sizeof *p);
        if (!p) {
            s_session_failed(c, "mqtt_connect_failed", lc_strerror(LC_ERR_NOMEM));
            return;
        }
        c->unacked = p;
    }
    c->unacked_cap = cap ? cap : 1;
    lc_debug("mqtt_session", "device_id=%s receive_max=%u", s_id(c), (unsigned)receive_max);
    /* Results first: nothing is published before the subscription is granted. */
    int src = mosquitto_subscribe_v5(mosq, &c->sub_mid, c->topic_result, 1, 0, NULL);
    if (src != MOSQ_ERR_SUCCESS) {
        s_session_failed(c, "mqtt_subscribe_failed", mosquitto_strerror(src));
        return;
    }
    c->state = C_SUBSCRIBING;
}

static void s_on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                           const int *granted_qos, const mosquitto_property *props)
{
    (void)props;
    conn_t *c = obj;
    if (mid != c->sub_mid || c->state != C_SUBSCRIBING)
        return;
    if (qos_count < 1 || granted_qos[0] >= 0x80) {
        if (s_may_log(c->owner))
            lc_warn("mqtt_subscribe_refused", "device_id=%s topic=%s reason=\"%s\"", s_id(c),
                    c->topic_result,
                    mosquitto_reason_string(qos_count < 1 ? MQTT_RC_UNSPECIFIED : granted_qos[0]));
        c->state = C_FAILED;
        mosquitto_disconnect_v5(mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
        return;
    }
    c->state = C_READY;
    c->ever_ready = 1;
    c->reconnects = 0;
}

static void s_on_publish(struct mosquitto *mosq, void *obj, int mid, int reason_code,
                         const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    conn_t *c = obj;
    for (unsigned i = 0; i < c->n_unacked; i++) {
        if (c->unacked[i].mid != mid)
            continue;
        size_t job = c->unacked[i].job;
        c->unacked[i] = c->unacked[--c->n_unacked];
        if (reason_code >= 0x80 && s_may_log(c->owner))
            lc_warn("mqtt_publish_refused", "device_id=%s topic=%s reason=\"%s\"", s_id(c),
                    c->topic_out, mosquitto_reason_string(reason_code));
        if (c->owner->track)
            sim_track_puback(c->owner->track, job, reason_code, lc_mono_us());
        return;
    }
}

static void s_on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                         const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    conn_t *c = obj;
    if (c->owner->track && msg->payloadlen >= 0)
        sim_track_result_message(c->owner->track, c->device, msg->payload, (size_t)msg->payloadlen,
                                 lc_mono_us());
}

static void s_on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                            const mosquitto_property *props)
{
    (void)mosq;
    (void)props;
    conn_t *c = obj;
    s_unwatch(c->owner, c);
    /* Messages awaiting a PUBACK are forgotten here: their results still match by seq. */
    c->n_unacked = 0;
    if (c->owner->closing || c->state == C_FAILED || c->state == C_DOWN)
        return;
    if (s_may_log(c->owner))
        lc_warn("mqtt_disconnected", "device_id=%s rc=%d reason=\"%s\"", s_id(c), rc,
                rc < 0x80 ? mosquitto_strerror(rc) : mosquitto_reason_string(rc));
    s_conn_lost(c);
}

/* ---- connections ---- */

/* Reads what the client's socket has, writes what libmosquitto queued (a callback's packets are
 * queued, not sent), and watches the socket again. */
static void s_service(sim_mqtt_t *self, conn_t *c, uint32_t events)
{
    int rc = MOSQ_ERR_SUCCESS;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        rc = mosquitto_loop_read(c->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(c->mosq) >= 0 && mosquitto_want_write(c->mosq))
        rc = mosquitto_loop_write(c->mosq, 1);
    if (mosquitto_socket(c->mosq) < 0)
        return; /* libmosquitto closed it and called s_on_disconnect */
    if (rc == MOSQ_ERR_SUCCESS) {
        s_watch(self, c);
        return;
    }
    /* An error that did not end in a disconnect (a failed TLS handshake): stop watching the
     * socket; a reconnect or destroy closes it. */
    s_unwatch(self, c);
    if (c->state == C_FAILED || c->state == C_DOWN)
        return;
    if (s_may_log(self))
        lc_warn("mqtt_connection_failed", "device_id=%s error=\"%s\"", s_id(c),
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    c->n_unacked = 0;
    s_conn_lost(c);
}

static int s_poll(sim_mqtt_t *self, uint64_t wait_us)
{
    struct epoll_event ev[SIM_MQTT_EVENTS];
    int n = epoll_wait(self->epfd, ev, SIM_MQTT_EVENTS, (int)((wait_us + 999) / 1000));
    for (int i = 0; i < n; i++)
        s_service(self, ev[i].data.ptr, ev[i].events);
    return n;
}

static void s_connect(sim_mqtt_t *self, conn_t *c)
{
    int rc = c->ever_ready ? mosquitto_reconnect(c->mosq)
                           : mosquitto_connect_bind_v5(c->mosq, self->host, self->port,
                                                       SIM_MQTT_KEEPALIVE_S, NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (s_may_log(self))
            lc_warn("mqtt_connect_failed", "device_id=%s broker=%s:%d error=\"%s\"", s_id(c),
                    self->host, self->port,
                    rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        s_conn_lost(c);
        return;
    }
    c->state = C_CONNECTING;
    s_watch(self, c);
}

/* Connections due to try again; with keepalive also libmosquitto's keepalive (PINGREQ) for the
 * others, about once a second. */
static void s_housekeeping(sim_mqtt_t *self, uint64_t now, int keepalive)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < self->n_conns; i++) {
        conn_t *c = &self->conns[i];
        if (c->state == C_DOWN && c->reconnect_at_us <= now) {
            self->n_down--;
            s_connect(self, c); /* may schedule it again */
        } else if (keepalive && c->fd >= 0) {
            mosquitto_loop_misc(c->mosq);
            s_watch(self, c); /* a PINGREQ may be waiting */
        }
        if (c->state == C_DOWN && c->reconnect_at_us < next)
            next = c->reconnect_at_us;
    }
    self->next_reconnect_us = next;
}

/* libmosquitto's own error lines (e.g. why a TLS handshake failed), within the log limit. */
static void s_on_log(struct mosquitto *mosq, void *obj, int level, const char *line)
{
    (void)mosq;
    conn_t *c = obj;
    if ((level & MOSQ_LOG_ERR) && s_may_log(c->owner))
        lc_warn("mqtt_client_error", "device_id=%s error=\"%s\"", s_id(c), line);
}

static int s_conn_init(sim_mqtt_t *self, conn_t *c, size_t device, int tls, const char *ca_file)
{
    c->owner = self;
    c->device = device;
    c->fd = -1;
    const char *id = sim_devices_id(self->devices, device);
    const char *user = sim_devices_mqtt_username(self->devices, device);
    const char *password = sim_devices_mqtt_password(self->devices, device);
    snprintf(c->topic_result, sizeof c->topic_result, "lcore/v1/%s/result", id);
    if (!user || !password) {
        lc_warn("mqtt_no_credentials", "device_id=%s", id);
        c->state = C_FAILED;
        return 0;
    }
    /* The client id is the device id too: one session per device. */
    if (!(c->mosq = mosquitto_new(id, true, c)))
        return LC_ERR_NOMEM;
    int rc = mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    rc |= mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    /* libmosquitto keeps its own (plain heap) copy of the password for reconnects. */
    rc |= mosquitto_username_pw_set(c->mosq, user, password);
    if (tls && ca_file && *ca_file)
        rc |= mosquitto_tls_set(c->mosq, ca_file, NULL, NULL, NULL, NULL);
    else if (tls)
        rc |= mosquitto_int_option(c->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
    if (rc != MOSQ_ERR_SUCCESS)
        return LC_ERR_INVALID;
    mosquitto_connect_v5_callback_set(c->mosq, s_on_connect);
    mosquitto_subscribe_v5_callback_set(c->mosq, s_on_subscribe);
    mosquitto_publish_v5_callback_set(c->mosq, s_on_publish);
    mosquitto_message_v5_callback_set(c->mosq, s_on_message);
    mosquitto_disconnect_v5_callback_set(c->mosq, s_on_disconnect);
    mosquitto_log_callback_set(c->mosq, s_on_log);
    return 0;
}

/* Three descriptors a client: raise the soft limit towards the hard one when that is short. */
static void s_raise_nofile(size_t clients)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)(clients * SIM_MQTT_FDS_PER_CLIENT + 64);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < need)
        lc_warn("fd_limit_low", "devices=%zu need=%llu limit=%llu hint=\"ulimit -n\"", clients,
                (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

/* Waits until every connection is ready or failed; those still pending at the deadline (or on
 * *stop) fail. Returns the number ready. */
static size_t s_wait_ready(sim_mqtt_t *self, double timeout_s, const volatile sig_atomic_t *stop)
{
    const uint64_t deadline = lc_mono_us() + (uint64_t)(timeout_s * 1e6);
    size_t ready = 0, pending = 0;
    for (;;) {
        ready = pending = 0;
        for (size_t i = 0; i < self->n_conns; i++) {
            ready += self->conns[i].state == C_READY;
            pending +=
                self->conns[i].state == C_CONNECTING || self->conns[i].state == C_SUBSCRIBING;
        }
        uint64_t now = lc_mono_us();
        if (pending == 0 || now >= deadline || (stop && *stop))
            break;
        uint64_t wait = deadline - now;
        s_poll(self, wait < SIM_MQTT_IDLE_WAIT_US ? wait : SIM_MQTT_IDLE_WAIT_US);
    }
    if (pending > 0)
        lc_warn("mqtt_connect_timeout", "devices=%zu timeout_s=%.1f", pending, timeout_s);
    for (size_t i = 0; i < self->n_conns; i++) {
        conn_t *c = &self->conns[i];
        if (c->state != C_READY && c->state != C_FAILED) {
            c->state = C_FAILED;
            mosquitto_disconnect_v5(c->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
        }
    }
    return ready;
}

sim_mqtt_t *sim_mqtt_new(const sim_devices_t *devices, const char *url, const char *ca_file,
                         double timeout_s, const volatile sig_atomic_t *stop)
{
    int tls = 0;
    const size_t n = sim_devices_count(devices);
    sim_mqtt_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    mosquitto_lib_init();
    self->devices = devices;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    self->conns = calloc(n ? n : 1, sizeof *self->conns);
    if (self->epfd < 0 || !self->conns || sim_mqtt_url_parse(url, self->host, &self->port, &tls)) {
        lc_error("mqtt_init_failed", "url=%s", url);
        goto fail;
    }
    self->n_conns = n;
    s_raise_nofile(n);
    for (size_t i = 0; i < n; i++) {
        if (s_conn_init(self, &self->conns[i], i, tls, ca_file) < 0) {
            lc_error("mqtt_init_failed", "device_id=%s", sim_devices_id(devices, i));
            goto fail;
        }
    }
    const uint64_t t0 = lc_mono_us();
    for (size_t i = 0; i < n && !(stop && *stop); i++) {
        if (self->conns[i].mosq)
            s_connect(self, &self->conns[i]);
    }
    self->ready = s_wait_ready(self, timeout_s, stop);
    lc_info("mqtt_connected", "broker=%s:%d tls=%d devices=%zu ready=%zu failed=%zu elapsed_s=%.3f",
            self->host, self->port, tls, n, self->ready, n - self->ready,
            (double)(lc_mono_us() - t0) / 1e6);
    if (self->ready < n)
        lc_warn("mqtt_devices_left_out",
                "devices=%zu reason=\"not connected: their readings "
                "count as publish_failed\"",
                n - self->ready);
    if (self->ready == 0) {
        lc_error("mqtt_no_device_connected", "broker=%s:%d devices=%zu", self->host, self->port, n);
        goto fail;
    }
    return self;
fail:
    sim_mqtt_destroy(&self);
    return NULL;
}

void sim_mqtt_destroy(sim_mqtt_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sim_mqtt_t *self = *self_p;
    self->closing = 1;
    for (size_t i = 0; self->conns && i < self->n_conns; i++) {
        conn_t *c = &self->conns[i];
        if (c->mosq && mosquitto_socket(c->mosq) >= 0)
            mosquitto_disconnect_v5(c->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
        if (c->mosq)
            mosquitto_destroy(c->mosq);
        free(c->unacked);
    }
    free(self->conns);
    if (self->epfd >= 0)
        close(self->epfd);
    free(self);
    mosquitto_lib_cleanup();
    *self_p = NULL;
}

size_t sim_mqtt_connected(const sim_mqtt_t *self)
{
    return self->ready;
}

/* ---- the timed phase ---- */

typedef struct {
    const sim_mqtt_run_t *opts;
    const sim_readings_t *readings;
    const sim_job_t *jobs;
    size_t n_jobs, next_job;
    sim_stats_t *stats;
    sim_ids_t *ids;
    sim_ids_t *puback_ids;
    int dispatching;
    double tokens, burst;
    uint64_t start, deadline, last_refill, next_tick;
} run_t;

/* Publishes job on its device's connection. Returns 0, or -1 when it could not be sent. */
static int s_publish(sim_mqtt_t *self, conn_t *c, size_t job_index, const sim_job_t *job)
{
    int mid = 0;
    int rc = mosquitto_publish_v5(c->mosq, &mid, c->topic_out, (int)job->body_len, job->body, 1,
                                  false, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        if (s_may_log(self))
            lc_warn("mqtt_publish_failed", "device_id=%s error=\"%s\"", s_id(c),
                    mosquitto_strerror(rc));
        return -1;
    }
    c->unacked[c->n_unacked++] = (unacked_t){.mid = mid, .job = job_index};
    s_watch(self, c); /* what the socket did not take waits for EPOLLOUT */
    return 0;
}

/* Publishes the jobs that may go now, strictly in order. Lowers *wait_us to when the next one
 * could (tokens); a full window (concurrency, or the device's PUBACK window) waits for an event. */
static void s_dispatch(sim_mqtt_t *self, run_t *st, uint64_t now, uint64_t *wait_us)
{
    const sim_mqtt_run_t *o = st->opts;
    while (st->next_job < st->n_jobs) {
        if (sim_track_in_flight(self->track) >= o->concurrency)
            return;
        const sim_job_t *job = &st->jobs[st->next_job];
        if (o->rate > 0 && st->tokens < job->units) {
            uint64_t need = (uint64_t)((job->units - st->tokens) * 1e6 / o->rate) + 1;
            if (need < *wait_us)
                *wait_us = need;
            return;
        }
        size_t first = (size_t)sim_readings_first(st->readings, st->next_job);
        conn_t *c = &self->conns[sim_readings_device(st->readings, first)];
        /* The broker's flow control: this device waits for a PUBACK, and the readings after its
         * one wait with it (sending out of order would make later readings overtake). */
        if (c->state == C_READY && c->n_unacked >= c->unacked_cap)
            return;
        st->tokens -= job->units;
        /* A device that is not connected drops its reading, as a real one would: an error. */
        if (c->state == C_READY && s_publish(self, c, st->next_job, job) == 0)
            sim_track_published(self->track, st->next_job, now);
        else
            sim_track_unsent(self->track, st->next_job);
        st->next_job++;
    }
}

static void s_tick(run_t *st, double elapsed_s)
{
    if (!st->opts->quiet)
        sim_stats_progress(st->stats, elapsed_s);
    if (st->opts->progress)
        sim_stats_progress_line(st->stats, stdout, elapsed_s);
    sim_ids_flush(st->ids);
    sim_ids_flush(st->puback_ids);
}

/* One round: refill, publish, give up on late results, housekeeping; returns how long to wait
 * for events, or 0 when the run is over. */
static uint64_t s_round(sim_mqtt_t *self, run_t *st)
{
    const sim_mqtt_run_t *o = st->opts;
    uint64_t now = lc_mono_us();
    if (st->dispatching && ((o->stop && *o->stop) || (st->deadline && now >= st->deadline) ||
                            st->next_job >= st->n_jobs))
        st->dispatching = 0;
    if (o->rate > 0) {
        st->tokens += (double)(now - st->last_refill) * o->rate / 1e6;
        if (st->tokens > st->burst)
            st->tokens = st->burst;
    }
    st->last_refill = now;
    uint64_t wait_us = SIM_MQTT_IDLE_WAIT_US;
    if (st->dispatching) {
        s_dispatch(self, st, now, &wait_us);
        if (st->deadline && st->deadline - now < wait_us)
            wait_us = st->deadline - now;
    }
    uint64_t expire_in = sim_track_expire(self->track, now);
    if (expire_in < wait_us)
        wait_us = expire_in;
    if (!st->dispatching && sim_track_in_flight(self->track) == 0)
        return 0;
    if (now >= st->next_tick) {
        s_tick(st, (double)(now - st->start) / 1e6);
        s_housekeeping(self, now, 1);
        st->next_tick += SIM_MQTT_TICK_US;
        if (st->next_tick <= now)
            st->next_tick = now + SIM_MQTT_TICK_US;
    } else if (self->n_down > 0 && now >= self->next_reconnect_us) {
        s_housekeeping(self, now, 0);
    }
    if (st->next_tick - now < wait_us)
        wait_us = st->next_tick - now;
    if (self->n_down > 0 && self->next_reconnect_us > now &&
        self->next_reconnect_us - now < wait_us)
        wait_us = self->next_reconnect_us - now;
    return wait_us ? wait_us : 1;
}

int sim_mqtt_run(sim_mqtt_t *self, const sim_readings_t *readings, sim_stats_t *stats,
                 const sim_mqtt_run_t *run, double *duration_s)
{
    run_t st = {.opts = run, .readings = readings, .stats = stats, .dispatching = 1};
    st.jobs = sim_readings_jobs(readings, &st.n_jobs);
    *duration_s = 0;
    st.ids = sim_ids_new(run->record_ids, stats);
    st.puback_ids = sim_ids_new(run->puback_ids, stats);
    self->track = st.ids && st.puback_ids
                      ? sim_track_new(readings, stats, st.ids, (uint64_t)(run->timeout_s * 1e6))
                      : NULL;
    if (!self->track) {
        sim_ids_destroy(&st.ids);
        sim_ids_destroy(&st.puback_ids);
        return LC_ERR_NOMEM;
    }
    sim_track_set_puback_ids(self->track, st.puback_ids);
    uint32_t max_units = 1;
    for (size_t j = 0; j < st.n_jobs; j++)
        max_units = st.jobs[j].units > max_units ? st.jobs[j].units : max_units;
    st.burst = run->rate * SIM_MQTT_BURST_S;
    if (st.burst < 2.0 * max_units)
        st.burst = 2.0 * max_units;
    st.tokens = max_units;
    for (size_t i = 0; i < self->n_conns; i++)
        snprintf(self->conns[i].topic_out, sizeof self->conns[i].topic_out, "lcore/v1/%s/%s",
                 sim_devices_id(self->devices, i), sim_mode_path(sim_readings_mode(readings)));
    st.start = st.last_refill = lc_mono_us();
    st.next_tick = st.start + SIM_MQTT_TICK_US;
    st.deadline = run->duration_s > 0 ? st.start + (uint64_t)(run->duration_s * 1e6) : 0;
    lc_info("load_start",
            "mode=%s readings=%llu messages=%zu rate=%.1f duration_s=%.1f "
            "devices_ready=%zu",
            sim_mode_name(sim_readings_mode(readings)),
            (unsigned long long)sim_readings_count(readings), st.n_jobs, run->rate, run->duration_s,
            self->ready);
    uint64_t wait_us;
    while ((wait_us = s_round(self, &st)) > 0)
        s_poll(self, wait_us);
    uint64_t last = sim_track_last_event_us(self->track);
    *duration_s = last > st.start ? (double)(last - st.start) / 1e6 : 0;
    sim_stats_set_unanswered(stats, sim_track_unanswered(self->track));
    sim_track_destroy(&self->track);
    sim_ids_destroy(&st.ids);
    sim_ids_destroy(&st.puback_ids);
    return 0;
}
