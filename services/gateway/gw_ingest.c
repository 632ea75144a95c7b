/* gw_ingest.c: one reading from bytes to a Reading entry in the write-ahead log. */
#include "gw_ingest.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lc_jws.h"
#include "lc_log.h"
#include "lcore.pb-c.h"

/* Rejection reasons, each a counter (lcore_gateway_readings_rejected_total{reason=...}). */
enum {
    R_MALFORMED,
    R_SIGNATURE,
    R_UNKNOWN_DEVICE,
    R_TOO_LARGE,
    R_RATE_LIMITED,
    R_OVERLOADED,
    R_UNAVAILABLE,
    R_LOG_FULL,
    R_LOG_FAILED,
    R_LOOKUP_LIMITED,
    R_SEQ_CONFLICT,
    R_COUNT
};
static const char *const s_reason_names[R_COUNT] = {
    "malformed",    "bad_signature",  "unknown_device",    "too_large",
    "rate_limited", "overloaded",     "store_unavailable", "log_full",
    "log_failed",   "lookup_limited", "seq_conflict"};

struct gw_ingest {
    gw_ingest_opts_t opts;
    gw_devices_t *devices;
    gw_wal_t *wal;
    lc_counter_t *accepted;
    lc_counter_t *rejected[R_COUNT];
    lc_histogram_t *verify_seconds;
};

gw_ingest_t *gw_ingest_new(const gw_ingest_opts_t *opts, gw_devices_t *devices, gw_wal_t *wal,
                           lc_metrics_t *metrics)
{
    gw_ingest_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->opts = *opts;
    self->devices = devices;
    self->wal = wal;
    self->accepted = lc_metrics_counter(metrics, "lcore_gateway_readings_accepted_total",
                                        "Readings verified and appended to the log", NULL);
    for (int i = 0; i < R_COUNT; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", s_reason_names[i]);
        self->rejected[i] = lc_metrics_counter(metrics, "lcore_gateway_readings_rejected_total",
                                               "Readings refused, by reason", labels);
    }
    self->verify_seconds = lc_metrics_histogram(metrics, "lcore_gateway_verify_duration_seconds",
                                                "Time to parse and verify one reading's JWS", NULL,
                                                lc_latency_buckets, lc_latency_buckets_len);
    return self;
}

void gw_ingest_destroy(gw_ingest_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

static void s_fail(gw_ingest_t *self, gw_result_t *res, int reason, unsigned status,
                   const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void s_fail(gw_ingest_t *self, gw_result_t *res, int reason, unsigned status,
                   const char *code, const char *fmt, ...)
{
    lc_counter_inc(self->rejected[reason]);
    res->status = status;
    res->error = code;
    res->retry_after = (status == 429 || status == 503) ? 1 : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

/* Reads a non-negative JSON integer member. */
static int s_get_u64(const json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Parses the JWS into jw (its payload into payload_buf, len + 1 bytes) and verifies the
 * signature over the exact bytes received with the device's registered key. 0, or -1 with res
 * filled. *device_id is the header's kid (pointing into jw) or, without one, compat_device. */
static int s_verify(gw_ingest_t *self, lc_jws_t *jw, uint8_t *payload_buf, const char *jws,
                    size_t len, const gw_peer_t *peer, const char *compat_device,
                    const char **device_id, uint64_t *next_seq, gw_result_t *res)
{
    uint64_t t0 = lc_mono_us();
    int rc = lc_jws_parse(jw, jws, len, payload_buf, len + 1);
    if (rc == LC_ERR_UNSUPPORTED) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "unsupported alg (EdDSA or ES256K)");
        return -1;
    }
    if (rc < 0) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "not a JWS compact serialization");
        return -1;
    }
    const char *id = *device_id = jw->kid[0] ? jw->kid : compat_device;
    if (!id || !lc_device_id_valid(id, strlen(id))) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "header kid must be a valid device_id");
        return -1;
    }
    if (compat_device && strcmp(compat_device, id) != 0) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "device_id does not match the JWS kid");
        return -1;
    }
    gw_device_key_t key;
    rc = gw_devices_lookup(self->devices, id, peer, &key);
    if (rc == LC_ERR_NOTFOUND) {
        s_fail(self, res, R_UNKNOWN_DEVICE, 403, "unknown_device",
               "device is not registered or is revoked");
        return -1;
    }
    if (rc == LC_ERR_FULL) {
        s_fail(self, res, R_LOOKUP_LIMITED, 429, "rate_limited",
               "too many unknown device ids from this address; retry later");
        return -1;
    }
    if (rc < 0) {
        s_fail(self, res, R_UNAVAILABLE, 503, "not_ready", "device registry unavailable");
        return -1;
    }
    if (!gw_device_key_verifies(&key, jw, lc_now_us())) {
        s_fail(self, res, R_SIGNATURE, 401, "bad_signature",
               "signature does not verify with the device's registered key");
        return -1;
    }
    *next_seq = key.next_seq;
    lc_histogram_observe(self->verify_seconds, (double)(lc_mono_us() - t0) / 1e6);
    return 0;
}

const char *gw_ingest_payload_invalid(const uint8_t *payload, size_t len, const char *device_id,
                                      const json_t *compat_data, uint64_t *seq, uint64_t *ts)
{
    json_error_t jerr;
    json_t *reading = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *payload_device = json_string_value(json_object_get(reading, "device_id"));
    const char *why = NULL;
    if (!json_is_object(reading) || !payload_device || s_get_u64(reading, "seq", seq) ||
        s_get_u64(reading, "ts", ts) || !json_object_get(reading, "data"))
        why = "payload must be a JSON object with device_id, seq (u63), ts (ms) and data";
    else if (strcmp(payload_device, device_id) != 0)
        why = "payload device_id does not match kid";
    else if (compat_data && !json_equal((json_t *)compat_data, json_object_get(reading, "data")))
        why = "data does not match the signed data";
    json_decref(reading);
    return why;
}

