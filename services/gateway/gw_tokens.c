/* gw_tokens.c: bearer token checks, the token cache and new tokens. See gw_tokens.h. */
#include "gw_tokens.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lc_codec.h"
#include "lc_log.h"
#include "lc_record.h"
#include "lc_token.h"

#define GW_TOKEN_SLOTS 1024
#define GW_TOKEN_TTL_MS 5000          /* a known token is asked again after this */
#define GW_TOKEN_NEGATIVE_TTL_MS 1000 /* an unknown hash likewise */
#define GW_TOKEN_PEER_SLOTS 4096
#define GW_TOKEN_LOOKUPS_PER_S 5.0 /* store lookups of uncached tokens per client address */
#define GW_TOKEN_LOOKUPS_BURST 20.0
#define GW_TOKEN_RATE_SLOTS 4096 /* rate buckets, by the token's hash */

typedef enum { SLOT_EMPTY, SLOT_KNOWN, SLOT_UNKNOWN } s_state_t;

typedef struct {
    uint8_t hash[32];
    s_state_t state;
    uint64_t until_ms;
    gw_token_t token;
} s_slot_t;

typedef struct {
    uint8_t addr[16];
    double tokens;
    uint64_t refill_us;
} s_peer_t;

typedef struct {
    double tokens;
    uint64_t refill_us;
} s_bucket_t;

struct gw_tokens {
    uint8_t admin_hash[32];
    int admin_set;
    lc_query_client_t *store;
    pthread_mutex_t lock;
    s_slot_t *slots;
    s_peer_t *peers;
    s_bucket_t *rates; /* GW_TOKEN_RATE_SLOTS */
    double rate, burst;
    uint8_t peer_key[crypto_shorthash_KEYBYTES];
    lc_counter_t *lookups, *refused, *unavailable, *limited;
};

gw_tokens_t *gw_tokens_new(const gw_tokens_opts_t *o)
{
    gw_tokens_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = calloc(GW_TOKEN_SLOTS, sizeof *self->slots);
    self->peers = calloc(GW_TOKEN_PEER_SLOTS, sizeof *self->peers);
    self->rates = calloc(GW_TOKEN_RATE_SLOTS, sizeof *self->rates);
    if (!self->slots || !self->peers || !self->rates) {
        free(self->slots);
        free(self->peers);
        free(self->rates);
        free(self);
        return NULL;
    }
    if (o->admin_hash) {
        memcpy(self->admin_hash, o->admin_hash, sizeof self->admin_hash);
        self->admin_set = 1;
    }
    self->store = o->store;
    self->rate = o->rate;
    self->burst = o->burst;
    lc_metrics_t *m = o->metrics;
    crypto_shorthash_keygen(self->peer_key);
    pthread_mutex_init(&self->lock, NULL);
    self->lookups = lc_metrics_counter(m, "lcore_gateway_token_store_lookups_total",
                                       "Bearer tokens asked of the store (cache misses)", NULL);
    self->refused = lc_metrics_counter(
        m, "lcore_gateway_token_lookups_refused_total",
        "Uncached tokens answered 429 without asking the store (per-address limit)", NULL);
    self->unavailable = lc_metrics_counter(m, "lcore_gateway_token_unanswered_total",
                                           "Token lookups the store did not answer (503)", NULL);
    self->limited = lc_metrics_counter(
        m, "lcore_gateway_token_rate_limited_total",
        "Reader and operator API requests answered 429: their token was over its rate", NULL);
    return self;
}

void gw_token_clear(gw_token_t *t)
{
    free(t->devices);
    memset(t, 0, sizeof *t);
}

void gw_tokens_destroy(gw_tokens_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_tokens_t *self = *self_p;
    for (size_t i = 0; i < GW_TOKEN_SLOTS; i++)
        gw_token_clear(&self->slots[i].token);
    pthread_mutex_destroy(&self->lock);
    sodium_memzero(self->admin_hash, sizeof self->admin_hash);
    sodium_memzero(self->slots, GW_TOKEN_SLOTS * sizeof *self->slots);
    free(self->slots);
    free(self->peers);
    free(self->rates);
    free(self);
    *self_p = NULL;
}

