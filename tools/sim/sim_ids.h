/* sim_ids.h: the record ids of accepted readings. Checks the id an answer carried against the one
 * DESIGN.md defines (SHA-256("lcore/record" || device_id || seq)), counts a mismatch, and appends
 * the defined id to the --record-ids file so that a reader of the file only ever sees whole lines.
 * Single-threaded: owned by the sending loop (sim_load over HTTP, sim_track over MQTT). */
#ifndef SIM_IDS_H
#define SIM_IDS_H

#include <stdint.h>
#include <stdio.h>

#include "sim_readings.h"
#include "sim_stats.h"

/* Give the record-id file a stdio buffer of this size (setvbuf): sim_ids flushes it before it
 * fills and on sim_ids_flush(), so a reader of the file never sees half a line. */
#define SIM_IDS_BUFSIZE 65536

typedef struct sim_ids sim_ids_t;

/* out: the --record-ids file (borrowed; NULL: write nothing); stats: where mismatches are
 * counted (borrowed). NULL on allocation failure. */
sim_ids_t *sim_ids_new(FILE *out, sim_stats_t *stats);
/* NULL-safe; flushes what is buffered. */
void sim_ids_destroy(sim_ids_t **self_p);

/* Reading r was accepted with record id `got` (hex as the answer gave it; NULL when it had none).
 * Returns 0 when got is the defined id, 1 when it is not (counted, the first few logged). The
 * defined id is written either way: the file holds what PostgreSQL must hold. */
int sim_ids_accepted(sim_ids_t *self, const sim_readings_t *readings, uint64_t r, const char *got);

/* Appends reading r's defined record id, unchecked (e.g. the readings the broker acknowledged). */
void sim_ids_write(sim_ids_t *self, const sim_readings_t *readings, uint64_t r);

/* Hands the whole lines written so far to the file (about once a second, and at the end). */
void sim_ids_flush(sim_ids_t *self);

#endif
