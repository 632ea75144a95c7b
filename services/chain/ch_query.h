/* ch_query.h: the relayer's query link (ROUTER, LCORE_CHAIN_QUERIES_BIND): gateways ask where a
 * record is anchored (get_anchor -> AnchorInfo: leaf, proof, anchor, transaction, depth), where
 * up to CH_QUERY_ANCHORS_MAX records are (get_anchors -> one AnchorInfo per record the relayer
 * knows, in the order asked, unknown ones left out: a page of records in one round trip and at
 * most two SQL statements), and ping. It runs in its own thread with its own PostgreSQL
 * connection (a ch_db_t only that thread touches), so an answer never waits behind the relayer's
 * RPC calls; that handle keeps the Merkle trees of the anchors asked for lately
 * (LCORE_CHAIN_PROOF_CACHE_LEAVES leaves), so a page asked again reads no leaves and hashes
 * nothing: lcore_chain_proof_cache_hits_total, _misses_total and _leaves count it. */
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
