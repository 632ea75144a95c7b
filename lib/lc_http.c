/* lc_http.c: the admin HTTP server and reply helpers. See lc_http.h. */
#include "lc_http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"

struct lc_admin {
    struct MHD_Daemon *daemon;
    lc_metrics_t *metrics;
    atomic_int ready;
    pthread_mutex_t lock; /* guards reason */
    char reason[160];
    lc_counter_t *scrapes;
    lc_gauge_t *ready_gauge;
};

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

enum MHD_Result lc_http_reply_json(struct MHD_Connection *conn, unsigned status, json_t *json,
                                   unsigned retry_after_s)
{
    char *body = json_dumps(json, JSON_COMPACT);
    if (!body)
        return MHD_NO;
    size_t len = strlen(body);
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result lc_http_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                    const char *message, unsigned retry_after_s)
{
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", message);
    if (!j)
        return MHD_NO;
    enum MHD_Result ret = lc_http_reply_json(conn, status, j, retry_after_s);
    json_decref(j);
    return ret;
}

int lc_admin_route(lc_admin_t *self, struct MHD_Connection *conn, const char *url,
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

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    lc_admin_t *self = cls;
    if (*upload_data_size) {
        *upload_data_size = 0; /* admin endpoints take no body */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return lc_http_reply_error(conn, 405, "method_not_allowed", "use GET", 0);
    enum MHD_Result res;
    if (lc_admin_route(self, conn, url, &res))
        return res;
    return lc_http_reply_error(conn, 404, "not_found", "no such admin endpoint", 0);
}

lc_admin_t *lc_admin_new(uint16_t port, lc_metrics_t *metrics, const char *service)
{
    lc_admin_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->metrics = metrics;
    pthread_mutex_init(&self->lock, NULL);
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
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, port, NULL, NULL, s_handle,
                         self, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!self->daemon) {
        lc_error("admin_listen_failed", "port=%u", (unsigned)port);
        pthread_mutex_destroy(&self->lock);
        free(self);
        return NULL;
    }
    lc_info("admin_listening", "port=%u", (unsigned)port);
    return self;
}

void lc_admin_destroy(lc_admin_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    lc_admin_t *self = *self_p;
    MHD_stop_daemon(self->daemon);
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
