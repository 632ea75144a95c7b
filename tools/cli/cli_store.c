/* cli_store.c: see cli_store.h. */
#include "cli_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_DEFAULT_QUERIES "tcp://127.0.0.1:5554"

const char *cli_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

int cli_store_open(cli_store_t *self, const char *cmd)
{
    memset(self, 0, sizeof *self);
    self->cmd = cmd;
    lc_curve_cfg_t cc = {.enabled = strcmp(cli_env("LCORE_CURVE", "1"), "0") != 0};
    snprintf(cc.cert, sizeof cc.cert, "%s", cli_env("LCORE_CLI_CURVE_CERT", ""));
    snprintf(cc.trust_dir, sizeof cc.trust_dir, "%s", cli_env("LCORE_CURVE_TRUST_DIR", ""));
    self->metrics = lc_metrics_new();
    self->curve = self->metrics ? lc_curve_new(&cc, "cli", self->metrics) : NULL;
    self->client =
        self->curve ? lc_query_client_new(cli_env("LCORE_STORE_QUERIES_CONNECT", S_DEFAULT_QUERIES),
                                          LC_ROLE_STORE, 5000, self->curve)
                    : NULL;
    if (!self->client) {
        fprintf(stderr,
                "lcore-cli %s: no CURVE identity (LCORE_CLI_CURVE_CERT, "
                "LCORE_CURVE_TRUST_DIR: an operator certificate, see the log)\n",
                cmd);
        return -1;
    }
    return 0;
}

void cli_store_close(cli_store_t *self)
{
    lc_query_client_destroy(&self->client);
    lc_curve_destroy(&self->curve);
    lc_metrics_destroy(&self->metrics);
}

Lcore__V1__QueryReply *cli_store_ask(cli_store_t *self, Lcore__V1__Query *q, const char *not_found)
{
    int err = 0;
    Lcore__V1__QueryReply *r = lc_query_call(self->client, q, &err);
    if (!r) {
        fprintf(stderr, "lcore-cli %s: no answer from the store (%s): %s\n", self->cmd,
                cli_env("LCORE_STORE_QUERIES_CONNECT", S_DEFAULT_QUERIES), lc_strerror(err));
        return NULL;
    }
    if (r->status != LCORE__V1__QUERY_REPLY__STATUS__OK) {
        fprintf(stderr, "lcore-cli %s: %s\n", self->cmd,
                r->status == LCORE__V1__QUERY_REPLY__STATUS__NOT_FOUND && not_found
                    ? not_found
                    : (r->message && *r->message ? r->message : "the store refused"));
        lcore__v1__query_reply__free_unpacked(r, NULL);
        return NULL;
    }
    return r;
}
