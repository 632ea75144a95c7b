/* gw_http.c: the gateway's HTTP routes on its two listeners. See gw_http.h. */
#include "gw_http.h"

#include <sodium.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "gw_budget.h"
#include "gw_conn_limit.h"
#include "gw_handlers.h"
#include "gw_request_batch.h"
#include "lc_codec.h"
#include "lc_jws.h"
#include "lc_log.h"

#define GW_REQUEST_BATCH_MAX_LINES 1000
/* libmicrohttpd's memory pool per connection (headers and its read buffer): the per-connection
 * part of the gateway's memory bound (docs/SECURITY.md). */
#define GW_HTTP_CONNECTION_MEMORY (32 * 1024)

/* Metric series per route (gw_routes.h labels) and one for requests of no route ("other"). */
#define N_ROUTE_SERIES (GW_ROUTE_COUNT + 1)
static const unsigned s_codes[] = {200, 201, 202, 207, 400, 401, 403, 404,
                                   405, 409, 413, 415, 429, 500, 503};
#define N_CODES (sizeof s_codes / sizeof s_codes[0])

struct gw_http {
    gw_http_deps_t deps;
    struct MHD_Daemon *daemon;
    gw_budget_t *budget; /* request bodies in flight, across all connections */
    gw_conn_limit_t *per_ip;
    atomic_int started;  /* the device listener runs: libmicrohttpd's messages are per client */
    atomic_int stopping; /* SIGTERM: readings get 503, waiting requests finish */
    atomic_int active;   /* device listener requests begun, their answer not yet sent */
    atomic_int closing;  /* MHD_stop_daemon comes: nothing may be suspended (s_may_suspend) */
    /* Query threads: the device listener's reader routes wait for the store, the relayer or a
     * crypto worker there, not on libmicrohttpd's threads (which verify readings). */
    pthread_mutex_t q_lock;
    pthread_cond_t q_cond;
    struct s_req *q_head, *q_tail; /* under q_lock */
    int q_stop;                    /* under q_lock */
    pthread_t *q_threads;
    size_t n_q_threads;
    lc_counter_t *requests[N_ROUTE_SERIES];
    lc_counter_t *responses[N_CODES];
    lc_histogram_t *latency[N_ROUTE_SERIES];
    lc_gauge_t *waiting;
    lc_counter_t *chain_unanswered;
};

/* Per-request state, created on the first call for a connection's request. A request whose
 * readings were appended to the log is suspended until the log says they are durable; the
 * relay thread resumes it and MHD calls the handler again to answer. A device listener request
 * of another route is suspended while a query thread runs it (s_defer). */
typedef struct s_req {
    gw_route_id_t route;
    gw_listener_t listener;
    char param[LC_DEVICE_ID_MAX + 1]; /* the path's "{...}" segment */
    gw_token_t token;                 /* the caller's, on routes that take one */
    gw_peer_t peer;
    char *body;
    size_t len, cap, limit;
    size_t held; /* bytes of the body budget this request holds */
    int too_big;
    int over_budget; /* the body budget was spent: what it held is given back, 503 at the end */
    uint64_t start_us;
    struct MHD_Connection *conn;
    int waiting;  /* suspended on the log, or on a query thread (deferred) */
    int counted;  /* in gw_http_t.active */
    int deferred; /* run on a query thread: its answer is in answer */
    gw_answer_t answer;
    struct s_req *q_next;      /* on the query threads' queue */
    int log_status;            /* set before the resume: 0 durable, < 0 the log failed */
    gw_result_t one;           /* /v1/data, /device/data */
    gw_request_batch_t *batch; /* /v1/data/batch */
} s_req_t;

static void s_count(gw_http_t *self, unsigned status)
{
    for (size_t i = 0; i < N_CODES; i++)
        if (s_codes[i] == status) {
            lc_counter_inc(self->responses[i]);
            return;
        }
}

static enum MHD_Result s_error(gw_http_t *self, struct MHD_Connection *c, unsigned status,
                               const char *code, const char *msg, unsigned retry)
{
    s_count(self, status);
    return lc_http_reply_error(c, status, code, msg, retry);
}

static enum MHD_Result s_json(gw_http_t *self, struct MHD_Connection *c, unsigned status, json_t *j)
{
    s_count(self, status);
    if (!j)
        return MHD_NO;
    enum MHD_Result r = lc_http_reply_json(c, status, j, 0);
    json_decref(j);
    return r;
}

/* On a query thread: keeps the answer for libmicrohttpd's thread (counted when queued). */
static enum MHD_Result s_keep(const gw_call_t *call, unsigned status, struct MHD_Response *resp)
{
    call->answer->status = status;
    call->answer->resp = resp;
    return resp ? MHD_YES : MHD_NO;
}

enum MHD_Result gw_reply_error(const gw_call_t *call, unsigned status, const char *code,
                               const char *message, unsigned retry_after)
{
    if (call->answer)
        return s_keep(call, status, lc_http_response_error(code, message, retry_after));
    return s_error(call->http, call->c, status, code, message, retry_after);
}

