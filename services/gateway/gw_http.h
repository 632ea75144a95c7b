/* gw_http.h: the gateway's HTTP routes (libmicrohttpd): routing, bodies, limits, the operator
 * token, and the JSON answers of DESIGN.md, on two listeners. The device listener (its own
 * thread pool; TLS when LCORE_GATEWAY_TLS_CERT/KEY are set) serves devices and readers only; the
 * operator API is a route added to the admin listener (lc_admin), next to /metrics, /healthz and
 * /readyz. Reading work goes to gw_ingest, registrations and record lookups to the store
 * through gw_devices / lc_query. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include "gw_config.h"
#include "gw_ingest.h"
#include "gw_open.h"
#include "lc_http.h"

typedef struct gw_http gw_http_t;

typedef struct {
    const gw_config_t *cfg;
    const uint8_t *admin_token_hash; /* SHA-256 of the operator token; NULL: registration refused */
    gw_ingest_t *ingest;
    gw_wal_t *wal;
    gw_devices_t *devices;
    lc_query_client_t *store;
    lc_query_client_t *chain; /* record status: the anchor part */
    gw_open_t *open;          /* POST /v1/records/{id}/open: a crypto worker opens the record */
    lc_admin_t *admin;        /* the operator API is added to it, and removed by gw_http_destroy */
    lc_metrics_t *metrics;
} gw_http_deps_t;

gw_http_t *gw_http_new(const gw_http_deps_t *deps);
/* Stops accepting, finishes requests in flight, frees. */
void gw_http_destroy(gw_http_t **self_p);

#endif
