/* gw_devices.c: device key cache, rate limiting and registration. See gw_devices.h. */
#include "gw_devices.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_record.h"

#define GW_DEV_BUCKETS 4096
#define GW_DEV_MAX_ENTRIES 1000000
#define GW_DEV_STALE_MS 5000 /* re-ask an unavailable store this often per device */
#define GW_DEV_NEGATIVE_TTL_MS 1000

typedef struct s_entry {
    struct s_entry *next;
    char device_id[LC_DEVICE_ID_MAX + 1];
    int known; /* 0: unknown or revoked (negative entry) */
    gw_device_key_t key;
    uint64_t expires_ms;
    double tokens;
    uint64_t refill_us;
} s_entry_t;

struct gw_devices {
    lc_query_client_t *store;
    int ttl_ms;
    double rate, burst;
    pthread_mutex_t lock;
    s_entry_t *buckets[GW_DEV_BUCKETS];
    size_t n_entries;
};

static size_t s_hash(const char *s)
{
    size_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h % GW_DEV_BUCKETS;
}

gw_devices_t *gw_devices_new(lc_query_client_t *store, int ttl_ms, double rate, double burst)
{
    gw_devices_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->store = store;
    self->ttl_ms = ttl_ms;
    self->rate = rate;
    self->burst = burst;
    pthread_mutex_init(&self->lock, NULL);
    return self;
}

static void s_clear(gw_devices_t *self)
{
    for (size_t i = 0; i < GW_DEV_BUCKETS; i++) {
        s_entry_t *e = self->buckets[i];
        while (e) {
            s_entry_t *next = e->next;
            free(e);
            e = next;
        }
        self->buckets[i] = NULL;
    }
    self->n_entries = 0;
}

void gw_devices_destroy(gw_devices_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_clear(*self_p);
    pthread_mutex_destroy(&(*self_p)->lock);
    free(*self_p);
    *self_p = NULL;
}

/* Caller holds the lock. Creates the entry when absent (expired, so it will be fetched). */
static s_entry_t *s_find(gw_devices_t *self, const char *device_id, int create)
{
    size_t b = s_hash(device_id);
    for (s_entry_t *e = self->buckets[b]; e; e = e->next)
        if (strcmp(e->device_id, device_id) == 0)
            return e;
    if (!create)
        return NULL;
    if (self->n_entries >= GW_DEV_MAX_ENTRIES)
        s_clear(self); /* a crude bound; keys are refetched on demand */
    s_entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->device_id, sizeof e->device_id, "%s", device_id);
    e->tokens = self->burst;
    e->refill_us = lc_mono_us();
    e->next = self->buckets[b];
    self->buckets[b] = e;
    self->n_entries++;
    return e;
}

static void s_store_entry(gw_devices_t *self, const char *device_id, int known,
                          const gw_device_key_t *key)
{
    pthread_mutex_lock(&self->lock);
    s_entry_t *e = s_find(self, device_id, 1);
    if (e) {
        e->known = known;
        if (known)
            e->key = *key;
        e->expires_ms =
            lc_mono_us() / 1000 + (uint64_t)(known ? self->ttl_ms : GW_DEV_NEGATIVE_TTL_MS);
    }
    pthread_mutex_unlock(&self->lock);
}

/* The store cannot answer: a device whose key we had keeps it for a while (readings keep
 * flowing into the log while PostgreSQL is down; DESIGN.md "Delivery contract"), and the next
 * question to the store waits GW_DEV_STALE_MS instead of costing every reading a timeout.
 * A revocation made meanwhile takes effect once the store answers again. */
