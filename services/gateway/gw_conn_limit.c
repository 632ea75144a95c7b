/* gw_conn_limit.c: connections per client address. See gw_conn_limit.h. */
#include "gw_conn_limit.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define GW_CONN_SLOTS 65536

struct gw_conn_limit {
    unsigned per_ip;
    uint8_t key[crypto_shorthash_KEYBYTES];
    atomic_uint *count; /* GW_CONN_SLOTS */
    lc_counter_t *refused;
};

gw_conn_limit_t *gw_conn_limit_new(unsigned per_ip, lc_metrics_t *metrics)
{
    gw_conn_limit_t *self = calloc(1, sizeof *self);
    if (!self || !(self->count = calloc(GW_CONN_SLOTS, sizeof *self->count))) {
        free(self);
        return NULL;
    }
    self->per_ip = per_ip;
    crypto_shorthash_keygen(self->key);
    self->refused = lc_metrics_counter(
        metrics, "lcore_gateway_connections_refused_total",
        "Device listener connections closed at accept: their address holds too many", NULL);
    return self;
}

void gw_conn_limit_destroy(gw_conn_limit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->count);
    free(*self_p);
    *self_p = NULL;
}

/* The count of sa's address (its port aside). */
static atomic_uint *s_slot(gw_conn_limit_t *self, const struct sockaddr *sa)
{
    uint8_t h[crypto_shorthash_BYTES];
    if (sa->sa_family == AF_INET6)
        crypto_shorthash(
            h, (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16,
            self->key);
    else
        crypto_shorthash(h,
                         (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                         4, self->key);
    uint32_t i;
    memcpy(&i, h, sizeof i);
    return &self->count[i % GW_CONN_SLOTS];
}

int gw_conn_limit_enter(gw_conn_limit_t *self, const struct sockaddr *sa)
{
    if (!self->per_ip || !sa)
        return 0;
    atomic_uint *c = s_slot(self, sa);
    if (atomic_fetch_add(c, 1) >= self->per_ip) {
        atomic_fetch_sub(c, 1);
        lc_counter_inc(self->refused);
        return -1;
    }
    return 0;
}

void gw_conn_limit_leave(gw_conn_limit_t *self, const struct sockaddr *sa)
{
    if (!self->per_ip || !sa)
        return;
    atomic_fetch_sub(s_slot(self, sa), 1);
}
