/* sim_readings.h: the pre-signed readings of one run and the request bodies that carry them.
 * Signing is done here, before the timed phase, on one thread per CPU, so that sending costs
 * nothing but I/O. Reading r belongs to device r % devices with seq seq_start + r / devices
 * (round-robin, seq strictly increasing per device). Called by main() and sim_load. */
#ifndef SIM_READINGS_H
#define SIM_READINGS_H

#include <stddef.h>
#include <stdint.h>

#include "sim_devices.h"
#include "sim_pool.h"

typedef enum { SIM_MODE_SINGLE = 0, SIM_MODE_BATCH = 1, SIM_MODE_COMPAT = 2 } sim_mode_t;

#define SIM_BATCH_MAX 1000

typedef struct sim_readings sim_readings_t;

typedef struct {
    sim_mode_t mode;
    uint64_t count;       /* readings */
    uint32_t batch_size;  /* readings per request batch, in batch mode */
    size_t payload_bytes; /* approximate size of the "data" object */
    uint64_t seq_start;
} sim_readings_opts_t;

/* Builds and signs every reading. devices is borrowed and must outlive the result.
 * NULL on error (logged). */
sim_readings_t *sim_readings_new(const sim_devices_t *devices, const sim_readings_opts_t *opts);
void sim_readings_destroy(sim_readings_t **self_p);

const sim_job_t *sim_readings_jobs(const sim_readings_t *self, size_t *n_jobs);
uint64_t sim_readings_count(const sim_readings_t *self);
/* The first reading carried by a job (its readings are consecutive). */
uint64_t sim_readings_first(const sim_readings_t *self, size_t job);
/* Identity of reading r: its device and seq. */
void sim_readings_identity(const sim_readings_t *self, uint64_t r, const char **device_id,
                           size_t *device_id_len, uint64_t *seq);

/* Endpoint and Content-Type for a mode. */
const char *sim_mode_name(sim_mode_t mode);
const char *sim_mode_path(sim_mode_t mode);
const char *sim_mode_content_type(sim_mode_t mode);

#endif