enum MHD_Result gw_reply_json(const gw_call_t *call, unsigned status, json_t *j)
{
    if (!j)
        return gw_reply_error(call, 500, "internal", "cannot compose the answer", 0);
    if (!call->answer)
        return s_json(call->http, call->c, status, j);
    enum MHD_Result r = s_keep(call, status, lc_http_response_json(j, 0));
    json_decref(j);
    return r;
}

enum MHD_Result gw_reply_json_secret(const gw_call_t *call, unsigned status, json_t *j)
{
    if (!j)
        return gw_reply_error(call, 500, "internal", "cannot compose the answer", 0);
    enum MHD_Result r;
    if (call->answer) {
        r = s_keep(call, status, lc_http_response_json_secret(j));
    } else {
        s_count(call->http, status);
        r = lc_http_reply_json_secret(call->c, status, j);
    }
    lc_json_wipe(j);
    json_decref(j);
    return r;
}

/* The result of one reading as a JSON object (for single and request batch answers). */
static json_t *s_result_json(const gw_result_t *r)
{
    if (r->status == 202)
        return json_pack("{s:i, s:o}", "status", 202, "record_id",
                         gw_json_hex(r->record_id, LC_RECORD_ID_LEN));
    if (r->status == 409) /* seq_conflict: where the device's counter can go on */
        return json_pack("{s:i, s:s, s:s, s:o, s:I}", "status", 409, "error", r->error, "message",
                         r->message, "record_id", gw_json_hex(r->record_id, LC_RECORD_ID_LEN),
                         "next_seq", (json_int_t)r->next_seq);
    return json_pack("{s:i, s:s, s:s}", "status", (int)r->status, "error", r->error, "message",
                     r->message);
}

static enum MHD_Result s_reply_result(gw_http_t *self, struct MHD_Connection *c,
                                      const gw_result_t *r)
{
    if (r->status == 409) {
        json_t *j = s_result_json(r);
        json_object_del(j, "status");
        return s_json(self, c, 409, j);
    }
    if (r->status != 202)
        return s_error(self, c, r->status, r->error, r->message, r->retry_after);
    return s_json(self, c, 202,
                  json_pack("{s:o, s:s}", "record_id", gw_json_hex(r->record_id, LC_RECORD_ID_LEN),
                            "status", "accepted"));
}

static int s_content_type_is(struct MHD_Connection *c, const char *want)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct)
        return 0;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Called by the relay thread once the log entry is durable (or the log failed). */
static void s_durable(void *arg, int status)
{
    s_req_t *req = arg;
    req->log_status = status;
    MHD_resume_connection(req->conn);
}

/* 0 once the daemon is closing: the caller answers without suspending. A request is counted
 * in `active` before it reads `closing`, and gw_http_destroy sets `closing` before it reads
 * `active`: one of them sees the other, so a request that suspends is waited for. */
static int s_may_suspend(gw_http_t *self)
{
    return !atomic_load(&self->closing);
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, status;
} s_sync_t;

