/* gw_store.h: the gateway's client of the store's query socket (ROUTER). A pool of DEALER
 * sockets lets every HTTP thread ask at once; replies are matched by request_id, so a late
 * answer to a timed-out request is dropped rather than mistaken for the next one. */
#ifndef GW_STORE_H
#define GW_STORE_H

#include "lc_common.h"
#include "lc_curve.h"
#include "lcore.pb-c.h"

typedef struct gw_store gw_store_t;

/* endpoint: the store's queries ROUTER (a CURVE server of role store); curve is borrowed. */
gw_store_t *gw_store_new(const char *endpoint, int timeout_ms, lc_curve_t *curve);
void gw_store_destroy(gw_store_t **self_p);

/* Sends q (its request_id and version are set here) and waits for the matching reply.
 * Returns the reply (caller frees with lcore__v1__query_reply__free_unpacked) or NULL with
 * *err = LC_ERR_TIMEOUT / LC_ERR_UNAVAILABLE / LC_ERR_INVALID (undecodable reply). */
Lcore__V1__QueryReply *gw_store_call(gw_store_t *self, Lcore__V1__Query *q, int *err);

#endif
