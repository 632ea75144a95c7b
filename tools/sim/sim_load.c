/* sim_load.c: sends the pre-signed readings and reads the replies. See sim_load.h.
 * A reply is read as DESIGN.md's device-facing API defines it:
 *   single/compat: 202 {"record_id":"<hex>","status":"accepted"}, or an error status;
 *   batch: 2xx {"results":[{"status":202,"record_id":..} | {"status":401,"error":..}, ...]},
 *          one entry per line in order; a non-2xx status applies to every line of the request
 *          batch.
 * Each accepted record_id is checked against SHA-256("lcore/record" || device_id || seq).
 * A bit per reading records that it got a definitive answer (202, or a 4xx but 429): a request
 * batch sent again is read only for its lines still without one, so nothing is counted or written
 * twice. */
#include "sim_load.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lc_log.h"
#include "sim_ids.h"
#include "sim_log.h"

typedef struct {
    const sim_readings_t *readings;
    const sim_job_t *jobs;
    sim_stats_t *stats;
    const sim_load_opts_t *opts;
    sim_log_limit_t log_limit;
    uint8_t *answered;            /* bit per reading: got a definitive answer */
    uint64_t offered, n_answered; /* readings sent at least once; of those, answered */
    sim_ids_t *ids;               /* record-id check and file */
} load_ctx_t;

static int s_is_accepted(long status)
{
    return status == 200 || status == 202;
}

/* What a device would send again: no answer (0), rate limited, or a server-side failure. */
static int s_is_transient(long status)
{
    return status <= 0 || status == 429 || status >= 500;
}

static int s_answered(const load_ctx_t *ctx, uint64_t r)
{
    return (ctx->answered[r / 8] >> (r % 8)) & 1;
}

static void s_set_answered(load_ctx_t *ctx, uint64_t r)
{
    ctx->answered[r / 8] |= (uint8_t)(1u << (r % 8));
    ctx->n_answered++;
}

/* Readings of a job still without a definitive answer. */
static uint32_t s_pending(const load_ctx_t *ctx, uint64_t first, uint32_t units)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < units; i++)
        n += !s_answered(ctx, first + i);
    return n;
}

/* Logs the first few problems in detail; after that they are only counted. */
static int s_may_log(load_ctx_t *ctx)
{
    return sim_log_may(&ctx->log_limit, "request problems");
}

static const char *s_record_id(json_t *obj)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, "record_id") : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A per-line status: an integer, or "accepted" as in the single reply. 0 when unreadable. */
static long s_line_status(json_t *line)
{
    json_t *st = json_is_object(line) ? json_object_get(line, "status") : NULL;
    if (json_is_integer(st))
        return (long)json_integer_value(st);
    if (json_is_string(st) && strcmp(json_string_value(st), "accepted") == 0)
        return 202;
    return 0;
}

/* Counts one reading's answer (status 0: none readable) and, when it is definitive, marks the
 * reading answered. Returns 1 when the reading should be sent again. */
static int s_reading_outcome(load_ctx_t *ctx, uint64_t r, long status, json_t *reply)
{
    if (status <= 0)
        sim_stats_error(ctx->stats, 1);
    else
        sim_stats_outcome(ctx->stats, status, 1);
    if (s_is_accepted(status))
        sim_ids_accepted(ctx->ids, ctx->readings, r, s_record_id(reply));
    if (s_is_transient(status))
        return 1;
    s_set_answered(ctx, r);
    return 0;
}

/* Reads a 2xx request batch reply for the lines still without an answer. Returns 1 when any of them
 * should be sent again. */
static int s_request_batch_reply(load_ctx_t *ctx, uint64_t first, uint32_t units,
                                 const sim_reply_t *r)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    json_t *results = root ? json_object_get(root, "results") : NULL;
    size_t n = json_is_array(results) ? json_array_size(results) : 0;
    if (n != units && s_may_log(ctx))
        lc_warn("request_batch_reply_invalid", "status=%ld lines=%u results=%zu", r->status, units,
                n);
    int again = 0;
    for (uint32_t i = 0; i < units; i++) {
        if (s_answered(ctx, first + i))
            continue;
        json_t *line = i < n ? json_array_get(results, i) : NULL;
        again |= s_reading_outcome(ctx, first + i, s_line_status(line), line);
    }
    json_decref(root);
    return again;
}

