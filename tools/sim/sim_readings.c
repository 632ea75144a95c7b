/* sim_readings.c: builds and signs every reading of a run ahead of time. See sim_readings.h.
 * Signing is split into contiguous ranges of requests, one per thread; each thread writes only
 * the bodies of its own range and reads the (read-only) device keys, so nothing is shared. */
#include "sim_readings.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lc_log.h"
#include "lc_record.h"

#define SIM_SIGN_THREADS_MAX 16
#define SIM_SIGN_JOBS_PER_THREAD_MIN 256 /* below this a thread costs more than it saves */
#define SIM_DATA_BASE_LEN 64             /* room for the fixed part of the "data" object */

struct sim_readings {
    const sim_devices_t *devices;
    sim_mode_t mode;
    uint64_t count;
    uint32_t per_job;
    uint32_t group; /* readings of one device in a row: batch_size in mqtt-batch, else 1 */
    uint64_t seq_start;
    size_t payload_bytes;
    size_t n_jobs;
    sim_job_t *jobs;
    char **bodies; /* owned; jobs[i].body == bodies[i] */
};

typedef struct {
    sim_readings_t *self;
    size_t first_job, end_job;
    int rc;
} sign_range_t;

typedef struct {
    char *buf;
    size_t len, cap;
} buf_t;

static int s_buf_reserve(buf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->buf, cap);
    if (!p)
        return LC_ERR_NOMEM;
    b->buf = p;
    b->cap = cap;
    return 0;
}

static int s_buf_append(buf_t *b, const char *s, size_t n)
{
    if (s_buf_reserve(b, n) < 0)
        return LC_ERR_NOMEM;
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return 0;
}

/* The "data" object: a plausible sensor sample padded to about payload_bytes. */
static int s_data(buf_t *out, uint64_t r, size_t payload_bytes)
{
    char head[SIM_DATA_BASE_LEN];
    int n = snprintf(head, sizeof head, "{\"temp\":%.1f,\"hum\":%u,\"pad\":\"",
                     15.0 + (r % 150) / 10.0, (unsigned)(30 + r % 40));
    if (n < 0 || (size_t)n >= sizeof head)
        return LC_ERR_INVALID;
    size_t fixed = (size_t)n + 2; /* the closing "} */
    size_t pad = payload_bytes > fixed ? payload_bytes - fixed : 0;
    out->len = 0;
    if (s_buf_append(out, head, (size_t)n) < 0 || s_buf_reserve(out, pad + 2) < 0)
        return LC_ERR_NOMEM;
    memset(out->buf + out->len, 'x', pad);
    out->len += pad;
    return s_buf_append(out, "\"}", 2);
}

/* The device and seq of reading r (see the header for the layout). */
static void s_locate(const sim_readings_t *self, uint64_t r, size_t *dev, uint64_t *seq)
{
    uint64_t n_dev = sim_devices_count(self->devices);
    uint64_t g = self->group;
    *dev = (size_t)((r / g) % n_dev);
    *seq = self->seq_start + r / (g * n_dev) * g + r % g;
}

/* Appends the compact JWS of reading r to out (and, in compat mode, the wrapping object). */
static int s_reading(const sim_readings_t *self, uint64_t r, buf_t *data, buf_t *payload,
                     buf_t *out)
{
    size_t dev;
    uint64_t seq;
    s_locate(self, r, &dev, &seq);
    const char *id = sim_devices_id(self->devices, dev);
    if (s_data(data, r, self->payload_bytes) < 0)
        return LC_ERR_NOMEM;
    char head[LC_DEVICE_ID_MAX + 96];
    int n =
        snprintf(head, sizeof head, "{\"device_id\":\"%s\",\"seq\":%llu,\"ts\":%llu,\"data\":", id,
                 (unsigned long long)seq, (unsigned long long)lc_now_ms());
    if (n < 0 || (size_t)n >= sizeof head)
        return LC_ERR_INVALID;
    payload->len = 0;
    if (s_buf_append(payload, head, (size_t)n) < 0 ||
        s_buf_append(payload, data->buf, data->len) < 0 || s_buf_append(payload, "}", 1) < 0)
        return LC_ERR_NOMEM;

    char *jws = sim_devices_sign(self->devices, dev, (const uint8_t *)payload->buf, payload->len);
    if (!jws)
        return LC_ERR_SIGNATURE;
    int rc = 0;
    if (self->mode == SIM_MODE_COMPAT) {
        n = snprintf(head, sizeof head, "{\"device_id\":\"%s\",\"jws\":\"", id);
        if (s_buf_append(out, head, (size_t)n) < 0 || s_buf_append(out, jws, strlen(jws)) < 0 ||
            s_buf_append(out, "\",\"data\":", 9) < 0 ||
            s_buf_append(out, data->buf, data->len) < 0 || s_buf_append(out, "}", 1) < 0)
            rc = LC_ERR_NOMEM;
    } else {
        rc = s_buf_append(out, jws, strlen(jws));
    }
    free(jws);
    return rc;
}

