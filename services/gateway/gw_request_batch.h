/* gw_request_batch.h: one POST /v1/data/batch (a request batch: one JWS a line) as its body
 * streams in. Each line is checked as soon as it is complete (gw_ingest_check: parse, key,
 * signature, signed reading), and only what the answer and the log need is kept: every line's
 * result and the bytes of the readings that passed, never the raw body. When the body ends and
 * it held 1 to max_lines readings, the readings that passed go to the rate limit and the log in
 * order (a request batch over the limit is refused whole, never half-accepted). All it holds is
 * charged to the body budget (gw_budget) and wiped when freed. Used by one HTTP thread at a
 * time (libmicrohttpd calls a connection's handler from one thread). */
#ifndef GW_REQUEST_BATCH_H
#define GW_REQUEST_BATCH_H

#include "gw_budget.h"
#include "gw_ingest.h"

typedef struct gw_request_batch gw_request_batch_t;

typedef struct {
    gw_ingest_t *ingest;
    gw_budget_t *budget;
    const gw_peer_t *peer; /* copied; NULL: lookups not limited per address */
    size_t max_line;       /* the largest reading; longer lines get 413 in their result */
    size_t max_lines;
} gw_request_batch_opts_t;

/* NULL when the budget has no room for the line buffer (or out of memory). */
gw_request_batch_t *gw_request_batch_new(const gw_request_batch_opts_t *opts);
/* Wipes and frees what it holds, gives it back to the budget. NULL-safe. */
void gw_request_batch_destroy(gw_request_batch_t **self_p);

/* Takes the next n bytes of the body. 0, or LC_ERR_FULL: the budget is spent (what it held is
 * already given back; answer 503). Past max_lines, the rest is drained at no cost. */
int gw_request_batch_feed(gw_request_batch_t *self, const char *chunk, size_t n);

/* The body ended. 0: the results are final but for the log (*last_lsn: the log entry to wait
 * for, 0 when nothing was logged); LC_ERR_NOTFOUND: no line (400); LC_ERR_INVALID: more than
 * max_lines (413); LC_ERR_FULL: the budget is spent (503). */
int gw_request_batch_end(gw_request_batch_t *self, uint64_t *last_lsn);

/* The per-line results, in line order. */
gw_result_t *gw_request_batch_results(gw_request_batch_t *self, size_t *n);

#endif
