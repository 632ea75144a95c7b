/* lc_query.h: the query links (Query -> QueryReply over DEALER/ROUTER, proto/lcore.proto), both
 * ends. A client is a pool of DEALER sockets so that every thread may ask at once; replies are
 * matched by request_id, so a late answer to a timed-out request is dropped rather than taken
 * for the next one. A server answers, from its owner's thread, the queries its peers' roles may
 * ask. The gateway asks the store and the chain; the relayer asks the stores. */
#ifndef LC_QUERY_H
#define LC_QUERY_H

#include <czmq.h>

#include "lc_common.h"
#include "lc_curve.h"
#include "lc_metrics.h"
#include "lcore.pb-c.h"

typedef struct lc_query_client lc_query_client_t;

/* endpoints: the server's queries ROUTER(s) (CURVE servers of `role`: LC_ROLE_STORE,
 * LC_ROLE_CHAIN); several, comma-separated, are asked in turn. curve is borrowed. */
lc_query_client_t *lc_query_client_new(const char *endpoints, unsigned role, int timeout_ms,
                                       lc_curve_t *curve);
void lc_query_client_destroy(lc_query_client_t **self_p);

/* Sends q (its request_id and version are set here) and waits for the matching reply.
 * Returns the reply (caller frees with lcore__v1__query_reply__free_unpacked) or NULL with
 * *err = LC_ERR_TIMEOUT / LC_ERR_UNAVAILABLE / LC_ERR_INVALID (undecodable reply). */
Lcore__V1__QueryReply *lc_query_call(lc_query_client_t *self, Lcore__V1__Query *q, int *err);

/* A query link's serving end. */
typedef struct {
    /* The LC_ROLE_* bits that may ask a body (0: none: refused as unauthorized). */
    unsigned (*roles)(Lcore__V1__Query__BodyCase body);
    /* Fills reply (status, request_id and version are set around it); may set fields the
     * answer allocates, which clear then frees. */
    void (*answer)(void *ctx, const Lcore__V1__Query *q, Lcore__V1__QueryReply *reply);
    void (*clear)(void *ctx, Lcore__V1__QueryReply *reply);
    void *ctx;
    lc_curve_t *curve; /* borrowed: whose User-Id says the peer's role */
    lc_counter_t *queries, *bad, *unauthorized;
} lc_query_server_t;

/* Registers the server's counters in m: <prefix>_queries_total, and on
 * <prefix>_bad_messages_total / <prefix>_unauthorized_messages_total the label socket="queries"
 * (prefix: "lcore_store", "lcore_chain"). */
void lc_query_server_count(lc_query_server_t *srv, lc_metrics_t *m, const char *prefix);

/* Answers the queries waiting on router, at most max, without blocking: [identity][Query] ->
 * [identity][QueryReply]. An undecodable query or one of an unknown version is counted (bad) and
 * dropped; one the peer's role may not ask is counted (unauthorized), logged and dropped. */
void lc_query_serve(zsock_t *router, const lc_query_server_t *srv, int max);

#endif
