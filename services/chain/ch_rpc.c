/* ch_rpc.c: JSON-RPC 2.0 over libcurl with endpoint failover, and the typed eth_* calls.
 * See ch_rpc.h. */
#include "ch_rpc.h"

#include <assert.h>
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_codec.h"
#include "lc_log.h"

#define CH_RPC_RX_MAX (16u * 1024 * 1024) /* a larger answer is a broken endpoint */
#define CH_RPC_NAME_MAX 96
#define CH_RPC_REASON_MAX 160

typedef struct {
    char *url;
    char name[CH_RPC_NAME_MAX]; /* scheme://host[:port]: safe to log */
    CURL *easy;
    int down;
    unsigned fails;       /* consecutive failures, 0 when up */
    uint64_t retry_at_us; /* monotonic; not tried before this while down */
} endpoint_t;

struct ch_rpc {
    endpoint_t *eps;
    size_t n_eps;
    size_t current; /* the endpoint that answered last */
    long timeout_ms;
    char *ca_file; /* NULL: libcurl's CA store */
    uint64_t next_id;
    struct curl_slist *headers;
    char *rx;
    size_t rx_len, rx_cap;
    char errbuf[CURL_ERROR_SIZE];
    lc_counter_t *req_ok, *req_rpc_error, *req_transport_error, *failovers;
    lc_histogram_t *duration;
    lc_gauge_t *endpoints_up;
};

/* A parser for a typed call: reads result into ctx. Returns 0, LC_ERR_IO for a bad answer (the
 * endpoint counts as failed) or another code that goes to the caller as is (NOTFOUND, ...). */
typedef int (*s_parse_fn)(const json_t *result, void *ctx);

/* ---- Pure parsing ---- */

static int s_lower_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int ch_rpc_parse_quantity(const char *s, size_t len, uint8_t out[32])
{
    memset(out, 0, 32);
    if (!s || len < 3 || len > 2 + 64 || s[0] != '0' || s[1] != 'x')
        return LC_ERR_INVALID;
    const char *d = s + 2;
    size_t n = len - 2;
    if (n > 1 && d[0] == '0')
        return LC_ERR_INVALID;
    uint8_t tmp[32] = {0};
    for (size_t i = 0; i < n; i++) {
        int v = s_lower_hex(d[n - 1 - i]); /* i-th nibble from the right */
        if (v < 0)
            return LC_ERR_INVALID;
        tmp[31 - i / 2] |= (uint8_t)(i % 2 ? v << 4 : v);
    }
    memcpy(out, tmp, 32);
    return 0;
}

int ch_rpc_parse_quantity_u64(const char *s, size_t len, uint64_t *out)
{
    uint8_t be[32];
    *out = 0;
    int rc = ch_rpc_parse_quantity(s, len, be);
    if (rc)
        return rc;
    for (size_t i = 0; i < 24; i++)
        if (be[i])
            return LC_ERR_TOOBIG;
    uint64_t v = 0;
    for (size_t i = 24; i < 32; i++)
        v = v << 8 | be[i];
    *out = v;
    return 0;
}

int ch_rpc_parse_data(const char *s, size_t len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    *out_len = 0;
    if (!s || len < 2 || s[0] != '0' || s[1] != 'x')
        return LC_ERR_INVALID;
    /* lc_hex_decode would also take a second "0x"; the digits alone are passed. */
    if (len > 3 && (s[3] == 'x' || s[3] == 'X'))
        return LC_ERR_INVALID;
    return lc_hex_decode(out, out_cap, out_len, s + 2, len - 2);
}

/* Case-insensitive search for needle (lowercase) in hay, starting at a word boundary so that
 * "known transaction" does not match inside "Unknown transaction type". */
static int s_has(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        if (p > hay && isalnum((unsigned char)p[-1]))
            continue;
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == needle[i])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static int s_has_any(const char *hay, const char *const *needles)
{
    for (; *needles; needles++)
        if (s_has(hay, *needles))
            return 1;
    return 0;
}

ch_rpc_err_kind_t ch_rpc_classify_error(long long code, const char *message)
{
    static const char *const not_found[] = {"method not found", "does not exist/is not available",
                                            "method not supported", "unsupported method", NULL};
    static const char *const limited[] = {"rate limit", "too many requests", NULL};
    if (!message)
        message = "";
    if (code == -32601)
        return CH_RPC_ERR_METHOD_NOT_FOUND;
    if (code == 3)
        return CH_RPC_ERR_REVERTED; /* EIP-1474 execution error, geth and anvil reverts */
    if (code == -32700 || code == -32600 || code == -32602)
        return CH_RPC_ERR_INVALID_REQUEST;
    if (code == -32005)
        return CH_RPC_ERR_LIMITED;
    if (s_has_any(message, not_found))
        return CH_RPC_ERR_METHOD_NOT_FOUND;
    if (s_has(message, "execution reverted"))
        return CH_RPC_ERR_REVERTED; /* geth without revert data: -32000 "execution reverted" */
    if (s_has_any(message, limited))
        return CH_RPC_ERR_LIMITED;
    return CH_RPC_ERR_SERVER;
}

