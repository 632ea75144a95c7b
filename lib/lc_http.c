/* lc_http.c: the admin HTTP server and reply helpers. See lc_http.h. */
#include "lc_http.h"

#include <netinet/in.h>
#include <assert.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_cfg.h"
#include "lc_log.h"

/* A request on one of the service's own routes: which route (-1 once removed) and the
 * handler's own *con_cls. Open ones are listed so lc_admin_remove_routes can end them. */
typedef struct s_open {
    int route;
    void *inner;
    struct MHD_Connection *conn;
    struct s_open *next;
} s_open_t;

struct lc_admin {
    struct MHD_Daemon *daemon;
    lc_metrics_t *metrics;
    atomic_int ready;
    pthread_mutex_t lock; /* guards reason */
    char reason[160];
    lc_counter_t *scrapes;
    lc_gauge_t *ready_gauge;
    /* Held while a route's handler or completed runs, so removal waits for them. */
    pthread_mutex_t routes_lock;
    lc_admin_route_t routes[LC_ADMIN_ROUTES_MAX]; /* handler NULL: removed */
    size_t n_routes;
    s_open_t *open;
};

int lc_http_bind(struct sockaddr_storage *sa, unsigned *flags, const char *bind)
{
    unsigned len = 0;
    if (lc_cfg_addr_parse(sa, &len, bind) < 0)
        return LC_ERR_INVALID;
    if (sa->ss_family == AF_INET6)
        *flags |= MHD_USE_IPv6;
    return 0;
}

