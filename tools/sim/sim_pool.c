/* sim_pool.c: keep-alive connection pool and token-bucket pacing over libcurl multi.
 * See sim_pool.h. Each connection is one easy handle that is re-added for every request, so
 * libcurl reuses its TCP connection (the multi handle's cache holds exactly `connections`). */
#include "sim_pool.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"

#define SIM_POOL_RX_MAX (16u * 1024 * 1024) /* a reply larger than this is a broken server */
#define SIM_POOL_TICK_US 1000000u
#define SIM_POOL_IDLE_WAIT_US 100000u    /* longest sleep between checks of *stop */
#define SIM_POOL_ERROR_PAUSE_US 100000u  /* after a transport error: do not spin */
#define SIM_POOL_RETRY_AFTER_DEFAULT_S 1 /* 429/503 without Retry-After */
#define SIM_POOL_RETRY_AFTER_MAX_S 30    /* never park a connection longer than this */
#define SIM_POOL_BURST_S 0.02            /* token bucket depth: 20 ms of rate */

typedef struct {
    CURL *easy;
    int busy;
    size_t job;
    uint64_t ready_at_us; /* monotonic; paused until then (Retry-After, transport error) */
    char *rx;
    size_t rx_len, rx_cap;
    char errbuf[CURL_ERROR_SIZE];
} conn_t;

struct sim_pool {
    CURLM *multi;
    char *base_url;
    conn_t *conns;
    unsigned n_conns;
    long timeout_ms;
};

static size_t s_on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    conn_t *c = userdata;
    size_t n = size * nmemb;
    if (c->rx_len + n + 1 > c->rx_cap) {
        if (c->rx_len + n + 1 > SIM_POOL_RX_MAX)
            return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        size_t cap = c->rx_cap ? c->rx_cap : 1024;
        while (cap < c->rx_len + n + 1)
            cap *= 2;
        char *rx = realloc(c->rx, cap);
        if (!rx)
            return 0;
        c->rx = rx;
        c->rx_cap = cap;
    }
    memcpy(c->rx + c->rx_len, ptr, n);
    c->rx_len += n;
    c->rx[c->rx_len] = '\0';
    return n;
}

static int s_conn_init(conn_t *c, long timeout_ms)
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
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_data);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    return rc == CURLE_OK ? 0 : LC_ERR_INVALID;
}

sim_pool_t *sim_pool_new(const char *base_url, unsigned connections, double timeout_s)
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
        if (s_conn_init(&self->conns[i], self->timeout_ms) < 0)
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
        free(c->rx);
    }
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
    /* Without this libcurl may wait for "100 Continue" before sending a large batch body. */
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

static int s_dispatch(sim_pool_t *self, conn_t *c, size_t job_index, const sim_job_t *job)
{
    c->rx_len = 0;
    if (c->rx)
        c->rx[0] = '\0';
    c->errbuf[0] = '\0';
    CURLcode rc = CURLE_OK;
    rc |= curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->body_len);
    rc |= curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, job->body);
    if (rc != CURLE_OK || curl_multi_add_handle(self->multi, c->easy) != CURLM_OK)
        return LC_ERR_INVALID;
    c->busy = 1;
    c->job = job_index;
    return 0;
}

/* Reads one finished transfer, frees its connection (pausing it on backpressure or error) and
 * hands the reply to the caller. */
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
        .body = c->rx ? c->rx : "",
        .body_len = c->rx_len,
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
    run->on_reply(run->ctx, c->job, &reply);
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
    /* The bucket holds at least two requests' worth: one so that batches larger than 20 ms of
     * rate still go out, one more so that waking up a little late (poll has 1 ms steps) does
     * not throw tokens away. It starts with one request so the first leaves at once. */
    double burst = run->rate * SIM_POOL_BURST_S;
    if (burst < 2.0 * max_units)
        burst = 2.0 * max_units;
    double tokens = max_units;

    const uint64_t start = lc_mono_us();
    const uint64_t deadline = run->duration_s > 0 ? start + (uint64_t)(run->duration_s * 1e6) : 0;
    uint64_t last_refill = start, next_tick = start + SIM_POOL_TICK_US, last_reply = start;
    size_t next_job = 0;
    unsigned in_flight = 0;
    int dispatching = 1;

    for (;;) {
        uint64_t now = lc_mono_us();
        if (dispatching &&
            ((run->stop && *run->stop) || (deadline && now >= deadline) || next_job >= n_jobs))
            dispatching = 0;
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
            if (s_dispatch(self, c, next_job, job) < 0) {
                lc_error("dispatch_failed", "job=%zu", next_job);
                rc = LC_ERR_INVALID;
                dispatching = 0;
                break;
            }
            tokens -= job->units;
            in_flight++;
            if (run->on_send)
                run->on_send(run->ctx, next_job);
            next_job++;
        }
        if (!dispatching && in_flight == 0)
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
    curl_slist_free_all(headers);
    free(url);
    return rc;
}