static int s_stale(gw_devices_t *self, const char *device_id, gw_device_key_t *out)
{
    int rc = LC_ERR_UNAVAILABLE;
    pthread_mutex_lock(&self->lock);
    s_entry_t *e = s_find(self, device_id, 0);
    if (e && e->known) {
        *out = e->key;
        e->expires_ms = lc_mono_us() / 1000 + GW_DEV_STALE_MS;
        rc = 0;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int gw_devices_lookup(gw_devices_t *self, const char *device_id, gw_device_key_t *out)
{
    uint64_t now_ms = lc_mono_us() / 1000;
    pthread_mutex_lock(&self->lock);
    s_entry_t *e = s_find(self, device_id, 0);
    int hit = e && e->expires_ms > now_ms;
    int known = hit && e->known;
    if (known)
        *out = e->key;
    pthread_mutex_unlock(&self->lock);
    if (hit)
        return known ? 0 : LC_ERR_NOTFOUND;

    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = (char *)device_id;
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(self->store, &q, &err);
    if (!r || r->status == LCORE__V1__QUERY_REPLY__STATUS__ERROR) {
        if (r)
            lcore__v1__query_reply__free_unpacked(r, NULL);
        return s_stale(self, device_id, out);
    }
    int rc = LC_ERR_UNAVAILABLE;
    if (r->status == LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND) {
        s_store_entry(self, device_id, 0, NULL);
        rc = LC_ERR_NOTFOUND;
    } else if (r->status == LCORE__V1__QUERY_REPLY__STATUS__OK && r->device) {
        const Lcore__V1__Device *d = r->device;
        gw_device_key_t key = {.alg = lc_alg_from_name(d->alg)};
        int active = d->status && strcmp(d->status, "active") == 0;
        if (key.alg != LC_ALG_NONE && d->public_key.len <= sizeof key.public_key) {
            memcpy(key.public_key, d->public_key.data, d->public_key.len);
            key.public_key_len = d->public_key.len;
            s_store_entry(self, device_id, active, &key);
            if (active)
                *out = key;
            rc = active ? 0 : LC_ERR_NOTFOUND;
        } else {
            lc_warn("device_record_invalid", "device_id=%s", device_id);
        }
    }
    lcore__v1__query_reply__free_unpacked(r, NULL);
    return rc;
}

int gw_devices_take(gw_devices_t *self, const char *device_id)
{
    if (self->rate <= 0)
        return 0;
    int rc = 0;
    uint64_t now = lc_mono_us();
    pthread_mutex_lock(&self->lock);
    s_entry_t *e = s_find(self, device_id, 1);
    if (e) {
        e->tokens += (double)(now - e->refill_us) / 1e6 * self->rate;
        if (e->tokens > self->burst)
            e->tokens = self->burst;
        e->refill_us = now;
        if (e->tokens >= 1.0)
            e->tokens -= 1.0;
        else
            rc = LC_ERR_TIMEOUT;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

int gw_devices_register(gw_devices_t *self, const char *device_id, lc_alg_t alg,
                        const uint8_t *public_key, size_t public_key_len, const char *did_document,
                        int *created)
{
    Lcore__V1__Device dev = LCORE__V1__DEVICE__INIT;
    dev.device_id = (char *)device_id;
    dev.alg = (char *)lc_alg_name(alg);
    dev.public_key.data = (uint8_t *)public_key;
    dev.public_key.len = public_key_len;
    dev.did_document = (char *)(did_document ? did_document : "");
    dev.status = "active";
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_REGISTER_DEVICE;
    q.register_device = &dev;
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(self->store, &q, &err);
    if (!r)
        return LC_ERR_UNAVAILABLE;
    int rc;
    switch (r->status) {
    case LCORE__V1__QUERY_REPLY__STATUS__CREATED:
    case LCORE__V1__QUERY_REPLY__STATUS__OK: {
        *created = r->status == LCORE__V1__QUERY_REPLY__STATUS__CREATED;
        gw_device_key_t key = {.alg = alg, .public_key_len = public_key_len};
        memcpy(key.public_key, public_key, public_key_len);
        s_store_entry(self, device_id, 1, &key);
        rc = 0;
        break;
    }
    case LCORE__V1__QUERY_REPLY__STATUS__CONFLICT:
        rc = LC_ERR_CONFLICT;
        break;
    case LCORE__V1__QUERY_REPLY__STATUS__BAD_REQUEST:
        rc = LC_ERR_INVALID;
        break;
    default:
        rc = LC_ERR_UNAVAILABLE;
        break;
    }
    lcore__v1__query_reply__free_unpacked(r, NULL);
    return rc;
}
