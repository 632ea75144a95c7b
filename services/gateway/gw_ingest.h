/* gw_ingest.h: the accept path of one reading, shared by /v1/data, /v1/data/batch and
 * /device/data: parse the JWS, find the device's key, verify the signature over the exact bytes
 * received, check the signed reading, rate-limit, derive record_id and append the reading to
 * the write-ahead log. The caller answers 202 once the log says the entry is durable
 * (gw_wal_notify with the result's lsn). Called concurrently from the HTTP threads. */
#ifndef GW_INGEST_H
#define GW_INGEST_H

#include <jansson.h>

#include "gw_devices.h"
#include "gw_seq.h"
#include "gw_wal.h"
#include "lc_metrics.h"
#include "lc_record.h"

typedef struct gw_ingest gw_ingest_t;

/* The outcome of one reading, as the device will see it. */
typedef struct {
    unsigned status;   /* 202 (once lsn is durable) or an error status */
    const char *error; /* error code for the JSON body; NULL on 202 */
    char message[160];
    unsigned retry_after;
    uint8_t record_id[LC_RECORD_ID_LEN];
    uint64_t lsn;      /* 202: the log entry to wait for */
    uint64_t next_seq; /* 409 seq_conflict: one past the device's highest stored seq (0: unknown) */
} gw_result_t;

typedef struct {
    const char *gateway_id;
    size_t max_reading_bytes;
    gw_seq_t *seq; /* (device_id, seq) conflicts answered 409 here (NULL: the store decides) */
} gw_ingest_opts_t;

gw_ingest_t *gw_ingest_new(const gw_ingest_opts_t *opts, gw_devices_t *devices, gw_wal_t *wal,
                           lc_metrics_t *metrics);
void gw_ingest_destroy(gw_ingest_t **self_p);

/* A reading whose signature and content passed (gw_ingest_check), not yet in the log. */
typedef struct {
    char device_id[LC_DEVICE_ID_MAX + 1];
    uint64_t seq, ts;
    uint64_t next_seq; /* the device's, from its key lookup (gw_device_key_t) */
} gw_checked_t;

/* Checks one JWS up to, not including, the rate limit and the log: parse, the device's key
 * (asked of the store for peer, NULL: not limited per address), the signature, the signed
 * reading. For /device/data, compat_device is the body's device_id and compat_data its "data"
 * (either may be NULL): the signed reading must agree with them. 0 with *out, or -1 with res
 * filled. */
int gw_ingest_check(gw_ingest_t *self, const char *jws, size_t len, const gw_peer_t *peer,
                    const char *compat_device, const json_t *compat_data, gw_checked_t *out,
                    gw_result_t *res);

/* The checks of what a device signed (the verified JWS's payload, payload[0..len)): a JSON
 * object with device_id (equal to device_id, the kid), seq and ts (integers 0..2^63-1) and data
 * (equal to compat_data when that is not NULL). NULL with *seq and *ts, or why not (the 400's
 * message). Pure: gw_ingest_check's last step, and a fuzz target's. */
const char *gw_ingest_payload_invalid(const uint8_t *payload, size_t len, const char *device_id,
                                      const json_t *compat_data, uint64_t *seq, uint64_t *ts);

/* Takes a checked reading (the same jws bytes): the device's rate limit, the (device_id, seq)
 * conflict check (409 seq_conflict with res->next_seq), then the log. res says 202 (wait for
 * res->lsn) or why not. */
void gw_ingest_accept(gw_ingest_t *self, const char *jws, size_t len, const gw_checked_t *reading,
                      gw_result_t *res);

/* gw_ingest_check, then gw_ingest_accept. */
void gw_ingest_reading(gw_ingest_t *self, const char *jws, size_t len, const gw_peer_t *peer,
                       const char *compat_device, const json_t *compat_data, gw_result_t *res);

#endif
