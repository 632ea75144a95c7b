/* gw_tokens.h: bearer tokens of readers and operators (DESIGN.md "HTTP API"). A token is
 * "lct_" + 64 hex digits; only its SHA-256 is kept anywhere (the store's tokens table, this
 * cache). The operator token of the configuration (LCORE_ADMIN_TOKEN) is the token id "admin",
 * scope operator; every other token is created through POST /v1/tokens and looked up in the
 * store by hash, cached here for a few seconds. The store's Change (topic "changes/") of a
 * deleted token makes every gateway forget it at once; the cache's short life covers a lost
 * Change. Unknown hashes are asked of the store at most a few times a second per client address
 * (a guessing client costs the store little), then 429. Each token may make `rate` requests a
 * second (burst `burst`; tokens sharing a bucket slot share it), then 429: a reader polling
 * hard cannot crowd out ingest. Thread-safe. */
#ifndef GW_TOKENS_H
#define GW_TOKENS_H

#include "gw_devices.h"
#include "gw_routes.h"
#include "lc_metrics.h"
#include "lc_query.h"

#define GW_TOKEN_ID_MAX 32
#define GW_TOKEN_MAX_DEVICES 100

typedef struct gw_tokens gw_tokens_t;

/* A token that checked out. devices: n_devices ids (each NUL-terminated, one after another in
 * one allocation; NULL when the token is for every device). Release with gw_token_clear. */
typedef struct {
    char id[GW_TOKEN_ID_MAX + 1];
    gw_auth_t scope; /* GW_AUTH_READ, GW_AUTH_DECRYPT or GW_AUTH_OPERATOR */
    char *devices;
    size_t n_devices;
    uint64_t expires_at_us; /* 0: never */
} gw_token_t;

typedef struct {
    const uint8_t *admin_hash; /* SHA-256 of the configured operator token (NULL: none) */
    lc_query_client_t *store;  /* borrowed */
    double rate, burst;        /* requests per second per token (rate 0: unlimited) */
    lc_metrics_t *metrics;
} gw_tokens_opts_t;

gw_tokens_t *gw_tokens_new(const gw_tokens_opts_t *opts);
void gw_tokens_destroy(gw_tokens_t **self_p);

/* Checks an Authorization header value ("Bearer <token>"; NULL: none). Returns 0 with *out
 * filled, LC_ERR_NOTFOUND (missing, malformed, unknown, deleted or expired: 401),
 * LC_ERR_FULL (this address asked about too many unknown tokens: 429), LC_ERR_TIMEOUT (the
 * token is over its rate: 429) or LC_ERR_UNAVAILABLE (the store did not answer: 503). */
int gw_tokens_check(gw_tokens_t *self, const char *authorization, const gw_peer_t *peer,
                    gw_token_t *out) LC_WUR;

/* Whether token t may do what `need` asks (decrypt includes read; operator is its own scope),
 * and, when device_id is not NULL, whether t covers that device. */
int gw_token_allows(const gw_token_t *t, gw_auth_t need, const char *device_id);

void gw_token_clear(gw_token_t *t);

/* The store says the token was deleted (topic "changes/"). */
void gw_tokens_forget(gw_tokens_t *self, const char *token_id);

/* A new token: "lct_" + 64 hex digits from the system's random source, its SHA-256 and a new
 * id ("tok_" + 16 hex digits). The caller shows it once and wipes it. */
#define GW_TOKEN_TEXT_LEN (4 + 64)
void gw_tokens_generate(char text[GW_TOKEN_TEXT_LEN + 1], uint8_t hash[32],
                        char id[GW_TOKEN_ID_MAX + 1]);

/* Scope names: "read", "decrypt", "operator" (GW_AUTH_NONE for any other). */
gw_auth_t gw_token_scope_parse(const char *name);
const char *gw_token_scope_name(gw_auth_t scope);

#endif
