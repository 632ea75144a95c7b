/* gw_routes.h: the gateway's HTTP routes, one table (DESIGN.md "HTTP API"; docs/openapi.yaml
 * describes the same set, and tests/e2e/test_openapi.py checks the two against each other
 * through `lcore-gateway routes`). A route is a listener, a method and a path template whose
 * "{name}" segments match one path segment. Pure: matching allocates nothing. */
#ifndef GW_ROUTES_H
#define GW_ROUTES_H

#include <stddef.h>
#include <stdio.h>

typedef enum { GW_LISTENER_DEVICE, GW_LISTENER_ADMIN } gw_listener_t;

/* What a route needs of the caller: nothing (devices sign their readings), or a bearer token of
 * a scope (decrypt includes read). */
typedef enum { GW_AUTH_NONE, GW_AUTH_READ, GW_AUTH_DECRYPT, GW_AUTH_OPERATOR } gw_auth_t;

typedef enum {
    GW_ROUTE_DATA,
    GW_ROUTE_REQUEST_BATCH,
    GW_ROUTE_COMPAT,
    GW_ROUTE_RECORD,
    GW_ROUTE_RECEIPT,
    GW_ROUTE_OPEN,
    GW_ROUTE_DEVICE_RECORDS,
    GW_ROUTE_DEVICE_STATUS,
    GW_ROUTE_REGISTER,
    GW_ROUTE_DEVICE_LIST,
    GW_ROUTE_DEVICE_GET,
    GW_ROUTE_REVOKE,
    GW_ROUTE_REACTIVATE,
    GW_ROUTE_ROTATE,
    GW_ROUTE_TOKEN_CREATE,
    GW_ROUTE_TOKEN_LIST,
    GW_ROUTE_TOKEN_DELETE,
    GW_ROUTE_AUDIT,
    GW_ROUTE_COUNT,
    GW_ROUTE_NONE = GW_ROUTE_COUNT /* no route: 404 (its metric label is "other") */
} gw_route_id_t;

typedef struct {
    gw_listener_t listener;
    const char *method;
    const char *path;  /* template: "/v1/records/{record_id}" */
    const char *label; /* metrics: lcore_gateway_requests_total{route=...} */
    gw_auth_t auth;
    int body; /* 1: the route reads a request body (answered once it is in) */
} gw_route_t;

extern const gw_route_t gw_routes[GW_ROUTE_COUNT];

/* The route of (listener, method, url): its id, with the template's "{...}" segment (at most
 * one per route) copied into param (NUL-terminated; "" when it does not fit in cap). When a
 * route of the listener has the path but another method, *wrong_method is set and
 * GW_ROUTE_NONE returned (405); no path of the listener: GW_ROUTE_NONE (404). url is the path
 * only (libmicrohttpd passes the query string apart). */
gw_route_id_t gw_routes_match(gw_listener_t listener, const char *method, const char *url,
                              char *param, size_t cap, int *wrong_method);

/* `lcore-gateway routes`: one line per route, "<device|admin> <METHOD> <path>", including the
 * admin listener's own /metrics, /healthz and /readyz. */
void gw_routes_print(FILE *out);

#endif