static void *s_sign_range(void *arg)
{
    sign_range_t *range = arg;
    sim_readings_t *self = range->self;
    buf_t data = {0}, payload = {0};
    range->rc = 0;
    for (size_t j = range->first_job; j < range->end_job && range->rc == 0; j++) {
        buf_t body = {0};
        uint64_t first = (uint64_t)j * self->per_job;
        uint64_t n = self->count - first < self->per_job ? self->count - first : self->per_job;
        for (uint64_t k = 0; k < n && range->rc == 0; k++) {
            /* request batch: one JWS a line, no trailing newline (no empty line to split on) */
            if (k > 0)
                range->rc = s_buf_append(&body, "\n", 1);
            if (range->rc == 0)
                range->rc = s_reading(self, first + k, &data, &payload, &body);
        }
        self->bodies[j] = body.buf;
        self->jobs[j] = (sim_job_t){.body = body.buf, .body_len = body.len, .units = (uint32_t)n};
    }
    free(data.buf);
    free(payload.buf);
    return NULL;
}

static unsigned s_sign_threads(size_t n_jobs)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t t = cpus > 0 ? (size_t)cpus : 1;
    if (t > SIM_SIGN_THREADS_MAX)
        t = SIM_SIGN_THREADS_MAX;
    size_t by_work = n_jobs / SIM_SIGN_JOBS_PER_THREAD_MIN;
    if (t > by_work)
        t = by_work;
    return t ? (unsigned)t : 1;
}

sim_readings_t *sim_readings_new(const sim_devices_t *devices, const sim_readings_opts_t *opts)
{
    sim_readings_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->devices = devices;
    self->mode = opts->mode;
    self->count = opts->count;
    int batched = opts->mode == SIM_MODE_BATCH || opts->mode == SIM_MODE_MQTT_BATCH;
    self->per_job = batched ? opts->batch_size : 1;
    self->group = opts->mode == SIM_MODE_MQTT_BATCH ? opts->batch_size : 1;
    self->seq_start = opts->seq_start;
    self->payload_bytes = opts->payload_bytes;
    if (self->per_job == 0 || self->per_job > SIM_BATCH_MAX || sim_devices_count(devices) == 0) {
        lc_error("readings_invalid", "per_request=%u devices=%zu", self->per_job,
                 sim_devices_count(devices));
        goto fail;
    }
    self->n_jobs = (size_t)((self->count + self->per_job - 1) / self->per_job);
    self->jobs = calloc(self->n_jobs ? self->n_jobs : 1, sizeof *self->jobs);
    self->bodies = calloc(self->n_jobs ? self->n_jobs : 1, sizeof *self->bodies);
    if (!self->jobs || !self->bodies) {
        lc_error("presign_failed", "error=\"%s\" readings=%llu", lc_strerror(LC_ERR_NOMEM),
                 (unsigned long long)self->count);
        goto fail;
    }

    const uint64_t t0 = lc_mono_us();
    unsigned n_threads = s_sign_threads(self->n_jobs);
    sign_range_t ranges[SIM_SIGN_THREADS_MAX];
    pthread_t threads[SIM_SIGN_THREADS_MAX];
    int started[SIM_SIGN_THREADS_MAX] = {0};
    for (unsigned t = 0; t < n_threads; t++) {
        ranges[t] = (sign_range_t){.self = self,
                                   .first_job = self->n_jobs * t / n_threads,
                                   .end_job = self->n_jobs * (t + 1) / n_threads};
        /* Range 0 runs on this thread; a thread that cannot start is run here too. */
        if (t > 0)
            started[t] = pthread_create(&threads[t], NULL, s_sign_range, &ranges[t]) == 0;
    }
    s_sign_range(&ranges[0]);
    int rc = ranges[0].rc;
    for (unsigned t = 1; t < n_threads; t++) {
        if (started[t])
            pthread_join(threads[t], NULL);
        else
            s_sign_range(&ranges[t]);
        if (ranges[t].rc < 0)
            rc = ranges[t].rc;
    }
    if (rc < 0) {
        lc_error("presign_failed", "error=\"%s\"", lc_strerror(rc));
        goto fail;
    }
    uint64_t bytes = 0;
    for (size_t j = 0; j < self->n_jobs; j++)
        bytes += self->jobs[j].body_len;
    lc_info("presigned", "readings=%llu requests=%zu bytes=%llu threads=%u elapsed_s=%.3f",
            (unsigned long long)self->count, self->n_jobs, (unsigned long long)bytes, n_threads,
            (double)(lc_mono_us() - t0) / 1e6);
    return self;
fail:
    sim_readings_destroy(&self);
    return NULL;
}

