/* sim_pool.c: keep-alive connection pool and token-bucket pacing over libcurl multi.
 * See sim_pool.h. Each connection is one easy handle that is re-added for every request, so
 * libcurl reuses its TCP connection (the multi handle's cache holds exactly `connections`).
 * Jobs to send again wait in a min-heap ordered by the time they may leave. */
#include "sim_pool.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_curlbuf.h"
#include "lc_log.h"

#define SIM_POOL_TICK_US 1000000u
#define SIM_POOL_IDLE_WAIT_US 100000u    /* longest sleep between checks of *stop */
#define SIM_POOL_ERROR_PAUSE_US 100000u  /* after a transport error: do not spin */
#define SIM_POOL_RETRY_AFTER_DEFAULT_S 1 /* 429/503 without Retry-After */
#define SIM_POOL_RETRY_AFTER_MAX_S 30    /* never park a connection longer than this */
#define SIM_POOL_BURST_S 0.02            /* token bucket depth: 20 ms of rate */
#define SIM_POOL_BACKOFF_MIN_US 200000u  /* first retry without Retry-After... */
#define SIM_POOL_BACKOFF_MAX_US 2000000u /* ...doubling up to this */

typedef struct {
    CURL *easy;
    int busy;
    size_t job;
    unsigned attempt;     /* of the job in flight: 0 first send, n n-th retry */
    uint64_t ready_at_us; /* monotonic; paused until then (Retry-After, transport error) */
    lc_curlbuf_t rx;
    char errbuf[CURL_ERROR_SIZE];
} conn_t;

/* A job waiting to be sent again. */
typedef struct {
    uint64_t ready_at_us; /* monotonic; not before */
    size_t job;
    unsigned attempt;
} retry_t;

struct sim_pool {
    CURLM *multi;
    char *base_url;
    conn_t *conns;
    unsigned n_conns;
    long timeout_ms;
    retry_t *retries; /* min-heap on ready_at_us; emptied at the end of every run */
    size_t n_retries, retries_cap;
    int retry_nomem_logged;
};

static int s_retry_push(sim_pool_t *self, retry_t item)
{
    if (self->n_retries == self->retries_cap) {
        size_t cap = self->retries_cap ? self->retries_cap * 2 : 256;
        retry_t *p = realloc(self->retries, cap * sizeof *p);
        if (!p)
            return LC_ERR_NOMEM;
        self->retries = p;
        self->retries_cap = cap;
    }
    size_t i = self->n_retries++;
    while (i > 0 && self->retries[(i - 1) / 2].ready_at_us > item.ready_at_us) {
        self->retries[i] = self->retries[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    self->retries[i] = item;
    return 0;
}

static retry_t s_retry_pop(sim_pool_t *self)
{
    assert(self->n_retries > 0);
    retry_t top = self->retries[0];
    retry_t last = self->retries[--self->n_retries];
    size_t i = 0, n = self->n_retries;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n &&
            self->retries[child + 1].ready_at_us < self->retries[child].ready_at_us)
            child++;
        if (self->retries[child].ready_at_us >= last.ready_at_us)
            break;
        self->retries[i] = self->retries[child];
        i = child;
    }
    if (n > 0)
        self->retries[i] = last;
    return top;
}

/* How long a job waits before it is sent again: what Retry-After said (capped like a
 * connection's pause), else 200 ms doubling with every attempt up to 2 s. */
static uint64_t s_retry_delay_us(curl_off_t retry_after_s, unsigned attempt)
{
    if (retry_after_s > 0) {
        if (retry_after_s > SIM_POOL_RETRY_AFTER_MAX_S)
            retry_after_s = SIM_POOL_RETRY_AFTER_MAX_S;
        return (uint64_t)retry_after_s * 1000000u;
    }
    uint64_t d = (uint64_t)SIM_POOL_BACKOFF_MIN_US << (attempt < 4 ? attempt : 4);
    return d < SIM_POOL_BACKOFF_MAX_US ? d : SIM_POOL_BACKOFF_MAX_US;
}

