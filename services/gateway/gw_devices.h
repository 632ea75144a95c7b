/* gw_devices.h: the gateway's view of registered devices: a cache of public keys fetched from
 * the store (positive entries for the configured TTL; while the store cannot answer, a known
 * device keeps its expired key, re-asked every 5 s), a bounded cache of unknown device ids (one
 * second each, a fixed number of entries, the oldest replaced: an unknown kid never evicts a
 * known device), a per-address limit on store lookups of device ids the gateway does not know,
 * the per-device rate limiter, and registration (forwarded to the store, the only writer).
 * Tables are hashed with SipHash under a key drawn at start and locked in stripes. Shared by
 * all HTTP threads; main.c tells it whether the store answers (gw_devices_set_store_ready). */
#ifndef GW_DEVICES_H
#define GW_DEVICES_H

#include "lc_jws.h"
#include "lc_metrics.h"
#include "lc_query.h"

typedef struct gw_devices gw_devices_t;

typedef struct {
    lc_alg_t alg;
    uint8_t public_key[65];
    size_t public_key_len;
    /* One past the highest seq of the device known here: the store's Device.next_seq when the
     * key was fetched, raised by the readings of this gateway stored since (gw_devices_note_seq).
     */
    uint64_t next_seq;
    /* Key rotation (POST /v1/devices/{id}/keys): the key before this one still verifies until
     * prev_until_us (wall clock, µs; 0: no previous key). */
    lc_alg_t prev_alg;
    uint8_t prev_public_key[65];
    size_t prev_public_key_len;
    uint64_t prev_until_us;
} gw_device_key_t;

/* Whether the signature of jw verifies with the device's key, or with its previous key while the
 * rotation's overlap lasts (now_us: wall clock). The algorithm is the key's, never the header's:
 * a header naming another one does not verify. */
int gw_device_key_verifies(const gw_device_key_t *key, const lc_jws_t *jw, uint64_t now_us);

/* A client's address: IPv6, or IPv4 mapped (::ffff:a.b.c.d). */
typedef struct {
    uint8_t addr[16];
} gw_peer_t;

typedef struct {
    lc_query_client_t *store;
    int ttl_ms;
    double rate, burst;    /* readings per second per device (rate 0: unlimited) */
    double lookups_per_ip; /* store lookups of unknown ids per second per address (0: no limit) */
    double lookups_burst;  /* ... and their burst */
    lc_metrics_t *metrics;
} gw_devices_opts_t;

gw_devices_t *gw_devices_new(const gw_devices_opts_t *opts);
void gw_devices_destroy(gw_devices_t **self_p);

/* Returns 0 (key written), LC_ERR_NOTFOUND (unknown or revoked), LC_ERR_UNAVAILABLE (the store
 * cannot answer: an unknown id is answered at once while it is known to be away) or LC_ERR_FULL
 * (peer asked about too many unknown ids: the store was not asked). peer NULL: not limited. */
int gw_devices_lookup(gw_devices_t *self, const char *device_id, const gw_peer_t *peer,
                      gw_device_key_t *out) LC_WUR;

/* Takes one token of the device's rate limit: 0, or LC_ERR_TIMEOUT when over the limit. */
int gw_devices_take(gw_devices_t *self, const char *device_id) LC_WUR;

/* A reading of the device at seq, logged here, was stored: its next_seq is past it (a later
 * reading at or below it is checked for a conflict with the store). */
void gw_devices_note_seq(gw_devices_t *self, const char *device_id, uint64_t seq);
/* The store says the device changed (revoked, reactivated, its key rotated: a Change on topic
 * "changes/"): the next lookup asks the store again, so the change takes effect here at once
 * rather than when the cached entry expires. */
void gw_devices_forget(gw_devices_t *self, const char *device_id);

/* Whether the store answers (main.c's readiness ping; a failed lookup also says 0). */
void gw_devices_set_store_ready(gw_devices_t *self, int ready);

/* Entries held: known devices (with their rate buckets) and cached unknown ids. */
void gw_devices_count(gw_devices_t *self, size_t *known, size_t *unknown);

/* Registers through the store on behalf of the operator token `actor` (audited there). Returns 0
 * with *created set, LC_ERR_CONFLICT (a different registration exists), LC_ERR_INVALID (store
 * refused it) or LC_ERR_UNAVAILABLE. */
int gw_devices_register(gw_devices_t *self, const char *device_id, lc_alg_t alg,
                        const uint8_t *public_key, size_t public_key_len, const char *did_document,
                        const char *actor, int *created) LC_WUR;

#endif
