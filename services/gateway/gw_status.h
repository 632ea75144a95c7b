/* gw_status.h: GET /v1/devices/{device_id}/status, the device's completeness report: the path's
 * device id, and the store's DeviceStatus (st_seq_ranges.h) as the API's JSON. Pure: gw_http
 * asks the store and answers. */
#ifndef GW_STATUS_H
#define GW_STATUS_H

#include <jansson.h>
#include <stddef.h>

#include "lcore.pb-c.h"

#define GW_STATUS_PREFIX "/v1/devices/"
#define GW_STATUS_SUFFIX "/status"

/* 1 if url is GW_STATUS_PREFIX <anything> GW_STATUS_SUFFIX (the route), else 0. When it is,
 * the device id is copied into id (cap bytes) if it is a valid one (1..128 of [A-Za-z0-9._:-]),
 * else id is "" (a 400); id NULL: only says whether it is the route. */
int gw_status_path(const char *url, char *id, size_t cap);

/* {"device_id","status","last_seq","contiguous_through" (null, null before the first reading),
 * "gaps":[[from,to],...] (lowest first, capped),"gaps_capped","last_seen" (RFC 3339 UTC with
 * milliseconds, the latest received_at of the device's readings; null before the first)}. */
json_t *gw_status_json(const Lcore__V1__DeviceStatus *ds);

#endif