gw_auth_t gw_token_scope_parse(const char *name)
{
    if (!name)
        return GW_AUTH_NONE;
    if (strcmp(name, "read") == 0)
        return GW_AUTH_READ;
    if (strcmp(name, "decrypt") == 0)
        return GW_AUTH_DECRYPT;
    if (strcmp(name, "operator") == 0)
        return GW_AUTH_OPERATOR;
    return GW_AUTH_NONE;
}

const char *gw_token_scope_name(gw_auth_t scope)
{
    switch (scope) {
    case GW_AUTH_READ:
        return "read";
    case GW_AUTH_DECRYPT:
        return "decrypt";
    case GW_AUTH_OPERATOR:
        return "operator";
    default:
        return "none";
    }
}

int gw_token_allows(const gw_token_t *t, gw_auth_t need, const char *device_id)
{
    int scope_ok = need == GW_AUTH_NONE || t->scope == need ||
                   (need == GW_AUTH_READ && t->scope == GW_AUTH_DECRYPT);
    if (!scope_ok)
        return 0;
    if (!device_id || !t->devices)
        return 1;
    const char *d = t->devices;
    for (size_t i = 0; i < t->n_devices; i++, d += strlen(d) + 1)
        if (strcmp(d, device_id) == 0)
            return 1;
    return 0;
}

/* A copy of t (its device list duplicated). -1 out of memory. */
static int s_copy(gw_token_t *out, const gw_token_t *t)
{
    *out = *t;
    out->devices = NULL;
    if (!t->devices)
        return 0;
    size_t len = 0;
    const char *d = t->devices;
    for (size_t i = 0; i < t->n_devices; i++, d += strlen(d) + 1)
        len += strlen(d) + 1;
    if (!(out->devices = malloc(len)))
        return -1;
    memcpy(out->devices, t->devices, len);
    return 0;
}

/* The store's Token as a gw_token_t: 0, or -1 when it is not one this gateway can use. */
static int s_from_store(gw_token_t *out, const Lcore__V1__Token *tk)
{
    memset(out, 0, sizeof *out);
    if (!tk->id || strlen(tk->id) > GW_TOKEN_ID_MAX || tk->n_devices > GW_TOKEN_MAX_DEVICES ||
        (out->scope = gw_token_scope_parse(tk->scope)) == GW_AUTH_NONE)
        return -1;
    snprintf(out->id, sizeof out->id, "%s", tk->id);
    out->expires_at_us = tk->expires_at_us;
    if (tk->n_devices == 0)
        return 0;
    size_t len = 0;
    for (size_t i = 0; i < tk->n_devices; i++) {
        if (!tk->devices[i] || !lc_device_id_valid(tk->devices[i], strlen(tk->devices[i])))
            return -1;
        len += strlen(tk->devices[i]) + 1;
    }
    if (!(out->devices = malloc(len)))
        return -1;
    char *p = out->devices;
    for (size_t i = 0; i < tk->n_devices; i++) {
        size_t n = strlen(tk->devices[i]) + 1;
        memcpy(p, tk->devices[i], n);
        p += n;
    }
    out->n_devices = tk->n_devices;
    return 0;
}

static s_slot_t *s_slot(gw_tokens_t *self, const uint8_t hash[32])
{
    uint64_t h;
    memcpy(&h, hash, sizeof h); /* a SHA-256 output */
    return &self->slots[h % GW_TOKEN_SLOTS];
}

/* Under the lock: the cached answer for hash. 0 known (*out copied), LC_ERR_NOTFOUND unknown,
 * 1 not cached. */
