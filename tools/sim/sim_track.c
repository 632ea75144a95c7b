/* sim_track.c: MQTT in-flight accounting and result matching. See sim_track.h.
 * A state byte per reading and, per job, its publish time and how many of its readings still
 * await a result. Jobs are published in order, so the jobs that can time out next are always at
 * the front: expiry walks a cursor over the job list, amortised O(1) a job. */
#include "sim_track.h"

#include <assert.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "sim_log.h"

#define SIM_TRACK_RESULTS_MAX 100000 /* results read from one message at most */

enum { R_NONE = 0, R_AWAITING, R_ANSWERED, R_GIVEN_UP };

struct sim_track {
    const sim_readings_t *readings;
    const sim_job_t *jobs;
    size_t n_jobs;
    uint64_t n_readings;
    sim_stats_t *stats;
    sim_ids_t *ids;
    sim_ids_t *puback_ids; /* NULL: not written */
    uint64_t timeout_us;
    uint8_t *state;       /* per reading: R_* */
    uint64_t *publish_us; /* per job */
    uint32_t *pending;    /* per job: readings awaiting their result */
    size_t n_handed;      /* jobs handed over (published or unsent), in order */
    size_t head;          /* jobs before it are resolved */
    size_t in_flight;
    uint64_t unanswered, last_event_us;
    sim_log_limit_t log_limit;
};

sim_track_t *sim_track_new(const sim_readings_t *readings, sim_stats_t *stats, sim_ids_t *ids,
                           uint64_t timeout_us)
{
    sim_track_t *self = calloc(1, sizeof *self);
    if (!self)
        goto fail;
    self->readings = readings;
    self->jobs = sim_readings_jobs(readings, &self->n_jobs);
    self->n_readings = sim_readings_count(readings);
    self->stats = stats;
    self->ids = ids;
    self->timeout_us = timeout_us;
    self->state = calloc(self->n_readings + 1, 1);
    self->publish_us = calloc(self->n_jobs + 1, sizeof *self->publish_us);
    self->pending = calloc(self->n_jobs + 1, sizeof *self->pending);
    if (!self->state || !self->publish_us || !self->pending)
        goto fail;
    return self;
fail:
    lc_error("track_init_failed", "error=\"%s\"", lc_strerror(LC_ERR_NOMEM));
    sim_track_destroy(&self);
    return NULL;
}

void sim_track_destroy(sim_track_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sim_track_t *self = *self_p;
    free(self->state);
    free(self->publish_us);
    free(self->pending);
    free(self);
    *self_p = NULL;
}

void sim_track_set_puback_ids(sim_track_t *self, sim_ids_t *ids)
{
    self->puback_ids = ids;
}

long sim_track_error_status(const char *name)
{
    static const struct {
        const char *name;
        long status;
    } codes[] = {
        {"malformed", 400},    {"bad_signature", 401},
        {"unauthorized", 401}, {"unknown_device", 403},
        {"forbidden", 403},    {"revoked", 403},
        {"not_found", 404},    {"seq_conflict", 409},
        {"too_large", 413},    {"unsupported_media_type", 415},
        {"rate_limited", 429}, {"internal", 500},
        {"overloaded", 503},   {"not_ready", 503},
    };
    for (size_t i = 0; i < LC_ARRAY_LEN(codes); i++) {
        if (strcmp(codes[i].name, name) == 0)
            return codes[i].status;
    }
    return 0;
}

static int s_may_log(sim_track_t *self)
{
    return sim_log_may(&self->log_limit, "result problems");
}

static void s_hand_over(sim_track_t *self, size_t job)
{
    /* sim_mqtt dispatches strictly in job order; expiry relies on it. */
    assert(job == self->n_handed && job < self->n_jobs);
    self->n_handed = job + 1;
    sim_stats_sent(self->stats, self->jobs[job].units);
}

void sim_track_published(sim_track_t *self, size_t job, uint64_t now_us)
{
    s_hand_over(self, job);
    uint64_t first = sim_readings_first(self->readings, job);
    for (uint32_t i = 0; i < self->jobs[job].units; i++)
        self->state[first + i] = R_AWAITING;
    self->publish_us[job] = now_us;
    self->pending[job] = self->jobs[job].units;
    self->in_flight++;
    self->last_event_us = now_us;
}

void sim_track_unsent(sim_track_t *self, size_t job)
{
    s_hand_over(self, job);
    uint64_t first = sim_readings_first(self->readings, job);
    uint32_t units = self->jobs[job].units;
    for (uint32_t i = 0; i < units; i++)
        self->state[first + i] = R_GIVEN_UP;
    sim_stats_error(self->stats, units);
    sim_stats_mqtt(self->stats, SIM_MQTT_PUBLISH_FAILED, units);
    self->unanswered += units;
}

/* Gives up on job's readings still awaiting their result; returns how many there were. */
static uint32_t s_give_up(sim_track_t *self, size_t job)
{
    uint64_t first = sim_readings_first(self->readings, job);
    uint32_t n = 0;
    for (uint32_t i = 0; i < self->jobs[job].units; i++) {
        if (self->state[first + i] == R_AWAITING) {
            self->state[first + i] = R_GIVEN_UP;
            n++;
        }
    }
    if (self->pending[job] > 0)
        self->in_flight--;
    self->pending[job] = 0;
    sim_stats_error(self->stats, n);
    self->unanswered += n;
    return n;
}

