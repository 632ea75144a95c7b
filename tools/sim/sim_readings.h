/* sim_readings.h: the pre-signed readings of one run and the request bodies (or MQTT messages)
 * that carry them. Signing is done here, before the timed phase, on one thread per CPU, so that
 * sending costs nothing but I/O. The devices take turns (round-robin, seq strictly increasing per
 * device): reading r belongs to device r % devices with seq seq_start + r / devices. In
 * mqtt-batch mode a message goes to one device's topic, so there the turns are messages: reading
 * r is the (r % B)-th of message r / B, which belongs to device (r / B) % devices (B =
 * batch_size). Called by main(), sim_load, sim_track and sim_mqtt. */
#ifndef SIM_READINGS_H
#define SIM_READINGS_H

#include <stddef.h>
#include <stdint.h>

#include "sim_devices.h"
#include "sim_pool.h"

typedef enum {
    SIM_MODE_SINGLE = 0,
    SIM_MODE_BATCH = 1,
    SIM_MODE_COMPAT = 2,
    SIM_MODE_MQTT = 3,      /* one JWS a message on lcore/v1/<device_id>/data */
    SIM_MODE_MQTT_BATCH = 4 /* one JWS a line on lcore/v1/<device_id>/batch */
} sim_mode_t;

#define SIM_BATCH_MAX 1000

typedef struct sim_readings sim_readings_t;

typedef struct {
    sim_mode_t mode;
    uint64_t count;       /* readings */
    uint32_t batch_size;  /* readings per request batch (batch) or message (mqtt-batch) */
    size_t payload_bytes; /* approximate size of the "data" object */
    uint64_t seq_start;
} sim_readings_opts_t;

/* Builds and signs every reading. devices is borrowed and must outlive the result.
 * NULL on error (logged). */
sim_readings_t *sim_readings_new(const sim_devices_t *devices, const sim_readings_opts_t *opts);
void sim_readings_destroy(sim_readings_t **self_p);

const sim_job_t *sim_readings_jobs(const sim_readings_t *self, size_t *n_jobs);
uint64_t sim_readings_count(const sim_readings_t *self);
sim_mode_t sim_readings_mode(const sim_readings_t *self);
/* The first reading carried by a job (its readings are consecutive). */
uint64_t sim_readings_first(const sim_readings_t *self, size_t job);
/* Identity of reading r: its device and seq. */
void sim_readings_identity(const sim_readings_t *self, uint64_t r, const char **device_id,
                           size_t *device_id_len, uint64_t *seq);
/* The job that carries reading r. */
size_t sim_readings_job(const sim_readings_t *self, uint64_t r);
/* Index (in the devices) of the device reading r belongs to. */
size_t sim_readings_device(const sim_readings_t *self, uint64_t r);
/* The reading device `device` sent with `seq`: 0 and *r set, or -1 when this run has none. */
int sim_readings_find(const sim_readings_t *self, size_t device, uint64_t seq, uint64_t *r);

/* Name, and the endpoint (HTTP path, or MQTT topic under lcore/v1/<device_id>) and
 * Content-Type (HTTP modes) for a mode. */
const char *sim_mode_name(sim_mode_t mode);
const char *sim_mode_path(sim_mode_t mode);
const char *sim_mode_content_type(sim_mode_t mode);
int sim_mode_is_mqtt(sim_mode_t mode);

#endif
