/* gw_http.h: the gateway's HTTP layer (libmicrohttpd): routing (gw_routes.h), bearer tokens
 * and scopes (gw_tokens.h), bodies, limits, and the device routes' answers, on two listeners.
 * The device listener (its own thread pool; TLS when LCORE_GATEWAY_TLS_CERT/KEY are set) serves
 * devices and readers only; the operator API is added to the admin listener (lc_admin, under
 * /v1), next to /metrics, /healthz and /readyz. Readings go to gw_ingest; the reader routes are
 * gw_reader.c's, the operator routes gw_operator.c's (gw_handlers.h). */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include "gw_config.h"
#include "gw_dynsec.h"
#include "gw_ingest.h"
#include "gw_open.h"
#include "gw_seq.h"
#include "gw_tokens.h"
#include "lc_http.h"

typedef struct gw_http gw_http_t;

typedef struct {
    const gw_config_t *cfg;
    gw_tokens_t *tokens; /* bearer tokens of readers and operators */
    gw_ingest_t *ingest;
    gw_wal_t *wal;
    gw_devices_t *devices;
    lc_query_client_t *store;
    lc_query_client_t *chain; /* record status: the anchor part */
    gw_seq_t *seq;            /* the readings in the log: "accepted" while in flight */
    gw_open_t *open;          /* the crypto tier's open link (POST /v1/records/{id}/open) */
    gw_dynsec_t *dynsec;      /* devices' broker identities; NULL without MQTT */
    lc_admin_t *admin;        /* the operator API is added to it, and removed by gw_http_destroy */
    lc_metrics_t *metrics;
} gw_http_deps_t;

gw_http_t *gw_http_new(const gw_http_deps_t *deps);
/* Stops accepting, finishes requests in flight, frees. */
void gw_http_destroy(gw_http_t **self_p);

#endif