void sim_track_puback(sim_track_t *self, size_t job, int reason_code, uint64_t now_us)
{
    if (job >= self->n_handed)
        return;
    self->last_event_us = now_us;
    if (reason_code < 0x80) {
        sim_stats_puback_latency(self->stats, now_us - self->publish_us[job]);
        if (reason_code == 0 && self->puback_ids) {
            uint64_t first = sim_readings_first(self->readings, job);
            for (uint32_t i = 0; i < self->jobs[job].units; i++)
                sim_ids_write(self->puback_ids, self->readings, first + i);
        }
        return;
    }
    sim_stats_mqtt(self->stats, SIM_MQTT_PUBACK_REFUSED, s_give_up(self, job));
}

uint64_t sim_track_expire(sim_track_t *self, uint64_t now_us)
{
    while (self->head < self->n_handed) {
        size_t job = self->head;
        if (self->pending[job] > 0) {
            uint64_t due = self->publish_us[job] + self->timeout_us;
            if (due > now_us)
                return due - now_us;
            sim_stats_mqtt(self->stats, SIM_MQTT_RESULTS_MISSING, s_give_up(self, job));
        }
        self->head++;
    }
    return UINT64_MAX;
}

size_t sim_track_in_flight(const sim_track_t *self)
{
    return self->in_flight;
}

uint64_t sim_track_unanswered(const sim_track_t *self)
{
    return self->unanswered;
}

uint64_t sim_track_last_event_us(const sim_track_t *self)
{
    return self->last_event_us;
}

/* ---- results ---- */

static int s_result_seq(json_t *obj, uint64_t *seq)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, "seq") : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *seq = (uint64_t)json_integer_value(v);
    return 0;
}

static const char *s_result_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Counts a matched result's outcome; the reading is answered whatever it says. */
static void s_outcome(sim_track_t *self, uint64_t r, json_t *obj)
{
    const char *status = s_result_str(obj, "status");
    const char *error = s_result_str(obj, "error");
    if (status && strcmp(status, "accepted") == 0) {
        sim_stats_outcome(self->stats, 202, 1);
        sim_ids_accepted(self->ids, self->readings, r, s_result_str(obj, "record_id"));
        return;
    }
    if (!error) { /* neither accepted nor an error: a result we cannot read */
        sim_stats_error(self->stats, 1);
        if (s_may_log(self))
            lc_warn("result_invalid", "reason=\"neither status accepted nor an error\"");
        return;
    }
    long code = sim_track_error_status(error);
    /* error comes from the gateway: log only its leading [a-z0-9_] characters */
    if (code == 0 && s_may_log(self))
        lc_warn("result_error_unknown", "error=%.*s counted_as=rejected_0",
                (int)strspn(error, "abcdefghijklmnopqrstuvwxyz0123456789_"), error);
    sim_stats_outcome(self->stats, code, 1);
}

/* Applies one result object; returns 1 when it answered a reading. */
static int s_apply(sim_track_t *self, size_t device, json_t *obj, uint64_t now_us)
{
    uint64_t seq = 0, r = 0;
    int found =
        s_result_seq(obj, &seq) == 0 && sim_readings_find(self->readings, device, seq, &r) == 0;
    if (!found || self->state[r] == R_NONE) {
        sim_stats_mqtt(self->stats, SIM_MQTT_RESULTS_UNMATCHED, 1);
        if (s_may_log(self))
            lc_warn("result_unmatched", "device_index=%zu seq=%llu reason=%s", device,
                    (unsigned long long)seq, found ? "not_sent" : "no_such_reading");
        return 0;
    }
    if (self->state[r] != R_AWAITING) {
        sim_stats_mqtt(
            self->stats,
            self->state[r] == R_ANSWERED ? SIM_MQTT_RESULTS_DUPLICATE : SIM_MQTT_RESULTS_LATE, 1);
        return 0;
    }
    size_t job = sim_readings_job(self->readings, r);
    self->state[r] = R_ANSWERED;
    sim_stats_latency(self->stats, now_us - self->publish_us[job]);
    s_outcome(self, r, obj);
    if (--self->pending[job] == 0)
        self->in_flight--;
    self->last_event_us = now_us;
    return 1;
}

size_t sim_track_result_message(sim_track_t *self, size_t device, const char *payload, size_t len,
                                uint64_t now_us)
{
    size_t answered = 0, off = 0, values = 0;
    while (values < SIM_TRACK_RESULTS_MAX) {
        while (off < len && strchr(" \t\r\n", payload[off]) && payload[off] != '\0')
            off++;
        if (off >= len)
            break;
        json_error_t jerr;
        json_t *v = json_loadb(payload + off, len - off, JSON_DISABLE_EOF_CHECK, &jerr);
        if (!v)
            break;
        off += (size_t)jerr.position;
        values++;
        if (json_is_array(v)) {
            size_t i;
            json_t *item;
            json_array_foreach(v, i, item) answered += (size_t)s_apply(self, device, item, now_us);
        } else {
            answered += (size_t)s_apply(self, device, v, now_us);
        }
        json_decref(v);
    }
    if (off < len || values == 0) { /* an unreadable tail, or nothing readable at all */
        sim_stats_mqtt(self->stats, SIM_MQTT_RESULTS_UNMATCHED, 1);
        if (s_may_log(self))
            lc_warn("result_unreadable", "device_index=%zu bytes=%zu at=%zu", device, len, off);
    }
    return answered;
}
