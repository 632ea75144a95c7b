/* gw_devices.c: device key cache, unknown ids, lookup limits, rate limiting and registration.
 * See gw_devices.h. */
#include "gw_devices.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "lc_record.h"

#define GW_DEV_BUCKETS 65536
#define GW_DEV_STRIPES 64           /* locks: a bucket, set or slot takes lock (index % 64) */
#define GW_DEV_MAX_ENTRIES 1000000  /* known devices; past it a chain's oldest entry goes */
#define GW_DEV_STALE_MS 5000        /* re-ask an unavailable store this often per device */
#define GW_DEV_NEGATIVE_TTL_MS 1000 /* an unknown id is asked again after this */
#define GW_UNKNOWN_WAYS 4
#define GW_UNKNOWN_SETS 32768 /* 131072 unknown ids of 16 bytes: 2 MiB */
#define GW_PEER_SLOTS 16384   /* lookup allowances of client addresses */

/* A registered device (active or revoked) and its rate bucket. */
typedef struct s_entry {
    struct s_entry *next;
    char device_id[LC_DEVICE_ID_MAX + 1];
    int known; /* 0: revoked (or not fetched yet) */
    gw_device_key_t key;
    uint64_t expires_ms;
    double tokens;
    uint64_t refill_us;
} s_entry_t;

/* An id the store does not know: only its keyed hash (tag 0: free slot). */
typedef struct {
    uint64_t tag, expires_ms;
} s_unknown_t;

/* One client address's allowance of store lookups for ids the gateway does not know. */
typedef struct {
    gw_peer_t peer;
    int used;
    double tokens;
    uint64_t refill_us;
} s_peer_slot_t;

enum { REFUSED_PEER_LIMIT, REFUSED_STORE_AWAY, REFUSED_COUNT };

struct gw_devices {
    gw_devices_opts_t o;
    uint8_t key[crypto_shorthash_KEYBYTES];
    atomic_int store_ready;
    atomic_size_t n_known, n_unknown;
    pthread_mutex_t locks[GW_DEV_STRIPES];
    s_entry_t **buckets;  /* GW_DEV_BUCKETS chains */
    s_unknown_t *unknown; /* GW_UNKNOWN_SETS x GW_UNKNOWN_WAYS */
    s_peer_slot_t *peers; /* GW_PEER_SLOTS */
    lc_counter_t *store_lookups;
    lc_counter_t *refused[REFUSED_COUNT];
    lc_gauge_t *known_gauge, *unknown_gauge;
};

/* What the cache says of an id before the store is asked. */
typedef enum { C_KNOWN, C_UNKNOWN, C_EXPIRED, C_MISS } s_cached_t;

static uint64_t s_hash(const gw_devices_t *self, const void *in, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, in, len, self->key);
    memcpy(&h, out, sizeof h);
    return h;
}

static pthread_mutex_t *s_lock(gw_devices_t *self, size_t index)
{
    return &self->locks[index % GW_DEV_STRIPES];
}

static void s_metrics(gw_devices_t *self, lc_metrics_t *m)
{
    self->store_lookups =
        lc_metrics_counter(m, "lcore_gateway_device_store_lookups_total",
                           "Device keys asked of the store (cache misses and expiries)", NULL);
    static const char *const why[REFUSED_COUNT] = {"reason=\"peer_limit\"",
                                                   "reason=\"store_unavailable\""};
    for (int i = 0; i < REFUSED_COUNT; i++)
        self->refused[i] = lc_metrics_counter(
            m, "lcore_gateway_device_lookups_refused_total",
            "Unknown device ids answered without asking the store, by reason", why[i]);
    self->known_gauge = lc_metrics_gauge(m, "lcore_gateway_device_cache_entries",
                                         "Device cache entries, by kind", "kind=\"known\"");
    self->unknown_gauge = lc_metrics_gauge(m, "lcore_gateway_device_cache_entries",
                                           "Device cache entries, by kind", "kind=\"unknown\"");
}

