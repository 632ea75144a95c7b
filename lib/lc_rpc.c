/* lc_rpc.c: JSON-RPC 2.0 over libcurl with endpoint failover. See lc_rpc.h. */
#include "lc_rpc.h"

#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_curlbuf.h"
#include "lc_log.h"

#define LC_RPC_NAME_MAX 96
#define LC_RPC_REASON_MAX 160

typedef struct {
    char *url;
    char name[LC_RPC_NAME_MAX]; /* scheme://host[:port]: safe to log */
    CURL *easy;
    int down;
    unsigned fails;       /* consecutive failures, 0 when up */
    uint64_t retry_at_us; /* monotonic; not tried before this while down */
} endpoint_t;

struct lc_rpc {
    endpoint_t *eps;
    size_t n_eps;
    size_t current; /* the endpoint that answered last */
    long timeout_ms;
    uint64_t next_id;
    struct curl_slist *headers;
    lc_curlbuf_t rx; /* the answer being received, for any endpoint */
    char errbuf[CURL_ERROR_SIZE];
    lc_counter_t *req_ok, *req_rpc_error, *req_transport_error, *failovers;
    lc_histogram_t *duration;
    lc_gauge_t *endpoints_up;
};

/* ---- Endpoints ---- */

static CURL *s_easy_new(lc_rpc_t *self, const char *url)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    long connect_ms =
        self->timeout_ms < LC_RPC_CONNECT_TIMEOUT_MS ? self->timeout_ms : LC_RPC_CONNECT_TIMEOUT_MS;
    CURLcode rc = CURLE_OK;
    rc |= curl_easy_setopt(e, CURLOPT_URL, url);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, self->headers);
    rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, "lcore-chain/0.1");
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, self->timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, lc_curlbuf_write);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, &self->rx);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, self->errbuf);
    if (rc != CURLE_OK) {
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

static void s_update_up_gauge(lc_rpc_t *self)
{
    if (!self->endpoints_up)
        return;
    size_t up = 0;
    for (size_t i = 0; i < self->n_eps; i++)
        up += !self->eps[i].down;
    lc_gauge_set(self->endpoints_up, (double)up);
}

/* Backs an endpoint off: 1 s after the first failure, doubling to 30 s; a Retry-After (429)
 * counts when longer, within the same cap. */
static void s_mark_down(lc_rpc_t *self, size_t i, const char *method, const char *reason,
                        uint64_t retry_after_s)
{
    endpoint_t *ep = &self->eps[i];
    if (ep->fails < 16)
        ep->fails++;
    uint64_t delay_ms = (uint64_t)LC_RPC_BACKOFF_MIN_MS << (ep->fails - 1);
    if (retry_after_s > LC_RPC_BACKOFF_MAX_MS / 1000)
        retry_after_s = LC_RPC_BACKOFF_MAX_MS / 1000;
    if (retry_after_s * 1000 > delay_ms)
        delay_ms = retry_after_s * 1000;
    if (delay_ms > LC_RPC_BACKOFF_MAX_MS)
        delay_ms = LC_RPC_BACKOFF_MAX_MS;
    ep->retry_at_us = lc_mono_us() + delay_ms * 1000;
    ep->down = 1;
    s_update_up_gauge(self);
    char safe[LC_RPC_REASON_MAX];
    snprintf(safe, sizeof safe, "%s", reason);
    for (char *p = safe; *p; p++)
        if (*p == '"' || *p == '\n' || *p == '\r' || *p == '\\')
            *p = '\'';
    lc_warn("chain_rpc_endpoint_down",
            "endpoint=%zu url=%s method=%s reason=\"%s\" fails=%u retry_in_ms=%llu", i, ep->name,
            method, safe, ep->fails, (unsigned long long)delay_ms);
}

static void s_mark_up(lc_rpc_t *self, size_t i)
{
    endpoint_t *ep = &self->eps[i];
    if (ep->down) {
        ep->down = 0;
        lc_info("chain_rpc_endpoint_up", "endpoint=%zu url=%s", i, ep->name);
        s_update_up_gauge(self);
    }
    ep->fails = 0;
    ep->retry_at_us = 0;
    if (self->current != i) {
        lc_info("chain_rpc_endpoint_switch", "from=%zu to=%zu url=%s", self->current, i, ep->name);
        self->current = i;
    }
}

static void s_count(lc_counter_t *c)
{
    if (c)
        lc_counter_inc(c);
}

/* One HTTP exchange with endpoint i. Returns the check_response code, or LC_ERR_IO with *reason
 * and *retry_after_s set on a transport error, HTTP status or bad answer. */
static int s_attempt(lc_rpc_t *self, size_t i, const char *body, uint64_t id,
                     lc_jsonrpc_expect_t expect, json_t **result, lc_jsonrpc_error_t *err,
                     char *reason, size_t reason_cap, uint64_t *retry_after_s)
{
    CURL *e = self->eps[i].easy;
    lc_curlbuf_reset(&self->rx);
    self->errbuf[0] = '\0';
    *retry_after_s = 0;
    if (curl_easy_setopt(e, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) != CURLE_OK) {
        snprintf(reason, reason_cap, "curl setup failed");
        return LC_ERR_IO;
    }
    uint64_t t0 = lc_mono_us();
    CURLcode cc = curl_easy_perform(e);
    if (self->duration)
        lc_histogram_observe(self->duration, (double)(lc_mono_us() - t0) / 1e6);
    if (cc != CURLE_OK) {
        const char *why = cc == CURLE_OPERATION_TIMEDOUT ? "timeout"
                          : self->errbuf[0]              ? self->errbuf
                                                         : curl_easy_strerror(cc);
        snprintf(reason, reason_cap, "%.*s", (int)(reason_cap - 1), why); /* truncates */
        return LC_ERR_IO;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 500 || status == 429) {
        curl_off_t ra = 0;
        if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
            *retry_after_s = (uint64_t)ra;
        snprintf(reason, reason_cap, "http %ld", status);
        return LC_ERR_IO;
    }
    int rc = lc_jsonrpc_check_response(self->rx.data, self->rx.len, id, expect, result, err);
    if (status < 200 || status > 299) {
        /* Some providers send error objects with a 4xx: those are answers. Anything else with a
         * 3xx/4xx (wrong path, missing API key) means this endpoint is unusable. */
        if (rc == LC_JSONRPC_REJECTED || rc == LC_ERR_UNSUPPORTED)
            return rc;
        json_decref(*result);
        *result = NULL;
        snprintf(reason, reason_cap, "http %ld", status);
        return LC_ERR_IO;
    }
    if (rc == LC_ERR_IO)
        snprintf(reason, reason_cap, "bad answer: %.*s", (int)(reason_cap - 13), err->message);
    return rc;
}

/* One exchange of req (method, expect) with endpoint i and the parsing of its result: the code of
 * s_attempt, or of parse. *reason says why on LC_ERR_IO. */
static int s_exchange(lc_rpc_t *self, size_t i, json_t *req, const char *method,
                      lc_jsonrpc_expect_t expect, lc_rpc_parse_fn parse, void *ctx,
                      lc_jsonrpc_error_t *err, char reason[LC_RPC_REASON_MAX],
                      uint64_t *retry_after_s)
{
    /* A fresh id per attempt: an answer meant for another request never passes. */
    uint64_t id = self->next_id++;
    char *body = NULL;
    if (json_object_set_new(req, "id", json_integer((json_int_t)id)) == 0)
        body = json_dumps(req, JSON_COMPACT);
    if (!body)
        return LC_ERR_NOMEM;
    json_t *result = NULL;
    int rc = s_attempt(self, i, body, id, expect, &result, err, reason, LC_RPC_REASON_MAX,
                       retry_after_s);
    free(body);
    if (rc == 0 && parse) {
        rc = parse(result, ctx);
        if (rc == LC_ERR_IO)
            snprintf(reason, LC_RPC_REASON_MAX, "bad answer: unexpected %s result", method);
        else if (rc != 0)
            memset(err, 0, sizeof *err); /* NOTFOUND, UNSUPPORTED: a valid result */
    }
    json_decref(result);
    return rc;
}

/* The failover loop shared by every call. */
int lc_rpc_request(lc_rpc_t *self, const char *method, json_t *params, lc_jsonrpc_expect_t expect,
                   lc_rpc_parse_fn parse, void *ctx, lc_jsonrpc_error_t *err)
{
    assert(self && method);
    lc_jsonrpc_error_t local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    if (!params)
        params = json_array();
    json_t *req = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)0, "method",
                            method, "params", params); /* steals params */
    if (!req)
        return LC_ERR_NOMEM;

    int rc = LC_ERR_UNAVAILABLE;
    char reason[LC_RPC_REASON_MAX] = "all endpoints are in backoff";
    int failed_before = 0;
    for (size_t i = 0; i < self->n_eps; i++) {
        endpoint_t *ep = &self->eps[i];
        if (ep->down && lc_mono_us() < ep->retry_at_us)
            continue;
        if (failed_before)
            s_count(self->failovers);
        uint64_t retry_after_s = 0;
        int arc = s_exchange(self, i, req, method, expect, parse, ctx, err, reason, &retry_after_s);
        if (arc == LC_ERR_IO) {
            s_count(self->req_transport_error);
            s_mark_down(self, i, method, reason, retry_after_s);
            failed_before = 1;
            continue;
        }
        if (arc != LC_ERR_NOMEM) {
            s_count(arc == LC_JSONRPC_REJECTED || arc == LC_ERR_UNSUPPORTED ? self->req_rpc_error
                                                                            : self->req_ok);
            s_mark_up(self, i);
        }
        rc = arc;
        break;
    }
    json_decref(req);
    if (rc == LC_ERR_UNAVAILABLE) {
        char msg[LC_JSONRPC_ERR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "no endpoint answered %s: %s", method, reason);
        lc_jsonrpc_error_set(err, LC_JSONRPC_ERR_ENDPOINT, 0, msg);
        lc_debug("chain_rpc_unavailable", "method=%s", method);
    } else if (rc == 0 || rc == LC_ERR_NOTFOUND || rc == LC_ERR_NOMEM) {
        memset(err, 0, sizeof *err);
    }
    return rc;
}