static int s_conn_init(conn_t *c, long timeout_ms, const char *ca_file)
{
    c->easy = curl_easy_init();
    if (!c->easy)
        return LC_ERR_NOMEM;
    CURL *e = c->easy;
    CURLcode rc = CURLE_OK;
    /* HTTP/1.1 keep-alive, Nagle off: small requests must not wait for the peer's delayed ACK. */
    rc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, "lcore-sim/0.1");
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, lc_curlbuf_write);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->rx);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    /* https: the peer is verified (libcurl's default), against ca_file when one is given. */
    if (ca_file && *ca_file)
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    return rc == CURLE_OK ? 0 : LC_ERR_INVALID;
}

sim_pool_t *sim_pool_new(const char *base_url, unsigned connections, double timeout_s,
                         const char *ca_file)
{
    if (connections == 0)
        return NULL;
    sim_pool_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n_conns = connections;
    self->timeout_ms = (long)(timeout_s * 1000.0);
    self->base_url = strdup(base_url);
    self->conns = calloc(connections, sizeof *self->conns);
    self->multi = curl_multi_init();
    if (!self->base_url || !self->conns || !self->multi)
        goto fail;
    CURLMcode mrc = CURLM_OK;
    mrc |= curl_multi_setopt(self->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)connections);
    mrc |= curl_multi_setopt(self->multi, CURLMOPT_MAXCONNECTS, (long)connections);
    mrc |= curl_multi_setopt(self->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    if (mrc != CURLM_OK)
        goto fail;
    for (unsigned i = 0; i < connections; i++) {
        if (s_conn_init(&self->conns[i], self->timeout_ms, ca_file) < 0)
            goto fail;
    }
    return self;
fail:
    lc_error("pool_init_failed", "connections=%u", connections);
    sim_pool_destroy(&self);
    return NULL;
}

void sim_pool_destroy(sim_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sim_pool_t *self = *self_p;
    for (unsigned i = 0; self->conns && i < self->n_conns; i++) {
        conn_t *c = &self->conns[i];
        if (c->easy && c->busy)
            curl_multi_remove_handle(self->multi, c->easy);
        if (c->easy)
            curl_easy_cleanup(c->easy);
        lc_curlbuf_free(&c->rx);
    }
    free(self->retries);
    if (self->multi)
        curl_multi_cleanup(self->multi);
    free(self->conns);
    free(self->base_url);
    free(self);
    *self_p = NULL;
}

static struct curl_slist *s_headers(const sim_pool_run_t *run)
{
    char line[512];
    struct curl_slist *h = NULL, *next;
    /* Without this libcurl may wait for "100 Continue" before sending a large request batch. */
    if (!(next = curl_slist_append(h, "Expect:")))
        goto fail;
    h = next;
    snprintf(line, sizeof line, "Content-Type: %s", run->content_type);
    if (!(next = curl_slist_append(h, line)))
        goto fail;
    h = next;
    if (run->bearer) {
        char *auth = NULL;
        if (asprintf(&auth, "Authorization: Bearer %s", run->bearer) < 0)
            goto fail;
        next = curl_slist_append(h, auth);
        free(auth);
        if (!next)
            goto fail;
        h = next;
    }
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

static int s_dispatch(sim_pool_t *self, conn_t *c, size_t job_index, unsigned attempt,
                      const sim_job_t *job)
{
    lc_curlbuf_reset(&c->rx);
    c->errbuf[0] = '\0';
    CURLcode rc = CURLE_OK;
    rc |= curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->body_len);
    rc |= curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, job->body);
    if (rc != CURLE_OK || curl_multi_add_handle(self->multi, c->easy) != CURLM_OK)
        return LC_ERR_INVALID;
    c->busy = 1;
    c->job = job_index;
    c->attempt = attempt;
    return 0;
}

/* Reads one finished transfer, frees its connection (pausing it on backpressure or error),
 * hands the reply to the caller and queues the job again when the caller asks. */