/* eth_sendRawTransaction refusals, first match wins. Wordings of geth (and Nitro, which is
 * geth), anvil, reth, Erigon, Nethermind, Besu and OpenEthereum. Patterns are lowercase and
 * match case-insensitively at a word start in message or data. */
static const struct {
    ch_send_status_t status;
    const char *const patterns[8];
} s_send_table[] = {
    {CH_SEND_ALREADY_KNOWN,
     {"already known", "known transaction", "alreadyknown", "already imported", NULL}},
    {CH_SEND_NONCE_TOO_LOW,
     {"nonce too low", "noncetoolow", "nonce has already been used", "nonce is too low", "oldnonce",
      NULL}},
    {CH_SEND_UNDERPRICED,
     {"underpriced", "replacementunderpriced", "insufficient gas price to replace",
      "max fee per gas less than block base fee", "fee cap less than block base fee",
      "feecaptoolow", "feetoolow", NULL}},
    {CH_SEND_INSUFFICIENT_FUNDS, {"insufficient funds", "insufficientfunds", NULL}},
    {CH_SEND_NONCE_TOO_HIGH, {"nonce too high", "noncetoohigh", NULL}},
    {CH_SEND_RETRYABLE,
     {"txpool is full", "transaction pool is full", "rate limit", "too many requests", "timed out",
      "timeout", NULL}},
};

ch_send_status_t ch_rpc_classify_send_error(const ch_rpc_error_t *err)
{
    if (!err || err->kind == CH_RPC_ERR_ENDPOINT || err->kind == CH_RPC_ERR_NONE)
        return CH_SEND_RETRYABLE;
    for (size_t i = 0; i < LC_ARRAY_LEN(s_send_table); i++)
        if (s_has_any(err->message, s_send_table[i].patterns) ||
            s_has_any(err->data, s_send_table[i].patterns))
            return s_send_table[i].status;
    if (err->kind == CH_RPC_ERR_LIMITED)
        return CH_SEND_RETRYABLE;
    return CH_SEND_OTHER_FATAL;
}

const char *ch_send_status_name(ch_send_status_t status)
{
    switch (status) {
    case CH_SEND_OK:
        return "ok";
    case CH_SEND_ALREADY_KNOWN:
        return "already_known";
    case CH_SEND_NONCE_TOO_LOW:
        return "nonce_too_low";
    case CH_SEND_UNDERPRICED:
        return "underpriced";
    case CH_SEND_INSUFFICIENT_FUNDS:
        return "insufficient_funds";
    case CH_SEND_NONCE_TOO_HIGH:
        return "nonce_too_high";
    case CH_SEND_OTHER_FATAL:
        return "other_fatal";
    case CH_SEND_RETRYABLE:
        return "retryable";
    }
    return "unknown";
}

static void s_err_set(ch_rpc_error_t *err, ch_rpc_err_kind_t kind, long long code,
                      const char *message)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    err->kind = kind;
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", message ? message : "");
}

/* Copies a JSON string (len bytes, which may hold NULs) into a C string of cap bytes: truncated,
 * NUL-terminated, control characters replaced so that the text stays one printable line. */
static void s_text_set(char *out, size_t cap, const char *s, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[n] = '\0';
}

static int s_bad(ch_rpc_error_t *err, const char *why)
{
    s_err_set(err, CH_RPC_ERR_ENDPOINT, 0, why);
    return LC_ERR_IO;
}

static int s_type_ok(const json_t *v, ch_rpc_expect_t expect)
{
    switch (expect) {
    case CH_RPC_EXPECT_ANY:
        return 1;
    case CH_RPC_EXPECT_QUANTITY: {
        uint8_t be[32];
        return json_is_string(v) &&
               ch_rpc_parse_quantity(json_string_value(v), json_string_length(v), be) == 0;
    }
    case CH_RPC_EXPECT_DATA: {
        if (!json_is_string(v))
            return 0;
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len < 2 || s[0] != '0' || s[1] != 'x' || len % 2)
            return 0;
        for (size_t i = 2; i < len; i++)
            if (!isxdigit((unsigned char)s[i]))
                return 0;
        return 1;
    }
    case CH_RPC_EXPECT_OBJECT:
        return json_is_object(v);
    case CH_RPC_EXPECT_OBJECT_OR_NULL:
        return json_is_object(v) || json_is_null(v);
    }
    return 0;
}