/* Adds the endpoint at url (trimmed). 0, LC_ERR_INVALID (logged: the list is refused) or
 * LC_ERR_NOMEM. */
static int s_add_endpoint(lc_rpc_t *self, const char *url)
{
    if (self->n_eps == LC_RPC_MAX_ENDPOINTS) {
        lc_error("chain_rpc_config", "reason=\"more than %d RPC URLs\"", LC_RPC_MAX_ENDPOINTS);
        return LC_ERR_INVALID;
    }
    size_t host = strncasecmp(url, "http://", 7) == 0    ? 7
                  : strncasecmp(url, "https://", 8) == 0 ? 8
                                                         : 0;
    if (!host || strcspn(url + host, "/?#") == 0) {
        lc_error("chain_rpc_config", "endpoint=%zu reason=\"%s\"", self->n_eps,
                 *url ? "not an http(s) URL" : "empty entry in the URL list");
        return LC_ERR_INVALID;
    }
    endpoint_t *ep = &self->eps[self->n_eps];
    ep->url = strdup(url);
    if (!ep->url)
        return LC_ERR_NOMEM;
    lc_url_redact(ep->name, sizeof ep->name, url, strlen(url));
    self->n_eps++;
    ep->easy = s_easy_new(self, ep->url);
    return ep->easy ? 0 : LC_ERR_NOMEM;
}