static int s_cached(gw_tokens_t *self, const uint8_t hash[32], gw_token_t *out)
{
    s_slot_t *s = s_slot(self, hash);
    if (s->state == SLOT_EMPTY || s->until_ms <= lc_mono_us() / 1000 ||
        sodium_memcmp(s->hash, hash, 32) != 0)
        return 1;
    if (s->state == SLOT_UNKNOWN)
        return LC_ERR_NOTFOUND;
    return s_copy(out, &s->token) < 0 ? 1 : 0;
}

static void s_put(gw_tokens_t *self, const uint8_t hash[32], const gw_token_t *t)
{
    pthread_mutex_lock(&self->lock);
    s_slot_t *s = s_slot(self, hash);
    gw_token_clear(&s->token);
    memcpy(s->hash, hash, 32);
    s->state = SLOT_UNKNOWN;
    s->until_ms = lc_mono_us() / 1000 + GW_TOKEN_NEGATIVE_TTL_MS;
    if (t && s_copy(&s->token, t) == 0) {
        s->state = SLOT_KNOWN;
        s->until_ms = lc_mono_us() / 1000 + GW_TOKEN_TTL_MS;
    }
    pthread_mutex_unlock(&self->lock);
}

/* Refills a token bucket for the time since it was last used and takes one: 0, or -1 empty. A
 * bucket never used starts full. */
static int s_take(double *tokens, uint64_t *refill_us, double rate, double burst, uint64_t now)
{
    if (*refill_us == 0)
        *tokens = burst;
    else
        *tokens += (double)(now - *refill_us) / 1e6 * rate;
    if (*tokens > burst)
        *tokens = burst;
    *refill_us = now;
    if (*tokens < 1.0)
        return -1;
    *tokens -= 1.0;
    return 0;
}

/* One request of the token of hash against its rate: 0, or -1 (over it). */
static int s_rate_take(gw_tokens_t *self, const uint8_t hash[32])
{
    if (self->rate <= 0)
        return 0;
    uint64_t h;
    memcpy(&h, hash + 8, sizeof h); /* not the bytes that pick the cache slot */
    pthread_mutex_lock(&self->lock);
    s_bucket_t *b = &self->rates[h % GW_TOKEN_RATE_SLOTS];
    int rc = s_take(&b->tokens, &b->refill_us, self->rate, self->burst, lc_mono_us());
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* Takes one of peer's store lookups: 0, or -1 when it has none left. IPv6 by its /64. */
static int s_peer_take(gw_tokens_t *self, const gw_peer_t *peer)
{
    if (!peer)
        return 0;
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t a[16];
    memcpy(a, peer->addr, sizeof a);
    if (memcmp(a, v4_mapped, sizeof v4_mapped) != 0)
        memset(a + 8, 0, 8);
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, a, sizeof a, self->peer_key);
    uint64_t i;
    memcpy(&i, h, sizeof i);
    pthread_mutex_lock(&self->lock);
    s_peer_t *p = &self->peers[i % GW_TOKEN_PEER_SLOTS];
    if (memcmp(p->addr, a, sizeof a) != 0) { /* a newcomer in the slot starts full */
        memcpy(p->addr, a, sizeof a);
        p->refill_us = 0;
    }
    int rc = s_take(&p->tokens, &p->refill_us, GW_TOKEN_LOOKUPS_PER_S, GW_TOKEN_LOOKUPS_BURST,
                    lc_mono_us());
    pthread_mutex_unlock(&self->lock);
    return rc;
}

