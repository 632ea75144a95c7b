/* sim_load.c: sends the pre-signed readings and reads the replies. See sim_load.h.
 * A reply is read as DESIGN.md's device-facing API defines it:
 *   single/compat: 202 {"record_id":"<hex>","status":"accepted"}, or an error status;
 *   batch: 2xx {"results":[{"status":202,"record_id":..} | {"status":401,"error":..}, ...]},
 *          one entry per line in order; a non-2xx status applies to every line of the batch.
 * Each accepted record_id is checked against SHA-256("lcore/record" || device_id || seq). */
#include "sim_load.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "lc_codec.h"
#include "lc_log.h"
#include "lc_record.h"

#define SIM_LOAD_LOG_MAX 10 /* protocol and transport errors logged one by one, then counted */

typedef struct {
    const sim_readings_t *readings;
    const sim_job_t *jobs;
    sim_stats_t *stats;
    const sim_load_opts_t *opts;
    unsigned logged;
} load_ctx_t;

static int s_is_accepted(long status)
{
    return status == 200 || status == 202;
}

/* Logs the first few problems in detail; after that they are only counted. */
static int s_may_log(load_ctx_t *ctx)
{
    if (ctx->logged > SIM_LOAD_LOG_MAX)
        return 0;
    if (ctx->logged++ < SIM_LOAD_LOG_MAX)
        return 1;
    lc_warn("log_limit", "reason=\"further request problems are only counted\"");
    return 0;
}

/* Checks the record_id of accepted reading r (NULL when the reply had none) and writes it. */
static void s_accepted_id(load_ctx_t *ctx, uint64_t r, const char *got)
{
    const char *id;
    size_t id_len;
    uint64_t seq;
    sim_readings_identity(ctx->readings, r, &id, &id_len, &seq);
    uint8_t raw[LC_RECORD_ID_LEN];
    char want[LC_HEX_LEN(LC_RECORD_ID_LEN) + 1];
    lc_record_id(raw, id, id_len, seq);
    if (lc_hex_encode(want, sizeof want, raw, sizeof raw) < 0)
        return;
    int match = got && strlen(got) == LC_HEX_LEN(LC_RECORD_ID_LEN) && strcasecmp(got, want) == 0;
    if (!match) {
        sim_stats_record_id_mismatch(ctx->stats);
        if (s_may_log(ctx))
            /* got comes from the server: log only its leading hex digits */
            lc_warn("record_id_mismatch", "device_id=%s seq=%llu want=%s got=%.*s", id,
                    (unsigned long long)seq, want,
                    got ? (int)strspn(got, "0123456789abcdefABCDEF") : 1, got ? got : "-");
    }
    /* The file holds what PostgreSQL must hold: the id the contract defines. */
    if (ctx->opts->record_ids)
        fprintf(ctx->opts->record_ids, "%s\n", want);
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

static void s_batch_reply(load_ctx_t *ctx, uint64_t first, uint32_t units, const sim_reply_t *r)
{
    json_error_t jerr;
    json_t *root = json_loadb(r->body, r->body_len, 0, &jerr);
    json_t *results = root ? json_object_get(root, "results") : NULL;
    size_t n = json_is_array(results) ? json_array_size(results) : 0;
    if (n != units && s_may_log(ctx))
        lc_warn("batch_reply_invalid", "status=%ld lines=%u results=%zu", r->status, units, n);
    for (uint32_t i = 0; i < units; i++) {
        json_t *line = i < n ? json_array_get(results, i) : NULL;
        long status = s_line_status(line);
        if (status <= 0) {
            sim_stats_error(ctx->stats, 1);
            continue;
        }
        sim_stats_outcome(ctx->stats, status, 1);
        if (s_is_accepted(status))
            s_accepted_id(ctx, first + i, s_record_id(line));
    }
    json_decref(root);
}

static void s_single_reply(load_ctx_t *ctx, uint64_t r, const sim_reply_t *reply)
{
    sim_stats_outcome(ctx->stats, reply->status, 1);
    if (!s_is_accepted(reply->status))
        return;
    json_t *root = json_loadb(reply->body, reply->body_len, 0, NULL);
    s_accepted_id(ctx, r, s_record_id(root));
    json_decref(root);
}

static void s_on_send(void *arg, size_t job)
{
    load_ctx_t *ctx = arg;
    sim_stats_sent(ctx->stats, ctx->jobs[job].units);
}

static void s_on_reply(void *arg, size_t job, const sim_reply_t *r)
{
    load_ctx_t *ctx = arg;
    uint32_t units = ctx->jobs[job].units;
    uint64_t first = sim_readings_first(ctx->readings, job);
    if (r->status == 0) {
        sim_stats_error(ctx->stats, units);
        if (s_may_log(ctx))
            lc_warn("request_failed", "readings=%u error=\"%s\"", units, r->error);
        return;
    }
    sim_stats_latency(ctx->stats, r->latency_us);
    if (ctx->opts->mode == SIM_MODE_BATCH && r->status >= 200 && r->status < 300)
        s_batch_reply(ctx, first, units, r);
    else if (ctx->opts->mode == SIM_MODE_BATCH)
        sim_stats_outcome(ctx->stats, r->status, units);
    else
        s_single_reply(ctx, first, r);
}

static void s_on_tick(void *arg, double elapsed_s)
{
    load_ctx_t *ctx = arg;
    if (!ctx->opts->quiet)
        sim_stats_progress(ctx->stats, elapsed_s);
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
    sim_pool_run_t run = {
        .path = sim_mode_path(opts->mode),
        .content_type = sim_mode_content_type(opts->mode),
        .rate = opts->rate,
        .duration_s = opts->duration_s,
        .stop = opts->stop,
        .ctx = &ctx,
        .on_send = s_on_send,
        .on_reply = s_on_reply,
        .on_tick = s_on_tick,
    };
    lc_info("load_start", "mode=%s path=%s readings=%llu requests=%zu rate=%.1f duration_s=%.1f",
            sim_mode_name(opts->mode), run.path, (unsigned long long)sim_readings_count(readings),
            n_jobs, opts->rate, opts->duration_s);
    int rc = sim_pool_run(pool, &run, ctx.jobs, n_jobs, duration_s);
    if (opts->record_ids)
        fflush(opts->record_ids);
    return rc;
}