int ch_rpc_check_response(const char *body, size_t len, uint64_t id, ch_rpc_expect_t expect,
                          json_t **result, ch_rpc_error_t *err)
{
    *result = NULL;
    if (err)
        memset(err, 0, sizeof *err);
    if (!body || len == 0)
        return s_bad(err, "empty answer");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return s_bad(err, "answer is not JSON");
    int rc;
    const json_t *ver = json_object_get(root, "jsonrpc");
    const json_t *jid = json_object_get(root, "id");
    json_t *res = json_object_get(root, "result");
    const json_t *eo = json_object_get(root, "error");
    if (!json_is_object(root)) {
        rc = s_bad(err, "answer is not a JSON object");
    } else if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0 ||
               json_string_length(ver) != 3) {
        rc = s_bad(err, "jsonrpc is not \"2.0\"");
    } else if (!json_is_integer(jid) || json_integer_value(jid) < 0 ||
               (uint64_t)json_integer_value(jid) != id) {
        rc = s_bad(err, "id does not match the request");
    } else if (res && eo) {
        rc = s_bad(err, "answer has both result and error");
    } else if (res) {
        if (s_type_ok(res, expect)) {
            *result = json_incref(res);
            rc = 0;
        } else {
            rc = s_bad(err, "result has the wrong type");
        }
    } else if (eo) {
        const json_t *code = json_object_get(eo, "code");
        const json_t *msg = json_object_get(eo, "message");
        const json_t *data = json_object_get(eo, "data");
        if (!json_is_object(eo) || !json_is_integer(code) || !json_is_string(msg)) {
            rc = s_bad(err, "malformed error object");
        } else {
            /* With JSON_ALLOW_NUL a string may hold NULs: texts are copied by length. */
            ch_rpc_error_t local;
            ch_rpc_error_t *e = err ? err : &local;
            s_err_set(e, CH_RPC_ERR_NONE, json_integer_value(code), NULL);
            s_text_set(e->message, sizeof e->message, json_string_value(msg),
                       json_string_length(msg));
            ch_rpc_err_kind_t kind =
                ch_rpc_classify_error(json_integer_value(code), json_string_value(msg));
            e->kind = kind;
            if (err && data && !json_is_null(data)) {
                if (json_is_string(data)) {
                    s_text_set(err->data, sizeof err->data, json_string_value(data),
                               json_string_length(data));
                } else {
                    char *s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
                    if (s)
                        snprintf(err->data, sizeof err->data, "%s", s);
                    free(s);
                }
            }
            rc = kind == CH_RPC_ERR_METHOD_NOT_FOUND ? LC_ERR_UNSUPPORTED : CH_RPC_REJECTED;
        }
    } else {
        rc = s_bad(err, "answer has neither result nor error");
    }
    json_decref(root);
    return rc;
}

/* ---- Endpoints ---- */

/* scheme://host[:port] of url, without user info, path or query: API keys often live there. */
static void s_redact(char *out, size_t cap, const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t scheme_len = (size_t)(host - url);
    size_t end = strcspn(host, "/?#");
    const char *at = memchr(host, '@', end);
    if (at) {
        end -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    snprintf(out, cap, "%.*s%.*s", (int)scheme_len, url, (int)end, host);
}

static size_t s_on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    ch_rpc_t *self = userdata;
    size_t n = size * nmemb;
    if (self->rx_len + n + 1 > self->rx_cap) {
        if (self->rx_len + n + 1 > CH_RPC_RX_MAX)
            return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        size_t cap = self->rx_cap ? self->rx_cap : 4096;
        while (cap < self->rx_len + n + 1)
            cap *= 2;
        char *rx = realloc(self->rx, cap);
        if (!rx)
            return 0;
        self->rx = rx;
        self->rx_cap = cap;
    }
    memcpy(self->rx + self->rx_len, ptr, n);
    self->rx_len += n;
    self->rx[self->rx_len] = '\0';
    return n;
}

