/* sim_load.h: the timed phase: sends the pre-signed readings through the pool and reads every
 * reply as the device-facing API defines it (202 + record_id, request batch per-line results, error
 * codes, backpressure), into the stats and the optional record-id file. With retry on, a reading
 * without a definitive answer (transport error, 429, 5xx) is sent again, like a device would;
 * each reading is counted accepted, and its record_id written, once. Called by main(). */
#ifndef SIM_LOAD_H
#define SIM_LOAD_H

#include <signal.h>
#include <stdio.h>

#include "sim_pool.h"
#include "sim_readings.h"
#include "sim_stats.h"

typedef struct {
    sim_mode_t mode;
    double rate;        /* readings per second; 0 = unpaced */
    double duration_s;  /* 0 = until every reading is sent */
    FILE *record_ids;   /* borrowed; NULL = do not write (see sim_ids.h) */
    int quiet;          /* no progress lines on stderr */
    int progress;       /* a "progress t=..." line on stdout every second */
    int retry;          /* send again what got no definitive answer */
    double retry_for_s; /* ...until this long after the paced load ends */
    const volatile sig_atomic_t *stop;
} sim_load_opts_t;

/* Runs the load. *duration_s receives the time from the first send to the last reply.
 * Returns 0 or a negative error code (setup failure; outcomes are in stats). */
int sim_load_run(sim_pool_t *pool, const sim_readings_t *readings, sim_stats_t *stats,
                 const sim_load_opts_t *opts, double *duration_s) LC_WUR;

#endif