void sim_readings_destroy(sim_readings_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sim_readings_t *self = *self_p;
    for (size_t j = 0; self->bodies && j < self->n_jobs; j++)
        free(self->bodies[j]);
    free(self->bodies);
    free(self->jobs);
    free(self);
    *self_p = NULL;
}

const sim_job_t *sim_readings_jobs(const sim_readings_t *self, size_t *n_jobs)
{
    *n_jobs = self->n_jobs;
    return self->jobs;
}

uint64_t sim_readings_count(const sim_readings_t *self)
{
    return self->count;
}

sim_mode_t sim_readings_mode(const sim_readings_t *self)
{
    return self->mode;
}

uint64_t sim_readings_first(const sim_readings_t *self, size_t job)
{
    return (uint64_t)job * self->per_job;
}

void sim_readings_identity(const sim_readings_t *self, uint64_t r, const char **device_id,
                           size_t *device_id_len, uint64_t *seq)
{
    size_t dev;
    s_locate(self, r, &dev, seq);
    *device_id = sim_devices_id(self->devices, dev);
    *device_id_len = sim_devices_id_len(self->devices, dev);
}

size_t sim_readings_job(const sim_readings_t *self, uint64_t r)
{
    return (size_t)(r / self->per_job);
}

size_t sim_readings_device(const sim_readings_t *self, uint64_t r)
{
    size_t dev;
    uint64_t seq;
    s_locate(self, r, &dev, &seq);
    return dev;
}

int sim_readings_find(const sim_readings_t *self, size_t device, uint64_t seq, uint64_t *r)
{
    uint64_t n_dev = sim_devices_count(self->devices);
    uint64_t g = self->group;
    if (device >= n_dev || seq < self->seq_start)
        return -1;
    uint64_t k = seq - self->seq_start; /* the device's k-th reading */
    /* Past the last reading of this run (also keeps the product below from overflowing). */
    if (k / g > self->count / g / n_dev + 1)
        return -1;
    uint64_t idx = (k / g * n_dev + device) * g + k % g;
    if (idx >= self->count)
        return -1;
    *r = idx;
    return 0;
}

static const struct {
    const char *name, *path, *content_type;
} s_modes[] = {
    [SIM_MODE_SINGLE] = {"single", "/v1/data", "application/jose"},
    [SIM_MODE_BATCH] = {"batch", "/v1/data/batch", "text/plain"},
    [SIM_MODE_COMPAT] = {"compat", "/device/data", "application/json"},
    [SIM_MODE_MQTT] = {"mqtt", "data", NULL},
    [SIM_MODE_MQTT_BATCH] = {"mqtt-batch", "batch", NULL},
};

const char *sim_mode_name(sim_mode_t mode)
{
    return s_modes[mode].name;
}

const char *sim_mode_path(sim_mode_t mode)
{
    return s_modes[mode].path;
}

const char *sim_mode_content_type(sim_mode_t mode)
{
    return s_modes[mode].content_type;
}

int sim_mode_is_mqtt(sim_mode_t mode)
{
    return mode == SIM_MODE_MQTT || mode == SIM_MODE_MQTT_BATCH;
}