static void s_complete(sim_pool_t *self, const sim_pool_run_t *run, CURL *easy, CURLcode result,
                       uint64_t now)
{
    conn_t *c = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
    long status = 0;
    curl_off_t total_us = 0, retry_after = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us);
    curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after);
    curl_multi_remove_handle(self->multi, easy);
    c->busy = 0;

    sim_reply_t reply = {
        .status = result == CURLE_OK ? status : 0,
        .body = lc_curlbuf_text(&c->rx),
        .body_len = c->rx.len,
        .latency_us = total_us > 0 ? (uint64_t)total_us : 0,
    };
    if (result != CURLE_OK) {
        reply.error = c->errbuf[0] ? c->errbuf : curl_easy_strerror(result);
        c->ready_at_us = now + SIM_POOL_ERROR_PAUSE_US;
    } else if (status == 429 || status == 503) {
        curl_off_t pause = retry_after > 0 ? retry_after : SIM_POOL_RETRY_AFTER_DEFAULT_S;
        if (pause > SIM_POOL_RETRY_AFTER_MAX_S)
            pause = SIM_POOL_RETRY_AFTER_MAX_S;
        c->ready_at_us = now + (uint64_t)pause * 1000000u;
    }
    if (!run->on_reply(run->ctx, c->job, &reply))
        return;
    retry_t again = {
        .ready_at_us = now + s_retry_delay_us(result == CURLE_OK ? retry_after : 0, c->attempt),
        .job = c->job,
        .attempt = c->attempt + 1,
    };
    if (s_retry_push(self, again) < 0 && !self->retry_nomem_logged) {
        self->retry_nomem_logged = 1;
        lc_error("retry_queue_failed", "error=\"%s\" job=%zu", lc_strerror(LC_ERR_NOMEM), c->job);
    }
}

/* The first connection from index `from` on that is free to send now; else NULL, lowering
 * *wait_us to the end of the shortest pause. */
static conn_t *s_idle_conn(sim_pool_t *self, unsigned from, uint64_t now, uint64_t *wait_us)
{
    for (unsigned i = from; i < self->n_conns; i++) {
        conn_t *c = &self->conns[i];
        if (c->busy)
            continue;
        if (c->ready_at_us <= now)
            return c;
        if (c->ready_at_us - now < *wait_us)
            *wait_us = c->ready_at_us - now;
    }
    return NULL;
}