static CURL *s_easy_new(ch_rpc_t *self, const char *url)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    long connect_ms =
        self->timeout_ms < CH_RPC_CONNECT_TIMEOUT_MS ? self->timeout_ms : CH_RPC_CONNECT_TIMEOUT_MS;
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
    if (self->ca_file)
        rc |= curl_easy_setopt(e, CURLOPT_CAINFO, self->ca_file);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_data);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, self);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, self->errbuf);
    if (rc != CURLE_OK) {
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

static void s_update_up_gauge(ch_rpc_t *self)
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
static void s_mark_down(ch_rpc_t *self, size_t i, const char *method, const char *reason,
                        uint64_t retry_after_s)
{
    endpoint_t *ep = &self->eps[i];
    if (ep->fails < 16)
        ep->fails++;
    uint64_t delay_ms = (uint64_t)CH_RPC_BACKOFF_MIN_MS << (ep->fails - 1);
    if (retry_after_s > CH_RPC_BACKOFF_MAX_MS / 1000)
        retry_after_s = CH_RPC_BACKOFF_MAX_MS / 1000;
    if (retry_after_s * 1000 > delay_ms)
        delay_ms = retry_after_s * 1000;
    if (delay_ms > CH_RPC_BACKOFF_MAX_MS)
        delay_ms = CH_RPC_BACKOFF_MAX_MS;
    ep->retry_at_us = lc_mono_us() + delay_ms * 1000;
    ep->down = 1;
    s_update_up_gauge(self);
    char safe[CH_RPC_REASON_MAX];
    snprintf(safe, sizeof safe, "%s", reason);
    for (char *p = safe; *p; p++)
        if (*p == '"' || *p == '\n' || *p == '\r' || *p == '\\')
            *p = '\'';
    lc_warn("chain_rpc_endpoint_down",
            "endpoint=%zu url=%s method=%s reason=\"%s\" fails=%u retry_in_ms=%llu", i, ep->name,
            method, safe, ep->fails, (unsigned long long)delay_ms);
}

static void s_mark_up(ch_rpc_t *self, size_t i)
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
static int s_attempt(ch_rpc_t *self, size_t i, const char *body, uint64_t id,
                     ch_rpc_expect_t expect, json_t **result, ch_rpc_error_t *err, char *reason,
                     size_t reason_cap, uint64_t *retry_after_s)
{
    CURL *e = self->eps[i].easy;
    self->rx_len = 0;
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
    int rc = ch_rpc_check_response(self->rx, self->rx_len, id, expect, result, err);
    if (status < 200 || status > 299) {
        /* Some providers send error objects with a 4xx: those are answers. Anything else with a
         * 3xx/4xx (wrong path, missing API key) means this endpoint is unusable. */
        if (rc == CH_RPC_REJECTED || rc == LC_ERR_UNSUPPORTED)
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

/* The failover loop shared by every call. params is stolen. */
static int s_request(ch_rpc_t *self, const char *method, json_t *params, ch_rpc_expect_t expect,
                     s_parse_fn parse, void *ctx, ch_rpc_error_t *err)
{
    assert(self && method);
    ch_rpc_error_t local;
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
    char reason[CH_RPC_REASON_MAX] = "all endpoints are in backoff";
    int failed_before = 0;
    for (size_t i = 0; i < self->n_eps; i++) {
        endpoint_t *ep = &self->eps[i];
        if (ep->down && lc_mono_us() < ep->retry_at_us)
            continue;
        if (failed_before)
            s_count(self->failovers);
        /* A fresh id per attempt: an answer meant for another request never passes. */
        uint64_t id = self->next_id++;
        char *body = NULL;
        if (json_object_set_new(req, "id", json_integer((json_int_t)id)) == 0)
            body = json_dumps(req, JSON_COMPACT);
        if (!body) {
            rc = LC_ERR_NOMEM;
            break;
        }
        json_t *result = NULL;
        uint64_t retry_after_s = 0;
        int arc = s_attempt(self, i, body, id, expect, &result, err, reason, sizeof reason,
                            &retry_after_s);
        free(body);
        if (arc == 0 && parse) {
            arc = parse(result, ctx);
            if (arc == LC_ERR_IO)
                snprintf(reason, sizeof reason, "bad answer: unexpected %s result", method);
            else if (arc != 0)
                memset(err, 0, sizeof *err); /* NOTFOUND, UNSUPPORTED: a valid result */
        }
        json_decref(result);
        if (arc == LC_ERR_IO) {
            s_count(self->req_transport_error);
            s_mark_down(self, i, method, reason, retry_after_s);
            failed_before = 1;
            continue;
        }
        if (arc == LC_ERR_NOMEM) {
            rc = arc;
            break;
        }
        s_count(arc == CH_RPC_REJECTED || arc == LC_ERR_UNSUPPORTED ? self->req_rpc_error
                                                                    : self->req_ok);
        s_mark_up(self, i);
        rc = arc;
        break;
    }
    json_decref(req);
    if (rc == LC_ERR_UNAVAILABLE) {
        char msg[CH_RPC_ERR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "no endpoint answered %s: %s", method, reason);
        s_err_set(err, CH_RPC_ERR_ENDPOINT, 0, msg);
        lc_debug("chain_rpc_unavailable", "method=%s", method);
    } else if (rc == 0 || rc == LC_ERR_NOTFOUND || rc == LC_ERR_NOMEM) {
        memset(err, 0, sizeof *err);
    }
    return rc;
}

ch_rpc_t *ch_rpc_new(const char *urls_csv, int timeout_ms, lc_metrics_t *metrics)
{
    if (!urls_csv) {
        lc_error("chain_rpc_config", "reason=\"no RPC URL\"");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        lc_error("chain_rpc_init", "reason=\"curl_global_init failed\"");
        return NULL;
    }
    int logged = 0; /* a configuration error was logged; anything else is an allocation */
    ch_rpc_t *self = calloc(1, sizeof *self);
    char *list = strdup(urls_csv);
    if (!self || !list)
        goto fail;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : CH_RPC_TIMEOUT_MS_DEFAULT;
    self->next_id = 1;
    self->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h =
        self->headers ? curl_slist_append(self->headers, "Accept: application/json") : NULL;
    /* "Expect: 100-continue" on larger bodies would cost a round trip per request. */
    h = h ? curl_slist_append(h, "Expect:") : NULL;
    if (!h)
        goto fail;
    self->eps = calloc(CH_RPC_MAX_ENDPOINTS, sizeof *self->eps);
    if (!self->eps)
        goto fail;

    /* Split by hand rather than with strtok: an empty entry ("a,,b") is a typo to refuse. */
    for (char *tok = list;;) {
        char *comma = strchr(tok, ',');
        if (comma)
            *comma = '\0';
        while (isspace((unsigned char)*tok))
            tok++;
        size_t len = strlen(tok);
        while (len && isspace((unsigned char)tok[len - 1]))
            tok[--len] = '\0';
        if (self->n_eps == CH_RPC_MAX_ENDPOINTS) {
            lc_error("chain_rpc_config", "reason=\"more than %d RPC URLs\"", CH_RPC_MAX_ENDPOINTS);
            logged = 1;
            goto fail;
        }
        size_t host = strncasecmp(tok, "http://", 7) == 0    ? 7
                      : strncasecmp(tok, "https://", 8) == 0 ? 8
                                                             : 0;
        if (!host || strcspn(tok + host, "/?#") == 0) {
            lc_error("chain_rpc_config", "endpoint=%zu reason=\"%s\"", self->n_eps,
                     len ? "not an http(s) URL" : "empty entry in the URL list");
            logged = 1;
            goto fail;
        }
        endpoint_t *ep = &self->eps[self->n_eps];
        ep->url = strdup(tok);
        if (!ep->url)
            goto fail;
        s_redact(ep->name, sizeof ep->name, tok);
        self->n_eps++;
        ep->easy = s_easy_new(self, ep->url);
        if (!ep->easy)
            goto fail;
        if (!comma)
            break;
        tok = comma + 1;
    }

    if (metrics) {
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
        if (!self->req_ok || !self->req_rpc_error || !self->req_transport_error ||
            !self->duration || !self->failovers || !self->endpoints_up)
            goto fail;
    }
    s_update_up_gauge(self);
    free(list);
    for (size_t i = 0; i < self->n_eps; i++)
        lc_info("chain_rpc_endpoint", "endpoint=%zu url=%s timeout_ms=%ld", i, self->eps[i].name,
                self->timeout_ms);
    return self;
fail:
    if (!logged)
        lc_error("chain_rpc_init", "reason=\"out of memory or curl setup failed\"");
    free(list);
    if (self)
        ch_rpc_destroy(&self); /* runs curl_global_cleanup */
    else
        curl_global_cleanup();
    return NULL;
}

int ch_rpc_set_ca_file(ch_rpc_t *self, const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return LC_ERR_NOMEM;
    free(self->ca_file);
    self->ca_file = copy;
    return 0;
}

void ch_rpc_destroy(ch_rpc_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ch_rpc_t *self = *self_p;
    for (size_t i = 0; self->eps && i < self->n_eps; i++) {
        if (self->eps[i].easy)
            curl_easy_cleanup(self->eps[i].easy);
        free(self->eps[i].url);
    }
    free(self->eps);
    curl_slist_free_all(self->headers);
    free(self->rx);
    free(self->ca_file);
    free(self);
    *self_p = NULL;
    curl_global_cleanup();
}

/* ---- Calls ---- */

static int s_take(const json_t *result, void *ctx)
{
    *(json_t **)ctx = json_incref((json_t *)result);
    return 0;
}

int ch_rpc_call(ch_rpc_t *self, const char *method, json_t *params, ch_rpc_expect_t expect,
                json_t **result, ch_rpc_error_t *err)
{
    *result = NULL;
    return s_request(self, method, params, expect, s_take, result, err);
}

/* "0x" + hex of b, as a new JSON string (NULL on allocation failure). */
static json_t *s_hex_json(const uint8_t *b, size_t n)
{
    char *s = malloc(2 + LC_HEX_LEN(n) + 1);
    if (!s)
        return NULL;
    s[0] = '0';
    s[1] = 'x';
    json_t *j = NULL;
    if (lc_hex_encode(s + 2, LC_HEX_LEN(n) + 1, b, n) == 0)
        j = json_string(s);
    free(s);
    return j;
}

static json_t *s_quantity_json(uint64_t v)
{
    char s[2 + 16 + 1];
    snprintf(s, sizeof s, "0x%llx", (unsigned long long)v);
    return json_string(s);
}

static const char *s_tag(ch_block_tag_t tag)
{
    return tag == CH_BLOCK_PENDING ? "pending" : "latest";
}

/* Reads a quantity or fixed-size data field of an object; LC_ERR_IO when absent or malformed. */
static int s_field_u64(const json_t *obj, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) ||
        ch_rpc_parse_quantity_u64(json_string_value(v), json_string_length(v), out) != 0)
        return LC_ERR_IO;
    return 0;
}

static int s_field_fixed(const json_t *obj, const char *key, uint8_t *out, size_t n)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    size_t got = 0;
    if (!json_is_string(v) ||
        ch_rpc_parse_data(json_string_value(v), json_string_length(v), out, n, &got) != 0 ||
        got != n)
        return LC_ERR_IO;
    return 0;
}