static void s_sync_durable(void *arg, int status)
{
    s_sync_t *w = arg;
    pthread_mutex_lock(&w->lock);
    w->done = 1;
    w->status = status;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* The daemon is closing (a reading logged just as SIGTERM came): waits for entry `lsn` on this
 * thread, as the relay still runs. Returns what the log said. */
static int s_wait_here(gw_http_t *self, uint64_t lsn)
{
    s_sync_t w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    int rc = gw_wal_notify(self->deps.wal, lsn, s_sync_durable, &w);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    pthread_mutex_lock(&w.lock);
    while (!w.done)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    return w.status;
}

static enum MHD_Result s_answer_logged(gw_http_t *self, struct MHD_Connection *c, s_req_t *req);

/* Suspends the request until log entry `lsn` is durable; the answer comes in s_resumed. The
 * connection is suspended before the log can call back, so the resume never comes first. */
static enum MHD_Result s_wait(gw_http_t *self, struct MHD_Connection *c, s_req_t *req, uint64_t lsn)
{
    req->conn = c;
#ifdef LCORE_FAULT_HOOKS
    if (self->deps.cfg->hold_logged_ms) /* a SIGTERM can come while it holds (test_fault_gateway) */
        usleep((useconds_t)self->deps.cfg->hold_logged_ms * 1000);
#endif
    if (!s_may_suspend(self)) {
        req->log_status = s_wait_here(self, lsn);
        return s_answer_logged(self, c, req);
    }
    req->waiting = 1;
    lc_gauge_add(self->waiting, 1);
    MHD_suspend_connection(c);
    int rc = gw_wal_notify(self->deps.wal, lsn, s_durable, req);
    if (rc != 0) {
        req->log_status = rc < 0 ? rc : 0;
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

/* A 202 stands only if its log entry is durable. */
static void s_settle(gw_result_t *r, int log_status)
{
    if (r->status != 202 || log_status == 0)
        return;
    r->status = 503;
    r->error = "not_ready";
    r->retry_after = 1;
    snprintf(r->message, sizeof r->message, "the gateway cannot write its log");
}

static enum MHD_Result s_data(gw_http_t *self, struct MHD_Connection *c, s_req_t *req)
{
    /* Trailing whitespace (curl -d @file adds none, editors add a newline) is not signed. */
    size_t len = req->len;
    while (len &&
           (req->body[len - 1] == '\n' || req->body[len - 1] == '\r' || req->body[len - 1] == ' '))
        len--;
    gw_ingest_reading(self->deps.ingest, req->body, len, &req->peer, NULL, NULL, &req->one);
    if (req->one.status == 202)
        return s_wait(self, c, req, req->one.lsn);
    return s_reply_result(self, c, &req->one);
}

static enum MHD_Result s_request_batch_reply(gw_http_t *self, struct MHD_Connection *c,
                                             s_req_t *req)
{
    size_t n = 0;
    gw_result_t *lines = gw_request_batch_results(req->batch, &n);
    json_t *results = json_array();
    size_t accepted = 0;
    for (size_t i = 0; i < n; i++) {
        s_settle(&lines[i], req->log_status);
        accepted += lines[i].status == 202;
        json_array_append_new(results, s_result_json(&lines[i]));
    }
    return s_json(self, c, 207,
                  json_pack("{s:I, s:I, s:o}", "accepted", (json_int_t)accepted, "rejected",
                            (json_int_t)(n - accepted), "results", results));
}

/* The body is in, its lines checked as they came: logs the readings that passed. */
static enum MHD_Result s_request_batch(gw_http_t *self, struct MHD_Connection *c, s_req_t *req)
{
    uint64_t last_lsn = 0;
    int rc = gw_request_batch_end(req->batch, &last_lsn);
    if (rc == LC_ERR_NOTFOUND)
        return s_error(self, c, 400, "malformed", "empty request batch: one JWS per line", 0);
    if (rc == LC_ERR_INVALID)
        return s_error(self, c, 413, "too_large", "a request batch holds at most 1000 readings", 0);
    if (rc < 0)
        return s_error(self, c, 503, "overloaded",
                       "the gateway holds too many request bodies; retry later", 1);
    /* One wait for the whole request batch: the log is written in order. */
    if (last_lsn)
        return s_wait(self, c, req, last_lsn);
    return s_request_batch_reply(self, c, req);
}

static enum MHD_Result s_compat(gw_http_t *self, struct MHD_Connection *c, s_req_t *req)
{
    json_error_t err;
    json_t *body = json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, &err);
    const char *device_id = json_string_value(json_object_get(body, "device_id"));
    const char *jws = json_string_value(json_object_get(body, "jws"));
    if (!json_is_object(body) || !device_id || !jws) {
        json_decref(body);
        return s_error(self, c, 400, "malformed",
                       "body must be JSON {\"device_id\", \"jws\", \"data\"}", 0);
    }
    gw_ingest_reading(self->deps.ingest, jws, strlen(jws), &req->peer, device_id,
                      json_object_get(body, "data"), &req->one);
    json_decref(body);
    if (req->one.status == 202)
        return s_wait(self, c, req, req->one.lsn);
    return s_reply_result(self, c, &req->one);
}

/* Answers a request whose readings the log took, with what the log said about them. */
static enum MHD_Result s_answer_logged(gw_http_t *self, struct MHD_Connection *c, s_req_t *req)
{
    enum MHD_Result ret;
    if (req->route == GW_ROUTE_REQUEST_BATCH) {
        ret = s_request_batch_reply(self, c, req);
    } else {
        s_settle(&req->one, req->log_status);
        ret = s_reply_result(self, c, &req->one);
    }
    lc_histogram_observe(self->latency[req->route], (double)(lc_mono_us() - req->start_us) / 1e6);
    return ret;
}

/* A request resumed by the log (answers it with what the log said) or by its query thread
 * (queues the answer built there). */
static enum MHD_Result s_resumed(gw_http_t *self, struct MHD_Connection *c, s_req_t *req)
{
    req->waiting = 0;
    if (!req->deferred) {
        lc_gauge_add(self->waiting, -1);
        return s_answer_logged(self, c, req);
    }
    if (req->answer.resp)
        s_count(self, req->answer.status);
    enum MHD_Result ret = lc_http_queue(c, req->answer.status, req->answer.resp);
    req->answer.resp = NULL;
    lc_histogram_observe(self->latency[req->route], (double)(lc_mono_us() - req->start_us) / 1e6);
    return ret;
}

/* The Content-Type a route with a body needs: NULL when c has it, else the message for 415. */
static const char *s_media_refused(gw_route_id_t route, struct MHD_Connection *c)
{
    if (route == GW_ROUTE_DATA && !s_content_type_is(c, "application/jose"))
        return "Content-Type must be application/jose";
    if (route == GW_ROUTE_REQUEST_BATCH && !s_content_type_is(c, "text/plain") &&
        !s_content_type_is(c, "application/jose"))
        return "Content-Type must be text/plain (one JWS per line)";
    if (route != GW_ROUTE_DATA && route != GW_ROUTE_REQUEST_BATCH &&
        !s_content_type_is(c, "application/json"))
        return "Content-Type must be application/json";
    return NULL;
}

/* The largest body a route takes. */
static size_t s_body_limit(const gw_http_t *self, gw_route_id_t route)
{
    const gw_config_t *cfg = self->deps.cfg;
    if (route == GW_ROUTE_REQUEST_BATCH)
        return (size_t)cfg->max_request_batch_bytes;
    if (route == GW_ROUTE_COMPAT) /* wraps the JWS in JSON: allow for the wrapping */
        return (size_t)cfg->max_reading_bytes * 2;
    if (route != GW_ROUTE_DATA) /* the operator API's JSON bodies */
        return 65536;
    return (size_t)cfg->max_reading_bytes;
}

/* The client's address, IPv4 mapped into IPv6 (per-address limits). */
static void s_peer(struct MHD_Connection *c, gw_peer_t *p)
{
    memset(p, 0, sizeof *p);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(p->addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else if (sa && sa->sa_family == AF_INET) {
        p->addr[10] = p->addr[11] = 0xff;
        memcpy(p->addr + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    }
}

/* The memory a request needs before its body comes, from the body budget: a request batch its
 * line buffer, another request its whole body when Content-Length says how long (else it grows
 * as the body comes). 0, or -1: no room (503). */
static int s_reserve(gw_http_t *self, s_req_t *req, unsigned long long content_length)
{
    if (req->route == GW_ROUTE_REQUEST_BATCH) {
        gw_request_batch_opts_t o = {.ingest = self->deps.ingest,
                                     .budget = self->budget,
                                     .peer = &req->peer,
                                     .max_line = (size_t)self->deps.cfg->max_reading_bytes,
                                     .max_lines = GW_REQUEST_BATCH_MAX_LINES};
        return (req->batch = gw_request_batch_new(&o)) ? 0 : -1;
    }
    void *body = NULL;
    if (content_length &&
        gw_budget_grow(self->budget, 0, &req->held, &body, &req->cap, content_length + 1, 0) < 0)
        return -1;
    req->body = body;
    return 0;
}

static void s_req_free(gw_http_t *self, s_req_t *req)
{
    void *body = req->body;
    gw_budget_free(self->budget, &req->held, &body, &req->cap);
    req->body = NULL;
    req->len = 0;
    gw_request_batch_destroy(&req->batch);
}

/* The handlers of the reader and operator routes (gw_handlers.h); the device routes, which
 * go through the log, are s_data, s_request_batch and s_compat. */
typedef enum MHD_Result (*s_handler_t)(const gw_call_t *call);
static const s_handler_t s_handlers[GW_ROUTE_COUNT] = {
    [GW_ROUTE_RECORD] = gw_reader_record,
    [GW_ROUTE_RECEIPT] = gw_reader_receipt,
    [GW_ROUTE_OPEN] = gw_reader_open,
    [GW_ROUTE_DEVICE_RECORDS] = gw_reader_device_records,
    [GW_ROUTE_DEVICE_STATUS] = gw_reader_device_status,
    [GW_ROUTE_REGISTER] = gw_op_register,
    [GW_ROUTE_DEVICE_LIST] = gw_op_device_list,
    [GW_ROUTE_DEVICE_GET] = gw_op_device_get,
    [GW_ROUTE_REVOKE] = gw_op_device_revoke,
    [GW_ROUTE_REACTIVATE] = gw_op_device_revoke,
    [GW_ROUTE_ROTATE] = gw_op_rotate,
    [GW_ROUTE_TOKEN_CREATE] = gw_op_token_create,
    [GW_ROUTE_TOKEN_LIST] = gw_op_token_list,
    [GW_ROUTE_TOKEN_DELETE] = gw_op_token_delete,
    [GW_ROUTE_AUDIT] = gw_op_audit,
};

/* A route's bearer token and scope (DESIGN "HTTP API": 401 without a valid token, 403 for a
 * scope the token lacks). NULL when the request may go on, else the answer's status with
 * *code and the message returned. */
static const char *s_refused_caller(gw_http_t *self, struct MHD_Connection *c, gw_route_id_t route,
                                    const gw_peer_t *peer, gw_token_t *token, unsigned *status,
                                    const char **code)
{
    gw_auth_t need = gw_routes[route].auth;
    if (need == GW_AUTH_NONE)
        return NULL;
    const char *auth =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    int rc = gw_tokens_check(self->deps.tokens, auth, peer, token);
    int limited = rc == LC_ERR_FULL || rc == LC_ERR_TIMEOUT;
    *status = rc == LC_ERR_NOTFOUND ? 401 : limited ? 429 : 503;
    *code = rc == LC_ERR_NOTFOUND ? "unauthorized" : limited ? "rate_limited" : "not_ready";
    if (rc == LC_ERR_NOTFOUND)
        return need == GW_AUTH_OPERATOR ? "operator bearer token required"
                                        : "bearer token required (missing, unknown, deleted or "
                                          "expired)";
    if (rc == LC_ERR_FULL)
        return "too many unknown tokens from this address; retry later";
    if (rc == LC_ERR_TIMEOUT)
        return "this token is over its request rate (LCORE_GATEWAY_TOKEN_RATE); retry later";
    if (rc < 0)
        return "token registry unavailable";
    if (gw_token_allows(token, need, NULL))
        return NULL;
    gw_token_clear(token);
    *status = 403;
    *code = "forbidden";
    return need == GW_AUTH_OPERATOR  ? "this route needs a token of scope operator"
           : need == GW_AUTH_DECRYPT ? "this route needs a token of scope decrypt"
                                     : "this route needs a token of scope read or decrypt";
}

/* Runs a route without a body (its answer comes from the headers, the path and the query
 * string). */
static enum MHD_Result s_run_bodiless(gw_http_t *self, struct MHD_Connection *c,
                                      gw_route_id_t route, const char *param,
                                      const gw_token_t *token)
{
    uint64_t t0 = lc_mono_us();
    gw_call_t call = {.http = self,
                      .c = c,
                      .deps = &self->deps,
                      .route = route,
                      .param = param,
                      .token = token,
                      .body = "",
                      .chain_unanswered = self->chain_unanswered};
    enum MHD_Result ret = s_handlers[route](&call);
    lc_histogram_observe(self->latency[route], (double)(lc_mono_us() - t0) / 1e6);
    return ret;
}

/* Runs the request on a query thread: suspends the connection and queues the request; the
 * thread builds the answer and resumes the connection (s_resumed queues it). */
static enum MHD_Result s_defer(gw_http_t *self, struct MHD_Connection *c, s_req_t *req)
{
    if (!s_may_suspend(self))
        return s_error(self, c, 503, "not_ready", "the gateway is shutting down", 1);
    req->conn = c;
    req->waiting = 1;
    req->deferred = 1;
    req->q_next = NULL;
    MHD_suspend_connection(c);
    pthread_mutex_lock(&self->q_lock);
    if (self->q_tail)
        self->q_tail->q_next = req;
    else
        self->q_head = req;
    self->q_tail = req;
    pthread_cond_signal(&self->q_cond);
    pthread_mutex_unlock(&self->q_lock);
    return MHD_YES;
}

static void s_run_deferred(gw_http_t *self, s_req_t *req)
{
    gw_call_t call = {.http = self,
                      .c = req->conn,
                      .answer = &req->answer,
                      .deps = &self->deps,
                      .route = req->route,
                      .param = req->param,
                      .token = &req->token,
                      .body = req->body ? req->body : "",
                      .len = req->len,
                      .chain_unanswered = self->chain_unanswered};
    if (atomic_load(&self->stopping)) /* what is still queued at SIGTERM is not started */
        (void)gw_reply_error(&call, 503, "not_ready", "the gateway is shutting down", 1);
    else
        (void)s_handlers[req->route](&call);
    MHD_resume_connection(req->conn);
}

/* A query thread: runs what is queued until told to stop with the queue empty. */
static void *s_query_thread(void *arg)
{
    gw_http_t *self = arg;
    pthread_mutex_lock(&self->q_lock);
    for (;;) {
        while (!self->q_head && !self->q_stop)
            pthread_cond_wait(&self->q_cond, &self->q_lock);
        s_req_t *req = self->q_head;
        if (!req)
            break;
        self->q_head = req->q_next;
        if (!self->q_head)
            self->q_tail = NULL;
        pthread_mutex_unlock(&self->q_lock);
        s_run_deferred(self, req);
        pthread_mutex_lock(&self->q_lock);
    }
    pthread_mutex_unlock(&self->q_lock);
    return NULL;
}

static int s_start_query_threads(gw_http_t *self)
{
    size_t want = (size_t)self->deps.cfg->query_threads;
    pthread_mutex_init(&self->q_lock, NULL);
    pthread_cond_init(&self->q_cond, NULL);
    if (!(self->q_threads = calloc(want, sizeof *self->q_threads)))
        return -1;
    for (; self->n_q_threads < want; self->n_q_threads++)
        if (pthread_create(&self->q_threads[self->n_q_threads], NULL, s_query_thread, self) != 0)
            return -1;
    return 0;
}

/* After libmicrohttpd stopped: the queue is empty (nothing is suspended any more). */
static void s_stop_query_threads(gw_http_t *self)
{
    pthread_mutex_lock(&self->q_lock);
    self->q_stop = 1;
    pthread_cond_broadcast(&self->q_cond);
    pthread_mutex_unlock(&self->q_lock);
    for (size_t i = 0; i < self->n_q_threads; i++)
        pthread_join(self->q_threads[i], NULL);
    free(self->q_threads);
    pthread_cond_destroy(&self->q_cond);
    pthread_mutex_destroy(&self->q_lock);
}

/* The request state of a route with a body, its room reserved (NULL after answering). */
static s_req_t *s_new_req(gw_http_t *self, struct MHD_Connection *c, gw_route_id_t route,
                          const gw_peer_t *peer, enum MHD_Result *ret)
{
    *ret = MHD_NO;
    const char *refused = s_media_refused(route, c);
    if (refused) {
        *ret = s_error(self, c, 415, "unsupported_media_type", refused, 0);
        return NULL;
    }
    size_t limit = s_body_limit(self, route);
    const char *cl =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long content_length = cl ? strtoull(cl, NULL, 10) : 0;
    if (content_length > limit) {
        *ret = s_error(self, c, 413, "too_large", "body exceeds the size limit", 0);
        return NULL;
    }
    s_req_t *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->route = route;
    req->limit = limit;
    req->start_us = lc_mono_us();
    req->peer = *peer;
    if (s_reserve(self, req, content_length) < 0) {
        s_req_free(self, req);
        free(req);
        *ret = s_error(self, c, 503, "overloaded",
                       "the gateway holds too many request bodies; retry later", 1);
        return NULL;
    }
    return req;
}

static int s_is_ingest(gw_route_id_t route)
{
    return route == GW_ROUTE_DATA || route == GW_ROUTE_REQUEST_BATCH || route == GW_ROUTE_COMPAT;
}

/* The first call for a request: routes it, checks its token, answers what can be answered from
 * the headers alone, else allocates its state (*con_cls) to collect the body. */
static enum MHD_Result s_begin(gw_http_t *self, gw_listener_t listener, struct MHD_Connection *c,
                               const char *url, const char *method, void **con_cls)
{
    char param[LC_DEVICE_ID_MAX + 1];
    int wrong_method = 0;
    gw_route_id_t route =
        gw_routes_match(listener, method, url, param, sizeof param, &wrong_method);
    lc_counter_inc(self->requests[route]);
    if (route == GW_ROUTE_NONE && !wrong_method)
        return s_error(self, c, 404, "not_found", "no such endpoint", 0);
    if (route == GW_ROUTE_NONE)
        return s_error(self, c, 405, "method_not_allowed", "wrong method for this endpoint", 0);
    if (atomic_load(&self->stopping) && s_is_ingest(route))
        return s_error(self, c, 503, "not_ready", "the gateway is shutting down", 1);
    gw_peer_t peer;
    s_peer(c, &peer);
    gw_token_t token = {0};
    unsigned status = 0;
    const char *code = NULL;
    const char *why = s_refused_caller(self, c, route, &peer, &token, &status, &code);
    if (why)
        return s_error(self, c, status, code, why, status == 401 ? 0 : 1);
    if (!gw_routes[route].body && listener != GW_LISTENER_DEVICE) {
        enum MHD_Result ret = s_run_bodiless(self, c, route, param, &token);
        gw_token_clear(&token);
        return ret;
    }
    enum MHD_Result ret = MHD_NO;
    s_req_t *req = gw_routes[route].body ? s_new_req(self, c, route, &peer, &ret)
                                         : calloc(1, sizeof *req); /* run at its end (s_defer) */
    if (!req) {
        gw_token_clear(&token);
        return ret;
    }
    req->route = route;
    req->listener = listener;
    req->start_us = req->start_us ? req->start_us : lc_mono_us();
    req->token = token;
    memcpy(req->param, param, sizeof req->param);
    if (listener == GW_LISTENER_DEVICE) { /* gw_http_destroy waits until it is answered */
        req->counted = 1;
        atomic_fetch_add(&self->active, 1);
    }
    *con_cls = req;
    return MHD_YES;
}

/* Takes one chunk of the body. A body past the limit, or one the budget has no room for, is
 * drained (what it held given back at once) and answered 413 or 503 at the end. */
static enum MHD_Result s_upload(gw_http_t *self, s_req_t *req, const char *upload, size_t n)
{
    if (req->too_big || req->over_budget || req->len + n > req->limit) {
        req->too_big |= !req->over_budget;
        s_req_free(self, req);
        return MHD_YES;
    }
    req->len += n; /* a request batch's bytes, counted against its limit */
    if (req->batch) {
        req->over_budget = gw_request_batch_feed(req->batch, upload, n) < 0;
        return MHD_YES;
    }
    void *body = req->body;
    req->over_budget =
        gw_budget_grow(self->budget, 0, &req->held, &body, &req->cap, req->len + 1, 4096) < 0;
    req->body = body;
    if (req->over_budget)
        s_req_free(self, req);
    else
        memcpy(req->body + req->len - n, upload, n);
    return MHD_YES;
}

/* The whole body is in: runs the route. */
static enum MHD_Result s_complete(gw_http_t *self, struct MHD_Connection *c, s_req_t *req)
{
    if (req->too_big)
        return s_error(self, c, 413, "too_large", "body exceeds the size limit", 0);
    if (req->over_budget)
        return s_error(self, c, 503, "overloaded",
                       "the gateway holds too many request bodies; retry later", 1);
    if (atomic_load(&self->stopping) && s_is_ingest(req->route)) /* came while its body did */
        return s_error(self, c, 503, "not_ready", "the gateway is shutting down", 1);
    if (req->route != GW_ROUTE_REQUEST_BATCH) {
        void *body = req->body;
        if (gw_budget_grow(self->budget, 0, &req->held, &body, &req->cap, req->len + 1, 1) < 0)
            return s_error(self, c, 503, "overloaded",
                           "the gateway holds too many request bodies; retry later", 1);
        req->body = body;
        req->body[req->len] = '\0';
    }
    enum MHD_Result ret;
    if (req->route == GW_ROUTE_DATA) {
        ret = s_data(self, c, req);
    } else if (req->route == GW_ROUTE_REQUEST_BATCH) {
        ret = s_request_batch(self, c, req);
    } else if (req->route == GW_ROUTE_COMPAT) {
        ret = s_compat(self, c, req);
    } else if (req->listener == GW_LISTENER_DEVICE) {
        ret = s_defer(self, c, req);
    } else {
        gw_call_t call = {.http = self,
                          .c = c,
                          .deps = &self->deps,
                          .route = req->route,
                          .param = req->param,
                          .token = &req->token,
                          .body = req->body,
                          .len = req->len,
                          .chain_unanswered = self->chain_unanswered};
        ret = s_handlers[req->route](&call);
    }
    if (req->waiting)
        return ret; /* answered on resume */
    lc_histogram_observe(self->latency[req->route], (double)(lc_mono_us() - req->start_us) / 1e6);
    return ret;
}

/* libmicrohttpd calls this for a request's headers, each body chunk, the body's end, and once
 * more after a resume. */
static enum MHD_Result s_handle(gw_http_t *self, gw_listener_t listener, struct MHD_Connection *c,
                                const char *url, const char *method, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    s_req_t *req = *con_cls;
    if (!req)
        return s_begin(self, listener, c, url, method, con_cls);
    if (req->waiting)
        return s_resumed(self, c, req);
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return s_upload(self, req, upload, n);
    }
    return s_complete(self, c, req);
}

static enum MHD_Result s_on_device(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload,
                                   size_t *upload_size, void **con_cls)
{
    (void)version;
    return s_handle(cls, GW_LISTENER_DEVICE, c, url, method, upload, upload_size, con_cls);
}

/* The operator API, a route of the admin listener (lc_admin_add_route). */
static enum MHD_Result s_on_admin(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    return s_handle(cls, GW_LISTENER_ADMIN, c, url, method, upload, upload_size, con_cls);
}

static void s_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    gw_http_t *self = cls;
    s_req_t *req = *con_cls;
    if (req) {
        if (req->counted)
            atomic_fetch_sub(&self->active, 1);
        if (req->answer.resp)
            MHD_destroy_response(req->answer.resp);
        s_req_free(self, req); /* wipes */
        gw_token_clear(&req->token);
        free(req);
        *con_cls = NULL;
    }
}

/* libmicrohttpd's accept policy: an address holding its share of connections gets no more. */
static enum MHD_Result s_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    gw_http_t *self = cls;
    return gw_conn_limit_enter(self->per_ip, addr) == 0 ? MHD_YES : MHD_NO;
}

/* A connection that passed s_accept closed: its address's count goes down. (One that passed
 * and then failed to start, out of memory, stays counted until the restart: rare and safe.) */
static void s_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)socket_context;
    gw_http_t *self = cls;
    if (code != MHD_CONNECTION_NOTIFY_CLOSED)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    gw_conn_limit_leave(self->per_ip, ci ? ci->client_addr : NULL);
}

