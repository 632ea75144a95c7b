/* gw_ingest.c: one reading from bytes to a Reading entry in the write-ahead log. */
#include "gw_ingest.h"

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
    R_COUNT
};
static const char *const s_reason_names[R_COUNT] = {
    "malformed",  "bad_signature",     "unknown_device", "too_large", "rate_limited",
    "overloaded", "store_unavailable", "log_full",       "log_failed"};

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

void gw_ingest_reading(gw_ingest_t *self, const char *jws, size_t len, const char *compat_device,
                       const json_t *compat_data, gw_result_t *res)
{
    memset(res, 0, sizeof *res);
    if (len > self->opts.max_reading_bytes) {
        s_fail(self, res, R_TOO_LARGE, 413, "too_large", "reading is %zu bytes, limit %zu", len,
               self->opts.max_reading_bytes);
        return;
    }
    uint64_t t0 = lc_mono_us();
    uint8_t *payload_buf = malloc(len + 1);
    json_t *reading = NULL;
    if (!payload_buf) {
        s_fail(self, res, R_OVERLOADED, 503, "overloaded", "out of memory");
        return;
    }
    lc_jws_t jw;
    int rc = lc_jws_parse(&jw, jws, len, payload_buf, len + 1);
    if (rc == LC_ERR_UNSUPPORTED) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "unsupported alg (EdDSA or ES256K)");
        goto out;
    }
    if (rc < 0) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "not a JWS compact serialization");
        goto out;
    }
    const char *device_id = jw.kid[0] ? jw.kid : compat_device;
    if (!device_id || !lc_device_id_valid(device_id, strlen(device_id))) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "header kid must be a valid device_id");
        goto out;
    }
    if (compat_device && strcmp(compat_device, device_id) != 0) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "device_id does not match the JWS kid");
        goto out;
    }
    gw_device_key_t key;
    rc = gw_devices_lookup(self->devices, device_id, &key);
    if (rc == LC_ERR_NOTFOUND) {
        s_fail(self, res, R_UNKNOWN_DEVICE, 403, "unknown_device",
               "device is not registered or is revoked");
        goto out;
    }
    if (rc < 0) {
        s_fail(self, res, R_UNAVAILABLE, 503, "not_ready", "device registry unavailable");
        goto out;
    }
    if (jw.alg != key.alg || lc_jws_verify(&jw, key.alg, key.public_key, key.public_key_len)) {
        s_fail(self, res, R_SIGNATURE, 401, "bad_signature",
               "signature does not verify with the device's registered key");
        goto out;
    }
    lc_histogram_observe(self->verify_seconds, (double)(lc_mono_us() - t0) / 1e6);

    /* The signature is good: now check what the device signed. */
    json_error_t jerr;
    reading = json_loadb((const char *)jw.payload, jw.payload_len, JSON_REJECT_DUPLICATES, &jerr);
    uint64_t seq = 0, ts = 0;
    const char *payload_device = json_string_value(json_object_get(reading, "device_id"));
    if (!json_is_object(reading) || !payload_device || s_get_u64(reading, "seq", &seq) ||
        s_get_u64(reading, "ts", &ts) || !json_object_get(reading, "data")) {
        s_fail(self, res, R_MALFORMED, 400, "malformed",
               "payload must be a JSON object with device_id, seq (u63), ts (ms) and data");
        goto out;
    }
    if (strcmp(payload_device, device_id) != 0) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "payload device_id does not match kid");
        goto out;
    }
    if (compat_data && !json_equal((json_t *)compat_data, json_object_get(reading, "data"))) {
        s_fail(self, res, R_MALFORMED, 400, "malformed", "data does not match the signed data");
        goto out;
    }
    if (gw_devices_take(self->devices, device_id) < 0) {
        s_fail(self, res, R_RATE_LIMITED, 429, "rate_limited", "device over its reading rate");
        goto out;
    }

    lc_record_id(res->record_id, device_id, strlen(device_id), seq);
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
    msg.gateway_id = (char *)self->opts.gateway_id;
    rc = gw_wal_append_pb(self->wal, res->record_id, &msg.base, &res->lsn);
    if (rc == LC_ERR_FULL) {
        s_fail(self, res, R_LOG_FULL, 503, "overloaded",
               "the gateway's log is at its bound (the pipeline is behind); retry later");
        goto out;
    }
    if (rc < 0) {
        s_fail(self, res, rc == LC_ERR_IO ? R_LOG_FAILED : R_OVERLOADED, 503, "not_ready",
               "the gateway cannot write its log");
        goto out;
    }
    lc_counter_inc(self->accepted);
    res->status = 202;
out:
    json_decref(reading);
    free(payload_buf);
}
