/* gw_seq.h: (device_id, seq) conflicts the gateway can see before it accepts a reading
 * (DESIGN.md: the same bytes sent again get the same answer; other bytes under a (device_id,
 * seq) already accepted get 409 seq_conflict and change nothing).
 *
 * Two sources, both by reading_hash (lc_reading_hash: SHA-256 of the JWS bytes):
 * - the readings this gateway has in its log and not yet acknowledged: a table record_id ->
 *   reading_hash, filled at ingest (and replay) and emptied as the relay drops readings;
 * - for a seq below the device's next_seq (one past the highest seq the store held when the
 *   device's key was fetched, raised as this gateway's readings are stored; gw_device_key_t),
 *   the store's get_record.
 * What neither sees (a reading another gateway took since the key was fetched) the store
 * decides: it keeps the later reading aside in seq_conflicts, sealed, and acknowledges it as a
 * conflict (lcore_gateway_seq_conflicts_total{where="store"}). A check the store does not answer
 * within the query timeout lets the reading in, and the store decides.
 * Thread-safe (one mutex around the table; the store is asked without it). */
#ifndef GW_SEQ_H
#define GW_SEQ_H

#include "lc_metrics.h"
#include "lc_query.h"
#include "lc_record.h"

typedef struct gw_seq gw_seq_t;

/* store is borrowed (NULL: only the log's readings are checked); max_entries bounds the table
 * (past it, new readings are not noted: the store decides for them). */
gw_seq_t *gw_seq_new(lc_query_client_t *store, size_t max_entries, lc_metrics_t *m);
void gw_seq_destroy(gw_seq_t **self_p);

typedef struct {
    const uint8_t *record_id;    /* LC_RECORD_ID_LEN */
    const uint8_t *reading_hash; /* LC_READING_HASH_LEN */
    const char *device_id;
    uint64_t seq;
    uint64_t next_seq; /* from the device's key lookup (0: the store had no record) */
} gw_seq_reading_t;

/* Before the reading is logged. Returns 1 (go on; the reading is now noted as in the log: call
 * gw_seq_forget if the append fails), 0 (go on; it was noted already, with the same bytes) or
 * LC_ERR_CONFLICT, with *next_seq set to one past the highest seq the store holds for the device
 * (0 if it could not say): the device's counter can restart there. */
int gw_seq_check(gw_seq_t *self, const gw_seq_reading_t *r, uint64_t *next_seq) LC_WUR;

/* Replay: a reading found in the log (data: its packed Reading). */
void gw_seq_note_logged(gw_seq_t *self, const uint8_t record_id[LC_RECORD_ID_LEN],
                        const uint8_t *data, size_t len);

/* The device and seq of a packed Reading (data, len): 0, or -1 if it does not unpack. */
int gw_seq_reading_of(const uint8_t *data, size_t len, char device_id[LC_DEVICE_ID_MAX + 1],
                      uint64_t *seq);

/* The reading left the log (the relay dropped it), or its append failed. */
void gw_seq_forget(gw_seq_t *self, const uint8_t record_id[LC_RECORD_ID_LEN]);

/* Whether the reading of record_id is in this gateway's log, not yet acknowledged (GET
 * /v1/records/{id} answers "accepted" for it: a 202'd reading is never 404 here). */
int gw_seq_logged(gw_seq_t *self, const uint8_t record_id[LC_RECORD_ID_LEN]);

/* Readings noted (tests, metrics). */
size_t gw_seq_size(gw_seq_t *self);

#endif
