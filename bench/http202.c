/* lcore-bench-http202: the HTTP ceiling. A libmicrohttpd server started like the gateway's
 * (internal polling thread pool of --threads, same connection limit and timeout) that reads the
 * whole body of any POST (up to 64 KiB, the gateway's default reading limit; more gets 413) and
 * answers 202 with the gateway's body, {"record_id":"<64 hex>","status":"accepted"}, built with
 * the same helper. Nothing is verified, logged or stored: it measures what HTTP and the load
 * generator cost on their own, so run lcore-sim against it with --no-register.
 * lcore-sim checks every record_id it gets back against the reading and counts mismatches
 * (record_id_mismatch=; they are still counted as accepted). So that its report is clean, the
 * responder computes the right id: it parses the JWS (lc_jws_parse: base64url and the header's
 * JSON, no signature check) and the payload's device_id and seq, and hashes them (lc_record_id).
 * That parse is part of the work this "trivial" responder does (a few µs); --fixed-id answers a
 * constant id instead, and lcore-sim then reports every reading as a mismatch.
 * Runs until SIGTERM/SIGINT, then prints {"http202_requests":N,...} on stdout and exits 0. */
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "lc_codec.h"
#include "lc_http.h"
#include "lc_log.h"

#define PROG "lcore-bench-http202"
#define BODY_MAX 65536

static volatile sig_atomic_t s_stop; /* set by SIGINT/SIGTERM */

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

typedef struct {
    int fixed_id;
    atomic_ullong requests, accepted, refused;
} server_t;

typedef struct {
    char *body;
    size_t len, cap;
    int too_big;
} req_t;

/* record_id of the reading in body, as hex; 0, or -1 when the body is not a readable reading. */
static int s_record_id_hex(const char *body, size_t len, char hex[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1])
{
    uint8_t payload[BODY_MAX];
    lc_jws_t j;
    if (lc_jws_parse(&j, body, len, payload, sizeof payload) < 0)
        return -1;
    json_t *root = json_loadb((const char *)j.payload, j.payload_len, 0, NULL);
    json_t *dev = json_object_get(root, "device_id"), *seq = json_object_get(root, "seq");
    int rc = -1;
    if (json_is_string(dev) && json_is_integer(seq) && json_integer_value(seq) >= 0) {
        uint8_t id[LC_RECORD_ID_LEN];
        lc_record_id(id, json_string_value(dev), json_string_length(dev),
                     (uint64_t)json_integer_value(seq));
        rc = lc_hex_encode(hex, LC_HEX_LEN(LC_RECORD_ID_LEN) + 1, id, sizeof id);
    }
    json_decref(root);
    return rc;
}

static enum MHD_Result s_reply(server_t *self, struct MHD_Connection *c, req_t *req)
{
    if (req->too_big) {
        atomic_fetch_add(&self->refused, 1);
        return lc_http_reply_error(c, 413, "too_large", "body exceeds the size limit", 0);
    }
    char hex[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1];
    if (self->fixed_id)
        memset(hex, '0', sizeof hex - 1), hex[sizeof hex - 1] = '\0';
    else if (s_record_id_hex(req->body ? req->body : "", req->len, hex) < 0) {
        atomic_fetch_add(&self->refused, 1);
        return lc_http_reply_error(c, 400, "malformed", "not a JWS reading", 0);
    }
    json_t *j = json_pack("{s:s, s:s}", "record_id", hex, "status", "accepted");
    if (!j)
        return MHD_NO;
    enum MHD_Result r = lc_http_reply_json(c, 202, j, 0);
    json_decref(j);
    atomic_fetch_add(&self->accepted, 1);
    return r;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)url;
    (void)version;
    server_t *self = cls;
    req_t *req = *con_cls;
    if (!req) {
        atomic_fetch_add(&self->requests, 1);
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return lc_http_reply_error(c, 405, "method_not_allowed", "POST only", 0);
        if (!(req = calloc(1, sizeof *req)))
            return MHD_NO;
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->too_big || req->len + n > BODY_MAX) {
            req->too_big = 1;
            return MHD_YES;
        }
        if (req->len + n > req->cap) {
            size_t cap = req->cap ? req->cap : 1024;
            while (cap < req->len + n)
                cap *= 2;
            char *b = realloc(req->body, cap);
            if (!b)
                return MHD_NO;
            req->body = b, req->cap = cap;
        }
        memcpy(req->body + req->len, upload, n);
        req->len += n;
        return MHD_YES;
    }
    return s_reply(self, c, req);
}

static void s_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    req_t *req = *con_cls;
    if (req) {
        free(req->body);
        free(req);
        *con_cls = NULL;
    }
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: " PROG " --port P [--threads T] [--fixed-id]\n"
                 "  Answers any POST with 202 {\"record_id\",\"status\":\"accepted\"} until\n"
                 "  SIGTERM/SIGINT, then prints its request count as JSON.\n"
                 "  --threads T   MHD thread pool size, as LCORE_GATEWAY_THREADS (default 2)\n"
                 "  --fixed-id    answer a constant record_id (no JWS parse)\n");
}

int main(int argc, char **argv)
{
    uint64_t port = 0, threads = 2;
    static server_t server;
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"fixed-id", no_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'p' && bench_parse_u64(PROG, "--port", optarg, 1, 65535, &port) < 0)
            return 2;
        if (c == 't' && bench_parse_u64(PROG, "--threads", optarg, 1, 64, &threads) < 0)
            return 2;
        if (c == 'f')
            server.fixed_id = 1;
        if (c == 'h') {
            s_usage(stdout);
            return 0;
        }
        if (c == '?') {
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc || port == 0) {
        fprintf(stderr, PROG ": %s\n", port == 0 ? "--port is required" : "unexpected argument");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    lc_log_init("bench", LC_LOG_WARN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The gateway's flags and options (services/gateway/gw_http.c), minus suspend/resume, which
     * only its write-ahead log needs. */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, (uint16_t)port, NULL, NULL, s_handle,
        &server, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)4096, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_NOTIFY_COMPLETED,
        s_completed, &server, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, PROG ": cannot listen on port %llu\n", (unsigned long long)port);
        return 1;
    }
    fprintf(stderr, PROG ": listening port=%llu threads=%llu record_id=%s\n",
            (unsigned long long)port, (unsigned long long)threads,
            server.fixed_id ? "fixed" : "computed");
    double t0 = bench_now();
    while (!s_stop)
        usleep(100000); /* the handler may run on an MHD thread: poll the flag */
    MHD_stop_daemon(d);
    printf("{\"http202_requests\":%llu,\"accepted\":%llu,\"refused\":%llu,\"threads\":%llu,"
           "\"uptime_s\":%.1f}\n",
           (unsigned long long)atomic_load(&server.requests),
           (unsigned long long)atomic_load(&server.accepted),
           (unsigned long long)atomic_load(&server.refused), (unsigned long long)threads,
           bench_now() - t0);
    fflush(stdout);
    return 0;
}
