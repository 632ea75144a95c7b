/* gw_budget.c: the request body budget. See gw_budget.h. */
#include "gw_budget.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct gw_budget {
    size_t limit, batch_limit;
    atomic_size_t used;
    lc_gauge_t *in_flight;
    lc_counter_t *refused;
};

gw_budget_t *gw_budget_new(size_t limit, lc_metrics_t *metrics)
{
    gw_budget_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->limit = limit;
    self->batch_limit = limit / 4 * 3;
    atomic_init(&self->used, 0);
    self->in_flight = lc_metrics_gauge(
        metrics, "lcore_gateway_body_bytes_in_flight",
        "Bytes of request bodies, kept readings and results held by requests", NULL);
    self->refused =
        lc_metrics_counter(metrics, "lcore_gateway_body_budget_refused_total",
                           "Requests refused (503) because the body budget was spent", NULL);
    return self;
}

void gw_budget_destroy(gw_budget_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

int gw_budget_take(gw_budget_t *self, size_t n, int batch)
{
    size_t limit = batch ? self->batch_limit : self->limit;
    size_t now = atomic_fetch_add(&self->used, n) + n;
    if (now > limit) {
        atomic_fetch_sub(&self->used, n);
        lc_counter_inc(self->refused);
        return -1;
    }
    lc_gauge_add(self->in_flight, (double)n);
    return 0;
}

void gw_budget_give(gw_budget_t *self, size_t n)
{
    if (!n)
        return;
    atomic_fetch_sub(&self->used, n);
    lc_gauge_add(self->in_flight, -(double)n);
}

int gw_budget_grow(gw_budget_t *self, int batch, size_t *held, void **buf, size_t *cap, size_t need,
                   size_t first)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : (first ? first : need);
    while (ncap < need)
        ncap *= 2;
    if (gw_budget_take(self, ncap - *cap, batch) < 0)
        return -1;
    void *nb = malloc(ncap);
    if (!nb) {
        gw_budget_give(self, ncap - *cap);
        return -1;
    }
    if (*buf) {
        memcpy(nb, *buf, *cap);
        sodium_memzero(*buf, *cap);
        free(*buf);
    }
    *held += ncap - *cap;
    *buf = nb;
    *cap = ncap;
    return 0;
}

void gw_budget_free(gw_budget_t *self, size_t *held, void **buf, size_t *cap)
{
    if (*buf) {
        sodium_memzero(*buf, *cap);
        free(*buf);
    }
    gw_budget_give(self, *cap);
    *held -= *cap;
    *buf = NULL;
    *cap = 0;
}

size_t gw_budget_used(const gw_budget_t *self)
{
    return atomic_load(&((gw_budget_t *)self)->used);
}