/* The signature is good: checks what the device signed (and, for /device/data, that the
 * body's data is what was signed). 0 with *seq and *ts, or -1 with res filled. */
static int s_check_signed(gw_ingest_t *self, const lc_jws_t *jw, const char *device_id,
                          const json_t *compat_data, uint64_t *seq, uint64_t *ts, gw_result_t *res)
{
    const char *why =
        gw_ingest_payload_invalid(jw->payload, jw->payload_len, device_id, compat_data, seq, ts);
    if (!why)
        return 0;
    s_fail(self, res, R_MALFORMED, 400, "malformed", "%s", why);
    return -1;
}

/* Appends the Reading (record_id in res) to the log (res->lsn). 0, or -1 with res filled. */
static int s_log(gw_ingest_t *self, const char *jws, size_t len, const char *device_id,
                 uint64_t seq, uint64_t ts, const uint8_t *reading_hash, gw_result_t *res)
{
    Lcore__V1__Reading msg = LCORE__V1__READING__INIT;
    msg.version = 1;
    msg.record_id.data = res->record_id;
    msg.record_id.len = LC_RECORD_ID_LEN;
    msg.device_id = (char *)device_id;
    msg.seq = seq;
    msg.device_ts_ms = ts;
    msg.received_at_us = lc_now_us();
    msg.jws.data = (uint8_t *)jws;
    msg.jws.len = len;
    msg.reading_hash.data = (uint8_t *)reading_hash;
    msg.reading_hash.len = LC_READING_HASH_LEN;
    msg.gateway_id = (char *)self->opts.gateway_id;
    int rc = gw_wal_append_pb(self->wal, res->record_id, &msg.base, &res->lsn);
    if (rc == LC_ERR_FULL) {
        s_fail(self, res, R_LOG_FULL, 503, "overloaded",
               "the gateway's log is at its bound (the pipeline is behind); retry later");
        return -1;
    }
    if (rc < 0) {
        s_fail(self, res, rc == LC_ERR_IO ? R_LOG_FAILED : R_OVERLOADED, 503, "not_ready",
               "the gateway cannot write its log");
        return -1;
    }
    return 0;
}

int gw_ingest_check(gw_ingest_t *self, const char *jws, size_t len, const gw_peer_t *peer,
                    const char *compat_device, const json_t *compat_data, gw_checked_t *out,
                    gw_result_t *res)
{
    memset(res, 0, sizeof *res);
    if (len > self->opts.max_reading_bytes) {
        s_fail(self, res, R_TOO_LARGE, 413, "too_large", "reading is %zu bytes, limit %zu", len,
               self->opts.max_reading_bytes);
        return -1;
    }
    uint8_t *payload_buf = malloc(len + 1);
    if (!payload_buf) {
        s_fail(self, res, R_OVERLOADED, 503, "overloaded", "out of memory");
        return -1;
    }
    lc_jws_t jw;
    const char *device_id = NULL;
    int rc = -1;
    if (s_verify(self, &jw, payload_buf, jws, len, peer, compat_device, &device_id, &out->next_seq,
                 res) == 0 &&
        s_check_signed(self, &jw, device_id, compat_data, &out->seq, &out->ts, res) == 0) {
        snprintf(out->device_id, sizeof out->device_id, "%s", device_id);
        rc = 0;
    }
    sodium_memzero(payload_buf, len + 1); /* the reading's plaintext */
    free(payload_buf);
    return rc;
}

void gw_ingest_accept(gw_ingest_t *self, const char *jws, size_t len, const gw_checked_t *reading,
                      gw_result_t *res)
{
    memset(res, 0, sizeof *res);
    /* Rate-limited only once valid: a device's bad readings do not use up its allowance. */
    if (gw_devices_take(self->devices, reading->device_id) < 0) {
        s_fail(self, res, R_RATE_LIMITED, 429, "rate_limited", "device over its reading rate");
        return;
    }
    uint8_t hash[LC_READING_HASH_LEN];
    lc_reading_hash(hash, (const uint8_t *)jws, len);
    lc_record_id(res->record_id, reading->device_id, strlen(reading->device_id), reading->seq);
    int noted = 0;
    if (self->opts.seq) {
        gw_seq_reading_t sr = {.record_id = res->record_id,
                               .reading_hash = hash,
                               .device_id = reading->device_id,
                               .seq = reading->seq,
                               .next_seq = reading->next_seq};
        uint64_t next_seq = 0;
        if ((noted = gw_seq_check(self->opts.seq, &sr, &next_seq)) == LC_ERR_CONFLICT) {
            s_fail(self, res, R_SEQ_CONFLICT, 409, "seq_conflict",
                   "seq %llu of this device holds another reading; its counter can go on from "
                   "next_seq",
                   (unsigned long long)reading->seq);
            res->next_seq = next_seq;
            return;
        }
    }
    if (s_log(self, jws, len, reading->device_id, reading->seq, reading->ts, hash, res) < 0) {
        if (noted == 1)
            gw_seq_forget(self->opts.seq, res->record_id);
        return;
    }
    lc_counter_inc(self->accepted);
    res->status = 202;
}

void gw_ingest_reading(gw_ingest_t *self, const char *jws, size_t len, const gw_peer_t *peer,
                       const char *compat_device, const json_t *compat_data, gw_result_t *res)
{
    gw_checked_t reading;
    if (gw_ingest_check(self, jws, len, peer, compat_device, compat_data, &reading, res) == 0)
        gw_ingest_accept(self, jws, len, &reading, res);
}
