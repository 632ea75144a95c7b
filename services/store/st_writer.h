/* st_writer.h: the writer. Sealed records from the workers are validated, gathered
 * into write batches (up to write_batch_max rows or write_batch_wait_ms), written in one
 * transaction each, and only then acknowledged to the gateway that sent them (PUB topic
 * "ack/<gateway_id>/") and announced to the relayer on "stored/<store_id>/" (StoredRecords). Owned
 * by the store's main loop (single thread). */
#ifndef ST_WRITER_H
#define ST_WRITER_H

#include <czmq.h>

#include "lc_metrics.h"
#include "st_db.h"

typedef struct st_writer st_writer_t;

st_writer_t *st_writer_new(st_db_t *db, zsock_t *events, size_t write_batch_max, int wait_ms,
                           size_t max_ciphertext, lc_metrics_t *metrics);
void st_writer_destroy(st_writer_t **self_p);

/* Decodes and validates one message from a worker (a SealedBatch) and adds its records to the
 * pending write batch; a bad record is counted and dropped, and so is a whole message that does
 * not decode or breaks the bounds of lc_zmq.h. */
void st_writer_take(st_writer_t *self, const uint8_t *data, size_t len);

/* One packed SealedRecord (a dead letter replayed by st_letters), checked as any. */
void st_writer_take_one(st_writer_t *self, const uint8_t *data, size_t len);

size_t st_writer_pending(const st_writer_t *self);
/* Whether the pending rows fill a write batch: take no more messages until a flush. Until then
 * there is room for one more message (LC_ZMQ_BATCH_MAX records): a flush writes at most
 * write_batch_max rows, and the rest wait for the next one. */
int st_writer_full(const st_writer_t *self);
/* Monotonic µs at which the pending write batch must be written (0 when nothing is pending). */
uint64_t st_writer_deadline(const st_writer_t *self);

/* Writes the pending write batch. 0 on success (acks sent), LC_ERR_UNAVAILABLE when the database is
 * down (the write batch is kept for the next try). */
int st_writer_flush(st_writer_t *self) LC_WUR;

#endif