gw_devices_t *gw_devices_new(const gw_devices_opts_t *opts)
{
    gw_devices_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->o = *opts;
    self->buckets = calloc(GW_DEV_BUCKETS, sizeof *self->buckets);
    self->unknown = calloc((size_t)GW_UNKNOWN_SETS * GW_UNKNOWN_WAYS, sizeof *self->unknown);
    self->peers = calloc(GW_PEER_SLOTS, sizeof *self->peers);
    if (!self->buckets || !self->unknown || !self->peers) {
        free(self->buckets);
        free(self->unknown);
        free(self->peers);
        free(self);
        return NULL;
    }
    crypto_shorthash_keygen(self->key);
    atomic_init(&self->store_ready, 1); /* until a lookup or the readiness ping says otherwise */
    for (int i = 0; i < GW_DEV_STRIPES; i++)
        pthread_mutex_init(&self->locks[i], NULL);
    s_metrics(self, opts->metrics);
    return self;
}

void gw_devices_destroy(gw_devices_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_devices_t *self = *self_p;
    for (size_t i = 0; i < GW_DEV_BUCKETS; i++)
        for (s_entry_t *e = self->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    for (int i = 0; i < GW_DEV_STRIPES; i++)
        pthread_mutex_destroy(&self->locks[i]);
    free(self->buckets);
    free(self->unknown);
    free(self->peers);
    sodium_memzero(self->key, sizeof self->key);
    free(self);
    *self_p = NULL;
}

/* Removes the oldest entry of chain b (entries are added at the head) to make room. */
static void s_evict_oldest(gw_devices_t *self, size_t b)
{
    s_entry_t **pp = &self->buckets[b];
    if (!*pp)
        return;
    while ((*pp)->next)
        pp = &(*pp)->next;
    free(*pp);
    *pp = NULL;
    atomic_fetch_sub(&self->n_known, 1);
    lc_gauge_add(self->known_gauge, -1);
}

/* Caller holds chain b's lock. Creates the entry when absent (expired, so it will be fetched);
 * NULL when absent and not created. */
static s_entry_t *s_find(gw_devices_t *self, size_t b, const char *device_id, int create)
{
    for (s_entry_t *e = self->buckets[b]; e; e = e->next)
        if (strcmp(e->device_id, device_id) == 0)
            return e;
    if (!create)
        return NULL;
    /* Only registered devices get here, so the bound is for very large fleets: one entry goes,
     * never the whole table (its rate buckets are what limits devices). */
    if (atomic_load(&self->n_known) >= GW_DEV_MAX_ENTRIES) {
        s_evict_oldest(self, b);
        if (atomic_load(&self->n_known) >= GW_DEV_MAX_ENTRIES)
            return NULL;
    }
    s_entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->device_id, sizeof e->device_id, "%s", device_id);
    e->tokens = self->o.burst;
    e->refill_us = lc_mono_us();
    e->next = self->buckets[b];
    self->buckets[b] = e;
    atomic_fetch_add(&self->n_known, 1);
    lc_gauge_add(self->known_gauge, 1);
    return e;
}

/* The unknown-id set of hash h. */
static s_unknown_t *s_unknown_set(gw_devices_t *self, uint64_t h, size_t *set)
{
    *set = (size_t)(h >> 16) % GW_UNKNOWN_SETS;
    return &self->unknown[*set * GW_UNKNOWN_WAYS];
}

static int s_unknown_hit(gw_devices_t *self, uint64_t h, uint64_t now_ms)
{
    size_t set;
    s_unknown_t *ways = s_unknown_set(self, h, &set);
    uint64_t tag = h ? h : 1;
    int hit = 0;
    pthread_mutex_lock(s_lock(self, set));
    for (int i = 0; i < GW_UNKNOWN_WAYS; i++)
        hit |= ways[i].tag == tag && ways[i].expires_ms > now_ms;
    pthread_mutex_unlock(s_lock(self, set));
    return hit;
}

/* Remembers an unknown id in its set: its own slot, else a free one, else the one that
 * expires first (the oldest: every entry lives as long). */