/* Asks the store for the token of hash: 0 (*out), LC_ERR_NOTFOUND or LC_ERR_UNAVAILABLE. */
static int s_ask(gw_tokens_t *self, const uint8_t hash[32], gw_token_t *out)
{
    Lcore__V1__Query q = LCORE__V1__QUERY__INIT;
    q.body_case = LCORE__V1__QUERY__BODY_GET_TOKEN;
    q.get_token.data = (uint8_t *)hash;
    q.get_token.len = 32;
    int err = 0;
    lc_counter_inc(self->lookups);
    Lcore__V1__QueryReply *r = lc_query_call(self->store, &q, &err);
    int rc = LC_ERR_UNAVAILABLE;
    if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND) {
        s_put(self, hash, NULL);
        rc = LC_ERR_NOTFOUND;
    } else if (r && r->status == LCORE__V1__QUERY_REPLY__STATUS__OK && r->n_tokens == 1) {
        rc = s_from_store(out, r->tokens[0]) == 0 ? 0 : LC_ERR_UNAVAILABLE;
        if (rc == 0)
            s_put(self, hash, out);
        else
            lc_warn("token_record_invalid", "reason=shape");
    }
    if (rc == LC_ERR_UNAVAILABLE)
        lc_counter_inc(self->unavailable);
    if (r)
        lcore__v1__query_reply__free_unpacked(r, NULL);
    return rc;
}

/* The hash of the bearer token in an Authorization value: 0, or -1 (no such header, not
 * "Bearer", not a token's shape). */
static int s_bearer_hash(const char *authorization, uint8_t hash[32])
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return -1;
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    return lc_token_hash(hash, tok, strlen(tok)) == 0 ? 0 : -1;
}

int gw_tokens_check(gw_tokens_t *self, const char *authorization, const gw_peer_t *peer,
                    gw_token_t *out)
{
    memset(out, 0, sizeof *out);
    uint8_t hash[32];
    if (s_bearer_hash(authorization, hash) < 0)
        return LC_ERR_NOTFOUND;
    if (self->admin_set && sodium_memcmp(hash, self->admin_hash, sizeof hash) == 0) {
        snprintf(out->id, sizeof out->id, "admin");
        out->scope = GW_AUTH_OPERATOR;
        return 0; /* the configured operator token is not rate limited: it must always work */
    }
    if (s_rate_take(self, hash) < 0) {
        lc_counter_inc(self->limited);
        sodium_memzero(hash, sizeof hash);
        return LC_ERR_TIMEOUT;
    }
    pthread_mutex_lock(&self->lock);
    int rc = s_cached(self, hash, out);
    pthread_mutex_unlock(&self->lock);
    if (rc == 1) {
        if (s_peer_take(self, peer) < 0) {
            lc_counter_inc(self->refused);
            return LC_ERR_FULL;
        }
        rc = s_ask(self, hash, out);
    }
    sodium_memzero(hash, sizeof hash);
    if (rc == 0 && out->expires_at_us && out->expires_at_us <= lc_now_us()) {
        gw_token_clear(out);
        rc = LC_ERR_NOTFOUND;
    }
    return rc;
}

void gw_tokens_forget(gw_tokens_t *self, const char *token_id)
{
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < GW_TOKEN_SLOTS; i++) {
        s_slot_t *s = &self->slots[i];
        if (s->state == SLOT_KNOWN && strcmp(s->token.id, token_id) == 0) {
            gw_token_clear(&s->token);
            s->state = SLOT_EMPTY;
        }
    }
    pthread_mutex_unlock(&self->lock);
}

void gw_tokens_generate(char text[GW_TOKEN_TEXT_LEN + 1], uint8_t hash[32],
                        char id[GW_TOKEN_ID_MAX + 1])
{
    uint8_t secret[32], idb[8];
    randombytes_buf(secret, sizeof secret);
    randombytes_buf(idb, sizeof idb);
    memcpy(text, "lct_", 4);
    sodium_bin2hex(text + 4, 65, secret, sizeof secret);
    crypto_hash_sha256(hash, (const uint8_t *)text, GW_TOKEN_TEXT_LEN);
    memcpy(id, "tok_", 4);
    sodium_bin2hex(id + 4, GW_TOKEN_ID_MAX + 1 - 4, idb, sizeof idb);
    sodium_memzero(secret, sizeof secret);
}