static int s_parse_u64(const json_t *r, void *ctx)
{
    return ch_rpc_parse_quantity_u64(json_string_value(r), json_string_length(r), ctx) ? LC_ERR_IO
                                                                                       : 0;
}

static int s_parse_u256(const json_t *r, void *ctx)
{
    return ch_rpc_parse_quantity(json_string_value(r), json_string_length(r), ctx) ? LC_ERR_IO : 0;
}

int ch_rpc_chain_id(ch_rpc_t *self, uint64_t *chain_id, ch_rpc_error_t *err)
{
    return s_request(self, "eth_chainId", NULL, CH_RPC_EXPECT_QUANTITY, s_parse_u64, chain_id, err);
}

int ch_rpc_block_number(ch_rpc_t *self, uint64_t *number, ch_rpc_error_t *err)
{
    return s_request(self, "eth_blockNumber", NULL, CH_RPC_EXPECT_QUANTITY, s_parse_u64, number,
                     err);
}

int ch_rpc_get_transaction_count(ch_rpc_t *self, const uint8_t address[20], ch_block_tag_t tag,
                                 uint64_t *nonce, ch_rpc_error_t *err)
{
    json_t *params = json_pack("[o, s]", s_hex_json(address, 20), s_tag(tag));
    if (!params)
        return LC_ERR_NOMEM;
    return s_request(self, "eth_getTransactionCount", params, CH_RPC_EXPECT_QUANTITY, s_parse_u64,
                     nonce, err);
}