static void s_unknown_put(gw_devices_t *self, uint64_t h)
{
    size_t set;
    s_unknown_t *ways = s_unknown_set(self, h, &set);
    uint64_t tag = h ? h : 1;
    pthread_mutex_lock(s_lock(self, set));
    s_unknown_t *slot = &ways[0];
    for (int i = 0; i < GW_UNKNOWN_WAYS; i++) {
        if (ways[i].tag == tag || ways[i].tag == 0) {
            slot = &ways[i];
            break;
        }
        if (ways[i].expires_ms < slot->expires_ms)
            slot = &ways[i];
    }
    if (slot->tag == 0) {
        atomic_fetch_add(&self->n_unknown, 1);
        lc_gauge_add(self->unknown_gauge, 1);
    }
    slot->tag = tag;
    slot->expires_ms = lc_mono_us() / 1000 + GW_DEV_NEGATIVE_TTL_MS;
    pthread_mutex_unlock(s_lock(self, set));
}

static s_cached_t s_cached(gw_devices_t *self, uint64_t h, const char *device_id,
                           gw_device_key_t *out)
{
    uint64_t now_ms = lc_mono_us() / 1000;
    size_t b = (size_t)(h % GW_DEV_BUCKETS);
    pthread_mutex_lock(s_lock(self, b));
    s_entry_t *e = s_find(self, b, device_id, 0);
    s_cached_t c = C_MISS;
    if (e && e->expires_ms > now_ms) {
        c = e->known ? C_KNOWN : C_UNKNOWN;
        if (e->known)
            *out = e->key;
    } else if (e) {
        c = C_EXPIRED;
    }
    pthread_mutex_unlock(s_lock(self, b));
    if (c == C_MISS && s_unknown_hit(self, h, now_ms))
        c = C_UNKNOWN;
    return c;
}

static void s_store_entry(gw_devices_t *self, const char *device_id, int known,
                          const gw_device_key_t *key)
{
    size_t b = (size_t)(s_hash(self, device_id, strlen(device_id)) % GW_DEV_BUCKETS);
    pthread_mutex_lock(s_lock(self, b));
    s_entry_t *e = s_find(self, b, device_id, 1);
    if (e) {
        e->known = known;
        if (known) {
            uint64_t seen = e->key.next_seq; /* what this gateway accepted since (note_seq) */
            e->key = *key;
            if (seen > e->key.next_seq)
                e->key.next_seq = seen;
        }
        e->expires_ms = lc_mono_us() / 1000 + (uint64_t)self->o.ttl_ms;
    }
    pthread_mutex_unlock(s_lock(self, b));
}

/* The store cannot answer: a device whose key we had keeps it for a while (readings keep
 * flowing into the log while PostgreSQL is down; DESIGN.md "Delivery contract"), and the next
 * question to the store waits GW_DEV_STALE_MS instead of costing every reading a timeout.
 * A revocation made meanwhile takes effect once the store answers again. */
static int s_stale(gw_devices_t *self, const char *device_id, gw_device_key_t *out)
{
    int rc = LC_ERR_UNAVAILABLE;
    size_t b = (size_t)(s_hash(self, device_id, strlen(device_id)) % GW_DEV_BUCKETS);
    pthread_mutex_lock(s_lock(self, b));
    s_entry_t *e = s_find(self, b, device_id, 0);
    if (e && e->known) {
        *out = e->key;
        e->expires_ms = lc_mono_us() / 1000 + GW_DEV_STALE_MS;
        rc = 0;
    }
    pthread_mutex_unlock(s_lock(self, b));
    return rc;
}

/* Refills a token bucket for the time since *refill_us and takes one token: 0, or -1 empty. */
static int s_bucket_take(double *tokens, uint64_t *refill_us, double rate, double burst,
                         uint64_t now)
{
    *tokens += (double)(now - *refill_us) / 1e6 * rate;
    if (*tokens > burst)
        *tokens = burst;
    *refill_us = now;
    if (*tokens < 1.0)
        return -1;
    *tokens -= 1.0;
    return 0;
}

/* Takes one of peer's store lookups of unknown ids: 0, or -1 when it has none left. An IPv6
 * client is limited by its /64 (one host usually holds all of it). Addresses share a slot only
 * when their keyed hashes collide; the newcomer then starts with a full allowance. */
