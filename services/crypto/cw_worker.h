/* cw_worker.h: one crypto worker's job: a ReadingBatch in, SealedRecords out in SealedBatches.
 * Validates what the gateway sent, seals each JWS with lc_seal, and packs the results into the
 * next batch to the store. Single-threaded; the pool scales by running more processes. */
#ifndef CW_WORKER_H
#define CW_WORKER_H

#include "lc_metrics.h"
#include "lc_seal.h"

typedef struct cw_worker cw_worker_t;

cw_worker_t *cw_worker_new(lc_sealer_t *sealer, size_t max_reading, lc_metrics_t *metrics);
void cw_worker_destroy(cw_worker_t **self_p);

/* Seals the readings of one message (a ReadingBatch) into the outgoing batch, which is sent on
 * `out` whenever the next record would not fit. Bad input is counted and dropped (a bad
 * reading alone; a whole batch that does not decode or breaks the bounds of lc_zmq.h).
 * Returns 0, or the error of a send that failed (its readings are given up: the gateway
 * redelivers them). */
int cw_worker_handle(cw_worker_t *self, const uint8_t *data, size_t len, void *out) LC_WUR;

/* Sends the outgoing batch, if any, on `out`, waiting while the store cannot take it (see
 * cw_worker_on_wait) until a signal. 0, or an error (the batch is given up). */
int cw_worker_flush(cw_worker_t *self, void *out) LC_WUR;

/* While `out` cannot take a sealed record (the store is away: the worker waits rather than drop
 * the reading), fn(arg) runs between tries, once per send timeout of `out`: main answers the
 * opens waiting meanwhile. */
void cw_worker_on_wait(cw_worker_t *self, void (*fn)(void *arg), void *arg);

#ifdef LCORE_FAULT_HOOKS
/* Fault-injection builds only: abort() on any reading of this device (a poison reading). */
void cw_worker_crash_on(cw_worker_t *self, const char *device_id);
#endif

#endif