int ch_rpc_get_transaction_count_at(ch_rpc_t *self, const uint8_t address[20], uint64_t block,
                                    uint64_t *nonce, ch_rpc_error_t *err)
{
    json_t *params = json_pack("[o, o]", s_hex_json(address, 20), s_quantity_json(block));
    if (!params)
        return LC_ERR_NOMEM;
    return s_request(self, "eth_getTransactionCount", params, CH_RPC_EXPECT_QUANTITY, s_parse_u64,
                     nonce, err);
}

int ch_rpc_get_balance(ch_rpc_t *self, const uint8_t address[20], uint8_t wei[32],
                       ch_rpc_error_t *err)
{
    json_t *params = json_pack("[o, s]", s_hex_json(address, 20), "latest");
    if (!params)
        return LC_ERR_NOMEM;
    return s_request(self, "eth_getBalance", params, CH_RPC_EXPECT_QUANTITY, s_parse_u256, wei,
                     err);
}

static int s_parse_base_fee(const json_t *block, void *ctx)
{
    const json_t *v = json_object_get(block, "baseFeePerGas");
    if (!v || json_is_null(v))
        return LC_ERR_UNSUPPORTED; /* a chain without EIP-1559: not the endpoint's fault */
    return s_field_u64(block, "baseFeePerGas", ctx);
}

int ch_rpc_base_fee(ch_rpc_t *self, uint64_t *base_fee_wei, ch_rpc_error_t *err)
{
    json_t *params = json_pack("[s, b]", "latest", 0);
    if (!params)
        return LC_ERR_NOMEM;
    return s_request(self, "eth_getBlockByNumber", params, CH_RPC_EXPECT_OBJECT, s_parse_base_fee,
                     base_fee_wei, err);
}

int ch_rpc_max_priority_fee(ch_rpc_t *self, uint64_t *tip_wei, ch_rpc_error_t *err)
{
    return s_request(self, "eth_maxPriorityFeePerGas", NULL, CH_RPC_EXPECT_QUANTITY, s_parse_u64,
                     tip_wei, err);
}

