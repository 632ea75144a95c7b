/* cw_worker.h: one crypto worker's job: a Reading in, a SealedRecord out. Validates what the
 * gateway sent, seals the JWS with lc_seal, and packs the result. Single-threaded; the pool
 * scales by running more processes. */
#ifndef CW_WORKER_H
#define CW_WORKER_H

#include "lc_metrics.h"
#include "lc_seal.h"

typedef struct cw_worker cw_worker_t;

cw_worker_t *cw_worker_new(lc_sealer_t *sealer, size_t max_reading, lc_metrics_t *metrics);
void cw_worker_destroy(cw_worker_t **self_p);

/* Seals one message and sends the result on `out`. Bad input is counted and dropped.
 * Returns 0, or LC_ERR_TIMEOUT when `out` could not take it (caller retries later). */
int cw_worker_handle(cw_worker_t *self, const uint8_t *data, size_t len, void *out) LC_WUR;

/* While `out` cannot take a sealed record (the store is away: the worker waits rather than drop
 * the reading), fn(arg) runs between tries, once per send timeout of `out`: main answers the
 * opens waiting meanwhile. */
void cw_worker_on_wait(cw_worker_t *self, void (*fn)(void *arg), void *arg);

#ifdef LCORE_FAULT_HOOKS
/* Fault-injection builds only: abort() on any reading of this device (a poison reading). */
void cw_worker_crash_on(cw_worker_t *self, const char *device_id);
#endif

#endif