/* Every endpoint of the comma-separated list (modified in place). Split by hand rather than with
 * strtok: an empty entry ("a,,b") is a typo to refuse. */
static int s_add_endpoints(lc_rpc_t *self, char *list)
{
    for (char *tok = list;;) {
        char *comma = strchr(tok, ',');
        if (comma)
            *comma = '\0';
        while (isspace((unsigned char)*tok))
            tok++;
        size_t len = strlen(tok);
        while (len && isspace((unsigned char)tok[len - 1]))
            tok[--len] = '\0';
        int rc = s_add_endpoint(self, tok);
        if (rc < 0)
            return rc;
        if (!comma)
            return 0;
        tok = comma + 1;
    }
}

static int s_add_metrics(lc_rpc_t *self, lc_metrics_t *metrics)
{
    const char *n_req = "lcore_chain_rpc_requests_total";
    const char *h_req = "JSON-RPC requests to the chain endpoints, by outcome";
    self->req_ok = lc_metrics_counter(metrics, n_req, h_req, "result=\"ok\"");
    self->req_rpc_error = lc_metrics_counter(metrics, n_req, h_req, "result=\"rpc_error\"");
    self->req_transport_error =
        lc_metrics_counter(metrics, n_req, h_req, "result=\"transport_error\"");
    self->duration = lc_metrics_histogram(metrics, "lcore_chain_rpc_duration_seconds",
                                          "Time per JSON-RPC request to a chain endpoint", NULL,
                                          lc_latency_buckets, lc_latency_buckets_len);
    self->failovers =
        lc_metrics_counter(metrics, "lcore_chain_rpc_failovers_total",
                           "Times a call moved on to another endpoint after one failed", NULL);
    self->endpoints_up = lc_metrics_gauge(metrics, "lcore_chain_rpc_endpoints_up",
                                          "Chain RPC endpoints not in backoff", NULL);
    return self->req_ok && self->req_rpc_error && self->req_transport_error && self->duration &&
                   self->failovers && self->endpoints_up
               ? 0
               : LC_ERR_NOMEM;
}