/* {from?, to, data} for eth_call and eth_estimateGas. */
static json_t *s_call_object(const uint8_t *from, const uint8_t to[20], const uint8_t *data,
                             size_t data_len)
{
    json_t *o =
        json_pack("{s:o, s:o}", "to", s_hex_json(to, 20), "data", s_hex_json(data, data_len));
    if (o && from && json_object_set_new(o, "from", s_hex_json(from, 20)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int ch_rpc_estimate_gas(ch_rpc_t *self, const uint8_t *from, const uint8_t to[20],
                        const uint8_t *data, size_t data_len, uint64_t *gas, ch_rpc_error_t *err)
{
    assert(data || data_len == 0);
    json_t *params = json_pack("[o]", s_call_object(from, to, data, data_len));
    if (!params)
        return LC_ERR_NOMEM;
    return s_request(self, "eth_estimateGas", params, CH_RPC_EXPECT_QUANTITY, s_parse_u64, gas,
                     err);
}

typedef struct {
    uint8_t **out;
    size_t *out_len;
} bytes_out_t;

static int s_parse_bytes(const json_t *r, void *ctx)
{
    bytes_out_t *o = ctx;
    size_t len = json_string_length(r);
    size_t n = (len - 2) / 2; /* CH_RPC_EXPECT_DATA checked the form */
    uint8_t *buf = n ? malloc(n) : NULL;
    if (n && !buf)
        return LC_ERR_NOMEM;
    size_t got = 0;
    if (ch_rpc_parse_data(json_string_value(r), len, buf, n, &got) != 0 || got != n) {
        free(buf);
        return LC_ERR_IO;
    }
    *o->out = buf;
    *o->out_len = n;
    return 0;
}

int ch_rpc_eth_call(ch_rpc_t *self, const uint8_t to[20], const uint8_t *data, size_t data_len,
                    uint8_t **out, size_t *out_len, ch_rpc_error_t *err)
{
    assert(data || data_len == 0);
    *out = NULL;
    *out_len = 0;
    json_t *params = json_pack("[o, s]", s_call_object(NULL, to, data, data_len), "latest");
    if (!params)
        return LC_ERR_NOMEM;
    bytes_out_t o = {out, out_len};
    return s_request(self, "eth_call", params, CH_RPC_EXPECT_DATA, s_parse_bytes, &o, err);
}

typedef struct {
    uint64_t number;
    uint8_t *hash;
} block_hash_t;

static int s_parse_block_hash(const json_t *block, void *ctx)
{
    block_hash_t *b = ctx;
    if (json_is_null(block))
        return LC_ERR_NOTFOUND;
    uint64_t number = 0;
    if (s_field_u64(block, "number", &number) != 0 || number != b->number)
        return LC_ERR_IO;
    return s_field_fixed(block, "hash", b->hash, 32);
}

int ch_rpc_get_block_hash(ch_rpc_t *self, uint64_t number, uint8_t hash[32], ch_rpc_error_t *err)
{
    json_t *params = json_pack("[o, b]", s_quantity_json(number), 0);
    if (!params)
        return LC_ERR_NOMEM;
    block_hash_t b = {number, hash};
    return s_request(self, "eth_getBlockByNumber", params, CH_RPC_EXPECT_OBJECT_OR_NULL,
                     s_parse_block_hash, &b, err);
}

typedef struct {
    const uint8_t *tx_hash;
    ch_receipt_t *receipt;
} receipt_t;

static int s_parse_receipt(const json_t *r, void *ctx)
{
    receipt_t *x = ctx;
    if (json_is_null(r))
        return LC_ERR_NOTFOUND;
    uint8_t hash[32];
    if (s_field_fixed(r, "transactionHash", hash, 32) != 0 || memcmp(hash, x->tx_hash, 32) != 0)
        return LC_ERR_IO;
    /* A receipt without a block (some nodes report pending ones) is not a receipt yet. */
    if (json_is_null(json_object_get(r, "blockNumber")) ||
        json_is_null(json_object_get(r, "blockHash")))
        return LC_ERR_NOTFOUND;
    ch_receipt_t *rc = x->receipt;
    uint64_t status = 0;
    if (s_field_u64(r, "status", &status) != 0 || status > 1 ||
        s_field_u64(r, "blockNumber", &rc->block_number) != 0 ||
        s_field_fixed(r, "blockHash", rc->block_hash, 32) != 0 ||
        s_field_u64(r, "gasUsed", &rc->gas_used) != 0 ||
        s_field_u64(r, "effectiveGasPrice", &rc->effective_gas_price) != 0)
        return LC_ERR_IO;
    rc->status = (int)status;
    return 0;
}

int ch_rpc_get_transaction_receipt(ch_rpc_t *self, const uint8_t tx_hash[32], ch_receipt_t *receipt,
                                   ch_rpc_error_t *err)
{
    memset(receipt, 0, sizeof *receipt);
    json_t *params = json_pack("[o]", s_hex_json(tx_hash, 32));
    if (!params)
        return LC_ERR_NOMEM;
    receipt_t x = {tx_hash, receipt};
    int rc = s_request(self, "eth_getTransactionReceipt", params, CH_RPC_EXPECT_OBJECT_OR_NULL,
                       s_parse_receipt, &x, err);
    if (rc != 0)
        memset(receipt, 0, sizeof *receipt);
    return rc;
}

typedef struct {
    ch_log_t *out;
    size_t cap;
    size_t *n;
} logs_out_t;

static int s_parse_logs(const json_t *r, void *ctx)
{
    logs_out_t *o = ctx;
    *o->n = 0;
    if (!json_is_array(r))
        return LC_ERR_IO;
    size_t i;
    const json_t *v;
    json_array_foreach(r, i, v)
    {
        if (*o->n == o->cap)
            break;
        ch_log_t *l = &o->out[*o->n];
        memset(l, 0, sizeof *l);
        const json_t *removed = json_object_get(v, "removed");
        if (!json_is_object(v) || s_field_fixed(v, "transactionHash", l->tx_hash, 32) != 0 ||
            s_field_u64(v, "blockNumber", &l->block_number) != 0 ||
            s_field_fixed(v, "blockHash", l->block_hash, 32) != 0 ||
            (removed && !json_is_boolean(removed)))
            return LC_ERR_IO;
        l->removed = json_is_true(removed);
        (*o->n)++;
    }
    return 0;
}

int ch_rpc_get_logs(ch_rpc_t *self, const uint8_t address[20], const uint8_t (*topics)[32],
                    size_t n_topics, uint64_t from_block, uint64_t to_block, ch_log_t *out,
                    size_t cap, size_t *n, ch_rpc_error_t *err)
{
    *n = 0;
    json_t *t = json_array();
    for (size_t i = 0; t && i < n_topics; i++)
        if (json_array_append_new(t, s_hex_json(topics[i], 32)) != 0) {
            json_decref(t);
            t = NULL;
        }
    json_t *params = t ? json_pack("[{s:o, s:o, s:o, s:o}]", "address", s_hex_json(address, 20),
                                   "topics", t, "fromBlock", s_quantity_json(from_block), "toBlock",
                                   s_quantity_json(to_block))
                       : NULL;
    if (!params)
        return LC_ERR_NOMEM;
    logs_out_t o = {out, cap, n};
    int rc = s_request(self, "eth_getLogs", params, CH_RPC_EXPECT_ANY, s_parse_logs, &o, err);
    if (rc != 0)
        *n = 0;
    return rc;
}

static int s_parse_raw_or_null(const json_t *r, void *ctx)
{
    if (json_is_null(r))
        return LC_ERR_NOTFOUND;
    const char *s = json_string_value(r);
    size_t len = json_string_length(r);
    if (!s || len < 4 || len % 2)
        return LC_ERR_IO;
    return s_parse_bytes(r, ctx);
}

int ch_rpc_get_raw_transaction(ch_rpc_t *self, const uint8_t tx_hash[32], uint8_t **raw,
                               size_t *raw_len, ch_rpc_error_t *err)
{
    *raw = NULL;
    *raw_len = 0;
    json_t *params = json_pack("[o]", s_hex_json(tx_hash, 32));
    if (!params)
        return LC_ERR_NOMEM;
    bytes_out_t o = {raw, raw_len};
    return s_request(self, "eth_getRawTransactionByHash", params, CH_RPC_EXPECT_ANY,
                     s_parse_raw_or_null, &o, err);
}

static int s_parse_hash(const json_t *r, void *ctx)
{
    size_t got = 0;
    if (ch_rpc_parse_data(json_string_value(r), json_string_length(r), ctx, 32, &got) != 0 ||
        got != 32)
        return LC_ERR_IO;
    return 0;
}

ch_send_status_t ch_rpc_send_raw_transaction(ch_rpc_t *self, const uint8_t *raw, size_t raw_len,
                                             uint8_t tx_hash[32], ch_rpc_error_t *err)
{
    assert(raw || raw_len == 0);
    ch_rpc_error_t local;
    if (!err)
        err = &local;
    uint8_t hash[32];
    json_t *params = json_pack("[o]", s_hex_json(raw, raw_len));
    int rc = params ? s_request(self, "eth_sendRawTransaction", params, CH_RPC_EXPECT_DATA,
                                s_parse_hash, hash, err)
                    : LC_ERR_NOMEM;
    if (rc == 0) {
        memcpy(tx_hash, hash, 32);
        return CH_SEND_OK;
    }
    if (rc == LC_ERR_NOMEM) {
        s_err_set(err, CH_RPC_ERR_ENDPOINT, 0, "out of memory");
        return CH_SEND_RETRYABLE;
    }
    return ch_rpc_classify_send_error(err);
}
