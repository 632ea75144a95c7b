/* lc_rpc.h: the transport of a JSON-RPC 2.0 client (libcurl, HTTP POST) with failover across
 * endpoints. Owns one keep-alive curl handle per endpoint and each endpoint's health: a transport
 * error, timeout, HTTP 5xx/429 or an invalid answer (lc_jsonrpc_check_response) marks the
 * endpoint down for 1 s, doubling to 30 s while it keeps failing, and the same call moves on to
 * the next endpoint that is not down. Every call starts from the first endpoint that is not down,
 * so the primary takes over again as soon as its backoff has expired. A JSON-RPC error object is
 * an answer, not a failure: it reaches the caller, classified. The typed eth_* calls are
 * lc_ethrpc; used by lcore-chain (relayer, deploy) and lcore-cli (verify, set-relayer).
 *
 * One lc_rpc_t is used by one thread at a time (no locks). Every call blocks for at most (number
 * of endpoints) x timeout. */
#ifndef LC_RPC_H
#define LC_RPC_H

#include <jansson.h>

#include "lc_common.h"
#include "lc_jsonrpc.h"
#include "lc_metrics.h"

#define LC_RPC_TIMEOUT_MS_DEFAULT 10000
#define LC_RPC_CONNECT_TIMEOUT_MS 2000
#define LC_RPC_BACKOFF_MIN_MS 1000
#define LC_RPC_BACKOFF_MAX_MS 30000
#define LC_RPC_MAX_ENDPOINTS 16

typedef struct lc_rpc lc_rpc_t;

/* urls_csv: comma-separated http:// or https:// URLs, first = primary (spaces around commas are
 * ignored). timeout_ms: total time per HTTP request, <= 0 for LC_RPC_TIMEOUT_MS_DEFAULT.
 * metrics: NULL or the registry to register lcore_chain_rpc_* in (the chain service's names:
 * lcore-cli passes NULL). Logs endpoints as scheme://host:port only (paths may hold API keys).
 * NULL on error, logged. */
lc_rpc_t *lc_rpc_new(const char *urls_csv, int timeout_ms, lc_metrics_t *metrics);
/* https endpoints are verified against the PEM CA certificates in path instead of the system's
 * (lcore-cli's LCORE_CA_FILE). 0 or LC_ERR_NOMEM. */
int lc_rpc_set_ca_file(lc_rpc_t *self, const char *path) LC_WUR;
void lc_rpc_destroy(lc_rpc_t **self_p);

/* Common contract of every call, here and in lc_ethrpc. err may be NULL; when given it is reset,
 * then filled on LC_JSONRPC_REJECTED, LC_ERR_UNSUPPORTED (method not found) and
 * LC_ERR_UNAVAILABLE.
 *   0                    success; outputs are valid only after this
 *   LC_JSONRPC_REJECTED  the node answered with a JSON-RPC error object (see err->kind)
 *   LC_ERR_UNSUPPORTED   the node does not offer the method (or, where said, the field)
 *   LC_ERR_NOTFOUND      where said: the node answered null (no such receipt or block)
 *   LC_ERR_UNAVAILABLE   no endpoint gave a usable answer, or all are in backoff: retry later
 *   LC_ERR_NOMEM */

/* Reads a result of the expected type into ctx. Returns 0, LC_ERR_IO for a bad answer (the
 * endpoint counts as failed and the next one is asked) or another code that goes to the caller
 * as is (LC_ERR_NOTFOUND, LC_ERR_UNSUPPORTED, LC_ERR_NOMEM). */
typedef int (*lc_rpc_parse_fn)(const json_t *result, void *ctx);

/* Calls method with params (a JSON array, stolen even on error; NULL for []) and hands the
 * result, of the expected type, to parse (NULL: the result is not read). */
int lc_rpc_request(lc_rpc_t *self, const char *method, json_t *params, lc_jsonrpc_expect_t expect,
                   lc_rpc_parse_fn parse, void *ctx, lc_jsonrpc_error_t *err) LC_WUR;
/* The same, returning the result as a new reference in *result. */
int lc_rpc_call(lc_rpc_t *self, const char *method, json_t *params, lc_jsonrpc_expect_t expect,
                json_t **result, lc_jsonrpc_error_t *err) LC_WUR;

#endif