/* The headers of every request. */
static int s_set_headers(lc_rpc_t *self)
{
    self->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h =
        self->headers ? curl_slist_append(self->headers, "Accept: application/json") : NULL;
    /* "Expect: 100-continue" on larger bodies would cost a round trip per request. */
    h = h ? curl_slist_append(h, "Expect:") : NULL;
    return h ? 0 : LC_ERR_NOMEM;
}

lc_rpc_t *lc_rpc_new(const char *urls_csv, int timeout_ms, lc_metrics_t *metrics)
{
    if (!urls_csv) {
        lc_error("chain_rpc_config", "reason=\"no RPC URL\"");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lc_error("chain_rpc_init", "reason=\"curl_global_init failed\"");
        return NULL;
    }
    int rc = LC_ERR_NOMEM;
    lc_rpc_t *self = calloc(1, sizeof *self);
    char *list = strdup(urls_csv);
    if (!self || !list)
        goto fail;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : LC_RPC_TIMEOUT_MS_DEFAULT;
    self->next_id = 1;
    if ((rc = s_set_headers(self)) < 0 ||
        !(self->eps = calloc(LC_RPC_MAX_ENDPOINTS, sizeof *self->eps)) ||
        (rc = s_add_endpoints(self, list)) < 0 ||
        (metrics && (rc = s_add_metrics(self, metrics)) < 0))
        goto fail;
    s_update_up_gauge(self);
    free(list);
    for (size_t i = 0; i < self->n_eps; i++)
        lc_info("chain_rpc_endpoint", "endpoint=%zu url=%s timeout_ms=%ld", i, self->eps[i].name,
                self->timeout_ms);
    return self;
fail:
    if (rc != LC_ERR_INVALID) /* a configuration error was logged; anything else is an allocation */
        lc_error("chain_rpc_init", "reason=\"out of memory or curl setup failed\"");
    free(list);
    if (self)
        lc_rpc_destroy(&self); /* runs curl_global_cleanup */
    else
        curl_global_cleanup();
    return NULL;
}

int lc_rpc_set_ca_file(lc_rpc_t *self, const char *path)
{
    /* The handles exist since lc_rpc_new; each keeps its own copy of the path. */
    for (size_t i = 0; i < self->n_eps; i++)
        if (curl_easy_setopt(self->eps[i].easy, CURLOPT_CAINFO, path) != CURLE_OK)
            return LC_ERR_NOMEM;
    return 0;
}

void lc_rpc_destroy(lc_rpc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_rpc_t *self = *self_p;
    for (size_t i = 0; self->eps && i < self->n_eps; i++) {
        if (self->eps[i].easy)
            curl_easy_cleanup(self->eps[i].easy);
        free(self->eps[i].url);
    }
    free(self->eps);
    curl_slist_free_all(self->headers);
    lc_curlbuf_free(&self->rx);
    free(self);
    *self_p = NULL;
    curl_global_cleanup();
}

static int s_take(const json_t *result, void *ctx)
{
    *(json_t **)ctx = json_incref((json_t *)result);
    return 0;
}

int lc_rpc_call(lc_rpc_t *self, const char *method, json_t *params, lc_jsonrpc_expect_t expect,
                json_t **result, lc_jsonrpc_error_t *err)
{
    *result = NULL;
    return lc_rpc_request(self, method, params, expect, s_take, result, err);
}
