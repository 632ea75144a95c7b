/* lc_http.h: libmicrohttpd glue. The admin server every service runs (/healthz liveness,
 * /readyz readiness set by the service loop, /metrics from the registry) and JSON reply helpers
 * shared with the gateway's device-facing server. */
#ifndef LC_HTTP_H
#define LC_HTTP_H

#include <jansson.h>
#include <microhttpd.h>

#include "lc_metrics.h"

typedef struct lc_admin lc_admin_t;

/* Starts listening on port (all interfaces) with its own thread. service ("gateway", …) names
 * the admin server's own metrics (lcore_<service>_admin_scrapes_total). NULL on error (logged). */
lc_admin_t *lc_admin_new(uint16_t port, lc_metrics_t *metrics, const char *service);
void lc_admin_destroy(lc_admin_t **self_p);

/* Readiness as the service loop sees it; reason is shown by /readyz when not ready. */
void lc_admin_set_ready(lc_admin_t *self, int ready, const char *reason);
int lc_admin_ready(lc_admin_t *self);

/* Answers /healthz, /readyz and /metrics on any MHD connection (the gateway serves them on its
 * device port too). Returns 1 and sets *result if url was one of them, else 0. */
int lc_admin_route(lc_admin_t *self, struct MHD_Connection *conn, const char *url,
                   enum MHD_Result *result);

/* Replies. json is borrowed. retry_after_s > 0 adds a Retry-After header. */
enum MHD_Result lc_http_reply_json(struct MHD_Connection *conn, unsigned status, json_t *json,
                                   unsigned retry_after_s);
/* {"error": code, "message": message} */
enum MHD_Result lc_http_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                    const char *message, unsigned retry_after_s);
enum MHD_Result lc_http_reply_text(struct MHD_Connection *conn, unsigned status,
                                   const char *content_type, const char *body, size_t len);

#endif