static void s_on_send(void *arg, size_t job, unsigned attempt)
{
    load_ctx_t *ctx = arg;
    uint32_t units = ctx->jobs[job].units;
    if (attempt == 0) {
        ctx->offered += units;
        sim_stats_sent(ctx->stats, units);
        return;
    }
    sim_stats_retried(ctx->stats);
    sim_stats_sent(ctx->stats, s_pending(ctx, sim_readings_first(ctx->readings, job), units));
}

static int s_on_reply(void *arg, size_t job, const sim_reply_t *r)
{
    load_ctx_t *ctx = arg;
    uint32_t units = ctx->jobs[job].units;
    uint64_t first = sim_readings_first(ctx->readings, job);
    uint32_t pending = s_pending(ctx, first, units);
    int again = 0;
    if (r->status == 0) {
        sim_stats_error(ctx->stats, pending);
        if (s_may_log(ctx))
            lc_warn("request_failed", "readings=%u error=\"%s\"", pending, r->error);
        again = 1;
    } else if (ctx->opts->mode == SIM_MODE_BATCH && r->status >= 200 && r->status < 300) {
        sim_stats_latency(ctx->stats, r->latency_us);
        again = s_request_batch_reply(ctx, first, units, r);
    } else if (ctx->opts->mode == SIM_MODE_BATCH) {
        /* A non-2xx status answers every line of the request batch. */
        sim_stats_latency(ctx->stats, r->latency_us);
        for (uint32_t i = 0; i < units; i++) {
            if (!s_answered(ctx, first + i))
                again |= s_reading_outcome(ctx, first + i, r->status, NULL);
        }
    } else {
        sim_stats_latency(ctx->stats, r->latency_us);
        json_t *root = s_is_accepted(r->status) ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
        again = s_reading_outcome(ctx, first, r->status, root);
        json_decref(root);
    }
    return ctx->opts->retry && again;
}

static void s_on_tick(void *arg, double elapsed_s)
{
    load_ctx_t *ctx = arg;
    if (!ctx->opts->quiet)
        sim_stats_progress(ctx->stats, elapsed_s);
    if (ctx->opts->progress)
        sim_stats_progress_line(ctx->stats, stdout, elapsed_s);
    sim_ids_flush(ctx->ids);
}

int sim_load_run(sim_pool_t *pool, const sim_readings_t *readings, sim_stats_t *stats,
                 const sim_load_opts_t *opts, double *duration_s)
{
    size_t n_jobs;
    load_ctx_t ctx = {
        .readings = readings,
        .jobs = sim_readings_jobs(readings, &n_jobs),
        .stats = stats,
        .opts = opts,
    };
    uint64_t n_readings = sim_readings_count(readings);
    ctx.answered = calloc(n_readings / 8 + 1, 1);
    ctx.ids = sim_ids_new(opts->record_ids, stats);
    if (!ctx.answered || !ctx.ids) {
        free(ctx.answered);
        sim_ids_destroy(&ctx.ids);
        lc_error("load_failed", "error=\"%s\" readings=%llu", lc_strerror(LC_ERR_NOMEM),
                 (unsigned long long)n_readings);
        return LC_ERR_NOMEM;
    }
    sim_pool_run_t run = {
        .path = sim_mode_path(opts->mode),
        .content_type = sim_mode_content_type(opts->mode),
        .rate = opts->rate,
        .duration_s = opts->duration_s,
        .stop = opts->stop,
        .retry_for_s = opts->retry ? opts->retry_for_s : 0,
        .ctx = &ctx,
        .on_send = s_on_send,
        .on_reply = s_on_reply,
        .on_tick = s_on_tick,
    };
    lc_info("load_start", "mode=%s path=%s readings=%llu requests=%zu rate=%.1f duration_s=%.1f",
            sim_mode_name(opts->mode), run.path, (unsigned long long)n_readings, n_jobs, opts->rate,
            opts->duration_s);
    int rc = sim_pool_run(pool, &run, ctx.jobs, n_jobs, duration_s);
    sim_ids_destroy(&ctx.ids);
    uint64_t unanswered = ctx.offered - ctx.n_answered;
    sim_stats_set_unanswered(stats, unanswered);
    if (opts->retry && unanswered > 0)
        lc_warn("unanswered", "readings=%llu retry_for_s=%.1f", (unsigned long long)unanswered,
                opts->retry_for_s);
    free(ctx.answered);
    return rc;
}
