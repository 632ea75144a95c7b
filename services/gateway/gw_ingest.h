/* gw_ingest.h: the accept path of one reading, shared by /v1/data, /v1/data/batch and
 * /device/data: parse the JWS, find the device's key, verify the signature over the exact bytes
 * received, check the signed reading, rate-limit, derive record_id and hand the reading to the
 * crypto workers (PUSH). Called concurrently from the HTTP threads; owns the readings socket. */
#ifndef GW_INGEST_H
#define GW_INGEST_H

#include <jansson.h>

#include "gw_devices.h"
#include "lc_metrics.h"
#include "lc_record.h"

typedef struct gw_ingest gw_ingest_t;

/* The outcome of one reading, as the device will see it. */
typedef struct {
    unsigned status;   /* 202 or an error status */
    const char *error; /* error code for the JSON body; NULL on 202 */
    char message[160];
    unsigned retry_after;
    uint8_t record_id[LC_RECORD_ID_LEN];
} gw_result_t;

typedef struct {
    const char *gateway_id;
    const char *readings_bind;
    int hwm;
    int send_timeout_ms;
    size_t max_reading_bytes;
} gw_ingest_opts_t;

gw_ingest_t *gw_ingest_new(const gw_ingest_opts_t *opts, gw_devices_t *devices,
                           lc_metrics_t *metrics);
void gw_ingest_destroy(gw_ingest_t **self_p);

/* Accepts one JWS. For /device/data, compat_device is the body's device_id and compat_data its
 * "data" (either may be NULL): the signed reading must agree with them. */
void gw_ingest_reading(gw_ingest_t *self, const char *jws, size_t len, const char *compat_device,
                       const json_t *compat_data, gw_result_t *res);

#endif