/* Reads a whole PEM file into guarded memory (NUL-terminated; the key is secret). NULL on error. */
static char *s_read_pem(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && n < (1 << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = sodium_malloc((size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
    } else if (buf) {
        sodium_free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

/* libmicrohttpd's own messages: why TLS or the socket failed at start; later ones (a client's
 * failed handshake, say) only at debug level. */
static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    const gw_http_t *self = cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    lc_log(atomic_load(&self->started) ? LC_LOG_DEBUG : LC_LOG_ERROR, "http_server", "msg=\"%s\"",
           msg);
}

/* Starts the device listener: TLS when a certificate and key are configured (both or neither:
 * checked with the configuration). The PEM bytes are wiped once libmicrohttpd has loaded them. */
static int s_listen(gw_http_t *self)
{
    const gw_config_t *cfg = self->deps.cfg;
    struct sockaddr_storage sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (lc_http_bind(&sa, &flags, cfg->http_bind) < 0) {
        lc_error("http_bind_invalid", "bind=%s", cfg->http_bind);
        return -1;
    }
    int tls = cfg->tls_cert[0] != '\0';
    char *cert = NULL, *key = NULL;
    if (tls) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            lc_error("tls_unavailable", "reason=\"libmicrohttpd was built without TLS\"");
            return -1;
        }
        if (!(cert = s_read_pem(cfg->tls_cert)) || !(key = s_read_pem(cfg->tls_key))) {
            lc_error("tls_load_failed", "cert=%s key=%s reason=\"cannot read %s\"", cfg->tls_cert,
                     cfg->tls_key, cert ? "LCORE_GATEWAY_TLS_KEY" : "LCORE_GATEWAY_TLS_CERT");
            sodium_free(cert);
            return -1;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem tls_opts[] = {{MHD_OPTION_HTTPS_MEM_CERT, 0, cert},
                                        {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
                                        {MHD_OPTION_END, 0, NULL}};
    self->daemon = MHD_start_daemon(
        flags, 0, s_accept, self, s_on_device, self, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, self,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_NOTIFY_CONNECTION, s_conn_notify, self, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)GW_HTTP_CONNECTION_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, s_completed, self,
        MHD_OPTION_ARRAY, tls ? tls_opts : &tls_opts[2], MHD_OPTION_END);
    sodium_free(key); /* wipes */
    sodium_free(cert);
    if (!self->daemon) {
        lc_error(tls ? "tls_listen_failed" : "http_listen_failed",
                 "bind=%s cert=%s key=%s reason=\"see http_server above: address in use, or a "
                 "certificate and key that do not load or match\"",
                 cfg->http_bind, tls ? cfg->tls_cert : "-", tls ? cfg->tls_key : "-");
        return -1;
    }
    atomic_store(&self->started, 1);
    lc_info("http_listening",
            "bind=%s tls=%s threads=%lld max_connections=%lld per_ip=%lld body_budget=%lld",
            cfg->http_bind, tls ? "on" : "off", cfg->threads, cfg->max_connections,
            cfg->max_connections_per_ip, cfg->body_budget_bytes);
    return 0;
}

gw_http_t *gw_http_new(const gw_http_deps_t *deps)
{
    gw_http_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->deps = *deps;
    for (int i = 0; i < N_ROUTE_SERIES; i++) {
        char l[48];
        snprintf(l, sizeof l, "route=\"%s\"", i < GW_ROUTE_COUNT ? gw_routes[i].label : "other");
        self->requests[i] = lc_metrics_counter(deps->metrics, "lcore_gateway_requests_total",
                                               "HTTP requests by route", l);
        self->latency[i] =
            lc_metrics_histogram(deps->metrics, "lcore_gateway_request_duration_seconds",
                                 "Time from request start to response, by route", l,
                                 lc_latency_buckets, lc_latency_buckets_len);
    }
    self->waiting =
        lc_metrics_gauge(deps->metrics, "lcore_gateway_requests_waiting",
                         "HTTP requests suspended until their log entry is durable", NULL);
    for (size_t i = 0; i < N_CODES; i++) {
        char l[32];
        snprintf(l, sizeof l, "code=\"%u\"", s_codes[i]);
        self->responses[i] = lc_metrics_counter(deps->metrics, "lcore_gateway_responses_total",
                                                "HTTP responses by status code", l);
    }
    if (!(self->budget = gw_budget_new((size_t)deps->cfg->body_budget_bytes, deps->metrics)) ||
        !(self->per_ip =
              gw_conn_limit_new((unsigned)deps->cfg->max_connections_per_ip, deps->metrics))) {
        gw_budget_destroy(&self->budget);
        free(self);
        return NULL;
    }
    self->chain_unanswered = lc_metrics_counter(
        deps->metrics, "lcore_gateway_chain_unanswered_total",
        "Record lookups answered without the chain's part: the relayer did not answer", NULL);
    if (s_start_query_threads(self) < 0 || s_listen(self) < 0) {
        lc_error("http_start_failed", "query_threads=%zu", self->n_q_threads);
        s_stop_query_threads(self);
        gw_budget_destroy(&self->budget);
        gw_conn_limit_destroy(&self->per_ip);
        free(self);
        return NULL;
    }
    lc_admin_route_t operator_api = {"/v1", s_on_admin, s_completed, self};
    if (lc_admin_add_route(deps->admin, &operator_api) < 0) {
        lc_error("admin_route_failed", "path=%s", operator_api.path);
        MHD_stop_daemon(self->daemon);
        s_stop_query_threads(self);
        gw_budget_destroy(&self->budget);
        gw_conn_limit_destroy(&self->per_ip);
        free(self);
        return NULL;
    }
    return self;
}

/* Waits up to ticks * 10 ms for the requests begun to be answered. */
static void s_drain(gw_http_t *self, int ticks)
{
    for (int i = 0; i < ticks && atomic_load(&self->active) > 0; i++)
        usleep(10000);
    if (atomic_load(&self->active) > 0)
        lc_warn("http_stop_with_waiting_requests", "n=%d", atomic_load(&self->active));
}

void gw_http_destroy(gw_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_http_t *self = *self_p;
    lc_admin_remove_routes(self->deps.admin, self);
    /* No new connections; new readings on open ones get 503; the requests begun, those waiting
     * for the log (the relay still runs) or on a query thread included, are answered before
     * MHD stops: it would cut their answers and abort on a suspended connection. */
    atomic_store(&self->stopping, 1);
    MHD_quiesce_daemon(self->daemon);
    s_drain(self, 3000);
    atomic_store(&self->closing, 1);
    s_drain(self, 3000); /* those begun before they saw `closing` (s_may_suspend) */
    MHD_stop_daemon(self->daemon);
    s_stop_query_threads(self);
    gw_budget_destroy(&self->budget);
    gw_conn_limit_destroy(&self->per_ip);
    free(self);
    *self_p = NULL;
}
