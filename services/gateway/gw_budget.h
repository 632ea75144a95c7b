/* gw_budget.h: the gateway's budget for request bodies in flight: the bytes every request holds
 * (bodies of single readings, request batch line buffers, kept readings and per-line results),
 * summed across all connections. A request that would take it past its limit is refused (503 +
 * Retry-After) and gives back what it held. Request batches may use three quarters of it, so
 * single readings always find room. Buffers grown here are wiped when they move or are freed
 * (readings are plaintext until sealed). Shared by the HTTP threads (atomics only). */
#ifndef GW_BUDGET_H
#define GW_BUDGET_H

#include <stddef.h>

#include "lc_metrics.h"

typedef struct gw_budget gw_budget_t;

gw_budget_t *gw_budget_new(size_t limit, lc_metrics_t *metrics);
void gw_budget_destroy(gw_budget_t **self_p);

/* Takes n bytes (batch: from the request batches' share): 0, or -1 (counted) over the limit. */
int gw_budget_take(gw_budget_t *self, size_t n, int batch);
void gw_budget_give(gw_budget_t *self, size_t n);

/* Grows *buf (capacity *cap, 0 at first: `first`, doubling) to at least need bytes, the growth
 * taken from the budget and added to *held; the old copy is wiped. 0, or -1 (over the budget or
 * out of memory: *buf unchanged). */
int gw_budget_grow(gw_budget_t *self, int batch, size_t *held, void **buf, size_t *cap, size_t need,
                   size_t first);

/* Wipes and frees *buf (capacity *cap), gives its bytes back and takes them off *held. */
void gw_budget_free(gw_budget_t *self, size_t *held, void **buf, size_t *cap);

/* Bytes held now. */
size_t gw_budget_used(const gw_budget_t *self);

#endif