enum MHD_Result lc_http_reply_text(struct MHD_Connection *conn, unsigned status,
                                   const char *content_type, const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

struct MHD_Response *lc_http_response_json(const json_t *json, unsigned retry_after_s)
{
    char *body = json_dumps(json, JSON_COMPACT);
    if (!body)
        return NULL;
    size_t len = strlen(body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    return r;
}

struct MHD_Response *lc_http_response_error(const char *code, const char *message,
                                            unsigned retry_after_s)
{
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", message);
    struct MHD_Response *r = j ? lc_http_response_json(j, retry_after_s) : NULL;
    json_decref(j);
    return r;
}

enum MHD_Result lc_http_queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r)
{
    if (!r)
        return MHD_NO;
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result lc_http_reply_json(struct MHD_Connection *conn, unsigned status, json_t *json,
                                   unsigned retry_after_s)
{
    return lc_http_queue(conn, status, lc_http_response_json(json, retry_after_s));
}

enum MHD_Result lc_http_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                    const char *message, unsigned retry_after_s)
{
    return lc_http_queue(conn, status, lc_http_response_error(code, message, retry_after_s));
}

char *lc_json_dump_secret(const json_t *json, size_t *len)
{
    /* json_dumps grows its buffer by reallocation, leaving partial copies in freed memory;
     * json_dumpb writes straight into one buffer of the size asked first. */
    size_t n = json_dumpb(json, NULL, 0, JSON_COMPACT);
    char *buf = n ? malloc(n + 1) : NULL;
    if (!buf)
        return NULL;
    if (json_dumpb(json, buf, n, JSON_COMPACT) != n) {
        sodium_memzero(buf, n);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

void lc_json_wipe(json_t *json)
{
    const char *key;
    json_t *v;
    size_t i;
    if (json_is_string(json)) {
        sodium_memzero((char *)json_string_value(json), json_string_length(json));
    } else if (json_is_object(json)) {
        json_object_foreach(json, key, v) lc_json_wipe(v);
    } else if (json_is_array(json)) {
        json_array_foreach(json, i, v) lc_json_wipe(v);
    }
}

/* A secret answer's body, wiped when libmicrohttpd releases it. */
typedef struct {
    size_t len;
    char *body;
} s_secret_body_t;

static void s_secret_body_free(void *cls)
{
    s_secret_body_t *b = cls;
    sodium_memzero(b->body, b->len);
    free(b->body);
    free(b);
}

struct MHD_Response *lc_http_response_json_secret(const json_t *json)
{
    s_secret_body_t *b = calloc(1, sizeof *b);
    if (!b || !(b->body = lc_json_dump_secret(json, &b->len))) {
        free(b);
        return NULL;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer_with_free_callback_cls(
        b->len, b->body, s_secret_body_free, b);
    if (!r) {
        s_secret_body_free(b);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return r;
}

enum MHD_Result lc_http_reply_json_secret(struct MHD_Connection *conn, unsigned status,
                                          const json_t *json)
{
    return lc_http_queue(conn, status, lc_http_response_json_secret(json));
}

/* /healthz, /readyz and /metrics. Returns 1 and sets *result if url was one of them, else 0. */
static int s_builtin(lc_admin_t *self, struct MHD_Connection *conn, const char *url,
                     enum MHD_Result *result)
{
    if (strcmp(url, "/healthz") == 0) {
        *result = lc_http_reply_text(conn, 200, "text/plain", "ok\n", 3);
        return 1;
    }
    if (strcmp(url, "/readyz") == 0) {
        if (atomic_load(&self->ready)) {
            *result = lc_http_reply_text(conn, 200, "text/plain", "ready\n", 6);
        } else {
            char body[200];
            pthread_mutex_lock(&self->lock);
            int n = snprintf(body, sizeof body, "not ready: %s\n", self->reason);
            pthread_mutex_unlock(&self->lock);
            *result = lc_http_reply_text(conn, 503, "text/plain", body, (size_t)n);
        }
        return 1;
    }
    if (strcmp(url, "/metrics") == 0) {
        lc_counter_inc(self->scrapes);
        size_t len = 0;
        char *text = lc_metrics_render(self->metrics, &len);
        if (!text) {
            *result = MHD_NO;
            return 1;
        }
        struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        if (!r) {
            free(text);
            *result = MHD_NO;
            return 1;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8");
        *result = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return 1;
    }
    return 0;
}

/* The service route url belongs to, or -1. Under routes_lock. */
static int s_find_route(const lc_admin_t *self, const char *url)
{
    for (size_t i = 0; i < self->n_routes; i++) {
        const lc_admin_route_t *r = &self->routes[i];
        size_t n = r->handler ? strlen(r->path) : 0;
        if (n && strncmp(url, r->path, n) == 0 && (url[n] == '\0' || url[n] == '/'))
            return (int)i;
    }
    return -1;
}

/* A request on a service route: the first call opens it, later ones pass it on. */
static enum MHD_Result s_route_call(lc_admin_t *self, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    s_open_t **open_p, int route)
{
    s_open_t *o = *open_p;
    if (!o) {
        if (!(o = calloc(1, sizeof *o)))
            return MHD_NO;
        o->route = route;
        o->conn = conn;
        o->next = self->open;
        self->open = o;
        *open_p = o;
    }
    if (o->route < 0)
        return MHD_NO; /* its route was removed: close the connection */
    const lc_admin_route_t *r = &self->routes[o->route];
    return r->handler(r->cls, conn, url, method, version, upload_data, upload_data_size, &o->inner);
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    lc_admin_t *self = cls;
    pthread_mutex_lock(&self->routes_lock);
    int route = *con_cls ? 0 : s_find_route(self, url);
    if (route >= 0) {
        enum MHD_Result ret = s_route_call(self, conn, url, method, version, upload_data,
                                           upload_data_size, (s_open_t **)con_cls, route);
        pthread_mutex_unlock(&self->routes_lock);
        return ret;
    }
    pthread_mutex_unlock(&self->routes_lock);
    if (*upload_data_size) {
        *upload_data_size = 0; /* the built-in endpoints take no body */
        return MHD_YES;
    }
    enum MHD_Result res;
    int builtin =
        strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 || strcmp(url, "/metrics") == 0;
    if (!builtin) /* whatever the method: 405 only says the path exists */
        return lc_http_reply_error(conn, 404, "not_found", "no such admin endpoint", 0);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return lc_http_reply_error(conn, 405, "method_not_allowed", "use GET", 0);
    if (s_builtin(self, conn, url, &res))
        return res;
    return lc_http_reply_error(conn, 404, "not_found", "no such admin endpoint", 0);
}

/* Unlinks o from the open list. Under routes_lock. */
static void s_unlink(lc_admin_t *self, const s_open_t *o)
{
    for (s_open_t **p = &self->open; *p; p = &(*p)->next)
        if (*p == o) {
            *p = o->next;
            return;
        }
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    lc_admin_t *self = cls;
    s_open_t *o = *con_cls;
    if (!o)
        return;
    pthread_mutex_lock(&self->routes_lock);
    const lc_admin_route_t *r = o->route >= 0 ? &self->routes[o->route] : NULL;
    if (r && r->completed)
        r->completed(r->cls, conn, &o->inner, toe);
    s_unlink(self, o);
    pthread_mutex_unlock(&self->routes_lock);
    free(o);
    *con_cls = NULL;
}

int lc_admin_add_route(lc_admin_t *self, const lc_admin_route_t *route)
{
    assert(route->path && route->path[0] == '/' && route->handler);
    pthread_mutex_lock(&self->routes_lock);
    int rc = LC_ERR_INVALID;
    if (self->n_routes < LC_ADMIN_ROUTES_MAX) {
        self->routes[self->n_routes++] = *route;
        rc = 0;
    }
    pthread_mutex_unlock(&self->routes_lock);
    return rc;
}

void lc_admin_remove_routes(lc_admin_t *self, void *cls)
{
    if (!self)
        return;
    pthread_mutex_lock(&self->routes_lock);
    for (s_open_t *o = self->open; o; o = o->next) {
        const lc_admin_route_t *r = o->route >= 0 ? &self->routes[o->route] : NULL;
        if (!r || r->cls != cls)
            continue;
        if (r->completed)
            r->completed(r->cls, o->conn, &o->inner, MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN);
        o->route = -1;
    }
    for (size_t i = 0; i < self->n_routes; i++)
        if (self->routes[i].cls == cls)
            self->routes[i].handler = NULL;
    pthread_mutex_unlock(&self->routes_lock);
}

lc_admin_t *lc_admin_new(const char *bind, lc_metrics_t *metrics, const char *service)
{
    struct sockaddr_storage sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (lc_http_bind(&sa, &flags, bind) < 0) {
        lc_error("admin_bind_invalid", "bind=%s", bind);
        return NULL;
    }
    lc_admin_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->metrics = metrics;
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->routes_lock, NULL);
    snprintf(self->reason, sizeof self->reason, "starting");
    char name[96];
    snprintf(name, sizeof name, "lcore_%s_admin_scrapes_total", service);
    self->scrapes = lc_metrics_counter(metrics, name, "Scrapes of /metrics", NULL);
    snprintf(name, sizeof name, "lcore_%s_ready", service);
    self->ready_gauge =
        lc_metrics_gauge(metrics, name, "1 while /readyz says ready (dependencies answer)", NULL);
    snprintf(name, sizeof name, "lcore_%s_build_info", service);
    lc_gauge_set(lc_metrics_gauge(metrics, name, "Always 1; the version label says which build",
                                  "version=\"" LCORE_VERSION "\""),
                 1);
    self->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, s_handle, self, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                         MHD_OPTION_NOTIFY_COMPLETED, s_completed, self, MHD_OPTION_END);
    if (!self->daemon) {
        lc_error("admin_listen_failed", "bind=%s", bind);
        pthread_mutex_destroy(&self->routes_lock);
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    lc_info("admin_listening", "bind=%s", bind);
    return self;
}

void lc_admin_destroy(lc_admin_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_admin_t *self = *self_p;
    MHD_stop_daemon(self->daemon); /* ends open requests: s_completed frees them */
    pthread_mutex_destroy(&self->routes_lock);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

void lc_admin_set_ready(lc_admin_t *self, int ready, const char *reason)
{
    pthread_mutex_lock(&self->lock);
    snprintf(self->reason, sizeof self->reason, "%s", reason ? reason : "");
    pthread_mutex_unlock(&self->lock);
    atomic_store(&self->ready, ready ? 1 : 0);
    lc_gauge_set(self->ready_gauge, ready ? 1 : 0);
}

int lc_admin_ready(lc_admin_t *self)
{
    return atomic_load(&self->ready);
}
