/* sim_track.h: the readings in flight over MQTT and what became of them. sim_mqtt tells it when a
 * message (a job: one reading, or a batch of one device's readings) was published, acknowledged
 * by the broker (PUBACK), or not sent at all, and hands it every message that arrives on a
 * device's result topic; sim_track matches each result to its reading by device and seq, counts
 * the outcome, measures publish -> PUBACK and publish -> result, writes accepted record ids, and
 * gives up on a reading whose result does not come within the timeout. No I/O of its own, so the
 * matching is unit-tested without a broker (tests/unit/test_sim_track.c).
 * Result messages (DESIGN.md "MQTT ingest"): {"seq","record_id","status":"accepted"} or
 * {"seq","error","message"}, the error named as the HTTP API names it; a message may also hold
 * an array of such objects, or several objects one after the other (e.g. one a line).
 * Single-threaded: owned by sim_mqtt's loop. */
#ifndef SIM_TRACK_H
#define SIM_TRACK_H

#include <stddef.h>
#include <stdint.h>

#include "sim_ids.h"
#include "sim_readings.h"
#include "sim_stats.h"

typedef struct sim_track sim_track_t;

/* readings, stats and ids are borrowed and must outlive the tracker; timeout_us: how long after
 * its publish a reading may still get its result. NULL on allocation failure (logged). */
sim_track_t *sim_track_new(const sim_readings_t *readings, sim_stats_t *stats, sim_ids_t *ids,
                           uint64_t timeout_us);
void sim_track_destroy(sim_track_t **self_p);
/* Where to write the ids of the readings the broker acknowledged (PUBACK reason code 0);
 * borrowed; NULL (the default): nowhere. */
void sim_track_set_puback_ids(sim_track_t *self, sim_ids_t *ids);

/* Jobs are handed over in order (job 0, 1, 2 ...), each once, as published or as unsent. */
/* Job was published at now_us: its readings await their results. */
void sim_track_published(sim_track_t *self, size_t job, uint64_t now_us);
/* Job could not be published (device not connected, the client refused it): errors. */
void sim_track_unsent(sim_track_t *self, size_t job);

/* The broker's PUBACK for job. reason_code < 0x80: accepted by the broker (the publish -> PUBACK
 * time is measured); else refused, and its readings still awaiting a result become errors. */
void sim_track_puback(sim_track_t *self, size_t job, int reason_code, uint64_t now_us);

/* A message that arrived on device's result topic. Returns how many readings it answered
 * (duplicates, late and unmatched results are counted but answer none). */
size_t sim_track_result_message(sim_track_t *self, size_t device, const char *payload, size_t len,
                                uint64_t now_us);

/* Gives up on every reading still without a result timeout_us after its publish (counted as
 * results_missing and errors). Returns how long until the next one could time out, in
 * microseconds (UINT64_MAX when nothing is in flight). */
uint64_t sim_track_expire(sim_track_t *self, uint64_t now_us);

/* Jobs published whose readings are not all answered, refused or given up on. */
size_t sim_track_in_flight(const sim_track_t *self);
/* Readings published or tried that got no answer (no result, refused, unsent). */
uint64_t sim_track_unanswered(const sim_track_t *self);
/* Monotonic time of the last publish, PUBACK or result (0 before any). */
uint64_t sim_track_last_event_us(const sim_track_t *self);

/* The HTTP status an error name stands for (DESIGN.md's error codes; 0 when unknown). */
long sim_track_error_status(const char *name);

#endif
