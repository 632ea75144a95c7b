/* gw_routes.c: the route table and its matcher. See gw_routes.h. */
#include "gw_routes.h"

#include <string.h>

#define D GW_LISTENER_DEVICE
#define A GW_LISTENER_ADMIN
const gw_route_t gw_routes[GW_ROUTE_COUNT] = {
    [GW_ROUTE_DATA] = {D, "POST", "/v1/data", "data", GW_AUTH_NONE, 1},
    [GW_ROUTE_REQUEST_BATCH] = {D, "POST", "/v1/data/batch", "batch", GW_AUTH_NONE, 1},
    [GW_ROUTE_COMPAT] = {D, "POST", "/device/data", "compat", GW_AUTH_NONE, 1},
    [GW_ROUTE_RECORD] = {D, "GET", "/v1/records/{record_id}", "record", GW_AUTH_READ, 0},
    [GW_ROUTE_RECEIPT] = {D, "GET", "/v1/records/{record_id}/receipt", "receipt", GW_AUTH_READ, 0},
    [GW_ROUTE_OPEN] = {D, "POST", "/v1/records/{record_id}/open", "open", GW_AUTH_DECRYPT, 0},
    [GW_ROUTE_DEVICE_RECORDS] = {D, "GET", "/v1/devices/{device_id}/records", "device_records",
                                 GW_AUTH_READ, 0},
    [GW_ROUTE_DEVICE_STATUS] = {D, "GET", "/v1/devices/{device_id}/status", "device_status",
                                GW_AUTH_READ, 0},
    [GW_ROUTE_REGISTER] = {A, "POST", "/v1/devices", "devices", GW_AUTH_OPERATOR, 1},
    [GW_ROUTE_DEVICE_LIST] = {A, "GET", "/v1/devices", "device_list", GW_AUTH_OPERATOR, 0},
    [GW_ROUTE_DEVICE_GET] = {A, "GET", "/v1/devices/{device_id}", "device_get", GW_AUTH_OPERATOR,
                             0},
    [GW_ROUTE_REVOKE] = {A, "POST", "/v1/devices/{device_id}/revoke", "device_revoke",
                         GW_AUTH_OPERATOR, 0},
    [GW_ROUTE_REACTIVATE] = {A, "POST", "/v1/devices/{device_id}/reactivate", "device_reactivate",
                             GW_AUTH_OPERATOR, 0},
    [GW_ROUTE_ROTATE] = {A, "POST", "/v1/devices/{device_id}/keys", "device_keys", GW_AUTH_OPERATOR,
                         1},
    [GW_ROUTE_TOKEN_CREATE] = {A, "POST", "/v1/tokens", "token_create", GW_AUTH_OPERATOR, 1},
    [GW_ROUTE_TOKEN_LIST] = {A, "GET", "/v1/tokens", "token_list", GW_AUTH_OPERATOR, 0},
    [GW_ROUTE_TOKEN_DELETE] = {A, "DELETE", "/v1/tokens/{token_id}", "token_delete",
                               GW_AUTH_OPERATOR, 0},
    [GW_ROUTE_AUDIT] = {A, "GET", "/v1/audit", "audit", GW_AUTH_OPERATOR, 0},
};
#undef D
#undef A

/* Whether url fits template; the "{...}" segment's text is written to param. */
static int s_fits(const char *tmpl, const char *url, char *param, size_t cap)
{
    while (*tmpl && *url) {
        if (*tmpl == '{') {
            const char *close = strchr(tmpl, '}');
            size_t n = strcspn(url, "/");
            if (!close || n == 0)
                return 0;
            if (param && cap) {
                size_t k = n < cap ? n : 0;
                memcpy(param, url, k);
                param[k] = '\0';
            }
            tmpl = close + 1;
            url += n;
            continue;
        }
        if (*tmpl++ != *url++)
            return 0;
    }
    return *tmpl == '\0' && *url == '\0';
}

gw_route_id_t gw_routes_match(gw_listener_t listener, const char *method, const char *url,
                              char *param, size_t cap, int *wrong_method)
{
    *wrong_method = 0;
    if (param && cap)
        param[0] = '\0';
    for (int i = 0; i < GW_ROUTE_COUNT; i++) {
        const gw_route_t *r = &gw_routes[i];
        if (r->listener != listener || !s_fits(r->path, url, param, cap))
            continue;
        if (strcmp(r->method, method) == 0)
            return (gw_route_id_t)i;
        *wrong_method = 1;
    }
    if (param && cap)
        param[0] = '\0';
    return GW_ROUTE_NONE;
}

void gw_routes_print(FILE *out)
{
    for (int i = 0; i < GW_ROUTE_COUNT; i++)
        fprintf(out, "%s %s %s\n", gw_routes[i].listener == GW_LISTENER_DEVICE ? "device" : "admin",
                gw_routes[i].method, gw_routes[i].path);
    fputs("admin GET /metrics\nadmin GET /healthz\nadmin GET /readyz\n", out);
}
