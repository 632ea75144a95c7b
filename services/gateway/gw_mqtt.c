/* gw_mqtt.c: the MQTT ingest's thread, its window of messages, their acknowledgements,
 * retries and results. See gw_mqtt.h. */
#include "gw_mqtt.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "gw_lines.h"
#include "lc_codec.h"
#include "lc_jws.h"
#include "lc_log.h"
#include "lc_mqtt.h"
#include "lc_token.h"

#define S_MAX_LINES 1000 /* a batch message, as POST /v1/data/batch */
#define S_BACKOFF_MIN_MS 100u
#define S_BACKOFF_MAX_MS 5000u
#define S_KEEP_ALIVE_S 30
/* The broker keeps our session (and the messages handed to it) this long while we are away:
 * a restart finds them; a gateway gone for good must end its session (docs/ARCHITECTURE.md). */
#define S_SESSION_EXPIRY_S 86400u
#define S_PACKET_OVERHEAD 65536u /* topic and properties around the largest batch */
#define S_DISCONNECT_MS 1000

static const char *const s_filters[] = {"$share/lcore/lcore/v1/+/data",
                                        "$share/lcore/lcore/v1/+/batch"};
/* Final refusals (lcore_gateway_mqtt_refused_total{reason}): the ingest's error codes. */
static const char *const s_refusals[] = {"malformed",    "bad_signature", "unknown_device",
                                         "seq_conflict", "too_large",     "rate_limited"};
#define N_REFUSALS LC_ARRAY_LEN(s_refusals)

/* One reading of a message (a data message has one, a batch one a line). */
typedef struct {
    size_t off, len; /* the JWS in the message's payload */
    gw_result_t res;
    uint64_t seq; /* with has_seq: for the result ("seq" null when the reading did not parse) */
    int has_seq;
    int pending; /* to run through the ingest (again): new, or it failed for a transient reason */
    int durable; /* res is 202 and its log entry durable */
} s_line_t;

/* A message held until it is acknowledged: in the window, in arrival order. */
typedef struct s_msg {
    struct s_msg *prev, *next;
    struct s_msg *durable_next; /* on the durable list (under the lock) */
    gw_mqtt_t *owner;
    uint32_t conn;
    uint16_t pid;
    uint8_t qos;
    int waiting;    /* a gw_wal_notify is outstanding: the message must live until it comes */
    int log_status; /* set by the relay thread under the lock */
    unsigned attempts;
    uint64_t retry_at_us; /* 0: no retry scheduled */
    char device_id[LC_DEVICE_ID_MAX + 1];
    s_line_t *lines;
    size_t n_lines, bytes;
    char *payload;
    size_t payload_len;
    char *response_topic; /* NULL: none, or refused */
    uint8_t *correlation;
    size_t response_topic_len, correlation_len;
} s_msg_t;

struct gw_mqtt {
    gw_mqtt_deps_t d;
    const gw_config_t *cfg;
    lc_mqtt_t *mq;
    char host[256], port[16];
    pthread_t thread;
    int started;
    atomic_int stop, connected;
    int wake_fd;
    pthread_mutex_t lock;
    s_msg_t *durable; /* under the lock: messages whose log entries are durable (newest first) */
    /* The MQTT thread's own: */
    s_msg_t *head, *tail;
    size_t n_msgs, bytes, window, max_bytes;
    unsigned n_waiting, backoff_ms;
    int paused, kick, stopping, was_up, had_fd, attempted;
    uint64_t next_retry_us, reconnect_at_us;
    char *line_buf;
    lc_counter_t *received[2], *acked, *refused[N_REFUSALS], *reconnects, *published, *dropped,
        *rt_refused, *retries;
    lc_gauge_t *inflight, *g_connected;
};

int gw_mqtt_url_parse(const char *url, char *host, size_t host_cap, char *port, size_t port_cap,
                      int *tls)
{
    *tls = strncmp(url, "mqtts://", 8) == 0;
    if (!*tls && strncmp(url, "mqtt://", 7) != 0)
        return LC_ERR_INVALID;
    const char *h = url + (*tls ? 8 : 7), *end = h + strlen(h), *colon;
    int bracketed = *h == '[';
    if (bracketed) { /* [IPv6]:port */
        const char *close = strchr(h, ']');
        if (!close || (close[1] != '\0' && close[1] != ':'))
            return LC_ERR_INVALID;
        colon = close[1] == ':' ? close + 1 : NULL;
        h++;
        end = close;
    } else {
        colon = strrchr(h, ':');
        if (colon)
            end = colon;
    }
    size_t hl = (size_t)(end - h);
    if (hl == 0 || hl >= host_cap || strcspn(h, "@/?#") < hl || (!bracketed && memchr(h, ':', hl)))
        return LC_ERR_INVALID;
    const char *p = colon ? colon + 1 : *tls ? "8883" : "1883";
    char *stop = NULL;
    long n = strtol(p, &stop, 10);
    if (*p < '0' || *p > '9' || *stop != '\0' || n < 1 || n > 65535 || strlen(p) >= port_cap)
        return LC_ERR_INVALID;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, port_cap, "%ld", n);
    return 0;
}