static int s_peer_take(gw_devices_t *self, const gw_peer_t *peer)
{
    if (!peer || self->o.lookups_per_ip <= 0)
        return 0;
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    gw_peer_t p = *peer;
    if (memcmp(p.addr, v4_mapped, sizeof v4_mapped) != 0)
        memset(p.addr + 8, 0, 8);
    size_t i = (size_t)(s_hash(self, p.addr, sizeof p.addr) % GW_PEER_SLOTS);
    uint64_t now = lc_mono_us();
    int rc = 0;
    pthread_mutex_lock(s_lock(self, i));
    s_peer_slot_t *s = &self->peers[i];
    if (!s->used || memcmp(s->peer.addr, p.addr, sizeof p.addr) != 0)
        *s = (s_peer_slot_t){
            .peer = p, .used = 1, .tokens = self->o.lookups_burst, .refill_us = now};
    rc = s_bucket_take(&s->tokens, &s->refill_us, self->o.lookups_per_ip, self->o.lookups_burst,
                       now);
    pthread_mutex_unlock(s_lock(self, i));
    return rc;
}

/* The store's Device record: 0 (active, key in out), LC_ERR_NOTFOUND (revoked) or
 * LC_ERR_UNAVAILABLE (a record this gateway cannot use). */
static int s_take_record(gw_devices_t *self, const Lcore__V1__Device *d, const char *device_id,
                         gw_device_key_t *out)
{
    gw_device_key_t key = {.alg = lc_alg_from_name(d->alg), .next_seq = d->next_seq};
    int active = d->status && strcmp(d->status, "active") == 0;
    if (key.alg == LC_ALG_NONE || d->public_key.len > sizeof key.public_key) {
        lc_warn("device_record_invalid", "device_id=%s", device_id);
        return LC_ERR_UNAVAILABLE;
    }
    memcpy(key.public_key, d->public_key.data, d->public_key.len);
    key.public_key_len = d->public_key.len;
    lc_alg_t prev = d->prev_alg ? lc_alg_from_name(d->prev_alg) : LC_ALG_NONE;
    if (prev != LC_ALG_NONE && d->prev_until_us &&
        d->prev_public_key.len <= sizeof key.prev_public_key) {
        key.prev_alg = prev;
        memcpy(key.prev_public_key, d->prev_public_key.data, d->prev_public_key.len);
        key.prev_public_key_len = d->prev_public_key.len;
        key.prev_until_us = d->prev_until_us;
    }
    s_store_entry(self, device_id, active, &key);
    if (active)
        *out = key;
    return active ? 0 : LC_ERR_NOTFOUND;
}

/* Asks the store for device_id (hash h). A store that does not answer is taken for away until
 * the readiness ping says otherwise. */
static int s_ask(gw_devices_t *self, uint64_t h, const char *device_id, gw_device_key_t *out)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_DEVICE;
    q.get_device = (char *)device_id;
    int err = 0;
    lc_counter_inc(self->store_lookups);
    Lcore__V1__QueryReply *r = lc_query_call(self->o.store, &q, &err);
    if (!r || r->status == LCORE__V1__QUERY_REPLY__STATUS__ERROR) {
        atomic_store(&self->store_ready, 0);
        if (r)
            lcore__v1__query_reply__free_unpacked(r, NULL);
        return s_stale(self, device_id, out);
    }
    int rc = LC_ERR_UNAVAILABLE;
    if (r->status == LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND) {
        s_unknown_put(self, h);
        rc = LC_ERR_NOTFOUND;
    } else if (r->status == LCORE__V1__QUERY_REPLY__STATUS__OK && r->device) {
        rc = s_take_record(self, r->device, device_id, out);
    }
    lcore__v1__query_reply__free_unpacked(r, NULL);
    return rc;
}

