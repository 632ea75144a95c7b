/* lc_http.h: libmicrohttpd glue. The admin listener every service runs (/healthz liveness,
 * /readyz readiness set by the service loop, /metrics from the registry, and routes a service
 * adds: the gateway's operator API) and JSON reply helpers shared with the gateway's device
 * listener. */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include <jansson.h>
#include <microhttpd.h>

#include "lc_common.h"
#include "lc_metrics.h"

typedef struct lc_admin lc_admin_t;

/* Starts listening on bind ("IPv4:port" or "[IPv6]:port", see lc_cfg_addr_parse) with its own
 * thread. service ("gateway", …) names the admin listener's own metrics
 * (lcore_<service>_admin_scrapes_total). NULL on error (logged). */
lc_admin_t *lc_admin_new(const char *bind, lc_metrics_t *metrics, const char *service);
void lc_admin_destroy(lc_admin_t **self_p);

/* A service's own route on its admin listener (the gateway's operator API). Requests whose path
 * is `path` or lies under `path/` go to handler, called with cls, which follows libmicrohttpd's
 * access-handler protocol (it reads the body; *con_cls is its own); completed, when not NULL, is
 * called with cls as such a request ends. */
typedef struct {
    const char *path; /* borrowed: a string constant */
    MHD_AccessHandlerCallback handler;
    MHD_RequestCompletedCallback completed;
    void *cls;
} lc_admin_route_t;

#define LC_ADMIN_ROUTES_MAX 8

/* Adds a route (copied); requests may reach it at once. 0, or LC_ERR_INVALID when the table is
 * full. */
int lc_admin_add_route(lc_admin_t *self, const lc_admin_route_t *route) LC_WUR;
/* Removes every route added with cls. When it returns no handler or completed runs with cls
 * again: requests of those routes still open are ended now (their completed is called) and
 * their connections closed. Call it before freeing what cls points to. */
void lc_admin_remove_routes(lc_admin_t *self, void *cls);

/* A listener address ("IPv4:port" or "[IPv6]:port") parsed for MHD_OPTION_SOCK_ADDR; ORs
 * MHD_USE_IPv6 into *flags for an IPv6 one. 0, or LC_ERR_INVALID. */
struct sockaddr_storage;
int lc_http_bind(struct sockaddr_storage *sa, unsigned *flags, const char *bind) LC_WUR;

/* Readiness as the service loop sees it; reason is shown by /readyz when not ready. */
void lc_admin_set_ready(lc_admin_t *self, int ready, const char *reason);
int lc_admin_ready(lc_admin_t *self);

/* Replies. json is borrowed. retry_after_s > 0 adds a Retry-After header. */
enum MHD_Result lc_http_reply_json(struct MHD_Connection *conn, unsigned status, json_t *json,
                                   unsigned retry_after_s);
/* {"error": code, "message": message} */
enum MHD_Result lc_http_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                    const char *message, unsigned retry_after_s);
enum MHD_Result lc_http_reply_text(struct MHD_Connection *conn, unsigned status,
                                   const char *content_type, const char *body, size_t len);

/* JSON that carries a secret shown once (a device's broker password). lc_json_dump_secret
 * renders json compact into one malloc'd buffer of its exact size (*len bytes and a NUL), so no
 * partial copy is left in freed memory; the caller wipes it (sodium_memzero) before free. NULL
 * when out of memory. lc_json_wipe zeroes every string value of json in place: call it before
 * the last json_decref of a tree that held a secret. lc_http_reply_json_secret answers like
 * lc_http_reply_json (without Retry-After), and wipes the rendered body when libmicrohttpd is
 * done with it (what libmicrohttpd copies into its connection buffer is out of reach). */
char *lc_json_dump_secret(const json_t *json, size_t *len);
void lc_json_wipe(json_t *json);
enum MHD_Result lc_http_reply_json_secret(struct MHD_Connection *conn, unsigned status,
                                          const json_t *json);

/* The same answers built but not queued (any thread may build one; only libmicrohttpd's
 * handler may queue it): NULL when out of memory. lc_http_queue queues r with status and
 * releases it (MHD_NO, and nothing queued, when r is NULL). */
struct MHD_Response *lc_http_response_json(const json_t *json, unsigned retry_after_s);
struct MHD_Response *lc_http_response_error(const char *code, const char *message,
                                            unsigned retry_after_s);
struct MHD_Response *lc_http_response_json_secret(const json_t *json);
enum MHD_Result lc_http_queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r);

#endif
