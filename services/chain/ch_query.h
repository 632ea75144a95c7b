/* ch_query.h: the relayer's query link (ROUTER, LCORE_CHAIN_QUERIES_BIND): gateways ask where a
 * record is anchored (get_anchor -> AnchorInfo: leaf, proof, anchor, transaction, depth), where
 * up to CH_QUERY_ANCHORS_MAX records are (get_anchors -> one AnchorInfo per record the relayer
 * knows, in the order asked, unknown ones left out: a page of records in one round trip and two
 * SQL statements), and ping. It runs in its own thread with its own PostgreSQL connection, so an
 * answer never waits behind the relayer's RPC calls. */
#ifndef CH_QUERY_H
#define CH_QUERY_H

#include "ch_config.h"
#include "lc_curve.h"
#include "lc_metrics.h"

typedef struct ch_query ch_query_t;

#define CH_QUERY_ANCHORS_MAX 1000 /* record ids in one get_anchors (proto: AnchorsQuery) */

/* Binds and starts serving; NULL on error (logged). curve and m are borrowed. */
ch_query_t *ch_query_new(const ch_config_t *cfg, lc_curve_t *curve, lc_metrics_t *m,
                         const uint8_t contract[20]);
void ch_query_destroy(ch_query_t **self_p);

#endif
