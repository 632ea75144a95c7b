/* gw_open.h: the open link, the gateway's end. A reader's POST /v1/records/{id}/open is answered
 * by a crypto worker, the only holder of the sealing keys: the gateway binds a DEALER
 * (LCORE_GATEWAY_OPEN_BIND, a CURVE server that admits crypto workers' keys only), every worker
 * connects a ROUTER to it, and the DEALER hands each OpenRequest to the next connected worker,
 * which answers an OpenReply on the same connection. The gateway never holds a master key.
 *
 * Owned by main (created after CURVE, destroyed after gw_http); gw_open_call runs on the HTTP
 * threads, after the token check and the audit entry (gw_http), one call at a time on the
 * socket (a mutex: opens are rare); gw_open_tick runs on main's loop. */
#ifndef GW_OPEN_H
#define GW_OPEN_H

#include "lc_common.h"
#include "lc_curve.h"
#include "lc_metrics.h"
#include "lcore.pb-c.h"

typedef struct gw_open gw_open_t;

typedef struct {
    const char *bind;       /* endpoint(s) to bind, comma-separated (LCORE_GATEWAY_OPEN_BIND) */
    lc_curve_t *curve;      /* borrowed; must outlive the gw_open_t */
    int timeout_ms;         /* how long a call waits for a worker's answer (5000 if 0) */
    size_t max_reply_bytes; /* ZMQ_MAXMSGSIZE of the socket: a larger OpenReply drops that
                               worker's connection (count: lcore_gateway_peer_drops_total) */
    lc_metrics_t *metrics;  /* borrowed */
} gw_open_opts_t;

/* Binds the socket. NULL on error (logged). */
gw_open_t *gw_open_new(const gw_open_opts_t *opts);
/* NULL-safe; no call may be running (gw_http is destroyed first). */
void gw_open_destroy(gw_open_t **self_p);

/* Asks a crypto worker to open `sealed` (a record as the store keeps it: get_sealed) and waits
 * at most the timeout, counting the wait for the socket. Thread-safe. Returns:
 *   0               *jws (malloc'd) holds the reading as the device signed it, *jws_len bytes.
 *                   It is plaintext: the caller never logs it, and wipes it before freeing it:
 *                   sodium_memzero(*jws, *jws_len); free(*jws);
 *   LC_ERR_TIMEOUT  no worker connected, or none answered in time (the caller answers 503
 *                   with Retry-After); err says which.
 *   LC_ERR_INVALID  the worker answered that it cannot open it; err is its reason ("unknown key
 *                   version", "does not open", "malformed").
 *   LC_ERR_NOMEM, LC_ERR_IO  the gateway failed.
 * On any error *jws is NULL and *jws_len 0. err (errcap bytes, printable ASCII) is always set,
 * "" on success. A reply that comes after its call timed out is dropped, never taken for
 * another call (replies are matched by request_id). */
int gw_open_call(gw_open_t *self, const Lcore__V1__SealedRecord *sealed, uint8_t **jws,
                 size_t *jws_len, char *err, size_t errcap) LC_WUR;

/* From main's loop, about once a second: counts the socket's refused handshakes
 * (lcore_gateway_auth_refused_total{socket="open"}) and connected workers, and drops (wiping
 * them) late replies. Skipped while a call holds the socket, which does the same. */
void gw_open_tick(gw_open_t *self);

#endif