int gw_devices_lookup(gw_devices_t *self, const char *device_id, const gw_peer_t *peer,
                      gw_device_key_t *out)
{
    uint64_t h = s_hash(self, device_id, strlen(device_id));
    s_cached_t c = s_cached(self, h, device_id, out);
    if (c == C_KNOWN)
        return 0;
    if (c == C_UNKNOWN)
        return LC_ERR_NOTFOUND;
    if (!atomic_load(&self->store_ready)) {
        if (c == C_EXPIRED)
            return s_stale(self, device_id, out);
        lc_counter_inc(self->refused[REFUSED_STORE_AWAY]);
        return LC_ERR_UNAVAILABLE; /* no HTTP thread waits out the query timeout */
    }
    /* A registered device's refresh is not limited: only ids this gateway never saw are. */
    if (c == C_MISS && s_peer_take(self, peer) < 0) {
        lc_counter_inc(self->refused[REFUSED_PEER_LIMIT]);
        return LC_ERR_FULL;
    }
    return s_ask(self, h, device_id, out);
}

int gw_devices_take(gw_devices_t *self, const char *device_id)
{
    if (self->o.rate <= 0)
        return 0;
    int rc = 0;
    uint64_t now = lc_mono_us();
    size_t b = (size_t)(s_hash(self, device_id, strlen(device_id)) % GW_DEV_BUCKETS);
    pthread_mutex_lock(s_lock(self, b));
    s_entry_t *e = s_find(self, b, device_id, 1);
    if (e) {
        rc = s_bucket_take(&e->tokens, &e->refill_us, self->o.rate, self->o.burst, now) < 0
                 ? LC_ERR_TIMEOUT
                 : 0;
    }
    pthread_mutex_unlock(s_lock(self, b));
    return rc;
}

void gw_devices_note_seq(gw_devices_t *self, const char *device_id, uint64_t seq)
{
    size_t b = (size_t)(s_hash(self, device_id, strlen(device_id)) % GW_DEV_BUCKETS);
    pthread_mutex_lock(s_lock(self, b));
    s_entry_t *e = s_find(self, b, device_id, 0);
    if (e && e->known && seq < UINT64_MAX && e->key.next_seq <= seq)
        e->key.next_seq = seq + 1;
    pthread_mutex_unlock(s_lock(self, b));
}

int gw_device_key_verifies(const gw_device_key_t *key, const lc_jws_t *jw, uint64_t now_us)
{
    if (jw->alg == key->alg &&
        lc_jws_verify(jw, key->alg, key->public_key, key->public_key_len) == 0)
        return 1;
    return key->prev_until_us > now_us && jw->alg == key->prev_alg &&
           lc_jws_verify(jw, key->prev_alg, key->prev_public_key, key->prev_public_key_len) == 0;
}

void gw_devices_forget(gw_devices_t *self, const char *device_id)
{
    uint64_t h = s_hash(self, device_id, strlen(device_id));
    size_t b = (size_t)(h % GW_DEV_BUCKETS);
    pthread_mutex_lock(s_lock(self, b));
    s_entry_t *e = s_find(self, b, device_id, 0);
    if (e)
        e->expires_ms = 0;
    pthread_mutex_unlock(s_lock(self, b));
    size_t set;
    s_unknown_t *ways = s_unknown_set(self, h, &set);
    uint64_t tag = h ? h : 1;
    pthread_mutex_lock(s_lock(self, set));
    for (int i = 0; i < GW_UNKNOWN_WAYS; i++)
        if (ways[i].tag == tag)
            ways[i].expires_ms = 0;
    pthread_mutex_unlock(s_lock(self, set));
}

void gw_devices_set_store_ready(gw_devices_t *self, int ready)
{
    atomic_store(&self->store_ready, ready != 0);
}

void gw_devices_count(gw_devices_t *self, size_t *known, size_t *unknown)
{
    *known = atomic_load(&self->n_known);
    *unknown = atomic_load(&self->n_unknown);
}

int gw_devices_register(gw_devices_t *self, const char *device_id, lc_alg_t alg,
                        const uint8_t *public_key, size_t public_key_len, const char *did_document,
                        const char *actor, int *created)
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
    q.actor = (char *)actor;
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(self->o.store, &q, &err);
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
