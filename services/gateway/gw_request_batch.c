/* gw_request_batch.c: a request batch checked line by line as it streams. See
 * gw_request_batch.h. */
#include "gw_request_batch.h"

#include <stdlib.h>
#include <string.h>

#include "gw_lines.h"

/* A line whose reading passed: its bytes in the arena, and the result it will have. */
typedef struct {
    size_t off, len, line;
    gw_checked_t reading;
} s_kept_t;

struct gw_request_batch {
    gw_request_batch_opts_t o;
    gw_peer_t peer;
    gw_lines_t lines;
    void *line_buf, *results, *kept, *arena;
    size_t line_cap, results_cap, kept_cap, arena_cap;
    size_t n_lines, n_kept, arena_len;
    size_t held; /* bytes taken from the budget */
    int too_many, over_budget;
};

gw_request_batch_t *gw_request_batch_new(const gw_request_batch_opts_t *opts)
{
    gw_request_batch_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->o = *opts;
    if (opts->peer) {
        self->peer = *opts->peer;
        self->o.peer = &self->peer;
    }
    if (gw_budget_grow(opts->budget, 1, &self->held, &self->line_buf, &self->line_cap,
                       opts->max_line, opts->max_line) < 0) {
        free(self);
        return NULL;
    }
    gw_lines_init(&self->lines, self->line_buf, opts->max_line);
    return self;
}

/* Gives back all it holds but the results (those make the answer). */
static void s_free_kept(gw_request_batch_t *self)
{
    gw_budget_t *b = self->o.budget;
    gw_budget_free(b, &self->held, &self->line_buf, &self->line_cap);
    gw_budget_free(b, &self->held, &self->kept, &self->kept_cap);
    gw_budget_free(b, &self->held, &self->arena, &self->arena_cap);
    self->n_kept = self->arena_len = 0;
}

void gw_request_batch_destroy(gw_request_batch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_request_batch_t *self = *self_p;
    s_free_kept(self);
    gw_budget_free(self->o.budget, &self->held, &self->results, &self->results_cap);
    free(self);
    *self_p = NULL;
}

/* Keeps a reading that passed, for the log at the end. 0, or -1 over the budget. */
static int s_keep(gw_request_batch_t *self, const char *jws, size_t len,
                  const gw_checked_t *reading)
{
    gw_budget_t *b = self->o.budget;
    if (gw_budget_grow(b, 1, &self->held, &self->arena, &self->arena_cap, self->arena_len + len,
                       4096) < 0 ||
        gw_budget_grow(b, 1, &self->held, &self->kept, &self->kept_cap,
                       (self->n_kept + 1) * sizeof(s_kept_t), 16 * sizeof(s_kept_t)) < 0)
        return -1;
    memcpy((char *)self->arena + self->arena_len, jws, len);
    ((s_kept_t *)self->kept)[self->n_kept++] =
        (s_kept_t){self->arena_len, len, self->n_lines - 1, *reading};
    self->arena_len += len;
    return 0;
}

/* gw_lines callback: checks one line (line NULL: longer than a reading may be). Non-zero stops
 * the splitter: past max_lines, or over the budget. */
static int s_line(void *arg, const char *line, size_t len)
{
    gw_request_batch_t *self = arg;
    if (self->n_lines == self->o.max_lines) {
        self->too_many = 1; /* refused whole: nothing more is kept */
        s_free_kept(self);
        gw_budget_free(self->o.budget, &self->held, &self->results, &self->results_cap);
        return 1;
    }
    if (gw_budget_grow(self->o.budget, 1, &self->held, &self->results, &self->results_cap,
                       (self->n_lines + 1) * sizeof(gw_result_t), 16 * sizeof(gw_result_t)) < 0) {
        self->over_budget = 1;
        return 1;
    }
    gw_result_t *r = &((gw_result_t *)self->results)[self->n_lines++];
    gw_checked_t reading;
    /* A line over the limit is refused on its length alone (gw_ingest_check reads no byte). */
    if (gw_ingest_check(self->o.ingest, line, len, self->o.peer, NULL, NULL, &reading, r) == 0 &&
        s_keep(self, line, len, &reading) < 0) {
        self->over_budget = 1;
        return 1;
    }
    return 0;
}

int gw_request_batch_feed(gw_request_batch_t *self, const char *chunk, size_t n)
{
    if (!self->too_many && !self->over_budget)
        gw_lines_feed(&self->lines, chunk, n, s_line, self);
    if (self->over_budget) {
        s_free_kept(self);
        gw_budget_free(self->o.budget, &self->held, &self->results, &self->results_cap);
        return LC_ERR_FULL;
    }
    return 0;
}

int gw_request_batch_end(gw_request_batch_t *self, uint64_t *last_lsn)
{
    *last_lsn = 0;
    if (!self->too_many && !self->over_budget)
        gw_lines_end(&self->lines, s_line, self);
    if (self->over_budget) {
        s_free_kept(self);
        return LC_ERR_FULL;
    }
    if (self->too_many)
        return LC_ERR_INVALID;
    if (self->n_lines == 0)
        return LC_ERR_NOTFOUND;
    /* In line order: the log is written in order, one wait covers the whole request batch. */
    for (size_t i = 0; i < self->n_kept; i++) {
        const s_kept_t *k = &((const s_kept_t *)self->kept)[i];
        gw_result_t *r = &((gw_result_t *)self->results)[k->line];
        gw_ingest_accept(self->o.ingest, (const char *)self->arena + k->off, k->len, &k->reading,
                         r);
        if (r->status == 202 && r->lsn > *last_lsn)
            *last_lsn = r->lsn;
    }
    s_free_kept(self); /* the log has its own copy */
    return 0;
}

gw_result_t *gw_request_batch_results(gw_request_batch_t *self, size_t *n)
{
    *n = self->n_lines;
    return self->results;
}
