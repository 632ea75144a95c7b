/* cw_open.h: the open link, a worker's end. A reader's POST /v1/records/{id}/open reaches a
 * worker as an OpenRequest on its ROUTER, connected to every gateway's open endpoint
 * (LCORE_CRYPTO_OPEN_CONNECT): the sealed record is checked as the store checks what it stores
 * (lengths, record_id and envelope_hash recomputed), opened with lc_open (stage 2, then stage 1:
 * what lcore-cli decrypt uses) and answered, on the connection it came from, with the device's
 * JWS or with ok=false and a short reason ("unknown key version", "does not open",
 * "malformed"). The plaintext lives in guarded memory, is wiped once the answer is handed to
 * ZeroMQ (whose copy is wiped when sent: lc_zmq_send_pb_wiped) and is never logged.
 * Single-threaded: main's loop serves it next to the readings, with the same sealer. */
#ifndef CW_OPEN_H
#define CW_OPEN_H

#include <czmq.h>

#include "lc_metrics.h"
#include "lc_seal.h"

typedef struct cw_open cw_open_t;

/* sealer is borrowed (the worker's own; the ring behind it says which key versions open).
 * max_reading: the largest reading opened (LCORE_CRYPTO_MAX_READING_BYTES). NULL on error. */
cw_open_t *cw_open_new(lc_sealer_t *sealer, size_t max_reading, lc_metrics_t *metrics);
/* NULL-safe; wipes the plaintext buffer. */
void cw_open_destroy(cw_open_t **self_p);

/* Answers up to max requests waiting on router, without blocking: [routing id][OpenRequest] ->
 * [routing id][OpenReply]. What does not decode is counted (lcore_crypto_bad_messages_total
 * {socket="open"}) and dropped (no request_id to answer to); a request that decodes but is not
 * well formed is counted there too and answered "malformed". Returns the messages taken. */
int cw_open_serve(cw_open_t *self, zsock_t *router, int max);

#endif