int gw_mqtt_connected(const gw_mqtt_t *self)
{
    return atomic_load(&((gw_mqtt_t *)self)->connected);
}

/* -- results --------------------------------------------------------------------------------- */

/* A reading that was refused before it parsed fully: its seq, read from the unverified payload
 * for the device's sake (the result names the reading). 0 with *seq, or -1. */
static int s_seq_of(const char *jws, size_t len, uint64_t *seq)
{
    uint8_t *buf = malloc(len + 1);
    lc_jws_t jw;
    int rc = -1;
    if (buf && lc_jws_parse(&jw, jws, len, buf, len + 1) == 0) {
        json_t *r = json_loadb((const char *)jw.payload, jw.payload_len, 0, NULL);
        json_t *s = json_object_get(r, "seq");
        if (json_is_integer(s) && json_integer_value(s) >= 0) {
            *seq = (uint64_t)json_integer_value(s);
            rc = 0;
        }
        json_decref(r);
    }
    if (buf)
        sodium_memzero(buf, len + 1);
    free(buf);
    return rc;
}

/* The result of one reading: {"seq","record_id","status":"accepted"} or {"seq","error",
 * "message"} (a 409 with record_id and next_seq). malloc'd, or NULL. */
static char *s_result_json(const s_line_t *l)
{
    const gw_result_t *r = &l->res;
    json_t *seq = l->has_seq ? json_integer((json_int_t)l->seq) : json_null();
    char rid[2 * LC_RECORD_ID_LEN + 1];
    if (lc_hex_encode(rid, sizeof rid, r->record_id, LC_RECORD_ID_LEN) < 0)
        rid[0] = '\0';
    json_t *j;
    if (r->status == 202)
        j = json_pack("{s:o, s:s, s:s}", "seq", seq, "record_id", rid, "status", "accepted");
    else if (r->status == 409)
        j = json_pack("{s:o, s:s, s:s, s:s, s:I}", "seq", seq, "error", r->error, "message",
                      r->message, "record_id", rid, "next_seq", (json_int_t)r->next_seq);
    else
        j = json_pack("{s:o, s:s, s:s}", "seq", seq, "error", r->error ? r->error : "internal",
                      "message", r->message);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* A response topic the gateway will publish to: under the device's own
 * lcore/v1/<device_id>/response/ (what the broker lets the device read, and the gateway publish),
 * no wildcard: a device must not make the gateway publish elsewhere. */
static int s_response_topic_ok(const char *t, size_t len, const char *device_id)
{
    char prefix[LC_DEVICE_ID_MAX + 24];
    size_t n = (size_t)snprintf(prefix, sizeof prefix, "lcore/v1/%s/response/", device_id);
    return len > n && memcmp(t, prefix, n) == 0 && !memchr(t, '+', len) && !memchr(t, '#', len);
}

static void s_send(gw_mqtt_t *self, const lc_mqtt_publish_t *p)
{
    int rc = lc_mqtt_publish(self->mq, p);
    if (rc == 0) {
        lc_counter_inc(self->published);
        return;
    }
    /* The reading's fate is decided and stored; only its notice is lost. */
    lc_counter_inc(self->dropped);
    lc_debug("mqtt_result_dropped", "err=\"%s\"", lc_strerror(rc));
}

static void s_publish_result(gw_mqtt_t *self, const s_msg_t *m, const s_line_t *l)
{
    char *json = s_result_json(l);
    if (!json) {
        lc_counter_inc(self->dropped);
        return;
    }
    char topic[LC_DEVICE_ID_MAX + 32];
    int n = snprintf(topic, sizeof topic, "lcore/v1/%s/result", m->device_id);
    lc_mqtt_publish_t p = {.qos = 1,
                           .topic = topic,
                           .topic_len = (size_t)n,
                           .payload = (const uint8_t *)json,
                           .payload_len = strlen(json),
                           .payload_format = 1};
    s_send(self, &p);
    if (m->response_topic) {
        p.topic = m->response_topic;
        p.topic_len = m->response_topic_len;
        p.correlation = m->correlation;
        p.correlation_len = m->correlation_len;
        s_send(self, &p);
    }
    free(json);
}

/* -- the window ------------------------------------------------------------------------------ */

static void s_free_msg(gw_mqtt_t *self, s_msg_t *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else if (self->head == m)
        self->head = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else if (self->tail == m)
        self->tail = m->prev;
    self->n_msgs--;
    self->bytes -= m->bytes;
    lc_gauge_set(self->inflight, (double)self->n_msgs);
    if (m->payload)
        sodium_memzero(m->payload, m->payload_len); /* signed readings */
    free(m->payload);
    free(m->lines);
    free(m->response_topic);
    free(m->correlation);
    free(m);
}

/* Every reading is final: publishes the results in line order, then acknowledges. A QoS 1
 * message of an older connection is only dropped: the broker sends it again on this one. */
static void s_finish(gw_mqtt_t *self, s_msg_t *m)
{
    int stale = m->qos == 1 &&
                (lc_mqtt_state(self->mq) == LC_MQTT_DOWN || m->conn != lc_mqtt_conn(self->mq));
    if (!stale) {
        for (size_t i = 0; i < m->n_lines; i++)
            s_publish_result(self, m, &m->lines[i]);
        if (m->qos == 1 && lc_mqtt_ack(self->mq, m->conn, m->pid) == 0)
            lc_counter_inc(self->acked);
    }
    s_free_msg(self, m);
}

/* Decides what comes next for a message not waiting for the log: a retry of its readings that
 * failed for a transient reason (backoff 100 ms doubling to 5 s), or the end. */
static void s_settle(gw_mqtt_t *self, s_msg_t *m)
{
    if (m->waiting)
        return;
    int pending = 0;
    for (size_t i = 0; i < m->n_lines && !pending; i++)
        pending = m->lines[i].pending;
    if (!pending) {
        s_finish(self, m);
        return;
    }
    if (self->stopping)
        return; /* left unacknowledged: the broker resends it */
    unsigned shift = m->attempts < 6 ? m->attempts : 6;
    unsigned delay = S_BACKOFF_MIN_MS << shift;
    m->attempts++;
    m->retry_at_us = lc_mono_us() + 1000ull * (delay < S_BACKOFF_MAX_MS ? delay : S_BACKOFF_MAX_MS);
    if (m->retry_at_us < self->next_retry_us)
        self->next_retry_us = m->retry_at_us;
}

/* The relay thread: the message's log entries are durable (status 0) or the log failed. Only
 * queues it and wakes the MQTT thread. */
static void s_durable(void *arg, int status)
{
    s_msg_t *m = arg;
    gw_mqtt_t *self = m->owner;
    pthread_mutex_lock(&self->lock);
    m->log_status = status;
    m->durable_next = self->durable;
    self->durable = m;
    pthread_mutex_unlock(&self->lock);
    uint64_t one = 1;
    if (write(self->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        lc_warn("mqtt_wakeup_failed", "errno=\"%s\"", strerror(errno));
}

/* The log said: the readings logged in the last pass are durable, or (the log failed) to be
 * tried again. */
static void s_logged(s_msg_t *m, int status)
{
    for (size_t i = 0; i < m->n_lines; i++) {
        s_line_t *l = &m->lines[i];
        if (l->res.status != 202 || l->durable || l->pending)
            continue;
        if (status == 0) {
            l->durable = 1;
        } else {
            l->pending = 1;
            l->res.status = 503;
        }
    }
}

/* Waits for log entry lsn (the pass's last: the log is written in order). */
static void s_wait(gw_mqtt_t *self, s_msg_t *m, uint64_t lsn)
{
    m->waiting = 1;
    self->n_waiting++;
    int rc = gw_wal_notify(self->d.wal, lsn, s_durable, m);
    if (rc != 0) { /* already durable, or no callback will come */
        m->waiting = 0;
        self->n_waiting--;
        s_logged(m, rc < 0 ? rc : 0);
    }
}

static void s_take_durable(gw_mqtt_t *self)
{
    pthread_mutex_lock(&self->lock);
    s_msg_t *list = self->durable, *fifo = NULL;
    self->durable = NULL;
    pthread_mutex_unlock(&self->lock);
    while (list) { /* oldest first */
        s_msg_t *next = list->durable_next;
        list->durable_next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo) {
        s_msg_t *m = fifo;
        fifo = m->durable_next;
        m->waiting = 0;
        self->n_waiting--;
        s_logged(m, m->log_status);
        s_settle(self, m);
    }
}

/* -- ingest ---------------------------------------------------------------------------------- */

/* Whether the JWS names the topic's device as its kid: 0 yes, 1 no (none, or another), -1 it
 * does not parse (the ingest says why). */
static int s_kid_differs(const char *jws, size_t len, const char *device_id)
{
    uint8_t *buf = malloc(len + 1);
    lc_jws_t jw;
    int rc = -1;
    if (buf && lc_jws_parse(&jw, jws, len, buf, len + 1) == 0)
        rc = strcmp(jw.kid, device_id) != 0;
    if (buf)
        sodium_memzero(buf, len + 1);
    free(buf);
    return rc;
}

static void s_count_refusal(gw_mqtt_t *self, const char *error)
{
    for (size_t i = 0; error && i < N_REFUSALS; i++)
        if (strcmp(error, s_refusals[i]) == 0)
            lc_counter_inc(self->refused[i]);
}

/* One reading through the path of POST /v1/data, with a kid required and equal to the topic's
 * device (as HTTP requires a kid). */
static void s_ingest_line(gw_mqtt_t *self, s_msg_t *m, s_line_t *l)
{
    const char *jws = m->payload + l->off;
    gw_result_t *r = &l->res;
    int parsable = l->len <= (size_t)self->cfg->max_reading_bytes;
    gw_checked_t c;
    if (parsable && s_kid_differs(jws, l->len, m->device_id) == 1) {
        memset(r, 0, sizeof *r);
        r->status = 400;
        r->error = "malformed";
        snprintf(r->message, sizeof r->message,
                 "header kid must be the topic's device id (lcore/v1/<kid>/...)");
    } else if (gw_ingest_check(self->d.ingest, jws, l->len, NULL, m->device_id, NULL, &c, r) == 0) {
        l->seq = c.seq;
        l->has_seq = 1;
        gw_ingest_accept(self->d.ingest, jws, l->len, &c, r);
    }
    l->pending = r->status == 503; /* log full or failed, registry away, out of memory */
    if (r->status == 202 || l->pending)
        return;
    s_count_refusal(self, r->error);
    if (!l->has_seq && parsable)
        l->has_seq = s_seq_of(jws, l->len, &l->seq) == 0;
}

/* Runs the readings still pending, then waits for the log or settles. */
static void s_ingest(gw_mqtt_t *self, s_msg_t *m)
{
    uint64_t lsn = 0;
    for (size_t i = 0; i < m->n_lines; i++) {
        s_line_t *l = &m->lines[i];
        if (!l->pending)
            continue;
        s_ingest_line(self, m, l);
        if (l->res.status == 202 && l->res.lsn > lsn)
            lsn = l->res.lsn;
    }
    if (lsn)
        s_wait(self, m, lsn);
    s_settle(self, m);
}

/* -- messages -------------------------------------------------------------------------------- */

/* lcore/v1/<device_id>/data or /batch: the device id and which. 0, or -1. */
static int s_topic(const char *t, size_t len, char *device_id, int *batch)
{
    if (len < 10 || memcmp(t, "lcore/v1/", 9) != 0)
        return -1;
    const char *dev = t + 9, *slash = memchr(dev, '/', len - 9);
    if (!slash)
        return -1;
    size_t dl = (size_t)(slash - dev), rl = len - 9 - dl - 1;
    if (!lc_device_id_valid(dev, dl))
        return -1;
    if (rl == 4 && memcmp(slash + 1, "data", 4) == 0)
        *batch = 0;
    else if (rl == 5 && memcmp(slash + 1, "batch", 5) == 0)
        *batch = 1;
    else
        return -1;
    memcpy(device_id, dev, dl);
    device_id[dl] = '\0';
    return 0;
}

static int s_count_line(void *arg, const char *line, size_t len)
{
    (void)line;
    (void)len;
    return ++*(size_t *)arg > S_MAX_LINES;
}

static int s_add_line(void *arg, const char *line, size_t len)
{
    s_msg_t *m = arg;
    /* A line longer than a reading (line NULL) is refused on its length alone (413). */
    m->lines[m->n_lines++] =
        (s_line_t){.off = line ? (size_t)(line - m->payload) : 0, .len = len, .pending = 1};
    return 0;
}

/* The message's readings: one for a data message (trailing white space is not signed), one a
 * line for a batch (the payload ends with a newline added by s_msg_new). A batch of no line or
 * over 1000 is refused whole: one result, nothing logged. 0, or LC_ERR_NOMEM. */
static int s_split(gw_mqtt_t *self, s_msg_t *m, int batch)
{
    size_t n = 1;
    gw_lines_t sp;
    if (batch) {
        n = 0;
        gw_lines_init(&sp, self->line_buf, (size_t)self->cfg->max_reading_bytes);
        gw_lines_feed(&sp, m->payload, m->payload_len, s_count_line, &n);
    }
    if (!(m->lines = calloc(n && n <= S_MAX_LINES ? n : 1, sizeof *m->lines)))
        return LC_ERR_NOMEM;
    m->bytes += (n && n <= S_MAX_LINES ? n : 1) * sizeof *m->lines;
    if (!batch) {
        size_t len = m->payload_len;
        while (len && (m->payload[len - 1] == '\n' || m->payload[len - 1] == '\r' ||
                       m->payload[len - 1] == ' '))
            len--;
        m->lines[0] = (s_line_t){.off = 0, .len = len, .pending = 1};
        m->n_lines = 1;
    } else if (n == 0 || n > S_MAX_LINES) {
        gw_result_t *r = &m->lines[0].res;
        r->status = n ? 413 : 400;
        r->error = n ? "too_large" : "malformed";
        snprintf(r->message, sizeof r->message, "%s",
                 n ? "a batch holds at most 1000 readings" : "empty batch: one JWS per line");
        s_count_refusal(self, r->error);
        m->n_lines = 1;
    } else {
        gw_lines_init(&sp, self->line_buf, (size_t)self->cfg->max_reading_bytes);
        gw_lines_feed(&sp, m->payload, m->payload_len, s_add_line, m);
    }
    return 0;
}

/* A copy of what the message holds: the payload (a batch's with a newline added), the
 * response topic and correlation data when the topic is the device's own. NULL out of memory. */
static s_msg_t *s_msg_new(gw_mqtt_t *self, uint32_t conn, const lc_mqtt_publish_t *p,
                          const char *device_id, int batch)
{
    s_msg_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    *m = (s_msg_t){.owner = self, .conn = conn, .pid = p->pid, .qos = p->qos};
    snprintf(m->device_id, sizeof m->device_id, "%s", device_id);
    m->payload_len = p->payload_len + (size_t)batch;
    int ok = (m->payload = malloc(m->payload_len + 1)) != NULL;
    if (ok) {
        memcpy(m->payload, p->payload, p->payload_len);
        m->payload[p->payload_len] = '\n'; /* a batch's last line ends */
    }
    if (ok && p->response_topic) {
        if (!s_response_topic_ok(p->response_topic, p->response_topic_len, device_id)) {
            lc_counter_inc(self->rt_refused);
        } else if ((ok = (m->response_topic = malloc(p->response_topic_len + 1)) != NULL)) {
            memcpy(m->response_topic, p->response_topic, p->response_topic_len);
            m->response_topic_len = p->response_topic_len;
            if (p->correlation_len &&
                (ok = (m->correlation = malloc(p->correlation_len)) != NULL)) {
                memcpy(m->correlation, p->correlation, p->correlation_len);
                m->correlation_len = p->correlation_len;
            }
        }
    }
    m->bytes = sizeof *m + m->payload_len + m->response_topic_len + m->correlation_len;
    if (!ok || s_split(self, m, batch) < 0) {
        if (m->payload)
            sodium_memzero(m->payload, m->payload_len);
        free(m->payload);
        free(m->response_topic);
        free(m->correlation);
        free(m->lines);
        free(m);
        return NULL;
    }
    return m;
}

/* Pauses reading while the window is full, in messages or in bytes (the broker may send past
 * our Receive Maximum: lc_mqtt_over_window); resumes below both. */
static void s_update_pause(gw_mqtt_t *self)
{
    int want = self->stopping || self->n_msgs >= self->window || self->bytes >= self->max_bytes;
    if (want == self->paused)
        return;
    self->paused = want;
    lc_mqtt_pause(self->mq, want);
    if (!want)
        self->kick = 1; /* packets already read wait to be decoded */
}

/* lc_mqtt's on_message: a reading (or a batch) from a device, decided at once where it can be. */
static void s_on_message(void *arg, uint32_t conn, const lc_mqtt_publish_t *p)
{
    gw_mqtt_t *self = arg;
    char device_id[LC_DEVICE_ID_MAX + 1];
    int batch = 0;
    if (s_topic(p->topic, p->topic_len, device_id, &batch) < 0) {
        lc_counter_inc(self->refused[0]);
        lc_warn("mqtt_topic_refused", "topic_len=%zu", p->topic_len);
        if (p->qos == 1 && lc_mqtt_ack(self->mq, conn, p->pid) == 0)
            lc_counter_inc(self->acked);
        return;
    }
    lc_counter_inc(self->received[batch]);
    s_msg_t *m = s_msg_new(self, conn, p, device_id, batch);
    if (!m) { /* unacknowledged: the broker resends it on the next connection */
        lc_error("mqtt_message_not_held", "device_id=%s err=out_of_memory", device_id);
        return;
    }
    m->prev = self->tail;
    if (self->tail)
        self->tail->next = m;
    else
        self->head = m;
    self->tail = m;
    self->n_msgs++;
    self->bytes += m->bytes;
    lc_gauge_set(self->inflight, (double)self->n_msgs);
    s_ingest(self, m);
    s_update_pause(self);
}

/* -- the thread ------------------------------------------------------------------------------ */

/* Retries the messages whose time has come; those of an older connection are dropped (the
 * broker resends them). */
static void s_retry_due(gw_mqtt_t *self)
{
    uint64_t now = lc_mono_us();
    if (self->stopping || now < self->next_retry_us)
        return;
    self->next_retry_us = UINT64_MAX;
    for (s_msg_t *m = self->head, *next; m; m = next) {
        next = m->next;
        if (!m->retry_at_us)
            continue;
        if (m->retry_at_us > now) {
            if (m->retry_at_us < self->next_retry_us)
                self->next_retry_us = m->retry_at_us;
            continue;
        }
        m->retry_at_us = 0;
        if (m->qos == 1 && m->conn != lc_mqtt_conn(self->mq)) {
            s_free_msg(self, m);
            continue;
        }
        lc_counter_inc(self->retries);
        s_ingest(self, m); /* may end it: next was taken first */
    }
}

/* The next connection in backoff_ms, which doubles up to 5 s (reset once connected). */
static void s_backoff(gw_mqtt_t *self, uint64_t now)
{
    self->reconnect_at_us = now + 1000ull * self->backoff_ms;
    self->backoff_ms =
        self->backoff_ms * 2 < S_BACKOFF_MAX_MS ? self->backoff_ms * 2 : S_BACKOFF_MAX_MS;
}

/* Follows the connection: up (gauge, backoff reset), lost (logged, reconnection scheduled),
 * and reconnects when due. */
static void s_connection(gw_mqtt_t *self)
{
    int st = lc_mqtt_state(self->mq);
    uint64_t now = lc_mono_us();
    if ((st == LC_MQTT_UP) != self->was_up) {
        self->was_up = st == LC_MQTT_UP;
        atomic_store(&self->connected, self->was_up);
        lc_gauge_set(self->g_connected, self->was_up);
        if (self->was_up) {
            self->backoff_ms = S_BACKOFF_MIN_MS;
            lc_info("mqtt_connected", "broker=%s:%s client_id=%s session_present=%d", self->host,
                    self->port, self->cfg->mqtt_client_id, lc_mqtt_session_present(self->mq));
        }
    }
    if (st == LC_MQTT_DOWN && self->had_fd) {
        self->had_fd = 0;
        lc_warn("mqtt_connection_lost", "broker=%s:%s err=\"%s\" held=%zu", self->host, self->port,
                lc_mqtt_error(self->mq), self->n_msgs);
        s_backoff(self, now);
    }
    if (st != LC_MQTT_DOWN || self->stopping || now < self->reconnect_at_us)
        return;
    if (self->attempted++)
        lc_counter_inc(self->reconnects);
    if (lc_mqtt_connect(self->mq, self->host, self->port) == 0) {
        self->had_fd = 1;
        return;
    }
    lc_warn("mqtt_connect_failed", "broker=%s:%s err=\"%s\"", self->host, self->port,
            lc_mqtt_error(self->mq));
    s_backoff(self, now);
}

/* How long poll may wait: lc_mqtt's timers, the next retry, the next reconnection (1 s at most). */
static int s_timeout(gw_mqtt_t *self)
{
    if (self->kick) {
        self->kick = 0;
        return 0;
    }
    uint64_t now = lc_mono_us(), due = now + 1000000;
    int t = lc_mqtt_timeout_ms(self->mq);
    if (t >= 0 && now + 1000ull * (uint64_t)t < due)
        due = now + 1000ull * (uint64_t)t;
    if (!self->stopping && self->next_retry_us < due)
        due = self->next_retry_us;
    if (!self->stopping && lc_mqtt_state(self->mq) == LC_MQTT_DOWN && self->reconnect_at_us < due)
        due = self->reconnect_at_us;
    return due <= now ? 0 : (int)((due - now + 999) / 1000);
}

/* SIGTERM: stop reading, then go on until what waits for the log is answered (drain_ms). */
static int s_done(gw_mqtt_t *self, uint64_t *deadline)
{
    if (!atomic_load(&self->stop))
        return 0;
    if (!self->stopping) {
        self->stopping = 1;
        s_update_pause(self);
        *deadline = lc_mono_us() + 1000ull * (uint64_t)self->cfg->drain_ms;
        lc_info("mqtt_stopping", "held=%zu waiting_for_log=%u", self->n_msgs, self->n_waiting);
    }
    return self->n_waiting == 0 || lc_mono_us() >= *deadline;
}

static void *s_thread(void *arg)
{
    gw_mqtt_t *self = arg;
    uint64_t deadline = 0;
    while (!s_done(self, &deadline)) {
        struct pollfd pfd[2] = {{.fd = self->wake_fd, .events = POLLIN},
                                {.fd = lc_mqtt_fd(self->mq), .events = lc_mqtt_events(self->mq)}};
        int n = poll(pfd, 2, s_timeout(self));
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            if (read(self->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                lc_warn("mqtt_wakeup_failed", "errno=\"%s\"", strerror(errno));
        }
        s_take_durable(self);
        s_retry_due(self);
        if (lc_mqtt_fd(self->mq) >= 0)
            (void)lc_mqtt_service(self->mq, n > 0 ? pfd[1].revents : 0); /* loss: s_connection */
        s_connection(self);
        s_update_pause(self);
    }
    lc_mqtt_disconnect(self->mq, S_DISCONNECT_MS); /* writes the acks and results queued */
    atomic_store(&self->connected, 0);
    lc_gauge_set(self->g_connected, 0);
    return NULL;
}

/* -- life ------------------------------------------------------------------------------------ */

static void s_metrics(gw_mqtt_t *self, lc_metrics_t *mx)
{
    self->received[0] =
        lc_metrics_counter(mx, "lcore_gateway_mqtt_messages_received_total",
                           "MQTT messages received from devices, by topic", "topic=\"data\"");
    self->received[1] =
        lc_metrics_counter(mx, "lcore_gateway_mqtt_messages_received_total",
                           "MQTT messages received from devices, by topic", "topic=\"batch\"");
    self->acked = lc_metrics_counter(mx, "lcore_gateway_mqtt_acked_total",
                                     "MQTT messages acknowledged to the broker (every reading "
                                     "durable or refused)",
                                     NULL);
    for (size_t i = 0; i < N_REFUSALS; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", s_refusals[i]);
        self->refused[i] = lc_metrics_counter(mx, "lcore_gateway_mqtt_refused_total",
                                              "MQTT readings refused for good, by reason", labels);
    }
    self->reconnects = lc_metrics_counter(mx, "lcore_gateway_mqtt_reconnects_total",
                                          "Connections to the broker tried after the first", NULL);
    self->published = lc_metrics_counter(mx, "lcore_gateway_mqtt_results_published_total",
                                         "Result messages queued for the broker", NULL);
    self->dropped = lc_metrics_counter(mx, "lcore_gateway_mqtt_results_dropped_total",
                                       "Result messages not queued (queue full)", NULL);
    self->rt_refused =
        lc_metrics_counter(mx, "lcore_gateway_mqtt_response_topics_refused_total",
                           "MQTT 5 response topics outside the device's own topics, ignored", NULL);
    self->retries = lc_metrics_counter(mx, "lcore_gateway_mqtt_retries_total",
                                       "MQTT messages tried again after a transient failure", NULL);
    self->inflight = lc_metrics_gauge(mx, "lcore_gateway_mqtt_inflight",
                                      "MQTT messages held, not yet acknowledged", NULL);
    self->g_connected = lc_metrics_gauge(mx, "lcore_gateway_mqtt_connected",
                                         "1 while connected and subscribed to the broker", NULL);
}

void gw_mqtt_export_off(lc_metrics_t *metrics)
{
    gw_mqtt_t off;
    s_metrics(&off, metrics); /* all zero */
}

/* The broker connection, with the password read from its file and wiped here. */
static int s_open_mqtt(gw_mqtt_t *self, int tls)
{
    const gw_config_t *cfg = self->cfg;
    char password[512];
    int rc = lc_token_read_file(password, sizeof password, cfg->mqtt_password_file);
    if (rc != 0) {
        lc_error("mqtt_password_unreadable", "path=%s err=\"%s\"", cfg->mqtt_password_file,
                 lc_strerror(rc));
        sodium_memzero(password, sizeof password);
        return -1;
    }
    uint64_t max_packet = (uint64_t)cfg->max_request_batch_bytes + S_PACKET_OVERHEAD;
    lc_mqtt_opts_t o = {
        .client_id = cfg->mqtt_client_id,
        .username = cfg->mqtt_username,
        .password = (const uint8_t *)password,
        .password_len = strlen(password),
        .keep_alive_s = S_KEEP_ALIVE_S,
        .session_expiry_s = S_SESSION_EXPIRY_S,
        .receive_max = (uint16_t)cfg->mqtt_inflight,
        .max_packet =
            (uint32_t)(max_packet < LC_MQTT_MAX_REMAINING ? max_packet : LC_MQTT_MAX_REMAINING),
        .filters = s_filters,
        .n_filters = LC_ARRAY_LEN(s_filters),
        .max_queued = 65535,
        .on_message = s_on_message,
        .arg = self,
        .tls_ca_file = tls ? cfg->mqtt_ca_file : NULL};
    self->mq = lc_mqtt_new(&o);
    sodium_memzero(password, sizeof password);
    if (!self->mq)
        lc_error("mqtt_client_failed", "client_id=%s", cfg->mqtt_client_id);
    return self->mq ? 0 : -1;
}

gw_mqtt_t *gw_mqtt_new(const gw_mqtt_deps_t *deps)
{
    gw_mqtt_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->d = *deps;
    self->cfg = deps->cfg;
    self->wake_fd = -1;
    self->window = (size_t)self->cfg->mqtt_inflight;
    self->max_bytes = (size_t)self->cfg->body_budget_bytes;
    self->backoff_ms = S_BACKOFF_MIN_MS;
    self->next_retry_us = UINT64_MAX;
    pthread_mutex_init(&self->lock, NULL);
    s_metrics(self, deps->metrics);
    int tls = 0;
    if (gw_mqtt_url_parse(self->cfg->mqtt_url, self->host, sizeof self->host, self->port,
                          sizeof self->port, &tls) != 0 ||
        !(self->line_buf = malloc((size_t)self->cfg->max_reading_bytes)) ||
        (self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        s_open_mqtt(self, tls) < 0 || pthread_create(&self->thread, NULL, s_thread, self) != 0) {
        lc_error("mqtt_start_failed", "broker=%s", self->host);
        gw_mqtt_destroy(&self);
        return NULL;
    }
    self->started = 1;
    lc_info("mqtt_started", "broker=%s:%s tls=%s username=%s client_id=%s inflight=%zu", self->host,
            self->port, tls ? "on" : "off", self->cfg->mqtt_username, self->cfg->mqtt_client_id,
            self->window);
    return self;
}

void gw_mqtt_destroy(gw_mqtt_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_mqtt_t *self = *self_p;
    *self_p = NULL;
    if (self->started) {
        atomic_store(&self->stop, 1);
        uint64_t one = 1;
        if (write(self->wake_fd, &one, sizeof one) < 0)
            lc_warn("mqtt_wakeup_failed", "errno=\"%s\"", strerror(errno));
        pthread_join(self->thread, NULL);
    }
    lc_mqtt_destroy(&self->mq);
    if (self->n_waiting) {
        /* The log may still call back into these messages: they (and self) are left to it. */
        lc_warn("mqtt_stop_with_waiting", "messages=%u", self->n_waiting);
        return;
    }
    lc_info("mqtt_stopped", "unacknowledged=%zu", self->n_msgs);
    while (self->head)
        s_free_msg(self, self->head);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    pthread_mutex_destroy(&self->lock);
    free(self->line_buf);
    free(self);
}
