/* gw_devices.h: the gateway's view of registered devices: a cache of public keys fetched from
 * the store (positive entries for the configured TTL, unknown devices for one second; while
 * the store cannot answer, a known device keeps its expired key, re-asked every 5 s), the
 * per-device rate limiter, and registration (forwarded to the store, the only writer). Shared
 * by all HTTP threads (one mutex; lookups are short). */
#ifndef GW_DEVICES_H
#define GW_DEVICES_H

#include "lc_query.h"
#include "lc_jws.h"

typedef struct gw_devices gw_devices_t;

typedef struct {
    lc_alg_t alg;
    uint8_t public_key[65];
    size_t public_key_len;
} gw_device_key_t;

gw_devices_t *gw_devices_new(lc_query_client_t *store, int ttl_ms, double rate, double burst);
void gw_devices_destroy(gw_devices_t **self_p);

/* Returns 0 (key written), LC_ERR_NOTFOUND (unknown or revoked) or LC_ERR_UNAVAILABLE. */
int gw_devices_lookup(gw_devices_t *self, const char *device_id, gw_device_key_t *out) LC_WUR;

/* Takes one token of the device's rate limit: 0, or LC_ERR_TIMEOUT when over the limit. */
int gw_devices_take(gw_devices_t *self, const char *device_id) LC_WUR;

/* Registers through the store. Returns 0 with *created set, LC_ERR_CONFLICT (a different
 * registration exists), LC_ERR_INVALID (store refused it) or LC_ERR_UNAVAILABLE. */
int gw_devices_register(gw_devices_t *self, const char *device_id, lc_alg_t alg,
                        const uint8_t *public_key, size_t public_key_len, const char *did_document,
                        int *created) LC_WUR;

#endif
