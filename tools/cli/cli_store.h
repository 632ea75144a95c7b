/* cli_store.h: lcore-cli's link to the stores' query sockets, as the operator role (CURVE:
 * LCORE_CLI_CURVE_CERT, a certificate in LCORE_CURVE_TRUST_DIR's operator/; endpoints
 * LCORE_STORE_QUERIES_CONNECT), shared by decrypt and dead-letters. */
#ifndef CLI_STORE_H
#define CLI_STORE_H

#include "lc_curve.h"
#include "lc_metrics.h"
#include "lc_query.h"

typedef struct {
    const char *cmd; /* for messages: "decrypt", "dead-letters" */
    lc_metrics_t *metrics;
    lc_curve_t *curve;
    lc_query_client_t *client;
} cli_store_t;

/* An environment variable, or def when unset or empty. */
const char *cli_env(const char *name, const char *def);

/* Opens the link (says why on stderr when it cannot): 0 or -1. cli_store_close either way. */
int cli_store_open(cli_store_t *self, const char *cmd);
void cli_store_close(cli_store_t *self);

/* One query; the reply when the store answered OK (caller frees with
 * lcore__v1__query_reply__free_unpacked), else NULL after saying why on stderr (not_found: the
 * message for NOT_FOUND). */
Lcore__V1__QueryReply *cli_store_ask(cli_store_t *self, Lcore__V1__Query *q, const char *not_found);

#endif