int sim_pool_run(sim_pool_t *self, const sim_pool_run_t *run, const sim_job_t *jobs, size_t n_jobs,
                 double *elapsed_s)
{
    int rc = 0;
    char *url = NULL;
    struct curl_slist *headers = s_headers(run);
    *elapsed_s = 0;
    if (!headers || asprintf(&url, "%s%s", self->base_url, run->path) < 0) {
        url = NULL;
        rc = LC_ERR_NOMEM;
        goto out;
    }
    for (unsigned i = 0; i < self->n_conns; i++) {
        conn_t *c = &self->conns[i];
        CURLcode crc = curl_easy_setopt(c->easy, CURLOPT_URL, url);
        crc |= curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, headers);
        if (crc != CURLE_OK) {
            rc = LC_ERR_INVALID;
            goto out;
        }
        c->ready_at_us = 0;
    }

    uint32_t max_units = 1;
    for (size_t j = 0; j < n_jobs; j++)
        max_units = jobs[j].units > max_units ? jobs[j].units : max_units;
    /* The bucket holds at least two requests' worth: one so that request batches larger than 20 ms
     * of rate still go out, one more so that waking up a little late (poll has 1 ms steps) does not
     * throw tokens away. It starts with one request so the first leaves at once. */
    double burst = run->rate * SIM_POOL_BURST_S;
    if (burst < 2.0 * max_units)
        burst = 2.0 * max_units;
    double tokens = max_units;

    const uint64_t start = lc_mono_us();
    const uint64_t deadline = run->duration_s > 0 ? start + (uint64_t)(run->duration_s * 1e6) : 0;
    uint64_t last_refill = start, next_tick = start + SIM_POOL_TICK_US, last_reply = start;
    uint64_t retry_deadline = 0; /* set when new jobs stop going out */
    size_t next_job = 0;
    unsigned in_flight = 0;
    int dispatching = 1;
    self->n_retries = 0;

    for (;;) {
        uint64_t now = lc_mono_us();
        const int stopped = run->stop && *run->stop;
        if (dispatching && (stopped || (deadline && now >= deadline) || next_job >= n_jobs)) {
            dispatching = 0;
            retry_deadline = now + (uint64_t)(run->retry_for_s > 0 ? run->retry_for_s * 1e6 : 0);
        }
        const int retrying = !stopped && (dispatching || now < retry_deadline);
        if (run->rate > 0) {
            tokens += (double)(now - last_refill) * run->rate / 1e6;
            if (tokens > burst)
                tokens = burst;
        }
        last_refill = now;

        uint64_t wait_us = SIM_POOL_IDLE_WAIT_US;
        if (next_tick > now && next_tick - now < wait_us)
            wait_us = next_tick - now;
        if (deadline && dispatching && deadline - now < wait_us)
            wait_us = deadline - now;
        /* Retries first, so an unpaced load does not starve them; but while new jobs still go
         * out, only on the upper half of the connections. A failed request pauses its
         * connection, so this keeps the lower half's pauses to those of new jobs, and so the
         * offered rate of new jobs what it would be without retries. */
        const unsigned retry_from = dispatching ? self->n_conns / 2 : 0;
        while (retrying && self->n_retries > 0) {
            if (self->retries[0].ready_at_us > now) {
                if (self->retries[0].ready_at_us - now < wait_us)
                    wait_us = self->retries[0].ready_at_us - now;
                break;
            }
            conn_t *c = s_idle_conn(self, retry_from, now, &wait_us);
            if (!c)
                break;
            retry_t again = s_retry_pop(self);
            if (s_dispatch(self, c, again.job, again.attempt, &jobs[again.job]) < 0) {
                lc_error("dispatch_failed", "job=%zu attempt=%u", again.job, again.attempt);
                rc = LC_ERR_INVALID;
                dispatching = 0; /* drain what is in flight, send nothing more */
                self->n_retries = 0;
                break;
            }
            in_flight++;
            if (run->on_send)
                run->on_send(run->ctx, again.job, again.attempt);
        }
        for (unsigned i = 0; dispatching && i < self->n_conns && next_job < n_jobs; i++) {
            conn_t *c = &self->conns[i];
            if (c->busy)
                continue;
            if (c->ready_at_us > now) {
                if (c->ready_at_us - now < wait_us)
                    wait_us = c->ready_at_us - now;
                continue;
            }
            const sim_job_t *job = &jobs[next_job];
            if (run->rate > 0 && tokens < job->units) {
                uint64_t need = (uint64_t)((job->units - tokens) * 1e6 / run->rate) + 1;
                if (need < wait_us)
                    wait_us = need;
                break;
            }
            if (s_dispatch(self, c, next_job, 0, job) < 0) {
                lc_error("dispatch_failed", "job=%zu", next_job);
                rc = LC_ERR_INVALID;
                dispatching = 0;
                break;
            }
            tokens -= job->units;
            in_flight++;
            if (run->on_send)
                run->on_send(run->ctx, next_job, 0);
            next_job++;
        }
        /* Done when nothing is in flight and no queued retry may still leave in time. */
        if (!dispatching && in_flight == 0 &&
            (!retrying || self->n_retries == 0 || self->retries[0].ready_at_us >= retry_deadline))
            break;

        int running = 0;
        curl_multi_perform(self->multi, &running);
        int progressed = 0;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(self->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            now = lc_mono_us();
            s_complete(self, run, msg->easy_handle, msg->data.result, now);
            in_flight--;
            last_reply = now;
            progressed = 1;
        }
        now = lc_mono_us();
        if (now >= next_tick) {
            if (run->on_tick)
                run->on_tick(run->ctx, (double)(now - start) / 1e6);
            next_tick += SIM_POOL_TICK_US;
            if (next_tick <= now)
                next_tick = now + SIM_POOL_TICK_US;
        }
        /* A finished request frees a connection: go round at once to reuse it. */
        if (!progressed) {
            int timeout_ms = (int)((wait_us + 999) / 1000);
            curl_multi_poll(self->multi, NULL, 0, timeout_ms, NULL);
        }
    }
    *elapsed_s = (double)(last_reply - start) / 1e6;
out:
    /* Leave no transfer behind on an error path: a later run re-adds these handles. */
    for (unsigned i = 0; i < self->n_conns; i++) {
        conn_t *c = &self->conns[i];
        if (c->busy) {
            curl_multi_remove_handle(self->multi, c->easy);
            c->busy = 0;
        }
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, NULL);
    }
    /* Retries still queued are abandoned: the caller counts what never got its answer. */
    self->n_retries = 0;
    curl_slist_free_all(headers);
    free(url);
    return rc;
}
